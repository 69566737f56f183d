"""Ticket mail to the helpdesk queue, through a real Postfix (tests.servers.mail) into a
maildir: subjects ticket systems thread on, readable bodies, and a queue that loses nothing
while the mail server is down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot import metrics
from bot.app import build_app
from bot.clock import utcnow
from bot.config import Settings
from bot.conversation import ConversationService
from bot.i18n import translator
from bot.storage.tables import OutgoingMail
from bot.tickets import mail_text
from bot.tickets.models import LinkOutcome, Ticket
from bot.tickets.outbox import deliver_queue
from bot.tickets.records import MailSettings, queued_mails
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender, SmtpUrlError, parse_smtp_url
from tests.servers.mail import Mailbox, MailServers
from tests.support import HELPDESK_QUEUE, MAIL_FROM, Chat, UserInbox, free_port


async def queued_subjects(service: ConversationService) -> list[str]:
    """The subjects of the ticket mails waiting to be sent, in the order Lotse queued them."""
    query = select(OutgoingMail.subject).order_by(OutgoingMail.id)
    return await service.store.run(lambda conn: list(conn.execute(query).scalars()))


def body(message: object) -> str:
    from email.message import EmailMessage

    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def test_a_new_ticket_and_its_updates_arrive_in_the_helpdesk_queue_as_one_thread(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    tickets.register_user_sender("test", UserInbox().send)
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("mein passwort ist Geheim123!")
    await chat.command("mensch")
    await tickets.take(1, "Petra")
    await tickets.answer(1, "Petra", "Bitte wählen Sie SSL/TLS.")
    await tickets.close(1, "Petra")

    # Lotse queues the mails in the order things happened ...
    queued = await queued_subjects(service)
    assert queued == [
        "[Lotse#1] Neue Anfrage: Nutzer bittet um einen Menschen – thunderbird 60",
        "[Lotse#1] Übernommen: Nutzer bittet um einen Menschen – thunderbird 60",
        "[Lotse#1] Antwort des Helpdesks: Nutzer bittet um einen Menschen – thunderbird 60",
        "[Lotse#1] Geschlossen: Nutzer bittet um einen Menschen – thunderbird 60",
    ]
    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert (report.sent, report.failed, report.waiting) == (4, 0, 0)
    # ... but Postfix delivers in parallel: the ticket system threads them by their headers.
    mails = {str(mail["Subject"]): mail for mail in await helpdesk_mailbox.wait_for(4)}
    assert sorted(mails) == sorted(queued)
    first = mails["[Lotse#1] Neue Anfrage: Nutzer bittet um einen Menschen – thunderbird 60"]
    assert first["To"] == helpdesk_mailbox.address and first["From"] == MAIL_FROM
    assert first["In-Reply-To"] is None and first["References"] is None
    follow_ups = [mail for mail in mails.values() if mail is not first]
    assert len(follow_ups) == 3
    for follow_up in follow_ups:
        assert follow_up["In-Reply-To"] == first["Message-ID"]
        assert follow_up["References"] == first["Message-ID"]
    assert len({str(mail["Message-ID"]) for mail in mails.values()}) == 4
    text = body(first)
    assert "Lotse hat eine Anfrage an den Helpdesk übergeben." in text
    assert "Anleitung:       thunderbird, Schritt 1" in text
    assert "Nutzer:\n    Thunderbird" in text
    assert "Geheim123" not in text  # redacted before it was ever stored
    answered = "[Lotse#1] Antwort des Helpdesks: Nutzer bittet um einen Menschen – thunderbird 60"
    assert "Bitte wählen Sie SSL/TLS." in body(mails[answered])
    assert "Petra" in body(
        mails["[Lotse#1] Übernommen: Nutzer bittet um einen Menschen – thunderbird 60"]
    )


async def test_implicit_tls_on_the_smtps_port_delivers_too(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    await Chat(service).command("mensch")
    sender = SmtpSender(helpdesk_mailbox.url("smtps"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert report.sent == 1
    assert "[Lotse#1]" in str((await helpdesk_mailbox.wait_for(1))[0]["Subject"])


async def test_a_mail_server_that_is_down_delays_the_ticket_mail_but_does_not_lose_it(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    await Chat(service).command("mensch")
    closed_port = free_port()  # nothing listens there: the server is "down"
    down = SmtpSender(helpdesk_mailbox.url("smtp", closed_port), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, down, MAIL_FROM)
    assert (report.sent, report.failed, report.waiting) == (0, 1, 1)
    assert metrics.REGISTRY.get_sample_value("lotse_mail_queue") == 1

    # Back up, but the mail waits for its retry time (30 s after the first failure).
    up = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, up, MAIL_FROM)
    assert (report.sent, report.waiting) == (0, 1)
    assert helpdesk_mailbox.messages() == []

    later = utcnow() + timedelta(seconds=31)
    report = await deliver_queue(service.store, up, MAIL_FROM, now=lambda: later)
    assert (report.sent, report.failed, report.waiting) == (1, 0, 0)
    assert "[Lotse#1]" in str((await helpdesk_mailbox.wait_for(1))[0]["Subject"])
    assert await service.store.run(queued_mails) == 0
    assert metrics.REGISTRY.get_sample_value("lotse_mail_queue") == 0


async def test_a_server_without_starttls_gets_no_transcript_in_clear_text(
    service: ConversationService,
    tickets: TicketService,
    mail_servers: MailServers,
) -> None:
    await Chat(service).command("mensch")
    plain = SmtpSender(f"smtp://localhost:{mail_servers.postfix.no_starttls}")
    report = await deliver_queue(service.store, plain, MAIL_FROM)
    assert (report.sent, report.failed, report.waiting) == (0, 1, 1)


def test_smtp_urls_say_what_is_wrong() -> None:
    target = parse_smtp_url("smtps://helpdesk%40uni.de:p%2Fw@mail.uni.de")
    assert (target.implicit_tls, target.host, target.port) == (True, "mail.uni.de", 465)
    assert (target.user, target.password) == ("helpdesk@uni.de", "p/w")
    assert parse_smtp_url("smtp://mail.uni.de").port == 587
    with pytest.raises(SmtpUrlError, match="smtps://"):
        parse_smtp_url("http://mail.uni.de")


async def test_the_serve_jobs_deliver_the_queue_every_30_s_and_purge_daily(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    from pydantic import SecretStr

    from bot.config import Settings
    from bot.serve.ticket_jobs import ticket_jobs

    settings = Settings(
        smtp_url=SecretStr(helpdesk_mailbox.url("smtps")),
        smtp_ca_file=helpdesk_mailbox.ca,
        helpdesk_email=helpdesk_mailbox.address,
        mail_from=MAIL_FROM,
    )
    jobs = {job.name: job for job in ticket_jobs(settings, tickets)}
    assert {name: job.every for name, job in jobs.items()} == {
        "ticket-mail": 30.0,
        "retention": 86400.0,
    }
    await Chat(service).command("mensch")
    await jobs["ticket-mail"].run()
    assert "[Lotse#1]" in str((await helpdesk_mailbox.wait_for(1))[0]["Subject"])
    await jobs["retention"].run()
    assert await tickets.get(1) is not None


class CountingRelay:
    """A loopback TCP relay in front of the real Postfix that counts the connections made."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(client_in, server_out), pipe(server_in, client_out))


async def test_a_batch_of_ticket_mail_goes_over_one_connection(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    for user in ("anna", "berta", "carla"):
        await Chat(service, user=user).command("mensch")
    smtps = parse_smtp_url(helpdesk_mailbox.url("smtps"))
    relay = CountingRelay(smtps.port)
    port = await relay.start()
    try:
        sender = SmtpSender(helpdesk_mailbox.url("smtps", port), helpdesk_mailbox.ca)
        report = await deliver_queue(service.store, sender, MAIL_FROM)
    finally:
        assert relay.server is not None
        relay.server.close()
    assert (report.sent, report.failed, report.waiting) == (3, 0, 0)
    assert len(await helpdesk_mailbox.wait_for(3)) == 3
    assert relay.connections == 1


async def test_times_in_ticket_mail_are_the_helpdesks_local_time(
    service: ConversationService, tickets: TicketService
) -> None:
    tickets.mail = MailSettings(HELPDESK_QUEUE, MAIL_FROM, timezone="America/New_York")
    await Chat(service).command("mensch")
    ticket = await tickets.get(1)
    assert ticket is not None
    local = ticket.created_at.astimezone(ZoneInfo("America/New_York")).strftime("%d.%m.%Y %H:%M")
    query = select(OutgoingMail.body)
    bodies = await service.store.run(lambda conn: list(conn.execute(query).scalars()))
    assert f"Erstellt:        {local}" in bodies[0]


async def test_with_a_helpdesk_address_but_no_mail_server_nothing_is_queued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        helpdesk_email=HELPDESK_QUEUE,
    )
    app = await build_app(settings)
    try:
        assert "LOTSE_SMTP_URL is not" in caplog.text
        await Chat(app.service).command("mensch")
        assert await app.tickets.get(1) is not None
        assert await app.store.run(queued_mails) == 0
    finally:
        await app.close()


def test_a_check_in_a_link_outcome_mail_shows_when_it_ran_in_local_time() -> None:
    outcome = LinkOutcome(
        "check",
        "thunderbird",
        None,
        {
            "overall": "error",
            "started": "2026-03-01T12:00:00+00:00",
            "endpoints": [{"protocol": "imap", "port": 993, "status": "error"}],
        },
    )
    subject, details = mail_text.link_outcome(outcome, ZoneInfo("Europe/Berlin"), translator("de"))
    assert subject == "Verbindungstest: Fehler (IMAP 993 ✗)"
    assert details == ["Verbindungstest: Fehler (IMAP 993 ✗), 01.03.2026 13:00"]


@pytest.mark.parametrize("locale", ["de", "en"])
def test_a_tickets_fields_line_up_in_one_column_in_either_language(locale: str) -> None:
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ticket = Ticket(
        number=4,
        status="open",
        reason="server_error",
        channel="telegram",
        user="",
        locale="en",
        program="Thunderbird",
        version="115",
        guide="thunderbird",
        step=2,
        last_check=None,
        assignee="Petra",
        external_ref="RT#9",
        created_at=created,
        taken_at=created,
        first_answer_at=None,
        closed_at=None,
        affected=3,
    )
    fields = mail_text.ticket_fields(ticket, ZoneInfo("Europe/Berlin"), translator(locale))
    assert len(fields) == 12
    for line in fields:  # "Label:" padded, one space, the value from column 17 on
        assert line[:17].rstrip().endswith(":") and line[16] == " " != line[17], line
    if locale == "en":
        assert fields[3] == "Channel:         telegram (user ID deleted)"
        assert fields[-1] == "Affected:        3 users (same error)"
    else:
        assert fields[3] == "Kanal:           telegram (Nutzer-ID gelöscht)"
        assert fields[-1] == "Betroffene:      3 Nutzer (gleicher Fehler)"
