"""A user who deletes their data (`/loeschen`) leaves no words of theirs behind: not in the
ticket mail still waiting for the mail server (it is deleted; one "closed" mail without their
words tells the helpdesk), and not in the agents' chat, where the bot deletes the messages it
posted about their tickets (Telegram `deleteMessage`) and keeps the closed card."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy import select

from bot.conversation import ConversationService
from bot.storage.tables import OutgoingMail
from bot.tickets.outbox import deliver_queue
from bot.tickets.records import DELETED_NOTE, queued_mails
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender
from tests.servers.mail import Mailbox
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import AGENT_CHAT, MAIL_FROM, Chat, UserInbox

ANNA = FakeUser(1001, "Anna", "de")
BERT = FakeUser(2001, "Bert", "de")
CONFIRM = "Ja, alles löschen"


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def test_unsent_ticket_mail_with_the_users_words_is_not_sent_after_they_deleted_them(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    tickets.register_user_sender("test", UserInbox().send)
    anna = Chat(service, user="anna")
    await anna.say("Thunderbird 60")
    await anna.say("Mein Rechner heißt Zebrafink")  # copied into the ticket's transcript
    await anna.command("mensch")
    await tickets.take(1, "Petra")
    await anna.say("Zebrafink zeigt eine Zertifikatswarnung")  # relayed: mailed with the text
    await Chat(service, user="berta").command("mensch")  # someone else's mail stays
    assert await service.store.run(queued_mails) == 4  # the mail server was away meanwhile

    await anna.command("loeschen")
    await anna.tap(CONFIRM)

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert (report.sent, report.waiting) == (2, 0)
    mails = {str(mail["Subject"])[:9]: mail for mail in await helpdesk_mailbox.wait_for(2)}
    assert sorted(mails) == ["[Lotse#1]", "[Lotse#2]"]
    closing = mails["[Lotse#1]"]
    assert str(closing["Subject"]).startswith("[Lotse#1] Geschlossen")
    assert DELETED_NOTE in body(closing)
    assert "Nutzer-ID gelöscht" in body(closing)
    for mail in mails.values():
        assert "Zebrafink" not in body(mail)


async def test_a_closed_tickets_unsent_mail_goes_too_and_the_helpdesk_learns_why(
    service: ConversationService, tickets: TicketService
) -> None:
    tickets.register_user_sender("test", UserInbox().send)
    anna = Chat(service, user="anna")
    await anna.say("Mein Rechner heißt Zebrafink")
    await anna.command("mensch")
    await tickets.close(1, "Petra")  # its "closed" mail carries the transcript
    await anna.command("loeschen")
    await anna.tap(CONFIRM)
    query = select(OutgoingMail.body)
    bodies = await service.store.run(lambda conn: list(conn.execute(query).scalars()))
    assert len(bodies) == 1 and DELETED_NOTE in bodies[0]
    assert "Zebrafink" not in bodies[0]


async def test_the_bot_deletes_a_deleted_users_relayed_messages_from_the_agents_group(
    telegram_api: FakeTelegram, agents_group_bot: None
) -> None:
    api = telegram_api
    anna = TelegramChat(api, ANNA)
    bert = TelegramChat(api, BERT, chat=api.group_chat(AGENT_CHAT))
    await anna.say("/mensch", mentions("Nummer 1"))
    await api.wait_for(lambda: bool(api.messages_to(AGENT_CHAT)), "the ticket card")
    card = api.messages_to(AGENT_CHAT)[0]
    bert.seen = 1
    await bert.say("/nehmen 1", mentions("#1 übernommen von Bert"))
    anna.send("Mein Rechner heißt Zebrafink")
    relayed = await bert.replies(mentions("Zebrafink"))
    await bert.say("/antwort 1 Danke, ich schaue nach.", lambda messages: True)
    await anna.replies(mentions("Danke, ich schaue nach."))

    await anna.say("/loeschen")  # asks with buttons
    await anna.tap(CONFIRM, mentions("Erledigt"))
    await bert.replies(mentions("Der Nutzer hat seine Daten löschen lassen"))

    group = api.messages_to(AGENT_CHAT)
    assert all(message.deleted for message in relayed)
    kept = [message for message in group if not message.deleted]
    assert kept[0] is card and card.text.startswith("Ticket #1 · geschlossen")
    assert not any("Zebrafink" in message.text for message in kept)
    assert kept[-1].text.startswith("#1: Der Nutzer hat seine Daten löschen lassen")
    deleted = {int(call.params["message_id"]) for call in api.calls_to("deleteMessage")}
    assert {message.message_id for message in relayed} <= deleted
    assert card.message_id not in deleted
