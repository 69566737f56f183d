"""Users of 2026 (issue 18): programs without a guide get a settings card, device names lead
to their platform and never to a version, pasted error messages get cause and fix, a step's
help answers "wo finde ich …", and the FAQ answers what users ask while changing settings."""

from __future__ import annotations

import pytest

from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
from tests.support import KNOWLEDGE_DIR, Chat

PERSON = "Mit einem Menschen sprechen"
CHECK = "Verbindung testen"

_KNOWLEDGE = load_knowledge(KNOWLEDGE_DIR)
# Cards reached by name (not the ones that answer newer versions of a guided program).
NAMED_CARDS = [card for card in _KNOWLEDGE.cards.values() if card.from_version is None]


# --- programs without a guide: the settings card ----------------------------------------------


@pytest.mark.parametrize("card_id", [card.id for card in NAMED_CARDS])
async def test_a_user_who_names_a_program_without_a_guide_gets_its_settings_card(
    service: ConversationService, knowledge: KnowledgeBase, card_id: str
) -> None:
    card = knowledge.cards[card_id]
    chat = Chat(service)
    await chat.say(f"Ich nutze {card.name.de}")
    server = knowledge.server
    assert server.host in chat.text
    for endpoint in server.endpoints:
        if endpoint.protocol in ("imap", "pop3", "smtp"):
            assert f"Port {endpoint.port} mit" in chat.text
    assert f"zum Beispiel {knowledge.login_example}" in chat.text
    assert "Ihr Passwort bleibt dasselbe" in chat.text
    assert "kenne ich leider nicht" not in chat.text
    for note in card.notes:
        assert note.text.de in chat.text
    assert {CHECK, PERSON} <= set(chat.options)
    assert (await chat.state()).card == card_id


async def test_a_settings_card_shows_only_the_protocol_the_user_named(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("eM Client mit POP3")
    assert "Posteingangsserver (POP3)" in chat.text
    assert "Posteingangsserver (IMAP)" not in chat.text
    assert "Postausgangsserver (SMTP)" in chat.text


async def test_naming_the_protocol_after_the_card_narrows_it_to_that_protocol(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Evolution")
    assert "Posteingangsserver (POP3)" in chat.text
    await chat.say("IMAP")
    assert "Posteingangsserver (IMAP)" in chat.text
    assert "Posteingangsserver (POP3)" not in chat.text


WAYS = {"autoconfig": "(Autoconfig)", "autodiscover": "(Autodiscover)", "apple-profile": "Profil"}


@pytest.mark.parametrize("card_id", [card.id for card in NAMED_CARDS if card.setup])
async def test_the_card_names_the_automatic_way_the_program_supports(
    service: ConversationService, knowledge: KnowledgeBase, card_id: str
) -> None:
    card = knowledge.cards[card_id]
    chat = Chat(service)
    await chat.say(card.name.de)
    for way in card.setup_ways:
        assert WAYS[way] in chat.text


async def test_a_discontinued_program_says_so_before_the_settings(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Windows Mail und Kalender")
    text = chat.text
    assert text.index("31. Dezember 2024") < text.index("Posteingangsserver")


async def test_a_typo_in_a_long_card_name_still_finds_the_card(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Mailsprnig")
    assert "Für Mailspring habe ich keine Schritt-für-Schritt-Anleitung" in chat.text


async def test_mail_in_a_sentence_is_not_read_as_the_gmail_app(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("hab ne mail bekommen dass ich ssl anmachen soll")
    assert "Gmail" not in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text


async def test_another_program_asks_for_its_name_and_a_known_name_gets_its_card(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.tap("Anderes Programm")
    assert "Schreiben Sie mir seinen Namen" in chat.text
    await chat.say("FairEmail")
    assert "Für FairEmail habe ich keine Schritt-für-Schritt-Anleitung" in chat.text
    assert CHECK in chat.options


async def test_an_unknown_name_gets_the_generic_settings_and_a_person(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.tap("Anderes Programm")
    await chat.say("Foobarmail")
    assert knowledge.server.host in chat.text
    assert "Ihr Passwort bleibt dasselbe" in chat.text
    assert PERSON in chat.options


async def test_the_check_can_be_run_from_a_settings_card(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Spark")
    await chat.tap(CHECK)
    assert "Verbindung" in chat.text


@pytest.mark.parametrize(
    ("said", "card"),
    [
        ("Outlook für Mac, Version 16.78", "outlook-mac"),
        ("das neue Outlook", "outlook-new"),
        ("Outlook auf dem Handy", "outlook-mobile"),
        ("Spark Mail auf dem Mac", "spark"),
        ("iOS 18", "ios-18"),
        ("Android 14", "samsung-email"),
    ],
)
async def test_programs_and_versions_the_guides_do_not_cover_get_their_card(
    service: ConversationService, knowledge: KnowledgeBase, said: str, card: str
) -> None:
    chat = Chat(service)
    await chat.say(said)
    assert (await chat.state()).card == card
    assert "Welche Version von Microsoft Outlook" not in chat.text  # not Outlook for Windows
    assert "Schritt 1 von" not in chat.text
    for note in knowledge.cards[card].notes:
        assert note.text.de in chat.text


async def test_next_after_a_settings_card_says_there_are_no_steps_and_offers_the_check(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    chat = Chat(service)
    await chat.say("iOS 18")
    await chat.say("weiter")
    assert "Weitere Schritte gibt es hier nicht" in chat.text
    assert knowledge.server.name in chat.text
    assert {CHECK, PERSON} <= set(chat.options)
    assert (await chat.state()).card == "ios-18"


async def test_an_iphone_card_offers_the_profile(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("iOS 18")
    assert "Profil installieren" in chat.options
    await chat.tap("Profil installieren")
    assert "Für welche E-Mail-Adresse?" in chat.text
    await chat.tap("Abbrechen – zurück zur Anleitung")
    assert "Was möchten Sie als Nächstes tun?" in chat.text


# --- devices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["Handy", "Smartphone", "Tablet", "auf meinem Diensthandy"])
async def test_a_device_without_its_platform_asks_iphone_or_android(
    service: ConversationService, word: str
) -> None:
    chat = Chat(service)
    await chat.say(word)
    assert "Ist es ein iPhone/iPad oder ein Android-Gerät?" in chat.text
    assert chat.options[:2] == ["iPhone/iPad", "Android"]
    await chat.tap("Android")
    assert (await chat.state()).program == "android"


@pytest.mark.parametrize(
    ("device", "example"),
    [(device.id, device.examples[-1]) for device in _KNOWLEDGE.devices.entries],
)
async def test_a_device_model_leads_to_its_platform_and_never_to_a_version(
    service: ConversationService, knowledge: KnowledgeBase, device: str, example: str
) -> None:
    platform = next(d.platform for d in knowledge.devices.entries if d.id == device)
    chat = Chat(service)
    await chat.say(example)
    state = await chat.state()
    assert state.program == knowledge.devices.platform_programs[platform]
    assert state.version is None
    assert "keine eigene Anleitung" not in chat.text


async def test_an_iphone_15_is_no_ios_15(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("Ich habe ein iPhone 15")
    assert "iOS 15" not in chat.text
    assert (await chat.state()).version is None


@pytest.mark.parametrize(
    ("said", "card"),
    [
        ("Outlook App auf dem Galaxy S23", "outlook-mobile"),
        ("Outlook auf meinem iPhone 15", "outlook-mobile"),
        ("thunderbird auf meinem android handy", "thunderbird-android"),
        ("ich hab outlook aufm macbook", "outlook-mac"),
        ("Outlook am iMac, Version 16.78", "outlook-mac"),
    ],
)
async def test_an_app_named_with_a_device_wins_over_the_device(
    service: ConversationService, said: str, card: str
) -> None:
    chat = Chat(service)
    await chat.say(said)
    assert (await chat.state()).card == card


@pytest.mark.parametrize(
    ("said", "system"),
    [
        (example, computer.id)
        for computer in _KNOWLEDGE.devices.computers
        for example in computer.examples[:2]
    ],
)
async def test_a_computer_without_a_program_asks_which_program_and_offers_those_usual_there(
    service: ConversationService, knowledge: KnowledgeBase, said: str, system: str
) -> None:
    computer = next(c for c in knowledge.devices.computers if c.id == system)
    chat = Chat(service)
    await chat.say(said)
    assert f"Welches Mailprogramm benutzen Sie unter {computer.name}?" in chat.text
    offered = [
        knowledge.programs[p].name if p in knowledge.programs else knowledge.cards[p].name.de
        for p in computer.programs
    ]
    assert chat.options[: len(offered)] == offered
    assert {"Anderes Programm", "Die Servereinstellungen sehen", PERSON} <= set(chat.options)
    await chat.tap(offered[-1])
    state = await chat.state()
    assert computer.programs[-1] in (state.program, state.card)


async def test_a_windows_user_who_only_wants_the_settings_gets_them(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    chat = Chat(service)
    await chat.say("mein Laptop mit Windows")
    await chat.tap("Die Servereinstellungen sehen")
    assert knowledge.server.host in chat.text
    assert "Port 993" in chat.text


@pytest.mark.parametrize(
    "said", ["Outlook unter Windows 10", "Thunderbird auf meinem Windows 11 Laptop"]
)
async def test_the_version_of_a_computers_system_is_not_the_programs(
    service: ConversationService, said: str
) -> None:
    chat = Chat(service)
    await chat.say(said)
    assert (await chat.state()).version is None
    assert "Welche Version von" in chat.text


# --- error messages ---------------------------------------------------------------------------

ERROR_EXAMPLES = [
    (entry.id, example)
    for entry in _KNOWLEDGE.troubleshooting.entries
    for example in entry.examples
]


@pytest.mark.parametrize(("entry_id", "example"), ERROR_EXAMPLES)
async def test_a_pasted_error_message_gets_its_cause_and_fix_and_the_check(
    service: ConversationService, knowledge: KnowledgeBase, entry_id: str, example: str
) -> None:
    entry = knowledge.troubleshooting.get(entry_id)
    assert entry is not None
    chat = Chat(service)
    await chat.say(example)
    # English wordings are answered in English
    found = [
        e
        for e in knowledge.troubleshooting.match(example)
        if e.fix.de in chat.text or (e.fix.en and e.fix.en in chat.text)
    ]
    assert found, chat.text
    options = " ".join(chat.options)
    if (await chat.state()).program is None:  # a program named with it: its questions follow
        assert PERSON in options or "Talk to a person" in options
        if found[0].offer_check:
            assert CHECK in options or "Test the connection" in options


async def test_an_error_message_at_the_version_question_keeps_the_program(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    chat = Chat(service)
    await chat.say("Outlook")
    await chat.say("Zertifikat ungültig")
    entry = knowledge.troubleshooting.get("certificate")
    assert entry is not None
    assert entry.fix.de in chat.text
    assert "Welche Version von Microsoft Outlook haben Sie?" in chat.text
    assert (await chat.state()).program == "outlook"


async def test_an_error_message_mid_guide_is_answered_at_that_step(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016 mit IMAP")
    await chat.say("Ihr Server unterstützt den angegebenen Verbindungsverschlüsselungstyp nicht")
    entry = knowledge.troubleshooting.get("outlook-encryption-type")
    assert entry is not None
    assert entry.fix.de in chat.text
    assert CHECK in chat.options
    state = await chat.state()
    assert (state.guide, state.step) == ("outlook-2010-2016", 0)


async def test_an_iphone_error_that_says_ueberprueft_is_no_request_for_the_check(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Identität des Servers kann nicht überprüft werden")
    assert "mbox1.belwue.de" in chat.text
    assert CHECK in chat.options


# --- step help --------------------------------------------------------------------------------


def _steps_with_help() -> list[tuple[str, int, str]]:
    found = []
    for guide in _KNOWLEDGE.guides.values():
        for index, step in enumerate(guide.steps_for("imap")):
            for entry in step.help:
                # "Verbindung prüfen" would ask for the check itself
                keyword = next(k for k in entry.keywords if "prüf" not in k)
                found.append((guide.id, index, keyword))
    return found


@pytest.mark.parametrize(("guide_id", "index", "keyword"), _steps_with_help())
@pytest.mark.parametrize("question", ["wo finde ich {}?", "{} gibt es bei mir nicht"])
async def test_a_user_who_cannot_find_what_a_step_names_gets_the_steps_help(
    service: ConversationService,
    knowledge: KnowledgeBase,
    guide_id: str,
    index: int,
    keyword: str,
    question: str,
) -> None:
    guide = knowledge.guides[guide_id]
    program = knowledge.program_for(guide_id)
    chat = Chat(service)
    await chat.say(f"{program.name} {guide.versions[0]} mit IMAP")
    for _ in range(index):
        await chat.say("weiter")
    assert (await chat.state()).step == index
    await chat.say(question.format(keyword))
    step = guide.steps_for("imap")[index]
    entry = next(e for e in step.help if keyword in e.keywords)
    assert entry.text.de in chat.text
    assert CHECK in chat.options


# --- FAQ while changing settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "faq"),
    [
        ("Was ist mein Benutzername?", "login-name"),
        ("Muss ich das Passwort neu eingeben?", "password-unchanged"),
    ],
)
async def test_a_question_while_changing_settings_gets_its_answer(
    service: ConversationService, knowledge: KnowledgeBase, question: str, faq: str
) -> None:
    entry = next(e for e in knowledge.faq if e.id == faq)
    for opening in (None, "Outlook 2016 mit IMAP"):
        chat = Chat(service, user=f"anna-{opening}")
        if opening:
            await chat.say(opening)
        await chat.say(question)
        assert entry.answer.de in chat.text
        assert "Dazu kann ich Folgendes erklären" not in chat.text


# --- guides for current versions ---------------------------------------------------------------

NEW_GUIDES = [guide for guide in _KNOWLEDGE.guides.values() if not guide.from_seed]


@pytest.mark.parametrize("guide_id", [guide.id for guide in NEW_GUIDES])
async def test_a_user_of_a_current_version_walks_through_its_guide_to_the_end(
    service: ConversationService, knowledge: KnowledgeBase, guide_id: str
) -> None:
    guide = knowledge.guides[guide_id]
    program = knowledge.program_for(guide_id)
    said = next(a for a in program.aliases if not knowledge.devices.match(a))
    chat = Chat(service)
    await chat.say(f"{said} {guide.versions[-1]} mit IMAP")
    steps = guide.steps_for("imap")
    for number, step in enumerate(steps, start=1):
        assert f"Schritt {number} von {len(steps)}" in chat.text
        assert step.text in chat.text
        await chat.say("weiter")
    assert "Geschafft" in chat.text
    assert (await chat.state()).guide == guide_id


@pytest.mark.parametrize(
    ("said", "guide"),
    [
        ("Thunderbird 128", "thunderbird-115"),
        ("Thunderbird 140.2", "thunderbird-115"),
        ("Thunderbird 60", "thunderbird"),
        ("iOS 17", "ios-14"),
        ("iPhone 12 mit iOS 15", "ios-14"),
        ("iOS 12", "ios"),
        ("macOS 11", "apple-mail-ventura"),  # Big Sur comes after 10.13, not beside 10.11
        ("Mac mit Monterey", "apple-mail-ventura"),
        ("Mac mit Mojave", "apple-mail-high-sierra"),
    ],
)
async def test_a_version_resolves_to_the_nearest_guide(
    service: ConversationService, said: str, guide: str
) -> None:
    chat = Chat(service)
    await chat.say(f"{said} mit IMAP")
    assert (await chat.state()).guide == guide


@pytest.mark.parametrize(
    ("said", "current"),
    [
        ("Thunderbird", "thunderbird-115"),
        ("iPhone", "ios-14"),
        ("Ich habe ein iPhone 16", "ios-14"),  # a model says no version
        ("iPad Air M2", "ios-14"),
    ],
)
async def test_a_bare_program_asks_the_version_and_not_knowing_it_gets_the_current_guide(
    service: ConversationService, knowledge: KnowledgeBase, said: str, current: str
) -> None:
    chat = Chat(service)
    await chat.say(said)
    assert "Welche Version von" in chat.text
    assert "Weiß ich nicht" in chat.options
    await chat.tap("Weiß ich nicht")
    program = knowledge.program_for(current)
    assert program.version_hint.de in chat.text
    assert (await chat.state()).guide == current
