"""Tickets: the hand-over from Lotse to helpdesk agents and back (bot.tickets.service)."""

from __future__ import annotations

import re

import pytest

from bot import metrics
from bot.agents.cards import card
from bot.conversation import ConversationService
from bot.engine.decision import Reply
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.storage.tables import OutgoingMail
from bot.tickets.hours import answer_time
from bot.tickets.models import TicketError, TicketEvent, UserNotReached
from bot.tickets.service import TicketService
from tests.support import Chat, UserInbox, berlin, clock_at, open_app


def tickets_opened(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("lotse_tickets_total", {"reason": reason})
    return value or 0.0


async def queued_subjects(service: ConversationService) -> list[str]:
    from sqlalchemy import select

    query = select(OutgoingMail.subject).order_by(OutgoingMail.id)
    return await service.store.run(lambda conn: list(conn.execute(query).scalars()))


class Events:
    def __init__(self, tickets: TicketService) -> None:
        self.seen: list[TicketEvent] = []
        tickets.on_event(self.record)

    async def record(self, event: TicketEvent) -> None:
        self.seen.append(event)

    @property
    def kinds(self) -> list[str]:
        return [event.kind for event in self.seen]


async def test_a_user_who_asks_for_a_human_gets_a_ticket_number_and_when_someone_answers(
    service: ConversationService, tickets: TicketService
) -> None:
    events = Events(tickets)
    before = tickets_opened("requested")
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    assert "Nummer 1" in chat.text
    assert "Jemand aus dem Helpdesk meldet sich morgen ab 9 Uhr." in chat.text  # Thursday evening
    assert "nichts wiederholen" in chat.text

    ticket = await tickets.get(1)
    assert ticket is not None
    assert (ticket.status, ticket.reason, ticket.channel, ticket.user) == (
        "new",
        "requested",
        "test",
        "anna",
    )
    assert (ticket.program, ticket.guide, ticket.step) == ("thunderbird", "thunderbird", 1)
    assert events.kinds == ["created"]
    assert tickets_opened("requested") == before + 1
    # The transcript starts with the conversation before the hand-over.
    texts = [message.text for message in await tickets.transcript(1)]
    assert texts[:2] == ["Thunderbird 60", texts[1]] and "/mensch" in texts
    assert await queued_subjects(service) == [
        "[Lotse#1] Neue Anfrage: Nutzer bittet um einen Menschen – thunderbird 60"
    ]


async def test_an_english_speakers_ticket_card_tells_the_agents_the_user_writes_english(
    service: ConversationService, tickets: TicketService
) -> None:
    events = Events(tickets)
    chat = Chat(service)
    await chat.say("Hello, I need help with my email encryption")
    await chat.command("mensch")
    assert "request" in chat.text  # the user is answered in English
    (created,) = events.seen
    shown = card(created.ticket, created.ticket.created_at, translator("de"))
    assert "Kanal: test, Sprache: Englisch" in shown.text.split("\n")


async def test_asking_again_refers_to_the_open_ticket_instead_of_opening_a_second(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.command("mensch")
    await chat.say("Ich möchte mit einem Menschen sprechen")
    assert "Anfrage Nr. 1 liegt dem Helpdesk bereits vor" in chat.text
    assert [t.number for t in await tickets.listing()] == [1]


async def test_a_user_stuck_at_the_same_step_twice_gets_a_ticket_for_that_step(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.tap("Erledigt – weiter")
    await chat.tap("Klappt nicht")
    assert await tickets.listing() == []
    await chat.tap("Schritt noch einmal zeigen")
    await chat.tap("Klappt nicht")
    assert "auch beim zweiten Mal nicht" in chat.text
    assert "Nummer 1" in chat.text
    ticket = await tickets.get(1)
    assert ticket is not None
    assert (ticket.reason, ticket.guide, ticket.step) == ("stuck", "thunderbird", 2)


async def test_while_an_agent_has_the_ticket_lotse_is_silent_and_relays_both_ways(
    service: ConversationService, tickets: TicketService
) -> None:
    inbox = UserInbox()
    tickets.register_user_sender("test", inbox.send)
    events = Events(tickets)
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.command("mensch")

    taken = await tickets.take(1, "Petra")
    assert (taken.status, taken.assignee) == ("open", "Petra")
    assert taken.taken_at is not None
    assert "hat Ihre Anfrage Nr. 1 übernommen" in inbox.text("anna")
    assert "/bot" in inbox.text("anna")

    replies = await chat.say("Mein Passwort ist Sommer2024! und es geht nicht")
    assert "niemals Ihr Passwort" in chat.text  # a warning, but no guide step
    replies = await chat.say("Bei mir steht da nur Konto")
    assert replies == []
    relayed = [e for e in events.seen if e.kind == "user_message"]
    assert [e.text for e in relayed][-1] == "Bei mir steht da nur Konto"
    assert "Sommer2024" not in (relayed[0].text or "")

    answered = await tickets.answer(1, "Petra", "Klicken Sie bitte auf Kontoeinstellungen.")
    assert answered.first_answer_at is not None
    assert "Klicken Sie bitte auf Kontoeinstellungen." in inbox.text("anna")
    assert events.kinds[-1] == "agent_message"
    transcript = [(m.direction, m.text) for m in await tickets.transcript(1)]
    assert ("agent", "Klicken Sie bitte auf Kontoeinstellungen.") in transcript
    assert ("in", "Bei mir steht da nur Konto") in transcript

    await chat.command("bot")
    assert "ab jetzt antworte wieder ich, Lotse" in chat.text
    assert "per IMAP oder per POP3" in chat.text  # and the current question again
    assert (await tickets.get(1)).status == "waiting"  # type: ignore[union-attr]
    assert events.kinds[-1] == "handed_back"
    await chat.say("IMAP")
    assert "Schritt 1 von" in chat.text


async def test_an_agent_hands_the_user_back_to_the_start_of_another_guide(
    service: ConversationService, tickets: TicketService
) -> None:
    inbox = UserInbox()
    tickets.register_user_sender("test", inbox.send)
    chat = Chat(service)
    await chat.say("Outlook 2016")
    await chat.command("mensch")
    await tickets.answer(1, "Petra", "Sie benutzen eigentlich Thunderbird, oder?")
    ticket = await tickets.hand_back(1, "Petra", "thunderbird")
    assert ticket.status == "waiting"
    pushed = inbox.text("anna")
    assert "wieder an mich, Lotse, übergeben" in pushed
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in pushed
    state = await chat.state()
    assert (state.guide, state.step, state.ticket) == ("thunderbird", 0, 1)
    await chat.say("weiter")
    assert "Schritt 2 von 5" in chat.text


async def test_a_closed_ticket_lets_lotse_answer_and_a_new_request_opens_a_new_ticket(
    service: ConversationService, tickets: TicketService
) -> None:
    inbox = UserInbox()
    tickets.register_user_sender("test", inbox.send)
    chat = Chat(service)
    await chat.command("mensch")
    await tickets.take(1, "Petra")
    closed = await tickets.close(1, "Petra")
    assert closed.status == "closed" and closed.closed_at is not None
    assert "Anfrage Nr. 1 ist abgeschlossen" in inbox.text("anna")
    await chat.say("Thunderbird 60")
    assert "Schritt 1 von 5" in chat.text
    assert (await chat.state()).ticket is None
    await chat.command("mensch")
    assert "Nummer 2" in chat.text
    assert [t.status for t in await tickets.listing()] == ["closed", "new"]
    assert [t.number for t in await tickets.listing(status="new")] == [2]


async def test_agents_get_a_polite_german_sentence_for_what_cannot_be_done(
    service: ConversationService, tickets: TicketService
) -> None:
    tickets.register_user_sender("test", UserInbox().send)
    chat = Chat(service)
    await chat.command("mensch")
    with pytest.raises(TicketError, match=re.escape("Ein Ticket Nr. 7 gibt es nicht.")):
        await tickets.take(7, "Petra")
    with pytest.raises(TicketError, match="Eine Anleitung „outlook-1997“ gibt es nicht"):
        await tickets.hand_back(1, "Petra", "outlook-1997")
    await tickets.take(1, "Petra")
    with pytest.raises(TicketError, match=re.escape("Ticket Nr. 1 hat bereits Petra übernommen.")):
        await tickets.take(1, "Jonas")
    with pytest.raises(TicketError, match="hat bereits Petra übernommen"):
        await tickets.answer(1, "Jonas", "Ich mache das.")
    with pytest.raises(TicketError, match="Bitte schreiben Sie eine Antwort"):
        await tickets.answer(1, "Petra", "   ")
    await tickets.close(1, "Petra")
    with pytest.raises(TicketError, match=re.escape("Ticket Nr. 1 ist bereits geschlossen.")):
        await tickets.answer(1, "Petra", "Noch etwas")


async def test_an_english_speaking_agents_desk_gets_those_sentences_in_english(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    app = await open_app(sqlite_url, knowledge, tickets=True, locale="en")
    try:
        app.tickets.register_user_sender("test", BrokenChannel().send)
        await Chat(app.service).command("mensch")

        async def answer_to(text: str, agent: str = "Petra") -> str | None:
            notice = await app.desk.on_message("telegram", agent, text, None)
            return notice.text if notice is not None else None

        assert await answer_to("/nehmen 7") == "There is no ticket no. 7."
        unknown = await answer_to("/anleitung 1 outlook-1997")
        assert unknown is not None
        assert unknown.startswith("There is no guide “outlook-1997”. Known guides: ")
        assert await answer_to("/nehmen 1") == (
            "Ticket no. 1 is saved. Unfortunately the message did not reach the user. Please "
            "do not repeat it; write to the user another way or again later."
        )
        assert await answer_to("/nehmen 1", "Jonas") == "Petra has already taken ticket no. 1."
        assert (await answer_to("/schliessen 1") or "").startswith("Ticket no. 1 is saved.")
        assert await answer_to("/antwort 1 Hello") == "Ticket no. 1 is already closed."
        # Raised far from the desk, the same error reads German until it is shown.
        with pytest.raises(TicketError) as refused:
            await app.tickets.answer(1, "Petra", "   ")
        assert str(refused.value) == "Bitte schreiben Sie eine Antwort, die ich weitergeben kann."
        assert refused.value.text(translator("en")) == "Please write an answer I can pass on."
    finally:
        await app.close()


async def test_bot_without_an_agent_just_continues_with_lotse(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("bot")
    assert "Sie schreiben bereits mit mir, Lotse." in chat.text
    assert "Schritt 1 von 5" in chat.text


async def test_a_user_who_deletes_their_data_takes_the_ticket_transcript_with_them(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    await chat.command("loeschen")
    await chat.tap(next(label for label in chat.options if label.startswith("Ja")))
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.status == "closed" and ticket.user == ""
    assert await tickets.transcript(1) == []


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-30 10:15", "Der Helpdesk ist heute bis 16 Uhr erreichbar."),  # Monday, open
        ("2026-11-30 07:00", "meldet sich heute ab 9 Uhr."),  # Monday, before opening
        ("2026-11-30 16:00", "meldet sich morgen ab 9 Uhr."),  # Monday, just closed
        ("2026-12-04 12:59", "Der Helpdesk ist heute bis 13 Uhr erreichbar."),  # short Friday
        ("2026-12-04 14:00", "meldet sich am Montag ab 9 Uhr."),  # Friday afternoon
        ("2026-12-05 11:00", "meldet sich am Montag ab 9 Uhr."),  # Saturday
    ],
)
def test_the_answer_time_follows_the_helpdesk_hours_in_berlin(
    knowledge: KnowledgeBase, now: str, expected: str
) -> None:
    text = answer_time(knowledge.helpdesk, berlin(now), translator("de"))
    assert text is not None and text.endswith(expected)


@pytest.mark.parametrize(
    ("now", "when"),
    [
        pytest.param(
            "2026-12-03 10:00", "Der Helpdesk ist heute bis 16 Uhr erreichbar.", id="thursday-open"
        ),
        pytest.param(
            "2026-12-03 18:30",
            "Jemand aus dem Helpdesk meldet sich morgen ab 9 Uhr.",
            id="thursday-evening",
        ),
        pytest.param(  # Friday's hours end at 13:00
            "2026-12-04 14:00",
            "Jemand aus dem Helpdesk meldet sich am Montag ab 9 Uhr.",
            id="friday-afternoon",
        ),
        pytest.param(
            "2026-12-06 12:00", "Jemand aus dem Helpdesk meldet sich morgen ab 9 Uhr.", id="sunday"
        ),
    ],
)
async def test_a_user_who_asks_for_a_human_is_told_when_the_helpdesk_answers_at_that_hour(
    sqlite_url: str, knowledge: KnowledgeBase, now: str, when: str
) -> None:
    app = await open_app(sqlite_url, knowledge, tickets=True, clock=clock_at(berlin(now)))
    chat = Chat(app.service)
    await chat.command("mensch")
    assert [reply.text for reply in chat.replies] == [
        "Ich habe Ihr Anliegen an den Helpdesk weitergegeben – Ihre Anfrage hat die Nummer 1. "
        "Sie müssen nichts wiederholen: Der Helpdesk sieht unser bisheriges Gespräch. "
        f"{when} Die Antwort bekommen Sie hier im Chat. Bis dahin helfe ich Ihnen gern weiter."
    ]
    await app.close()


async def agent_has_the_ticket(
    service: ConversationService, tickets: TicketService
) -> tuple[Chat, UserInbox]:
    inbox = UserInbox()
    tickets.register_user_sender("test", inbox.send)
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    await tickets.take(1, "Petra")
    return chat, inbox


async def test_while_an_agent_has_the_ticket_commands_are_still_answered_by_lotse(
    service: ConversationService, tickets: TicketService
) -> None:
    chat, _inbox = await agent_has_the_ticket(service, tickets)
    events = Events(tickets)
    await chat.command("hilfe")
    assert chat.replies, "/hilfe gets Lotse's help"
    await chat.command("sprache")
    assert "English" in chat.options
    await chat.tap("English")
    assert chat.replies and (await chat.state()).locale == "en"
    await chat.command("sprache", "de")
    await chat.command("pruefen")
    assert chat.replies
    assert "user_message" not in events.kinds  # none of these went to the agent
    # The user can delete their data while the agent has the ticket, with a typed "Ja".
    await chat.command("loeschen")
    assert "löschen" in chat.text
    await chat.say(next(label for label in chat.options if label.startswith("Ja")))
    assert "Ich habe alles gelöscht" in chat.text
    ticket = await tickets.get(1)
    assert ticket is not None and (ticket.status, ticket.user) == ("closed", "")
    # The agents' card stops offering to answer; their messages in the agents' chats go.
    assert events.kinds[-2:] == ["closed", "forgotten"]


async def test_the_first_message_relayed_to_the_agent_gets_one_note_and_is_recorded_once(
    service: ConversationService, tickets: TicketService
) -> None:
    chat, _inbox = await agent_has_the_ticket(service, tickets)
    await chat.say("Mein Passwort ist Sommer2024! und es geht nicht")
    assert "niemals Ihr Passwort" in chat.text
    assert "Ihre Nachricht ist beim Helpdesk angekommen." in chat.text
    assert await chat.say("Bei mir steht da nur Konto") == []  # the note comes once
    transcript = [(m.direction, m.text) for m in await tickets.transcript(1)]
    relayed = [text for direction, text in transcript if "es geht nicht" in text]
    assert len(relayed) == 1 and "Sommer2024" not in relayed[0]
    assert transcript.count(("in", "Bei mir steht da nur Konto")) == 1


async def test_the_ticket_transcript_holds_lotses_reply_of_the_turn_that_opened_it(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    transcript = [(m.direction, m.text) for m in await tickets.transcript(1)]
    assert transcript.count(("in", "/mensch")) == 1
    assert transcript[-1][0] == "out" and "Nummer 1" in transcript[-1][1]


class BrokenChannel:
    """A channel whose sending fails (as Matrix without a direct room does)."""

    async def send(self, user: str, replies: list[Reply]) -> None:
        raise LookupError(f"no direct room with {user}")


async def test_a_message_that_does_not_reach_the_user_is_a_warning_after_the_change_is_saved(
    service: ConversationService, tickets: TicketService
) -> None:
    tickets.register_user_sender("test", BrokenChannel().send)
    events = Events(tickets)
    chat = Chat(service)
    await chat.command("mensch")
    with pytest.raises(UserNotReached, match="ist gespeichert") as warned:
        await tickets.take(1, "Petra")
    assert "Bitte nicht wiederholen" in str(warned.value)
    assert warned.value.ticket.status == "open"
    assert events.kinds[-1] == "taken"  # the agents' card shows it taken all the same
    assert (await tickets.take(1, "Petra")).assignee == "Petra"  # no second "taken"
    assert events.kinds.count("taken") == 1
    with pytest.raises(UserNotReached):
        await tickets.answer(1, "Petra", "Bitte wählen Sie SSL/TLS.")
    assert events.kinds[-1] == "agent_message"
    with pytest.raises(UserNotReached):
        await tickets.close(1, "Petra")
    assert events.kinds[-1] == "closed"
    assert (await tickets.get(1)).status == "closed"  # type: ignore[union-attr]


async def test_an_answer_for_a_user_this_process_cannot_reach_is_refused_before_it_is_saved(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.command("mensch")
    with pytest.raises(TicketError, match="Der Nutzer ist über test von hier aus nicht erreichbar"):
        await tickets.answer(1, "Petra", "Hallo!")
    assert "agent" not in [m.direction for m in await tickets.transcript(1)]
    assert (await tickets.get(1)).status == "new"  # type: ignore[union-attr]


async def test_a_step_that_keeps_failing_says_so_without_repeating_the_second_time_text(
    service: ConversationService, tickets: TicketService
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    for _ in range(2):
        await chat.tap("Klappt nicht")
        await chat.tap("Schritt noch einmal zeigen")
    await chat.tap("Klappt nicht")
    assert "Dieser Schritt klappt leider weiterhin nicht." in chat.text
    assert "auch beim zweiten Mal" not in chat.text
    assert "Anfrage Nr. 1" in chat.text and "bereits vor" not in chat.text
    assert [t.number for t in await tickets.listing()] == [1]
