"""Whole conversations through the conversation service, as a user experiences them."""

from __future__ import annotations

import pytest

from bot.commands import menu
from bot.conversation import ConversationService
from bot.engine.decision import RunCheck
from bot.engine.engine import Engine
from bot.engine.options import understanding_from_payload
from bot.engine.state import ConversationState, Stage
from bot.gate import CUT_MARKER, MAX_MESSAGE_LENGTH
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.redaction import REDACTED
from bot.turns import Inbound
from bot.understanding.types import Understanding
from tests.support import Chat, open_service

# How a user names each program, and what else the bot asks before the first step.
WAYS_IN = {
    "outlook-2003": ["Outlook 2003"],
    "outlook-2007": ["outlook 2007"],
    "outlook-2010-2016": ["outlok 2013", "IMAP"],
    "outlook-2019-365": ["Office 365", "IMAP"],
    "thunderbird": ["Thunderbird", "1"],  # the version question: the seed's guide first
    "thunderbird-115": ["Thunderbird", "Weiß ich nicht"],
    "apple-mail-el-capitan": ["Mail auf meinem Mac mit El Capitan"],
    "apple-mail-high-sierra": ["Apple Mail", "High Sierra"],
    "apple-mail-ventura": ["Apple Mail", "Sonoma"],
    "ios": ["iPhone", "iOS 12"],
    "ios-14": ["iPhone", "iOS 16"],
    "android": ["ich hab ein Samsung Handy"],
}


@pytest.mark.parametrize("guide_id", sorted(WAYS_IN))
async def test_a_user_walks_every_guide_from_greeting_to_the_server_settings(
    service: ConversationService, knowledge: KnowledgeBase, guide_id: str
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    for answer in WAYS_IN[guide_id]:
        await chat.say(answer)
    guide = knowledge.guides[guide_id]
    protocol = "imap" if guide.differs_by_protocol() else None
    steps = guide.steps_for(protocol)
    for number, step in enumerate(steps, 1):
        assert f"{guide.title} – Schritt {number} von {len(steps)}" in chat.text
        assert step.text in chat.text
        for item in step.items:
            assert "• " + item.text in chat.text
        await chat.say("weiter")
    assert "das war der letzte Schritt" in chat.text
    assert "mbox1.belwue.de" in chat.text
    assert "Port 993 mit SSL/TLS" in chat.text
    assert "Port 465 mit SSL/TLS" in chat.text
    assert "Verbindung testen" in chat.options
    assert (await chat.state()).stage is Stage.FINISHED


async def test_a_user_who_types_outlok_2013_gets_the_outlook_2010_13_16_guide(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("outlok 2013")
    assert "Anleitung für Microsoft Outlook 2010/13/16" in chat.text
    assert chat.options == ["IMAP", "POP3", "Weiß ich nicht"]


async def test_pop3_users_get_the_pop3_note_as_an_extra_step_and_pop3_settings(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.tap("POP3")
    assert "Schritt 1 von 5" in chat.text
    for _ in range(4):
        await chat.say("weiter")
    assert "Schritt 5 von 5" in chat.text
    assert "Bei einem Posteingangsserver (POP3)" in chat.text
    await chat.say("weiter")
    assert "Posteingangsserver (POP3)" in chat.text
    assert "Port 995 mit SSL/TLS" in chat.text
    assert "IMAP" not in chat.text


async def test_back_repeat_and_numbers_move_through_the_steps(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    assert "Schritt 1 von 5" in chat.text
    await chat.say("zurück")
    assert "Das ist bereits der erste Schritt." in chat.text
    await chat.say("1")  # "Erledigt – weiter"
    assert "Schritt 2 von 5" in chat.text
    await chat.say("nochmal")
    assert "Schritt 2 von 5" in chat.text
    await chat.say("Zurück")  # the option's text
    assert "Schritt 1 von 5" in chat.text


async def test_a_correction_mid_guide_switches_to_the_right_program(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("iPhone mit iOS 12")
    await chat.say("weiter")
    assert "Apple iPhone (iOS 12) – Schritt 2 von 5" in chat.text
    await chat.say("nein, ich habe Thunderbird 60")
    assert "wechseln wir das Programm" in chat.text
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text


async def test_a_version_no_guide_covers_gets_the_nearest_guide_with_a_note(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 102")
    assert "Für Mozilla Thunderbird 102 habe ich keine eigene Anleitung" in chat.text
    assert "Mozilla Thunderbird (115 und neuer) – Schritt 1" in chat.text
    chat = Chat(service, user="ben")
    await chat.say("Mac mit Tahoe")
    assert "Apple Mail (macOS Ventura und neuer)" in chat.text
    assert "etwas anders aussehen" in chat.text


async def test_a_program_with_several_guides_asks_for_the_version_and_explains_how_to_find_it(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook")
    assert "Welche Version von Microsoft Outlook haben Sie?" in chat.text
    assert "Outlook 2003" in chat.options
    await chat.tap("Weiß ich nicht")
    assert "Info zu Outlook" in chat.text
    await chat.say("2007")
    assert "Microsoft Outlook 2007 – Schritt 1 von 4" in chat.text


async def test_an_unknown_program_gets_an_honest_answer_and_the_offer_of_a_human(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.say("Lotus Notes")
    assert "Dieses Programm kenne ich leider nicht" in chat.text
    assert "Mit einem Menschen sprechen" in chat.options
    await chat.tap("Mit einem Menschen sprechen")
    assert "servicedesk@example.org" in chat.text  # no ticket service: the helpdesk contact


async def test_without_a_check_service_the_user_gets_the_helpdesk_contact_and_continues(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Android")
    await chat.say("Kannst du prüfen, ob der Server geht?")
    assert "Verbindungstest kann ich gerade nicht ausführen" in chat.text
    assert "servicedesk@example.org" in chat.text
    assert "Android 6.X (Beispiel Samsung) – Schritt 1 von 6" in chat.text


async def test_settings_and_explanations_are_available_from_any_step(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("iPad mit iOS 12")
    await chat.say("welche Ports brauche ich?")
    assert "Port 587 mit STARTTLS" in chat.text
    assert "Schritt 1 von 5" in chat.text
    await chat.say("Was ist STARTTLS?")
    assert "TLS-Aktivierungskommando" in chat.text
    assert "Schritt 1 von 5" in chat.text


async def test_a_password_is_never_echoed_and_never_stored(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("mein Passwort ist Sommer2024!")
    assert "niemals Ihr Passwort" in chat.text
    assert "Sommer2024" not in chat.text
    assert "Schritt 1 von 5" in chat.text  # the user stays where they were
    transcript = await service.store.transcript(chat.channel, chat.user)
    stored = "\n".join(message.text for message in transcript)
    assert "Sommer2024" not in stored
    assert f"mein Passwort ist {REDACTED}" in stored


async def test_over_long_and_binary_messages_get_a_polite_answer_and_are_kept_harmless(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("a" * 5000)
    assert "zu lang" in chat.text
    await chat.say("\x00\x01\x02\x03\x04\x05")
    assert "kann ich leider nicht lesen" in chat.text
    transcript = await service.store.transcript(chat.channel, chat.user)
    incoming = [m.text for m in transcript if m.direction == "in"]
    assert incoming[0] == "a" * (MAX_MESSAGE_LENGTH - len(CUT_MARKER)) + CUT_MARKER
    assert len(incoming[1]) == 6 and "\x00" not in incoming[1]


async def test_delete_data_asks_first_and_then_removes_everything(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Android")
    await chat.say("lösch meine Daten")
    assert "wirklich alles löschen" in chat.text
    await chat.say("nein")
    assert "ich lösche nichts" in chat.text
    assert "Schritt 1 von 6" in chat.text
    await chat.command("loeschen")
    await chat.tap("Ja, alles löschen")
    assert "alles gelöscht" in chat.text
    assert await service.store.transcript(chat.channel, chat.user) == []
    await chat.say("Hallo")  # a new beginning
    assert "Welches Mailprogramm benutzen Sie?" in chat.text


async def test_restart_and_help_work_from_anywhere(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("iPhone mit iOS 12")
    await chat.command("hilfe")
    assert "„weiter“" in chat.text and "Schritt 1 von 5" in chat.text
    await chat.say("von vorne")
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    assert (await chat.state()).guide is None


async def test_help_lists_every_command_with_what_it_does_in_the_users_language(
    service: ConversationService,
) -> None:
    for locale, heading in (("de", "Befehle:"), ("en", "Commands:")):
        inbound = Inbound("test", f"help-{locale}", command="hilfe", locale=locale)
        text = "\n".join(reply.text for reply in await service.handle(inbound))
        assert heading in text
        for name, description in menu(translator(locale)):
            assert f"/{name} – {description}" in text


async def test_a_deep_link_opens_a_guide_directly(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.command("start", "g_thunderbird")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text


async def test_english_users_get_english_texts(service: ConversationService) -> None:
    chat = Chat(service)
    chat.replies = await service.handle(Inbound("test", "emma", text="Hello", locale="en-GB"))
    assert "Which mail program do you use?" in chat.text


async def test_a_restart_of_the_bot_resumes_the_conversation_where_it_stood(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    first = await open_service(sqlite_url, knowledge)
    chat = Chat(first)
    await chat.say("Thunderbird 60")
    await chat.say("weiter")
    await first.store.close()

    second = await open_service(sqlite_url, knowledge)
    chat = Chat(second)
    await chat.command("start")
    assert "Willkommen zurück" in chat.text
    assert "Schritt 2 von 5" in chat.text
    await chat.say("weiter")
    assert "Schritt 3 von 5" in chat.text
    await second.store.close()


async def test_the_same_conversation_works_on_postgresql(
    postgres_url: str, knowledge: KnowledgeBase
) -> None:
    service = await open_service(postgres_url, knowledge)
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.say("outlok 2013")
    await chat.say("IMAP")
    await chat.say("weiter")
    assert "Schritt 2 von 4" in chat.text
    await chat.say("Passwort: geheim")
    await service.store.close()

    service = await open_service(postgres_url, knowledge)
    chat = Chat(service)
    await chat.say("nochmal")
    assert "Schritt 2 von 4" in chat.text
    transcript = await service.store.transcript(chat.channel, chat.user)
    assert "geheim" not in "\n".join(m.text for m in transcript)
    await service.store.close()


async def test_sprache_switches_the_language_and_asks_the_current_question_again(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("sprache")
    assert chat.options == ["Deutsch", "English"]
    await chat.tap("English")
    assert "from now on I'll write in English." in chat.text
    assert "Mozilla Thunderbird (60.3.1) – Step 1 of 5" in chat.text
    await chat.say("next")
    assert "Step 2 of 5" in chat.text
    await chat.command("sprache", "de")
    assert "ab jetzt schreibe ich auf Deutsch" in chat.text


async def test_when_two_intents_are_equally_likely_the_bot_asks_which_was_meant(
    knowledge: KnowledgeBase,
) -> None:
    engine = Engine(knowledge)
    state = ConversationState(stage=Stage.GUIDE, program="thunderbird", guide="thunderbird")
    unsure = Understanding(
        "kannst du nochmal schauen", "repeat_step", 0.5, alternative="request_check"
    )
    decision = engine.decide(state, unsure, translator("de"))
    (reply,) = decision.replies
    assert reply.text == "Meinten Sie …?"
    assert [o.label for o in reply.options] == [
        "Den Schritt noch einmal zeigen",
        "Die Verbindung zum Mailserver testen",
    ]
    picked = understanding_from_payload(reply.options[1].payload)
    assert picked is not None
    assert engine.decide(decision.state, picked, translator("de")).actions == [RunCheck()]


async def test_a_user_who_describes_wrong_settings_gets_the_right_combination(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("ich habe Port 993 mit STARTTLS eingestellt")
    assert "STARTTLS passt dort nicht" in chat.text
    assert "Port 993 mit SSL/TLS oder Port 143 mit STARTTLS" in chat.text
    assert "Schritt 1 von 5" in chat.text
    await chat.say("SMTP über Port 587 mit STARTTLS")
    assert "Das passt" in chat.text
