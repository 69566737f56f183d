"""Hand-back links: an agent sends a user into a guide with one link and learns how it ended.

`lotse handoff-link --guide thunderbird --ref "Ticket#123"` records the link and prints a
token inside a Telegram deep link (`/start h_...`) and a Matrix instruction. The token is the
link's random id, its expiry and an HMAC-SHA256 over both (LOTSE_HANDOFF_SECRET), so a forged
or altered token is refused without a database lookup. A link works once; its outcome
(finished the guide, asked for a human, a connection check) is mailed to the helpdesk queue
with the agent's reference in the subject, so the agent's ticket system files it right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, insert, select, update

from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.engine.state import ConversationState, Stage
from bot.i18n import N_, Text, Translator
from bot.storage.store import Store
from bot.storage.tables import HandoffLink
from bot.tickets import mail_text
from bot.tickets.models import LinkOutcome, OutcomeKind
from bot.tickets.records import MailSettings, new_message_id, queue_mail

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "MIN_SECRET_LENGTH",
    "PREFIX",
    "HandoffLinks",
    "InvalidReference",
    "Link",
    "LinkRefused",
    "Refusal",
    "link_reference",
    "make_token",
    "reached",
    "read_token",
    "reference_problem",
    "refusal_text",
    "secret_problem",
]

PREFIX = "h_"  # /start payloads: "g_<guide>" opens a guide, "h_<token>" is a hand-back link
_ID_BYTES = 8
_MAC_BYTES = 12
Refusal = Literal["forged", "expired", "used"]
# The MAC is cut to 96 bits for the payload; a short secret could be guessed offline from one
# genuine link, so the secret itself must carry the strength.
MIN_SECRET_LENGTH = 32


def secret_problem(settings: Settings) -> str | None:
    """Why LOTSE_HANDOFF_SECRET cannot be used for hand-back links; None when it can (or when
    it is not set: then there are no links)."""
    if settings.handoff_secret is None:
        return None
    secret = settings.handoff_secret.get_secret_value()
    if secret and len(secret) < MIN_SECRET_LENGTH:
        return (
            f"LOTSE_HANDOFF_SECRET is too short ({len(secret)} characters; at least "
            f"{MIN_SECRET_LENGTH} needed, e.g. `openssl rand -hex 32`): a short secret can be "
            "guessed from one hand-back link."
        )
    return None


# The reference goes into the subject of the outcome mail: one short line of printable text.
MAX_REFERENCE_LENGTH = 100
_NOT_IN_REFERENCES = {"Cc", "Cf", "Zl", "Zp", "Cs"}  # line breaks, controls, bidi overrides


def reference_problem(ref: str) -> Text | None:
    """Why `--ref` cannot be a reference (for the agent); None when it can."""
    if not ref.strip():
        return Text(N_("Die Referenz (--ref) ist leer."))
    if len(ref) > MAX_REFERENCE_LENGTH:
        return Text(
            N_("Die Referenz (--ref) ist zu lang ({length} Zeichen, höchstens {most})."),
            length=len(ref),
            most=MAX_REFERENCE_LENGTH,
        )
    if any(unicodedata.category(character) in _NOT_IN_REFERENCES for character in ref):
        return Text(
            N_(
                "Die Referenz (--ref) darf keine Zeilenumbrüche oder Steuerzeichen enthalten: "
                "sie steht im Betreff der Ticket-Mail."
            )
        )
    return None


class InvalidReference(ValueError):
    """A reference `reference_problem` refuses; str() says why (German)."""


class LinkRefused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


@dataclass(frozen=True)
class Link:
    token: str
    guide: str
    external_ref: str | None
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, b"lotse-handoff\0" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: bytes, link_id: bytes, expires_at: datetime) -> str:
    """32 characters of [A-Za-z0-9_-] after "h_": fits Telegram's 64-character payloads."""
    body = link_id + struct.pack(">I", int(expires_at.timestamp()))
    return PREFIX + _b64(body + _mac(secret, body))


def read_token(secret: bytes, token: str, now: datetime) -> str:
    """The link id (hex) of a genuine, unexpired token; else LinkRefused."""
    try:
        raw = _unb64(token.removeprefix(PREFIX))
    except (binascii.Error, ValueError):
        raise LinkRefused("forged") from None
    if len(raw) != _ID_BYTES + 4 + _MAC_BYTES:
        raise LinkRefused("forged")
    body, mac = raw[: _ID_BYTES + 4], raw[_ID_BYTES + 4 :]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise LinkRefused("forged")
    (expires,) = struct.unpack(">I", body[_ID_BYTES:])
    if now.timestamp() >= expires:
        raise LinkRefused("expired")
    return body[:_ID_BYTES].hex()


# --- transactions ----------------------------------------------------------------------


def _insert_link(
    conn: Connection,
    link_id: str,
    guide: str,
    external_ref: str | None,
    expires_at: datetime,
    thread: str,
) -> None:
    conn.execute(
        insert(HandoffLink).values(
            id=link_id,
            guide=guide,
            external_ref=external_ref,
            mail_thread_id=thread,
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )


def _redeem(conn: Connection, link_id: str, channel: str, user: str) -> str:
    """Mark the link used by this user (once); the guide it opens."""
    row = conn.execute(
        select(HandoffLink.guide, HandoffLink.channel, HandoffLink.user_external_id).where(
            HandoffLink.id == link_id
        )
    ).first()
    if row is None:  # signed but unknown: made for another database, or purged
        raise LinkRefused("forged")
    guide, used_channel, used_user = row
    if used_channel is not None:
        if (used_channel, used_user) == (channel, user):
            return str(guide)  # the same user tapping the link again
        raise LinkRefused("used")
    taken = conn.execute(
        update(HandoffLink)
        .where(HandoffLink.id == link_id, HandoffLink.used_at.is_(None))
        .values(used_at=utcnow(), channel=channel, user_external_id=user)
    )
    if taken.rowcount != 1:  # someone else a moment ago
        raise LinkRefused("used")
    return str(guide)


def link_reference(conn: Connection, link_id: str) -> str | None:
    ref = conn.execute(
        select(HandoffLink.external_ref).where(HandoffLink.id == link_id)
    ).scalar_one_or_none()
    return str(ref) if ref is not None else None


def _queue_outcome(
    conn: Connection, link_id: str, outcome: LinkOutcome, mail: MailSettings | None
) -> None:
    row = conn.execute(
        select(
            HandoffLink.guide,
            HandoffLink.external_ref,
            HandoffLink.mail_thread_id,
            HandoffLink.used_at,
        ).where(HandoffLink.id == link_id)
    ).first()
    if row is None or mail is None:
        return
    guide, ref, thread, used_at = row
    summary, details = mail_text.link_outcome(outcome, mail.zone, mail.tr)
    opened = as_utc(used_at) or utcnow()
    queue_mail(
        conn,
        mail,
        subject=mail_text.link_subject(ref, guide, summary),
        body=mail_text.link_body(ref, guide, summary, details, opened, mail.zone, mail.tr),
        message_id=mail.message_id("lotse-link"),
        in_reply_to=thread,
    )


# --- the service -------------------------------------------------------------------------


class HandoffLinks:
    def __init__(
        self, store: Store, secret: str, *, days: int, mail: MailSettings | None = None
    ) -> None:
        if not secret:
            raise ValueError("LOTSE_HANDOFF_SECRET is empty")
        self.store = store
        self._secret = secret.encode()
        self.days = days
        self.mail = mail

    async def create(self, guide: str, external_ref: str | None) -> Link:
        """Record a new link; InvalidReference for a reference that cannot go into a subject."""
        problem = reference_problem(external_ref) if external_ref is not None else None
        if problem is not None:
            raise InvalidReference(str(problem))
        link_id = secrets.token_bytes(_ID_BYTES)
        expires_at = (utcnow() + timedelta(days=self.days)).replace(microsecond=0)
        thread = new_message_id(self.mail, "lotse-link")
        await self.store.run(_insert_link, link_id.hex(), guide, external_ref, expires_at, thread)
        return Link(make_token(self._secret, link_id, expires_at), guide, external_ref, expires_at)

    async def redeem(
        self, token: str, channel: str, user: str, now: datetime | None = None
    ) -> tuple[str, str]:
        """(link id, guide) for a user following a link; LinkRefused when it cannot be used."""
        link_id = read_token(self._secret, token, now or utcnow())
        guide = await self.store.run(_redeem, link_id, channel, user)
        return link_id, guide

    async def report(self, link_id: str, outcome: LinkOutcome) -> None:
        await self.store.run(_queue_outcome, link_id, outcome, self.mail)


def refusal_text(reason: Refusal, tr: Translator) -> str:
    _ = tr.gettext
    if reason == "used":
        text = _("Dieser Link wurde schon benutzt; jeder Link funktioniert nur einmal.")
    elif reason == "expired":
        text = _("Dieser Link ist leider abgelaufen.")
    else:
        text = _("Diesen Link kann ich leider nicht zuordnen.")
    return text + " " + _("Sie können aber gern hier direkt mit mir weitermachen.")


def reached(before: ConversationState, after: ConversationState) -> list[OutcomeKind]:
    """What a turn reached that the agent who sent the link wants to know, each kind only the
    first time (`after.link_reported` holds the kinds reported before)."""
    found: list[OutcomeKind] = []
    if after.stage is Stage.FINISHED and before.stage is not Stage.FINISHED:
        found.append("finished")
    if after.ticket is not None and after.ticket != before.ticket:
        found.append("human")
    if after.last_check and after.last_check != before.last_check:
        found.append("check")
    return [kind for kind in found if kind not in after.link_reported]
