"""The ticket service's periodic jobs for `lotse serve` (room: wiring; run through the leases
of bot/serve/jobs.py): ticket mail, retention."""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.i18n import SOURCE_LOCALE, translator
from bot.serve.jobs import Job
from bot.tickets.outbox import deliver_queue
from bot.tickets.retention import run_purge
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender

__all__ = ["MAIL_EVERY", "PURGE_EVERY", "ticket_jobs"]

log = logging.getLogger(__name__)

MAIL_EVERY = 30.0  # seconds
PURGE_EVERY = 24 * 3600.0


def ticket_jobs(settings: Settings, tickets: TicketService) -> list[Job]:
    """Mail queue delivery every 30 s (when LOTSE_SMTP_URL is set) and retention daily."""
    store = tickets.store
    jobs: list[Job] = []
    if settings.smtp_url is not None:
        sender = SmtpSender(settings.smtp_url.get_secret_value(), settings.smtp_ca_file)

        async def deliver_mail() -> None:
            report = await deliver_queue(store, sender, settings.mail_from)
            if report.sent or report.failed or report.parked:
                log.info(
                    "ticket mail: %d sent, %d failed, %d parked, %d waiting",
                    report.sent,
                    report.failed,
                    report.parked,
                    report.waiting,
                )

        jobs.append(Job("ticket-mail", MAIL_EVERY, deliver_mail, timeout=300.0))
    # (LOTSE_HELPDESK_EMAIL without LOTSE_SMTP_URL: nothing is queued; build_tickets warns.)

    async def purge() -> None:
        report = await run_purge(
            store,
            settings.retention_days,
            settings.ticket_retention_days,
            tickets=tickets,
        )
        log.info("retention: %s", "; ".join(report.lines(translator(SOURCE_LOCALE))))

    jobs.append(Job("retention", PURGE_EVERY, purge, timeout=1800.0))
    return jobs
