"""Which messages in the agents' chats belong to which ticket, kept in the database: each
ticket's card per chat (`ticket_cards`) and the other messages posted about it (relayed user
messages, answers shown to the other chats, status lines: `desk_messages`).

Plain transaction functions of a SQLAlchemy `Connection`, run by `Store.run`. Several
instances share one database and each may handle a ticket's next event; a restarted instance
has forgotten everything it posted. Reading the card here lets all of them edit, and reply
to, the one card agents already see instead of posting another; and only a reply to a message
recorded here answers a ticket (never one to the list of tickets or the help).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.clock import utcnow
from bot.storage.tables import DeskMessage, TicketCard

__all__ = [
    "ChatPlace",
    "card_of",
    "forget_messages",
    "messages_of",
    "save_card",
    "save_message",
    "ticket_of_card",
    "ticket_of_message",
]


@dataclass(frozen=True)
class ChatPlace:
    """One agents' chat: the platform ("telegram", "matrix") and its id there."""

    kind: str
    chat_id: str


def save_card(conn: Connection, number: int, place: ChatPlace, message_ref: str) -> None:
    """Remember (or replace) the ticket's card in this chat; the newest card wins."""
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values = {
        "ticket_number": number,
        "chat_kind": place.kind,
        "chat_id": place.chat_id,
        "message_ref": message_ref,
        "posted_at": utcnow(),
    }
    statement = insert(TicketCard).values(values)
    # One statement, so two instances posting a fresh card at once cannot collide.
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["ticket_number", "chat_kind", "chat_id"],
            set_={"message_ref": message_ref, "posted_at": values["posted_at"]},
        )
    )


def card_of(conn: Connection, number: int, place: ChatPlace) -> str | None:
    """The message that is the ticket's card in this chat, None if none was posted."""
    return conn.execute(
        select(TicketCard.message_ref).where(
            TicketCard.ticket_number == number,
            TicketCard.chat_kind == place.kind,
            TicketCard.chat_id == place.chat_id,
        )
    ).scalar_one_or_none()


def ticket_of_card(conn: Connection, place: ChatPlace, message_ref: str) -> int | None:
    """The ticket whose card this message is (an agent replied to it), None for any other."""
    return conn.execute(
        select(TicketCard.ticket_number)
        .where(
            TicketCard.chat_kind == place.kind,
            TicketCard.chat_id == place.chat_id,
            TicketCard.message_ref == message_ref,
        )
        .limit(1)
    ).scalar_one_or_none()


def save_message(conn: Connection, number: int, place: ChatPlace, message_ref: str) -> None:
    """Remember a message about the ticket that is not its card (a relay, a status line)."""
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(DeskMessage).values(
        chat_kind=place.kind,
        chat_id=place.chat_id,
        message_ref=message_ref,
        ticket_number=number,
        posted_at=utcnow(),
    )
    conn.execute(statement.on_conflict_do_nothing())  # message ids are never reused


def ticket_of_message(conn: Connection, place: ChatPlace, message_ref: str) -> int | None:
    """The ticket a message in this chat belongs to (its card, a relay, a status line); None
    for every other message of the bot, whose replies must not reach a user."""
    card = ticket_of_card(conn, place, message_ref)
    if card is not None:
        return card
    return conn.execute(
        select(DeskMessage.ticket_number).where(
            DeskMessage.chat_kind == place.kind,
            DeskMessage.chat_id == place.chat_id,
            DeskMessage.message_ref == message_ref,
        )
    ).scalar_one_or_none()


def messages_of(conn: Connection, number: int, place: ChatPlace) -> list[str]:
    """The messages about the ticket in this chat other than its card, oldest first."""
    return list(
        conn.execute(
            select(DeskMessage.message_ref)
            .where(
                DeskMessage.ticket_number == number,
                DeskMessage.chat_kind == place.kind,
                DeskMessage.chat_id == place.chat_id,
            )
            .order_by(DeskMessage.posted_at)
        ).scalars()
    )


def forget_messages(conn: Connection, number: int, place: ChatPlace, refs: list[str]) -> None:
    """The messages are gone from the chat (deleted, or past the platform's time limit)."""
    conn.execute(
        delete(DeskMessage).where(
            DeskMessage.ticket_number == number,
            DeskMessage.chat_kind == place.kind,
            DeskMessage.chat_id == place.chat_id,
            DeskMessage.message_ref.in_(refs),
        )
    )
