"""Hand-back links: an agent sends a user into a guide with one link and learns the outcome."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from bot.conversation import ConversationService
from bot.storage.tables import HandoffLink, OutgoingMail
from bot.tickets.links import HandoffLinks, secret_problem
from bot.tickets.outbox import deliver_queue
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender
from tests.servers.mail import Mailbox
from tests.support import LINK_SECRET, MAIL_FROM, REPO, Chat

STRONG_SECRET = "0123456789abcdef0123456789abcdef"


async def test_a_user_who_follows_the_link_lands_in_the_guide_and_the_outcome_is_mailed(
    service: ConversationService, tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    assert tickets.links is not None
    link = await tickets.links.create("thunderbird", "[Ticket#4711]")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", link.token)
    chat = Chat(service, user="berta")
    await chat.command("start", link.token)
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text
    for _ in range(5):
        await chat.say("weiter")
    assert "Geschafft" in chat.text
    await chat.command("mensch")
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.external_ref == "[Ticket#4711]"

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    await deliver_queue(service.store, sender, MAIL_FROM)
    subjects = sorted(str(mail["Subject"]) for mail in await helpdesk_mailbox.wait_for(3))
    assert subjects == [
        "[Ticket#4711] [Lotse#1] Neue Anfrage: Nutzer bittet um einen Menschen – thunderbird",
        "[Ticket#4711] [Lotse-Link] thunderbird: Anleitung abgeschlossen",
        "[Ticket#4711] [Lotse-Link] thunderbird: Nutzer bittet um einen Menschen [Lotse#1]",
    ]


async def test_a_reused_link_is_refused_politely_and_the_user_starts_normally(
    service: ConversationService, tickets: TicketService
) -> None:
    assert tickets.links is not None
    link = await tickets.links.create("ios", None)
    first = Chat(service, user="berta")
    await first.command("start", link.token)
    assert "iPhone" in first.text or "iOS" in first.text
    await first.command("start", link.token)  # the same user tapping it again is fine
    assert "schon benutzt" not in first.text

    second = Chat(service, user="carla")
    await second.command("start", link.token)
    assert "Dieser Link wurde schon benutzt" in second.text
    assert "Sie können aber gern hier direkt mit mir weitermachen." in second.text
    assert "Welches Mailprogramm benutzen Sie?" in second.text


async def test_an_expired_or_forged_link_is_refused_politely(
    service: ConversationService, tickets: TicketService
) -> None:
    expired = await HandoffLinks(service.store, LINK_SECRET, days=0).create("android", None)
    chat = Chat(service, user="dora")
    await chat.command("start", expired.token)
    assert "Dieser Link ist leider abgelaufen." in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text

    other_secret = await HandoffLinks(service.store, "another secret", days=3).create("ios", None)
    await chat.command("start", other_secret.token)
    assert "Diesen Link kann ich leider nicht zuordnen." in chat.text
    await chat.command("start", "h_" + "A" * 32)
    assert "Diesen Link kann ich leider nicht zuordnen." in chat.text
    assert (await chat.state()).handoff_link is None


def lotse(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LOTSE_DATABASE_URL": f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=60,
    )


def test_lotse_handoff_link_prints_a_telegram_link_and_a_matrix_instruction(
    tmp_path: Path,
) -> None:
    done = lotse(
        tmp_path,
        "handoff-link",
        "--guide",
        "thunderbird",
        "--ref",
        "Ticket#9",
        LOTSE_HANDOFF_SECRET=STRONG_SECRET,
        LOTSE_TELEGRAM_BOT_USERNAME="LotseBot",
    )
    assert done.returncode == 0, done.stderr
    telegram = re.search(r"https://t\.me/LotseBot\?start=(\S+)", done.stdout)
    assert telegram is not None and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", telegram[1])
    assert f"„/start {telegram[1]}“" in done.stdout
    assert "Referenz Ticket#9" in done.stdout

    refused = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", LOTSE_HANDOFF_SECRET="")
    assert refused.returncode == 2 and "LOTSE_HANDOFF_SECRET" in refused.stderr
    unknown = lotse(
        tmp_path, "handoff-link", "--guide", "outlook-95", LOTSE_HANDOFF_SECRET=STRONG_SECRET
    )
    assert unknown.returncode == 1 and "Eine Anleitung „outlook-95“ gibt es nicht" in unknown.stderr


def test_an_english_speaking_helpdesk_gets_the_commands_refusals_in_english(
    tmp_path: Path,
) -> None:
    english = {"LOTSE_HANDOFF_SECRET": STRONG_SECRET, "LOTSE_LOCALE": "en"}
    unknown = lotse(tmp_path, "handoff-link", "--guide", "outlook-95", **english)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("There is no guide “outlook-95”. Known guides: ")
    empty = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", "--ref", " ", **english)
    assert empty.returncode == 2 and empty.stderr == "The reference (--ref) is empty.\n"
    done = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", "--ref", "RT#4", **english)
    assert "guide thunderbird, reference RT#4" in done.stdout
    missing = lotse(tmp_path, "tickets", "show", "9", LOTSE_LOCALE="en")
    assert missing.returncode == 1 and missing.stderr == "There is no ticket no. 9.\n"
    german = lotse(tmp_path, "tickets", "show", "9")
    assert german.stderr == "Ein Ticket Nr. 9 gibt es nicht.\n"


def test_a_weak_secret_is_refused_by_the_command_and_at_start(tmp_path: Path) -> None:
    weak = lotse(tmp_path, "handoff-link", "--guide", "thunderbird", LOTSE_HANDOFF_SECRET="abc")
    assert weak.returncode == 2
    assert "LOTSE_HANDOFF_SECRET is too short (3 characters; at least 32" in weak.stderr
    assert "https://" not in weak.stdout and "/start" not in weak.stdout
    started = lotse(tmp_path, "chat", LOTSE_HANDOFF_SECRET="abc")
    assert started.returncode == 2 and "LOTSE_HANDOFF_SECRET is too short" in started.stderr
    settings = Settings(_env_file=None, handoff_secret="x" * 32)
    assert secret_problem(settings) is None
    assert secret_problem(Settings(_env_file=None)) is None


async def test_each_link_outcome_is_mailed_once(
    service: ConversationService, tickets: TicketService
) -> None:
    assert tickets.links is not None
    link = await tickets.links.create("thunderbird", "[Ticket#5]")
    chat = Chat(service, user="berta")
    await chat.command("start", link.token)
    for _ in range(5):
        await chat.say("weiter")
    assert "Geschafft" in chat.text
    await chat.say("zurück")  # to the last step, and finished a second time
    await chat.say("weiter")
    assert "Geschafft" in chat.text
    query = select(OutgoingMail.subject).where(OutgoingMail.subject.contains("Lotse-Link"))
    subjects = await service.store.run(lambda conn: list(conn.execute(query).scalars()))
    assert subjects == ["[Ticket#5] [Lotse-Link] thunderbird: Anleitung abgeschlossen"]


async def test_a_user_who_deletes_their_data_is_unlinked_from_the_link_they_used(
    service: ConversationService, tickets: TicketService
) -> None:
    assert tickets.links is not None
    link = await tickets.links.create("ios", "[Ticket#6]")
    chat = Chat(service, user="berta")
    await chat.command("start", link.token)
    await chat.command("mensch")
    await chat.command("loeschen")
    await chat.tap(next(label for label in chat.options if label.startswith("Ja")))
    query = select(HandoffLink.channel, HandoffLink.user_external_id)
    rows = await service.store.run(lambda conn: conn.execute(query).all())
    assert [tuple(row) for row in rows] == [(None, None)]
