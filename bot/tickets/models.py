"""What the ticket service hands out: tickets, events about them, and errors for agents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.clock import as_utc
from bot.engine.decision import HandOverReason
from bot.i18n import N_, Text, Translator

__all__ = [
    "ACTIVE",
    "STATUSES",
    "EventKind",
    "LinkOutcome",
    "OutcomeKind",
    "Status",
    "Ticket",
    "TicketError",
    "TicketEvent",
    "UserNotReached",
    "no_such_ticket",
    "ticket_from_row",
    "unknown_guide",
]

Status = Literal["new", "open", "waiting", "closed"]
STATUSES: tuple[Status, ...] = ("new", "open", "waiting", "closed")
ACTIVE: tuple[Status, ...] = ("new", "open", "waiting")  # one of these per user at a time
# "reported": another user's check found the incident's server error (the card shows how many);
# "forgotten": a user had their data deleted (their messages leave the agents' chats).
EventKind = Literal[
    "created",
    "taken",
    "user_message",
    "agent_message",
    "handed_back",
    "closed",
    "reported",
    "forgotten",
]


class TicketError(Exception):
    """An agent's request that cannot be carried out, as a polite sentence: a message id
    marked with `N_` and its parameters, translated where it is shown (`text(tr)`, in the
    agent's language); str() is the German sentence."""

    def __init__(self, message: str, /, **params: object) -> None:
        self.reason = Text(message, **params)
        super().__init__(str(self.reason))

    def text(self, tr: Translator) -> str:
        return self.reason.translated(tr)


class UserNotReached(TicketError):
    """The change is saved (and announced to the agents), only the message to the user did not
    arrive. A warning for the agent: repeating the request would do the change twice."""

    def __init__(self, ticket: Ticket, problem: Text) -> None:
        super().__init__(
            N_(
                "Ticket Nr. {number} ist gespeichert. {problem} Bitte nicht wiederholen; "
                "schreiben Sie dem Nutzer auf anderem Weg oder später noch einmal."
            ),
            number=ticket.number,
            problem=problem,
        )
        self.ticket = ticket


def no_such_ticket(number: int) -> TicketError:
    return TicketError(N_("Ein Ticket Nr. {number} gibt es nicht."), number=number)


def unknown_guide(guide: str, known: Iterable[str]) -> TicketError:
    return TicketError(
        N_("Eine Anleitung „{guide}“ gibt es nicht. Bekannt sind: {known}."),
        guide=guide,
        known=", ".join(sorted(known)),
    )


@dataclass(frozen=True)
class Ticket:
    number: int
    status: Status
    reason: HandOverReason
    channel: str
    user: str  # the platform's pseudonymous id; "" once the transcript was purged
    locale: str
    program: str | None
    version: str | None
    guide: str | None
    step: int | None  # 1-based step of the guide the user reached
    last_check: dict[str, Any] | None
    assignee: str | None
    external_ref: str | None
    created_at: datetime
    taken_at: datetime | None
    first_answer_at: datetime | None
    closed_at: datetime | None
    affected: int = 0  # users whose check found this incident's server error (0: no incident)

    @property
    def active(self) -> bool:
        return self.status != "closed"

    def as_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "number": self.number,
            "status": self.status,
            "reason": self.reason,
            "channel": self.channel,
            "user": self.user,
            "locale": self.locale,
            "program": self.program,
            "version": self.version,
            "guide": self.guide,
            "step": self.step,
            "last_check": self.last_check,
            "assignee": self.assignee,
            "external_ref": self.external_ref,
            "created_at": when(self.created_at),
            "taken_at": when(self.taken_at),
            "first_answer_at": when(self.first_answer_at),
            "closed_at": when(self.closed_at),
            "affected": self.affected,
        }


@dataclass(frozen=True)
class TicketEvent:
    kind: EventKind
    ticket: Ticket
    text: str | None = None  # the redacted message for "user_message" and "agent_message"
    agent: str | None = None  # who did it, for events caused by an agent


# What a hand-back link's user reached, mailed to the agent who sent the link (once per kind).
OutcomeKind = Literal["finished", "human", "check"]


@dataclass(frozen=True)
class LinkOutcome:
    kind: OutcomeKind
    guide: str | None  # the guide the user finished
    ticket: int | None  # the ticket opened when they asked for a human
    last_check: dict[str, Any] | None  # the connection check's result


def ticket_from_row(row: Any, affected: int = 0) -> Ticket:
    """A ticket from a row of `select(tables.Ticket)`; `affected` from `incident_reports`."""
    created = as_utc(row.created_at)
    assert created is not None
    return Ticket(
        number=row.id,
        status=row.status,
        reason=row.reason,
        channel=row.channel,
        user=row.user_external_id or "",
        locale=row.locale,
        program=row.program,
        version=row.version,
        guide=row.guide,
        step=row.step,
        last_check=row.last_check,
        assignee=row.assignee,
        external_ref=row.external_ref,
        created_at=created,
        taken_at=as_utc(row.taken_at),
        first_answer_at=as_utc(row.first_answer_at),
        closed_at=as_utc(row.closed_at),
        affected=affected,
    )
