"""Knowledge beyond the guides: English beside German, settings cards, devices, error messages,
placeholders filled from server.yaml — as the engine reads them from `KnowledgeBase`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.diff import describe_changes
from bot.knowledge.lexicon import ProgramLexicon
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.translations import text_hash
from bot.knowledge.versions import guide_for_version
from bot.normalize import normalize
from tests.support import KNOWLEDGE_DIR, REPO


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _lotse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=REPO, capture_output=True, text=True
    )


ANDROID_STEP = "Tippen Sie nun auf Ihre E-Mail-Adresse."


def test_every_seed_step_has_an_english_translation_of_its_current_german(
    knowledge: KnowledgeBase,
) -> None:
    for guide in knowledge.guides.values():
        for step in guide.steps:
            assert step.en and step.de_hash == text_hash(step.text), (guide.id, step.text)


def test_a_changed_german_step_makes_its_english_stale_with_file_line_and_the_new_hash(
    kb_copy: Path,
) -> None:
    android = kb_copy / "android.yaml"
    _edit(android, ANDROID_STEP, "Tippen Sie jetzt auf Ihre E-Mail-Adresse.")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(kb_copy, require_translations=True)
    (problem,) = caught.value.problems
    new_hash = text_hash("Tippen Sie jetzt auf Ihre E-Mail-Adresse.")
    line = (
        android.read_text(encoding="utf-8")
        .splitlines()
        .index(next(x for x in android.read_text(encoding="utf-8").splitlines() if "b0fda7e8" in x))
    )
    assert problem.line == line + 1
    assert f"set de_hash: '{new_hash}'" in problem.message


def test_the_running_bot_takes_the_german_change_and_shows_english_readers_the_german(
    kb_copy: Path,
) -> None:
    _edit(kb_copy / "android.yaml", ANDROID_STEP, "Tippen Sie jetzt auf Ihre E-Mail-Adresse.")
    english = load_knowledge(kb_copy).guides["android"].localized("en")
    assert english.steps[1].text == "Tippen Sie jetzt auf Ihre E-Mail-Adresse."
    assert english.steps[0].text.startswith("In the e-mail app")


def test_kb_translations_accept_stores_the_new_hash_after_review(kb_copy: Path) -> None:
    _edit(kb_copy / "android.yaml", ANDROID_STEP, "Tippen Sie jetzt auf Ihre E-Mail-Adresse.")
    listed = _lotse("kb", "translations", str(kb_copy))
    assert listed.returncode == 1 and "VERALTET" in listed.stdout
    assert _lotse("kb", "translations", str(kb_copy), "--accept").returncode == 0
    load_knowledge(kb_copy, require_translations=True)


def test_kb_show_in_english_and_diff_in_both_languages(kb_copy: Path) -> None:
    shown = _lotse("kb", "show", "thunderbird", "--locale", "en")
    assert "Mozilla Thunderbird (60.3.1) – Step 1 of" in shown.stdout
    assert "Open the account settings" in shown.stdout
    _edit(kb_copy / "android.yaml", "'Now tap your e-mail address.'", "'Now tap your address.'")
    changes = list(describe_changes(load_knowledge(KNOWLEDGE_DIR), load_knowledge(kb_copy)))
    assert "== android" in changes
    assert "+Now tap your address." in changes


def test_the_seed_typo_smpt_is_corrected_in_german_and_english(knowledge: KnowledgeBase) -> None:
    step = knowledge.guides["apple-mail-el-capitan"].steps[2]
    assert '"SMTP-Server"' in step.text and "SMPT" not in step.text
    assert '"SMTP-Server"' in (step.en or "")


def test_programs_without_a_guide_get_a_settings_card_from_server_yaml(
    knowledge: KnowledgeBase,
) -> None:
    for card_id in knowledge.cards:
        card = knowledge.settings_card(card_id)
        assert card.server_name == "mbox1.belwue.de"
        assert [e.port for e in card.endpoints["smtp"]] == [465, 587, 25]
        assert card.password_unchanged and card.login_example == "name@uni-beispiel.de"
    pop3 = knowledge.settings_card("em-client", "pop3")
    assert list(pop3.endpoints) == ["pop3", "smtp"]
    assert pop3.setup == ["autodiscover"]
    windows = knowledge.settings_card("windows-mail")
    assert windows.discontinued and "31. Dezember 2024" in windows.notes[0].de


@pytest.mark.parametrize(
    ("said", "owner"),
    [
        ("Outlook für Mac", "outlook-mac"),
        ("das neue Outlook", "outlook-new"),
        ("K-9 Mail", "thunderbird-android"),
        ("Mail und Kalender", "windows-mail"),
        ("FairEmail", "fairemail"),
        ("Office 365", "outlook"),
    ],
)
def test_names_lead_to_their_program_or_card(
    knowledge: KnowledgeBase, said: str, owner: str
) -> None:
    found = knowledge.name_owner(said)
    assert found is not None and found.program == owner


def test_newer_versions_of_guided_programs_get_their_card(knowledge: KnowledgeBase) -> None:
    assert knowledge.card_for_version("android", "14").id == "samsung-email"  # type: ignore[union-attr]
    assert knowledge.card_for_version("android", "6") is None
    assert knowledge.card_for_version("ios", "18").id == "ios-18"  # type: ignore[union-attr]
    assert knowledge.card_for_version("ios", "17") is None


@pytest.mark.parametrize(
    ("said", "platform"),
    [
        ("iPhone 15", "ios"),
        ("mein iPhone 8", "ios"),
        ("iPad Air M2", "ios"),
        ("Galaxy S23 Ultra", "android"),
        ("Pixel 8a", "android"),
        ("Redmi Note 13 Pro", "android"),
        ("Fairphone 5", "android"),
    ],
)
def test_device_models_map_to_a_platform_and_never_to_a_version(
    knowledge: KnowledgeBase, said: str, platform: str
) -> None:
    assert knowledge.devices.platform_of(said) == platform
    masked = knowledge.devices.mask(f"Ich habe ein {said}")
    assert ProgramLexicon(knowledge).find(normalize(masked)).version is None


def test_generic_device_words_ask_for_the_platform(knowledge: KnowledgeBase) -> None:
    for said in ("Handy", "auf dem Smartphone", "Tablet", "on my phone"):
        assert knowledge.devices.is_generic(said) and knowledge.devices.match(said) is None
    # The two platforms the bot then offers, each with the program of its own mail app.
    assert {
        "ios": "ios",
        "android": "android",
    }.items() <= knowledge.devices.platform_programs.items()


@pytest.mark.parametrize(
    ("message", "program", "entry"),
    [
        ("Zertifikat ungültig", None, "certificate"),
        (
            "Ihr Server unterstützt den angegebenen Verbindungsverschlüsselungstyp nicht",
            "outlook",
            "outlook-encryption-type",
        ),
        ("Fehler 0x800CCC0E", "outlook", "outlook-0x800ccc0e"),
        ("Identität des Servers kann nicht überprüft werden", "ios", "ios-server-identity"),
        (
            "Thunderbird will eine Sicherheitsausnahme hinzufügen",
            "thunderbird",
            "thunderbird-security-exception",
        ),
        ("Zeitüberschreitung der Verbindung mit Server mbox1.belwue.de.", None, "timeout"),
    ],
)
def test_error_messages_map_to_cause_and_fix(
    knowledge: KnowledgeBase, message: str, program: str | None, entry: str
) -> None:
    found = knowledge.troubleshooting.match(message, program)
    assert found and found[0].id == entry
    assert "{" not in found[0].fix.de and "{" not in (found[0].fix.en or "")


def test_placeholders_are_filled_from_server_yaml(knowledge: KnowledgeBase) -> None:
    fix = knowledge.troubleshooting.get("outlook-encryption-type")
    assert fix is not None
    assert "Port 993 mit SSL/TLS oder Port 143 mit STARTTLS" in fix.fix.de


def test_an_unknown_placeholder_is_reported_with_its_line(kb_copy: Path) -> None:
    path = kb_copy / "troubleshooting.yaml"
    _edit(
        path,
        "Port {smtp_tls_port} mit SSL/TLS oder Port {smtp_starttls_port} mit STARTTLS.'",
        "Port {smtp_ssl_port} mit SSL/TLS.'",
    )
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(kb_copy)
    (problem,) = caught.value.problems
    assert "placeholder {smtp_ssl_port} cannot be filled" in problem.message
    assert (
        problem.line is not None
        and "smtp_ssl_port" in path.read_text().splitlines()[problem.line - 1]
    )


def test_a_device_example_that_leaves_a_version_behind_is_reported(kb_copy: Path) -> None:
    _edit(kb_copy / "devices.yaml", "'Pixel 6']", "'Pixel 6', 'Pixel 10 Pro Fold 2']")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(kb_copy)
    (problem,) = caught.value.problems
    assert "would be read as a version" in problem.message


@pytest.mark.parametrize(
    ("program", "version", "guide"),
    [
        ("thunderbird", "128", "thunderbird-115"),
        ("thunderbird", "140", "thunderbird-115"),
        ("thunderbird", "102", "thunderbird-115"),
        ("thunderbird", "60", "thunderbird"),
        ("ios", "17", "ios-14"),
        ("ios", "15", "ios-14"),
        ("ios", "13", "ios"),
        ("apple-mail", "14", "apple-mail-ventura"),
        ("apple-mail", "26", "apple-mail-ventura"),
        ("apple-mail", "11", "apple-mail-ventura"),  # Big Sur: no neighbour of 10.11
        ("apple-mail", "12", "apple-mail-ventura"),
        ("apple-mail", "10.12", "apple-mail-high-sierra"),  # between two: the newer
        ("apple-mail", "10.14", "apple-mail-high-sierra"),  # Mojave: same major as 10.13
        ("thunderbird", "78", "thunderbird-115"),
    ],
)
def test_versions_resolve_to_the_nearest_guide_published_or_not(
    knowledge: KnowledgeBase, program: str, version: str, guide: str
) -> None:
    choice = guide_for_version(knowledge.every_guide_of_program(program), version)
    assert choice is not None and choice.guide.id == guide


def test_every_guide_not_from_the_seed_names_published_sources(knowledge: KnowledgeBase) -> None:
    newer = [g for g in [*knowledge.guides.values(), *knowledge.unpublished.values()]]
    newer = [g for g in newer if not g.from_seed]
    assert {g.id for g in newer} == {"thunderbird-115", "ios-14", "apple-mail-ventura"}
    for guide in newer:
        assert isinstance(guide.source, list)
        assert all(s.url.startswith("https://") and s.read == "2026-12-03" for s in guide.source)


def test_a_guide_without_source_is_reported_with_its_line(kb_copy: Path) -> None:
    path = kb_copy / "apple-mail.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("    source:\n", text.index("id: apple-mail-ventura"))
    end = text.index("    versions:", start)
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(kb_copy)
    assert [p.field for p in caught.value.problems] == ["guides.2.source"]


def test_the_guides_for_current_versions_are_published_after_the_seeds(
    knowledge: KnowledgeBase,
) -> None:
    assert not knowledge.unpublished
    assert [g.id for g in knowledge.guides_of_program["thunderbird"]] == [
        "thunderbird",
        "thunderbird-115",
    ]
    shown = _lotse("kb", "show", "thunderbird-115", "--locale", "en")
    assert "published: false" not in shown.stdout
    assert "Mozilla Thunderbird (115 and later) – Step 1 of 5" in shown.stdout


@pytest.mark.parametrize(
    ("guide_id", "step", "said", "expected"),
    [
        ("thunderbird-115", 0, "wo finde ich extras", "Alt-Taste"),
        ("thunderbird", 0, "extras gibt es bei mir nicht", "Alt-Taste"),
        ("ios", 0, "passwoerter accounts gibt es nicht", '"Mail" > "Accounts"'),
        ("thunderbird-115", 0, "das menue gibt es bei mir nicht", "rechten Maustaste"),
        ("ios-14", 0, "passwoerter accounts sehe ich nicht", '"Mail" > "Accounts"'),
        ("apple-mail-ventura", 2, "das haekchen sehe ich nicht", "immer automatisch"),
        ("apple-mail-ventura", 3, "verbindung pruefen", '"Fenster" > "Verbindung prüfen"'),
    ],
)
def test_step_help_answers_where_is_it_at_that_step(
    knowledge: KnowledgeBase, guide_id: str, step: int, said: str, expected: str
) -> None:
    guide = {**knowledge.guides, **knowledge.unpublished}[guide_id]
    found = guide.steps[step].help_for(said)
    assert found is not None and expected in found.text.de
    assert found.text.en and found.source


def test_faq_answers_the_login_name_from_server_yaml(
    knowledge: KnowledgeBase, kb_copy: Path
) -> None:
    (entry,) = [e for e in knowledge.faq if e.id == "login-name"]
    assert "vollständige E-Mail-Adresse, zum Beispiel name@uni-beispiel.de" in entry.answer.de
    _edit(kb_copy / "server.yaml", "login_name: address", "login_name: local_part")
    (local,) = [e for e in load_knowledge(kb_copy).faq if e.id == "login-name"]
    assert "der Teil Ihrer E-Mail-Adresse vor dem @" in local.answer.de
    assert local.answer.en and "{" not in local.answer.en


def test_faq_says_the_password_stays_and_why_a_warning_appears(knowledge: KnowledgeBase) -> None:
    answers = {e.id: e.answer for e in knowledge.faq}
    assert "Ihr Passwort bleibt dasselbe" in answers["password-unchanged"].de
    assert "genau mbox1.belwue.de" in answers["warning-after-change"].de


def test_kb_show_previews_a_settings_card_for_admins() -> None:
    shown = _lotse("kb", "show", "em-client", "--protocol", "pop3")
    assert shown.returncode == 0
    assert "== eM Client (card em-client)" in shown.stdout
    assert "setup: autodiscover" in shown.stdout
    assert "Posteingangsserver (POP3): mbox1.belwue.de" in shown.stdout
    assert "(IMAP)" not in shown.stdout
