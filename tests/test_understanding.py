"""The lexicon back end: what a message means, and which guide it points to."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.knowledge.base import KnowledgeBase
from bot.understanding.lexicon import LexiconUnderstander
from tests.support import REPO


@pytest.fixture(scope="module")
def lexicon(knowledge: KnowledgeBase) -> LexiconUnderstander:
    return LexiconUnderstander(knowledge)


@pytest.mark.parametrize(
    ("text", "guide"),
    [
        ("outlok 2013", "outlook-2010-2016"),
        ("Outlook 2010", "outlook-2010-2016"),
        ("ich nutze outlook 16", "outlook-2010-2016"),
        ("Office 365", "outlook-2019-365"),
        ("outlook 2021", "outlook-2019-365"),
        ("Microsoft 365 auf dem Laptop", "outlook-2019-365"),
        ("outlook 2003", "outlook-2003"),
        ("Outlook 2007", "outlook-2007"),
        ("Mail auf meinem Mac mit El Capitan", "apple-mail-el-capitan"),
        ("macOS 10.13", "apple-mail-high-sierra"),
        ("Apple Mail High Sierra", "apple-mail-high-sierra"),
        ("Mac Mail 10.11", "apple-mail-el-capitan"),
        ("ich hab ein Samsung Handy", "android"),
        ("Galaxy S7", "android"),
        ("iPad mit iOS 12", "ios"),
        ("mein iphone, ios 13", "ios"),
        ("thunderbrid 60", "thunderbird"),
        ("Thunderbird 128", "thunderbird-115"),
        ("iOS 17", "ios-14"),
    ],
)
def test_a_program_named_with_typos_or_indirectly_points_to_its_guide(
    lexicon: LexiconUnderstander, text: str, guide: str
) -> None:
    result = lexicon.understand_now(text)
    assert result.guide == guide
    assert result.intent == "inform"


def test_a_program_with_several_guides_and_no_version_names_only_the_program(
    lexicon: LexiconUnderstander,
) -> None:
    result = lexicon.understand_now("ich habe Outlook")
    assert result.entities["client"] == "outlook"
    assert result.guide is None


def test_versions_are_kept_as_written(lexicon: LexiconUnderstander) -> None:
    assert lexicon.understand_now("Thunderbird 60.3.1").entities["version"] == "60.3.1"
    assert lexicon.understand_now("Mac 10.11").entities["version"] == "10.11"
    assert lexicon.understand_now("Mac mit Sonoma").entities["version"] == "14"


def test_a_mail_someone_got_is_not_taken_for_mac_mail(lexicon: LexiconUnderstander) -> None:
    got = lexicon.understand_now("I got a mail saying I need to enable TLS")
    assert "client" not in got.entities


def test_a_program_the_knowledge_base_does_not_know_is_not_guessed(
    lexicon: LexiconUnderstander,
) -> None:
    result = lexicon.understand_now("Lotus Notes")
    assert result.guide is None
    assert "client" not in result.entities


def test_short_aliases_are_not_matched_inside_other_words(lexicon: LexiconUnderstander) -> None:
    assert "client" not in lexicon.understand_now("mach das mal").entities


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Hallo", "greet"),
        ("moin", "greet"),
        ("Servus!", "greet"),
        ("Grüß Gott", "greet"),
        ("weiter", "next_step"),
        ("erledigt", "next_step"),
        ("weitr", "next_step"),
        ("zurück", "previous_step"),
        ("zurueck bitte", "previous_step"),
        ("nochmal", "repeat_step"),
        ("kannst du das wiederholen", "repeat_step"),
        ("von vorne", "restart"),
        ("jo", "affirm"),
        ("passt", "affirm"),
        ("ne", "deny"),
        ("nein", "deny"),
        ("danke!", "thank"),
        ("tschüss", "goodbye"),
        ("das klappt nicht", "step_problem"),
        ("ich finde den Reiter nicht", "step_problem"),
        ("Kannst du prüfen, ob der Server geht?", "request_check"),
        ("ich brauch nen Menschen", "request_human"),
        ("Welche Ports brauche ich?", "ask_settings"),
        ("Was ist STARTTLS?", "ask_explanation"),
        ("warum muss ich das machen", "ask_explanation"),
        ("lösch meine Daten", "delete_data"),
        ("bist du ein Bot?", "bot_challenge"),
        ("Wie wird das Wetter morgen?", "out_of_scope"),
        # English
        ("Hello", "greet"),
        ("yes please", "affirm"),
        ("nah", "deny"),
        ("next", "next_step"),
        ("done", "next_step"),
        ("that worked", "next_step"),
        ("ok I did that", "next_step"),
        ("not finished yet", "step_problem"),
        ("go back", "previous_step"),
        ("say that again", "repeat_step"),
        ("start over", "restart"),
        ("wrong program", "restart"),
        ("I can't see the button", "step_problem"),
        ("where is that?", "step_problem"),
        ("can I talk to a human", "request_human"),
        ("test the connection", "request_check"),
        ("is the server down?", "request_check"),
        ("which server do I use", "ask_settings"),
        ("what is STARTTLS", "ask_explanation"),
        ("what does SSL mean", "ask_explanation"),
        ("delete my data", "delete_data"),
        ("please delete everything", "delete_data"),
        ("thanks a lot", "thank"),
        ("cheers", "thank"),
        ("goodbye", "goodbye"),
        ("are you a bot?", "bot_challenge"),
    ],
)
def test_phrases_map_to_intents(lexicon: LexiconUnderstander, text: str, intent: str) -> None:
    assert lexicon.understand_now(text).intent == intent


@pytest.mark.parametrize(
    ("text", "topic"),
    [("When is the helpdesk open?", "contact"), ("What's my username?", "username")],
)
def test_english_questions_about_the_helpdesk_and_login_name_are_recognised(
    lexicon: LexiconUnderstander, text: str, topic: str
) -> None:
    assert lexicon.understand_now(text).entities.get("topic") == topic


def test_a_correction_carries_the_new_program(lexicon: LexiconUnderstander) -> None:
    result = lexicon.understand_now("nein, ich habe Thunderbird 60")
    assert result.intent == "inform"
    assert result.guide == "thunderbird"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("nicht 2013, sondern 2016", "2016"),
        ("vorher hatte ich 2010, jetzt 2016", "2016"),
        ("statt 2007 hab ich jetzt 2019", "2019"),
        ("not 2016 but 2013", "2013"),
        ("wait, not 2019, I had 2010", "2010"),
        ("Outlook 2016, nicht 2013", "2016"),
    ],
)
def test_a_value_the_user_replaces_in_the_same_message_is_not_taken(
    lexicon: LexiconUnderstander, text: str, version: str
) -> None:
    result = lexicon.understand_now(text)
    assert result.entities.get("version") == version
    assert result.intent != "step_problem"  # "nicht" here corrects, it does not complain


def test_protocol_port_and_security_are_recognised(lexicon: LexiconUnderstander) -> None:
    result = lexicon.understand_now("IMAP mit STARTTLS auf Port 143")
    assert result.entities == {"protocol": "imap", "security": "starttls", "port": "143"}


def test_lotse_understand_json_prints_one_line_per_message() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "understand", "--json"],
        input="outlok 2013\nweiter\n\nLotus Notes\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [line["guide"] for line in lines] == ["outlook-2010-2016", None, None]
    assert [line["intent"] for line in lines] == ["inform", "next_step", "out_of_scope"]
    assert set(lines[0]) == {"text", "intent", "confidence", "entities", "guide"}
    assert lines[0]["entities"] == {"client": "outlook", "version": "2013"}
