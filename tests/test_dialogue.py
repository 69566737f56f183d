"""Every turn moves the user forward: answers that are not an offered option, what the user
already said, ordinary dialogue acts and complaints at a step (issue 16)."""

from __future__ import annotations

import pytest

from bot.conversation import ConversationService
from bot.engine.engine import Engine
from bot.engine.state import ConversationState, Stage
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.tickets.service import TicketService
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.types import Understanding
from tests.support import Chat

PERSON = "Mit einem Menschen sprechen"


@pytest.fixture(scope="module")
def lexicon(knowledge: KnowledgeBase) -> LexiconUnderstander:
    return LexiconUnderstander(knowledge)


# --- every question has a way forward ------------------------------------------------------


@pytest.mark.parametrize("answer", ["egal", "beides", "passt, nimm des normale", "weiter", "ja"])
async def test_a_user_who_does_not_care_about_imap_or_pop3_gets_imap_with_the_reason(
    service: ConversationService, answer: str
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.say(answer)
    assert "Dann nehmen wir IMAP" in chat.text
    assert "einzige Unterschied" in chat.text
    assert "Microsoft Outlook 2010/13/16 – Schritt 1 von 4" in chat.text
    assert (await chat.state()).protocol == "imap"


async def test_a_user_who_does_not_know_the_protocol_learns_where_to_look_and_then_gets_imap(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2013")
    await chat.say("keine Ahnung")
    first = chat.text
    assert "Kontoeinstellungen beim Posteingangsserver" in first
    assert chat.options[:2] == ["IMAP", "POP3"]
    await chat.tap("Weiß ich nicht")
    assert chat.text != first
    assert "Dann nehmen wir IMAP" in chat.text
    assert "Schritt 1 von 4" in chat.text


async def test_an_unclear_answer_at_imap_or_pop3_is_explained_then_a_person_is_offered(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.say("das mit dem Posteingang")
    assert "nicht erkannt" not in chat.text
    assert "Wenn Sie unsicher sind, nehmen Sie IMAP" in chat.text
    first = chat.text
    await chat.say("hä?")
    assert chat.text != first
    assert PERSON in chat.options
    await chat.say("ja")  # the offered default
    assert "Schritt 1 von 4" in chat.text


@pytest.mark.parametrize("dont_know", ["weiß ich nicht", "keine Ahnung", "wo find i des", "ka"])
async def test_a_user_who_does_not_know_the_version_is_told_how_to_find_it(
    service: ConversationService, dont_know: str
) -> None:
    chat = Chat(service)
    await chat.say("Outlook")
    await chat.say(dont_know)
    assert "Info zu Outlook" in chat.text
    assert "Outlook 2003" in chat.options


async def test_a_user_who_names_the_program_but_not_the_version_learns_where_to_find_it(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Ich habe Outlook, weiß aber nicht welche Version")
    assert "Info zu Outlook" in chat.text
    assert "Outlook 2003" in chat.options


async def test_not_knowing_the_version_again_after_naming_the_program_takes_the_newest_guide(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook hab ich, die Version weiß ich nicht")
    first = chat.text
    await chat.say("keine ahnung ehrlich gesagt")
    assert chat.text != first
    assert "die haben die meisten" in chat.text
    assert (await chat.state()).guide == "outlook-2019-365"


async def test_a_protocol_said_with_doubt_is_still_taken(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.say("POP3 glaube ich, bin nicht sicher")
    assert (await chat.state()).protocol == "pop3"
    assert "Schritt 1 von 5" in chat.text


async def test_a_user_who_cannot_find_the_version_twice_gets_the_newest_guide_and_can_switch(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook")
    await chat.say("weiß ich nicht")
    first = chat.text
    assert "Info zu Outlook" in first
    assert "Outlook 2010/2013/2016" in chat.options
    await chat.say("hab ich nicht gefunden")
    assert chat.text != first
    assert "neueste Version (Outlook 2019/2021/2024/365)" in chat.text
    assert "nennen Sie mir einfach Ihre Version" in chat.text
    assert (await chat.state()).guide == "outlook-2019-365"
    await chat.say("ah doch, 2016")
    assert "Microsoft Outlook 2010/13/16" in chat.text


@pytest.mark.parametrize("answer", ["egal, such was aus", "weiter", "ist mir gleich"])
async def test_a_user_who_does_not_care_about_the_version_gets_the_newest_guide_with_the_reason(
    service: ConversationService, answer: str
) -> None:
    chat = Chat(service)
    await chat.say("ich nutze outlook")
    await chat.say(answer)
    assert "die haben die meisten" in chat.text
    assert "Info zu Outlook" in chat.text  # how to find the version if the menus differ
    assert (await chat.state()).guide == "outlook-2019-365"


def test_an_answer_at_a_question_wins_over_the_intent_that_came_with_it(
    knowledge: KnowledgeBase,
) -> None:
    """Rasa may call "wo find i des" ask_settings: at the version question it is still
    "I don't know", and the user learns where the version is shown."""
    state = ConversationState(stage=Stage.VERSION, program="outlook")
    said = Understanding("wo find i des", "ask_settings", 0.99, {"answer": "unknown"})
    decision = Engine(knowledge).decide(state, said, translator("de"))
    text = "\n".join(reply.text for reply in decision.replies)
    assert "Info zu Outlook" in text
    assert decision.state.stage is Stage.VERSION


def test_a_program_name_rasa_knows_as_a_client_but_the_knowledge_does_not_gets_the_settings(
    knowledge: KnowledgeBase,
) -> None:
    """Rasa calls "Mailbird" inform (its client entity has no value the bot knows): it is an
    unknown program, not an off-topic message."""
    said = Understanding("Mailbird", "inform", 1.0, {}, source="rasa")
    decision = Engine(knowledge).decide(ConversationState(), said, translator("de"))
    text = "\n".join(reply.text for reply in decision.replies)
    assert "kenne ich leider nicht" in text and "mbox1.belwue.de" in text
    assert "Bei anderen Fragen" not in text


def test_a_login_name_question_rasa_reads_as_settings_gets_the_login_name_too(
    knowledge: KnowledgeBase,
) -> None:
    said = Understanding("What's my username?", "ask_settings", 0.97, {"topic": "username"})
    decision = Engine(knowledge).decide(ConversationState(), said, translator("en"))
    text = "\n".join(reply.text for reply in decision.replies)
    assert "full e-mail address" in text and "993" in text


async def test_short_acknowledgements_inside_a_guide_go_on(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    for number, answer in enumerate(["k", "jo", "alles klar", "passt"], 2):
        await chat.say(answer)
        assert f"Schritt {number} von 5" in chat.text


# --- what the user already said is not asked again -----------------------------------------


@pytest.mark.parametrize(
    "first",
    ["Outlook 2016 mit IMAP", "imap, outlook, 2016", "outlook16 imap", "Outlook 365, Port 993"],
)
async def test_program_version_and_protocol_in_one_message_lead_to_the_first_step(
    service: ConversationService, first: str
) -> None:
    chat = Chat(service)
    await chat.say(first)
    assert "IMAP oder per POP3" not in chat.text
    assert "Schritt 1 von" in chat.text
    assert (await chat.state()).protocol == "imap"


async def test_a_protocol_or_version_said_before_the_program_is_kept(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hallo, ich hab ein IMAP-Konto")
    await chat.say("Outlook 2016")
    assert "Schritt 1 von 4" in chat.text

    other = Chat(service, user="bert")
    await other.say("ich hab version 2007")
    await other.say("ist outlook")
    assert "Microsoft Outlook 2007 – Schritt 1 von 4" in other.text


@pytest.mark.parametrize(("port", "protocol"), [("bei mir steht 993", "imap"), ("110", "pop3")])
async def test_a_port_answers_the_protocol_question(
    service: ConversationService, port: str, protocol: str
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2013")
    await chat.say(port)
    assert "Schritt 1 von" in chat.text
    assert (await chat.state()).protocol == protocol


async def test_a_bare_number_at_the_version_question_is_an_option_when_offered_else_a_version(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook")
    await chat.say("2")
    assert "Microsoft Outlook 2007 – Schritt 1 von 4" in chat.text

    other = Chat(service, user="bert")
    await other.say("Outlook")
    await other.say("16")
    assert "Microsoft Outlook 2010/13/16" in other.text


async def test_a_long_first_message_with_program_and_error_keeps_the_program(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Mein Outlook 2016 (IMAP) zeigt beim Senden einen Fehler, was muss ich tun?")
    assert "Fehlermeldung" in chat.text
    assert "Microsoft Outlook 2010/13/16 – Schritt 1 von 4" in chat.text


# --- dialogue acts ---------------------------------------------------------------------------


async def test_a_user_who_needs_a_moment_is_given_time_and_keeps_the_offered_answers(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("moment")
    assert "Lassen Sie sich Zeit" in chat.text
    assert "Schritt" not in chat.text
    await chat.say("1")  # still the first option offered with the step: "Erledigt – weiter"
    assert "Schritt 2 von 5" in chat.text
    await chat.say("?")
    assert "Schritt 2 von 5" in chat.text


async def test_a_step_asked_for_by_number_is_shown_without_switching_the_guide(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2010 mit IMAP")
    await chat.say("weiter")
    await chat.say("weiter")
    await chat.say("was war nochmal schritt 1?")
    assert "Microsoft Outlook 2010/13/16 – Schritt 1 von 4" in chat.text
    await chat.say("und schritt 4?")
    assert "Schritt 4 von 4" in chat.text
    await chat.say("schritt 9")
    assert "Diese Anleitung hat 4 Schritte." in chat.text
    state = await chat.state()
    assert (state.guide, state.version) == ("outlook-2010-2016", "2010")


async def test_a_number_mid_guide_switches_the_guide_only_when_it_names_a_version(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2007")
    await chat.say("ich habe 2 Konten")
    assert (await chat.state()).guide == "outlook-2007"
    assert "Schritt 1 von 4" in chat.text
    await chat.say("ich meinte 2013")
    assert (await chat.state()).guide == "outlook-2010-2016"
    await chat.say("IMAP")
    await chat.say("zeig mir den dritten Schritt")
    assert "Schritt 3 von" in chat.text


async def test_a_user_who_says_who_they_are_gets_no_ticket(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say(
        "Guten Tag, ich bin Mitarbeiterin am Institut für Physik und soll TLS einrichten."
    )
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    assert await tickets.listing() == []
    await chat.say("ich möchte mit einem Mitarbeiter sprechen")
    assert len(await tickets.listing()) == 1


@pytest.mark.parametrize("closing", ["fertig", "danke, das wars", "passt"])
async def test_a_user_who_is_done_after_the_last_step_gets_a_goodbye(
    service: ConversationService, closing: str
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2003")
    for _ in range(4):
        await chat.say("weiter")
    assert (await chat.state()).stage is Stage.FINISHED
    await chat.say(closing)
    assert "Auf Wiedersehen" in chat.text or "Gern geschehen" in chat.text
    assert "Was möchten Sie als Nächstes tun?" not in chat.text


async def test_an_off_topic_question_gets_what_lotse_does_and_the_guide_goes_on(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("wie wird das wetter morgen in tübingen?")
    assert "kenne ich leider nicht" not in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    await chat.say("Thunderbird 60")
    await chat.say("was gibts heute in der mensa?")
    assert "Darauf weiß ich leider keine Antwort" in chat.text
    assert "Schritt 1 von 5" in chat.text


async def test_a_password_change_is_sent_to_the_helpdesk_and_contact_questions_are_answered(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Ich will mein Passwort ändern")
    assert "Passwort kann ich nicht ändern" in chat.text
    assert "servicedesk@example.org" in chat.text
    await chat.say("Wann ist der Servicedesk erreichbar")
    assert "Mo-Do 09:00–16:00" in chat.text
    await chat.say("Was ist mein Benutzername")
    assert "vollständige E-Mail-Adresse" in chat.text
    assert await tickets.listing() == []


@pytest.mark.parametrize("answer", ["ja", "Hilfe", "Anderes Programm"])
async def test_ordinary_words_at_the_program_question_are_no_unknown_program(
    service: ConversationService, answer: str
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.say(answer)
    assert "kenne ich leider nicht" not in chat.text
    assert "Microsoft Outlook" in chat.options


async def test_an_unknown_program_gets_the_settings_to_enter(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.say("Anderes Programm")
    await chat.say("eM Client")
    assert "mbox1.belwue.de" in chat.text
    assert "Port 993 mit SSL/TLS" in chat.text
    assert PERSON in chat.options


@pytest.mark.parametrize(
    ("said", "fact"),
    [
        (
            "Thunderbird, bei mir ist Port 995 drin, reicht das?",
            "Port 995 ist für POP3 mit SSL/TLS",
        ),
        (
            "outlook was nehm ich bei port 587 als verschlüsselung",
            "Port 587 ist für SMTP mit STARTTLS",
        ),
    ],
)
async def test_a_port_question_asked_with_the_program_name_is_answered_before_the_version(
    service: ConversationService, said: str, fact: str
) -> None:
    chat = Chat(service)
    await chat.say(said)
    assert fact in chat.text
    assert "Welche Version von" in chat.text


@pytest.mark.parametrize(
    "question", ["womit melde ich mich an, was ist der Benutzername?", "was trag ich bei login ein"]
)
async def test_a_user_who_asks_for_the_login_name_gets_the_rule_from_server_yaml(
    service: ConversationService, question: str
) -> None:
    chat = Chat(service)
    await chat.say(question)
    assert "Ihr Benutzername ist Ihre vollständige E-Mail-Adresse" in chat.text


def test_a_login_name_question_read_as_a_complaint_still_gets_the_login_name(
    knowledge: KnowledgeBase,
) -> None:
    """Rasa may call "was kommt bei Anmeldename rein?" step_problem: it is still a question."""
    state = ConversationState(
        stage=Stage.GUIDE, program="apple-mail", guide="apple-mail-high-sierra"
    )
    said = Understanding(
        "was kommt bei anmeldename rein?", "step_problem", 0.9, {"topic": "username"}
    )
    decision = Engine(knowledge).decide(state, said, translator("de"))
    text = "\n".join(reply.text for reply in decision.replies)
    assert "Ihr Benutzername ist Ihre vollständige E-Mail-Adresse" in text
    assert "Schritt 1 von" in text


async def test_questions_asked_with_the_program_are_answered_before_the_guide_starts(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say(
        "Thunderbird 60 mit IMAP. Welche Ports trage ich ein, und bleibt mein Benutzername gleich?"
    )
    assert "Port 993 mit SSL/TLS" in chat.text
    assert "Ihr Benutzername ist Ihre vollständige E-Mail-Adresse" in chat.text
    assert "Schritt 1 von 5" in chat.text


async def test_the_current_program_named_again_mid_guide_keeps_the_guide(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2013 IMAP")
    await chat.say("danke. und wo stell ich das in outlook genau ein?")
    assert "Welche Version" not in chat.text
    assert "Kontoeinstellungen" in chat.text
    assert (await chat.state()).guide == "outlook-2010-2016"


async def test_a_question_whether_the_whole_address_is_the_login_name_gets_the_rule(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("trag ich beim benutzer die komplette mailadresse ein oder nur den namen?")
    assert "Ihr Benutzername ist Ihre vollständige E-Mail-Adresse" in chat.text


async def test_a_question_about_mail_forwarding_is_not_read_as_weiter(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Wie stelle ich eine Weiterleitung an meine private Adresse ein?")
    assert "servicedesk@example.org" in chat.text


@pytest.mark.parametrize(
    "question",
    [
        "muss ich hinterher das kennwort noch mal eintippen?",
        "bleibt mein passwort gleich",
        "Passwort erneut eingeben, ist das nötig?",
    ],
)
async def test_a_question_about_the_password_inside_a_guide_is_answered_and_the_step_stays(
    service: ConversationService, question: str
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016 IMAP")
    await chat.say("weiter")
    await chat.say(question)
    assert "Ihr Passwort bleibt dasselbe" in chat.text
    assert "Schritt 2 von 4" in chat.text
    assert (await chat.state()).step == 1


async def test_a_question_with_a_navigation_word_that_the_faq_answers_is_no_navigation(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("weiter")
    await chat.say("wie war das nochmal mit imap und pop3, was ist der unterschied?")
    assert "Bei IMAP bleiben Ihre E-Mails auf dem Mailserver" in chat.text
    assert (await chat.state()).step == 1


@pytest.mark.parametrize(
    "first",
    [
        "Wie komme ich von zuhause ins VPN?",
        "Ich krieg ständig Werbemails, was tun?",
        "Hallo, wie kann ich mein Postfach vergrößern lassen?",
    ],
)
async def test_an_off_topic_first_message_names_the_helpdesk_and_how_to_reach_it(
    service: ConversationService, first: str
) -> None:
    chat = Chat(service)
    await chat.say(first)
    assert "IT-Servicedesk" in chat.text
    assert "servicedesk@example.org" in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text


@pytest.mark.parametrize(
    "first", ["Hallo, ich möchte die Verschlüsselung einschalten", "Moin, ich hätte eine Frage"]
)
async def test_a_first_message_on_lotses_subject_without_a_program_gets_the_program_question(
    service: ConversationService, first: str
) -> None:
    chat = Chat(service)
    await chat.say(first)
    assert "keine Antwort" not in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text


@pytest.mark.parametrize("thanks", ["klasse, funktioniert, danke schön", "ok danke"])
async def test_thanks_in_the_middle_of_a_guide_is_answered_and_the_rest_is_offered(
    service: ConversationService, thanks: str
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("weiter")
    await chat.say(thanks)
    assert "Gern geschehen" in chat.text
    assert "noch nicht ganz fertig" in chat.text and "Schritt 2 von 5" in chat.text
    assert chat.options == ["Weiter mit Schritt 3", "Das Gespräch beenden"]
    await chat.tap("Weiter mit Schritt 3")
    assert "Schritt 3 von 5" in chat.text


async def test_thanks_at_the_last_step_finishes_the_guide(service: ConversationService) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2016 IMAP")
    await chat.say("schritt 4")
    await chat.say("hat geklappt, vielen dank!")
    assert "Gern geschehen" in chat.text
    assert "das war der letzte Schritt" in chat.text


# --- complaints are tied to the step ---------------------------------------------------------


async def test_a_complaint_at_a_step_shows_that_step_again_and_offers_the_check_and_a_person(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Outlook 2010 IMAP")
    await chat.say("weiter")
    await chat.say("weiter")
    await chat.say("sehe ich nicht")
    assert 'Klicken Sie auf "Weitere Einstellungen".' in chat.text
    assert "Info zu Outlook" not in chat.text  # the version is known: no version hint
    assert {"Verbindung testen", PERSON} <= set(chat.options)
    assert (await chat.state()).step == 2


async def test_a_complaint_at_a_step_with_help_in_the_knowledge_gets_that_help(
    service: ConversationService, knowledge: KnowledgeBase
) -> None:
    step = knowledge.guides["thunderbird"].steps[0]
    assert step.help, "knowledge/thunderbird.yaml: step 1 has help for a hidden menu bar"
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("bei mir gibts kein Extras")
    entry = step.help_for("bei mir gibts kein extras")
    assert entry is not None
    assert entry.text.get("de") in chat.text
    assert "Über Thunderbird" not in chat.text  # the version is known: no version hint
    assert "Verbindung testen" in chat.options


async def test_an_error_pasted_mid_guide_gets_the_settings_not_a_check_or_a_restart(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("iPhone iOS 12")
    await chat.say("schritt 5")
    await chat.say("jetzt steht da Identität des Servers kann nicht überprüft werden")
    assert "Sicherheitszertifikat" in chat.text  # knowledge/troubleshooting.yaml
    assert "Verbindungstest" not in chat.text
    assert (await chat.state()).step == 4

    other = Chat(service, user="bert")
    await other.say("Outlook 2016 IMAP")
    await other.say("da kommt jetzt eine Fehlermeldung")
    assert "Port 993 mit SSL/TLS" in other.text  # no known error: the settings to compare


@pytest.mark.parametrize(
    "error",
    [
        "jetzt zeigt er: Verbindung zu mbox1.belwue.de abgebrochen",
        "da kommt die Meldung Anmeldung nicht möglich",
        "es erscheint: Verbindung vom Server verweigert",
    ],
)
async def test_an_error_in_unknown_words_mid_guide_gets_the_settings_the_check_and_a_person(
    service: ConversationService, error: str
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("weiter")
    await chat.say(error)
    assert "Port 993 mit SSL/TLS" in chat.text and "Port 143 mit STARTTLS" in chat.text
    assert "Verbindung testen" in chat.options and PERSON in chat.options
    assert "keine Antwort" not in chat.text


async def test_a_complaint_after_a_settings_card_gets_the_details_again_and_a_person(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("eM Client")
    await chat.say("das sieht bei mir alles ganz anders aus")
    assert "die Angaben bleiben aber dieselben" in chat.text
    assert "mbox1.belwue.de" in chat.text
    assert PERSON in chat.options


# --- understanding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        ("woaß i ned", {"answer": "unknown"}),
        ("kp", {"answer": "unknown"}),
        ("koa ahnung", {"answer": "unknown"}),
        ("no idea", {"answer": "unknown"}),
        ("egal", {"answer": "any"}),
        ("was war nochmal Schritt 1?", {"step": "1"}),
        ("Ich will mein Passwort ändern", {"topic": "password"}),
        ("Fehler 0x800CCC0E", {"error": "0x800ccc0e", "trouble": "outlook-0x800ccc0e"}),
    ],
)
def test_dialogue_acts_are_entities(
    lexicon: LexiconUnderstander, text: str, entities: dict[str, str]
) -> None:
    assert lexicon.understand_now(text).entities == entities


@pytest.mark.parametrize(
    ("text", "guide"),
    [
        ("outlook16 imap", "outlook-2010-2016"),
        ("Outlook 2010, Schritt 3", "outlook-2010-2016"),
    ],
)
def test_a_version_is_found_joined_to_the_name_and_never_in_a_step_number(
    lexicon: LexiconUnderstander, text: str, guide: str
) -> None:
    assert lexicon.understand_now(text).guide == guide


def test_a_distinctive_word_of_a_program_name_names_it(lexicon: LexiconUnderstander) -> None:
    assert lexicon.understand_now("das Mailprogramm von Microsoft").entities["client"] == "outlook"


def test_saying_who_one_is_is_no_request_for_a_person(lexicon: LexiconUnderstander) -> None:
    assert lexicon.understand_now("ich bin Mitarbeiter im Dekanat").intent != "request_human"
    assert lexicon.understand_now("einen Mitarbeiter bitte").intent == "request_human"
