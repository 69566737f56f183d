"""One ticket mail must not block the queue, and nothing stored can add a mail header.

Through the real Postfix mailbox (tests.servers.mail), which refuses one address for good
(550) and another for now (450): a mail the server refuses for good is parked with its error
and the others go out; a temporary refusal is retried later as before. `lotse handoff-link`
refuses references that would break a subject."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import update

from bot import metrics
from bot.clock import utcnow
from bot.conversation import ConversationService
from bot.storage.tables import HandoffLink
from bot.tickets.links import InvalidReference
from bot.tickets.outbox import QueuedMail, deliver_queue, parked
from bot.tickets.records import MailSettings, queued_mails
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender
from tests.servers.mail import BUSY_ADDRESS, REFUSED_ADDRESS, Mailbox
from tests.support import HELPDESK_QUEUE, MAIL_FROM, REPO, Chat

# Line breaks of every kind and other control characters, as a stored reference might hold.
POISON = "RT#1\r\nBcc: x@evil.test\nX-A: 1\rX-B: 2\x00\x1b[31m\x0b\x0c\x85\u2028\u2029\u202e."

# The headers Lotse writes; a new thread's first mail has no In-Reply-To and References.
NEW_THREAD = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version"]
NEW_THREAD += ["Content-Type", "Content-Transfer-Encoding"]
HEADERS = [*NEW_THREAD, "In-Reply-To", "References"]


def lotse(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LOTSE_DATABASE_URL": f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        "LOTSE_HANDOFF_SECRET": "0123456789abcdef0123456789abcdef",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=60,
    )


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def test_a_mail_the_server_refuses_for_good_is_parked_and_the_others_go_out(
    service: ConversationService,
    tickets: TicketService,
    helpdesk_mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    await Chat(service, user="anna").command("mensch")
    # A typo in LOTSE_HELPDESK_EMAIL for a while: its mail is refused with 550.
    tickets.mail = MailSettings(REFUSED_ADDRESS, MAIL_FROM)
    await Chat(service, user="berta").command("mensch")
    tickets.mail = MailSettings(HELPDESK_QUEUE, MAIL_FROM)
    await Chat(service, user="carla").command("mensch")

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert (report.sent, report.failed, report.parked, report.waiting) == (2, 0, 1, 0)
    subjects = sorted(str(mail["Subject"])[:9] for mail in await helpdesk_mailbox.wait_for(2))
    assert subjects == ["[Lotse#1]", "[Lotse#3]"]
    assert metrics.REGISTRY.get_sample_value("lotse_mail_parked") == 1
    assert metrics.REGISTRY.get_sample_value("lotse_mail_queue") == 0

    [aside] = await service.store.run(parked)
    assert aside.subject.startswith("[Lotse#2]")
    assert aside.error.startswith("550 5.1.1")
    listing = lotse(tmp_path, "tickets", "mail")
    assert "[Lotse#2] Neue Anfrage" in listing.stdout and "550 5.1.1" in listing.stdout
    assert "1 Ticket-Mail(s) geparkt" in lotse(tmp_path, "tickets", "list").stderr
    # Not tried again on the next rounds: it cannot go out as it is.
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=lambda: later(3600))
    assert (report.sent, report.failed, report.parked) == (0, 0, 0)
    # Queued again by hand (after a fix elsewhere): tried once more, and parked again.
    retried = lotse(tmp_path, "tickets", "mail", "--retry", str(aside.id))
    assert "1 Ticket-Mail(s) wieder in der Warteschlange." in retried.stdout
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=lambda: later(3600))
    assert (report.sent, report.failed, report.parked) == (0, 0, 1)
    assert lotse(tmp_path, "tickets", "mail", "--retry", "²").returncode == 2


async def test_a_temporary_refusal_is_retried_later_and_holds_up_no_other_mail(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    tickets.mail = MailSettings(BUSY_ADDRESS, MAIL_FROM)  # 450: the mailbox is full for now
    await Chat(service, user="anna").command("mensch")
    tickets.mail = MailSettings(HELPDESK_QUEUE, MAIL_FROM)
    await Chat(service, user="berta").command("mensch")

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert (report.sent, report.failed, report.parked, report.waiting) == (0, 1, 0, 2)
    # The next round (30 s later) sends the others while the first waits for its retry.
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=lambda: later(1))
    assert (report.sent, report.failed, report.parked, report.waiting) == (1, 0, 0, 1)
    [sent] = await helpdesk_mailbox.wait_for(1)
    assert str(sent["Subject"]).startswith("[Lotse#2]")
    assert await service.store.run(parked) == []
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=lambda: later(31))
    assert (report.sent, report.failed, report.waiting) == (0, 1, 1)  # still busy: retried


async def test_a_reference_with_line_breaks_stored_before_cannot_add_a_header(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    assert tickets.links is not None
    link = await tickets.links.create("thunderbird", "RT#1")
    # A link made by an earlier version, which took any reference.
    poison = update(HandoffLink).values(external_ref=POISON)
    await service.store.run(lambda conn: conn.execute(poison))
    chat = Chat(service, user="berta")
    await chat.command("start", link.token)
    await chat.command("mensch")  # a ticket with the reference, and the link's outcome mail

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(service.store, sender, MAIL_FROM)
    assert (report.sent, report.failed, report.parked) == (2, 0, 0)
    for mail in await helpdesk_mailbox.wait_for(2):
        delivery = ("Return-Path", "X-Original-To", "Delivered-To", "Received")  # Postfix
        expected = [*delivery, *HEADERS] if "In-Reply-To" in mail else [*delivery, *NEW_THREAD]
        assert sorted(mail.keys()) == sorted(expected)
        subject = str(mail["Subject"])
        assert subject.startswith("RT#1  Bcc: x@evil.test X-A: 1 X-B: 2 ")
        assert not any(ord(c) < 32 or c in "\x85\u2028\u2029\u202e" for c in subject)
    assert await service.store.run(queued_mails) == 0


def test_no_stored_header_field_can_add_a_header_or_break_the_mail() -> None:
    mail = QueuedMail(
        id=1,
        sender=f"lotse@uni.test{POISON}",
        recipient=f"helpdesk@uni.test{POISON}",
        subject=f"[Lotse#1] {POISON}",
        body=f"Text mit {POISON} im Inhalt\n",
        message_id=f"<1@uni.test>{POISON}",
        in_reply_to=f"<0@uni.test>{POISON}",
        created_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
        attempts=0,
    )
    raw = mail.message().as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert b"\r" not in head.replace(b"\r\n", b"\n")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert sorted(parsed.keys()) == sorted(HEADERS)
    assert parsed.defects == []


def test_handoff_link_refuses_a_reference_with_line_breaks_or_control_characters(
    tmp_path: Path,
) -> None:
    for ref in ("RT#1\r\nBcc: x@evil.test", "RT#1\n", "RT#1\x1b[2J", "RT#\u202e1", "x" * 101, " "):
        done = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", "--ref", ref)
        assert done.returncode == 2, (ref, done.stderr)
        assert "--ref" in done.stderr and "Traceback" not in done.stderr
        assert "t.me" not in done.stdout and "/start" not in done.stdout
    assert (
        "Zeilenumbrüche oder Steuerzeichen"
        in lotse(
            tmp_path, "handoff-link", "--guide", "thunderbird", "--ref", "RT#1\r\nBcc: x"
        ).stderr
    )
    fine = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", "--ref", "[rt.uni.de #123]")
    assert fine.returncode == 0, fine.stderr
    assert "Referenz [rt.uni.de #123]" in fine.stdout


async def test_the_link_service_refuses_such_a_reference_too(tickets: TicketService) -> None:
    assert tickets.links is not None
    with pytest.raises(InvalidReference, match="Zeilenumbrüche"):
        await tickets.links.create("thunderbird", "RT#1\r\nBcc: x")
