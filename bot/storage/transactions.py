"""The store's transactions: each a plain function of a SQLAlchemy `Connection`, written once.

Both back ends run these (SQLite in its worker thread, PostgreSQL through `run_sync`). A turn's
two hot statements are built here once as well; the PostgreSQL back end composes the same
statements into one round trip each (`bot/storage/postgres.py`) instead of writing them again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from bot.clock import as_utc, utcnow
from bot.storage.tables import Conversation, Message, User

__all__ = [
    "SAVE_STATE",
    "STORE_MESSAGE",
    "TURN_VERSION",
    "ConcurrentUpdate",
    "SavedConversation",
    "StoredMessage",
    "Stranded",
    "TurnStart",
    "begin_turn",
    "continue_turn",
    "continued",
    "conversation",
    "delete_user",
    "finish_turn",
    "is_blocked",
    "load_conversation",
    "load_turn",
    "mark_blocked",
    "saved",
    "set_locale",
    "stranded",
    "stranded_users",
    "transcript",
]


class ConcurrentUpdate(Exception):
    """Another writer saved this conversation first; the turn must be retried."""


@dataclass(frozen=True)
class TurnStart:
    channel: str
    external_id: str
    user_id: int
    conversation_id: int
    locale: str
    state: dict[str, Any] | None  # None for a conversation that has just begun
    version: int
    updated_at: datetime | None  # when the conversation was last saved, None when new


@dataclass(frozen=True)
class SavedConversation:
    state: dict[str, Any] | None  # None until the first turn is saved
    version: int  # counts saved turns; the guard of `finish_turn`


@dataclass(frozen=True)
class StoredMessage:
    direction: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class Stranded:
    """A user's message that no saved turn followed: its turn was cut off (the instance was
    stopped or killed mid-turn, or could not save), so the user has no answer to it."""

    start: TurnStart  # the conversation as saved, to answer it on
    text: str  # as stored (see ConversationService._transcript_text)
    created_at: datetime


# --- the statements of every turn -------------------------------------------------------
# Built once: building them per call cost more than the database work itself.

# One message of the transcript (the user's, or one of the bot's replies).
STORE_MESSAGE = insert(Message).values(
    conversation_id=bindparam("conversation"),
    direction=bindparam("direction"),
    text=bindparam("text"),
    created_at=bindparam("now"),
)
# The saved version, and the state only when it is not the one cached (another instance saved
# a newer one meanwhile).
TURN_VERSION = select(
    Conversation.version,
    Conversation.updated_at,
    case((Conversation.version == bindparam("cached_version"), null()), else_=Conversation.state),
).where(Conversation.id == bindparam("conversation"))
# The new state, only over the version the turn started from.
SAVE_STATE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation"))
    .where(Conversation.version == bindparam("expected_version"))
    .values(
        state=bindparam("new_state", type_=Conversation.state.type),
        knowledge_revision=bindparam("revision"),
        version=Conversation.version + 1,
        updated_at=bindparam("now"),
    )
)


def continued(cached: TurnStart, row: Any) -> TurnStart:
    """The turn after `TURN_VERSION`'s row: the cached start if still saved, else the saved."""
    version, updated_at, state = row
    if version == cached.version:
        return cached
    return replace(cached, state=state or None, version=version, updated_at=as_utc(updated_at))


def saved(start: TurnStart, state: dict[str, Any], now: datetime) -> TurnStart:
    """The turn as `SAVE_STATE` left it."""
    return replace(start, state=state, version=start.version + 1, updated_at=now)


# --- the transactions -------------------------------------------------------------------


def begin_turn(
    conn: Connection, channel: str, external_id: str, locale: str, inbound_text: str
) -> TurnStart:
    user_id, user_locale = _user(conn, channel, external_id, locale)
    row = conn.execute(
        select(
            Conversation.id, Conversation.state, Conversation.version, Conversation.updated_at
        ).where(Conversation.user_id == user_id)
    ).first()
    now = utcnow()
    if row is None:
        conversation_id = conn.execute(
            insert(Conversation)
            .values(user_id=user_id, state={}, version=0, created_at=now, updated_at=now)
            .returning(Conversation.id)
        ).scalar_one()
        state, version, updated_at = None, 0, None
    else:
        conversation_id, state, version, updated_at = row
        state = state or None
        updated_at = as_utc(updated_at)
    _store_inbound(conn, conversation_id, inbound_text)
    return TurnStart(
        channel, external_id, user_id, conversation_id, user_locale, state, version, updated_at
    )


def _store_inbound(conn: Connection, conversation_id: int, text: str) -> None:
    conn.execute(
        STORE_MESSAGE,
        {"conversation": conversation_id, "direction": "in", "text": text, "now": utcnow()},
    )


def continue_turn(conn: Connection, cached: TurnStart, inbound_text: str) -> TurnStart:
    """Store the message; the cached state if it is still the saved one, else the saved one
    (another instance took a turn meanwhile): deciding on a stale state would be wasted."""
    _store_inbound(conn, cached.conversation_id, inbound_text)
    row: Row[Any] | None = conn.execute(
        TURN_VERSION, {"conversation": cached.conversation_id, "cached_version": cached.version}
    ).first()
    if row is None:  # deleted meanwhile; SQLite may not have refused the insert
        raise IntegrityError("conversation deleted", None, Exception("deleted"))
    return continued(cached, row)


def load_conversation(conn: Connection, start: TurnStart) -> TurnStart:
    state, version, updated_at = conn.execute(
        select(Conversation.state, Conversation.version, Conversation.updated_at).where(
            Conversation.id == start.conversation_id
        )
    ).one()
    return replace(start, state=state or None, version=version, updated_at=as_utc(updated_at))


def _user(conn: Connection, channel: str, external_id: str, locale: str) -> tuple[int, str]:
    query = select(User.id, User.locale, User.blocked_at).where(
        User.channel == channel, User.external_id == external_id
    )
    row = conn.execute(query).first()
    if row is not None:
        if row[2] is not None:  # a user who had blocked the bot writes again
            conn.execute(update(User).where(User.id == row[0]).values(blocked_at=None))
        return row[0], row[1]
    now = utcnow()
    try:
        with conn.begin_nested():
            user_id: int = conn.execute(
                insert(User)
                .values(
                    channel=channel,
                    external_id=external_id,
                    locale=locale,
                    created_at=now,
                )
                .returning(User.id)
            ).scalar_one()
    except IntegrityError:  # another process created the user a moment ago
        row = conn.execute(query).one()
        return row[0], row[1]
    return user_id, locale


def finish_turn(
    conn: Connection,
    start: TurnStart,
    state: dict[str, Any],
    revision: str | None,
    replies: list[str],
) -> TurnStart:
    now = utcnow()
    result = conn.execute(
        SAVE_STATE,
        {
            "conversation": start.conversation_id,
            "expected_version": start.version,
            "new_state": state,
            "revision": revision,
            "now": now,
        },
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(f"conversation {start.conversation_id} changed meanwhile")
    if replies:
        conn.execute(
            STORE_MESSAGE,
            [
                {
                    "conversation": start.conversation_id,
                    "direction": "out",
                    "text": text,
                    "now": now,
                }
                for text in replies
            ],
        )
    return saved(start, state, now)


def set_locale(conn: Connection, channel: str, external_id: str, locale: str) -> None:
    conn.execute(
        update(User)
        .where(User.channel == channel, User.external_id == external_id)
        .values(locale=locale)
    )


def delete_user(conn: Connection, channel: str, external_id: str) -> bool:
    user_id = conn.execute(
        select(User.id).where(User.channel == channel, User.external_id == external_id)
    ).scalar_one_or_none()
    if user_id is None:
        return False
    # Explicit deletes, so this does not depend on the database enforcing cascades.
    conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
    conn.execute(delete(Message).where(Message.conversation_id.in_(conversation_ids)))
    conn.execute(delete(Conversation).where(Conversation.user_id == user_id))
    conn.execute(delete(User).where(User.id == user_id))
    return True


def transcript(conn: Connection, channel: str, external_id: str) -> list[StoredMessage]:
    rows = conn.execute(
        select(Message.direction, Message.text, Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(User, User.id == Conversation.user_id)
        .where(User.channel == channel, User.external_id == external_id)
        .order_by(Message.id)
    ).all()
    return [StoredMessage(direction, text, as_utc(created)) for direction, text, created in rows]


def conversation(conn: Connection, channel: str, external_id: str) -> SavedConversation | None:
    row = conn.execute(
        select(Conversation.state, Conversation.version)
        .join(User, User.id == Conversation.user_id)
        .where(User.channel == channel, User.external_id == external_id)
    ).first()
    return SavedConversation(row[0] or None, row[1]) if row else None


def mark_blocked(conn: Connection, channel: str, external_id: str) -> None:
    conn.execute(
        update(User)
        .where(User.channel == channel, User.external_id == external_id)
        .values(blocked_at=utcnow())
    )


def is_blocked(conn: Connection, channel: str, external_id: str) -> bool:
    blocked_at = conn.execute(
        select(User.blocked_at).where(User.channel == channel, User.external_id == external_id)
    ).scalar_one_or_none()
    return blocked_at is not None


def load_turn(conn: Connection, channel: str, external_id: str) -> TurnStart | None:
    row = conn.execute(
        select(
            User.id,
            User.locale,
            Conversation.id,
            Conversation.state,
            Conversation.version,
            Conversation.updated_at,
        )
        .join(Conversation, Conversation.user_id == User.id)
        .where(User.channel == channel, User.external_id == external_id)
    ).first()
    if row is None:
        return None
    user_id, locale, conversation_id, state, version, updated_at = row
    updated = as_utc(updated_at)
    return TurnStart(
        channel, external_id, user_id, conversation_id, locale, state or None, version, updated
    )


def _unanswered() -> ColumnElement[bool]:
    """A message from the user stored after the last save of their conversation."""
    return and_(Message.direction == "in", Message.created_at > Conversation.updated_at)


def stranded_users(conn: Connection, channel: str, since: datetime) -> list[str]:
    # Only "out" messages come with a save (same time), so a conversation with a message after
    # its last save has one as its newest message: one index lookup per conversation (the
    # index on conversation and id) instead of a pass over the whole recent transcript.
    other = aliased(Message)
    newest = (
        select(func.max(other.id))
        .where(other.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(User.external_id)
        .join(Conversation, Conversation.user_id == User.id)
        .join(Message, Message.id == newest)
        .where(
            User.channel == channel,
            User.blocked_at.is_(None),
            Message.created_at >= since,
            _unanswered(),
        )
    ).scalars()
    return list(rows)


def stranded(conn: Connection, channel: str, external_id: str) -> Stranded | None:
    start = load_turn(conn, channel, external_id)
    if start is None:
        return None
    row = conn.execute(
        select(Message.text, Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.id == start.conversation_id, _unanswered())
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    return Stranded(start, row[0], as_utc(row[1])) if row is not None else None
