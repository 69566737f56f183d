"""The agents' chat on Matrix: a room (`LOTSE_MATRIX_AGENT_ROOM`, a room id or alias) where
ticket cards appear, and pushing agents' answers to Matrix users.

- The bot joins the agents' room when invited. Messages in that room go to the desk, never to
  the user flow. Only members with at least `LOTSE_MATRIX_AGENT_POWER_LEVEL` (default 50,
  moderator) in that room act as agents: joining the room is not enough. In rooms of version
  12 and later the room's creators have unlimited power without a power-level entry, so they
  are read from the room's `m.room.create` event. Someone below the level who
  types a command or replies to the bot is told so once (so a new colleague knows whom to ask)
  and ignored after that (so nobody can make the bot fill the room).
- Matrix has no buttons: the commands that act on a card are listed under it ("!nehmen 12",
  with "!" because Element catches unknown "/commands"; "/" works where the client lets it
  through). Cards are edited in place (`m.replace`) when the ticket changes; relayed user
  messages and status lines reply to the card (`m.in_reply_to`).
- An agent answers by replying to a card or relayed message (the database knows which ticket
  each belongs to; for one posted before that record existed, the event is fetched and its
  start "Ticket #N" / "#N Nutzer:" read) or with `!antwort N text`.
- Users' direct chats are remembered in `direct_rooms.json` in `LOTSE_MATRIX_STORE_DIR`
  whenever a user writes in one, so an agent's answer finds its way after a restart too.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from nio import (  # type: ignore[import-untyped]
    MegolmEvent,
    RoomGetEventError,
    RoomGetStateResponse,
    RoomRedactResponse,
)

from bot.agents.cards import Notice
from bot.agents.commands import parse_command
from bot.agents.desk import Desk, RepliedTo
from bot.channels.base import Stopper
from bot.channels.matrix import CHANNEL, MatrixChannel, MatrixRunner
from bot.channels.matrix_format import HTML_FORMAT, MSGTYPE, is_edit, message_text, text_html
from bot.config import Settings
from bot.numbers import ascii_number

__all__ = [
    "CREATORS_RULE_FROM",
    "MatrixAgentRoom",
    "agent_command",
    "connect_agents",
    "notice_content",
    "privileged_creators",
]

log = logging.getLogger(__name__)
CREATORS_RULE_FROM = 12  # room version since which creators outrank every power level


def privileged_creators(state: list[dict[str, Any]]) -> frozenset[str]:
    """The users a room's state gives unlimited power as its creators: the sender of
    `m.room.create` and its `additional_creators`, in room versions 12 and later only."""
    for event in state:
        if event.get("type") != "m.room.create" or event.get("state_key", "") != "":
            continue
        content = event.get("content")
        content = content if isinstance(content, dict) else {}
        version = ascii_number(str(content.get("room_version", "1")))
        if version is None or version < CREATORS_RULE_FROM:
            return frozenset()
        more = content.get("additional_creators")
        others = [str(user) for user in more] if isinstance(more, list) else []
        return frozenset([str(event.get("sender", "")), *others])
    return frozenset()


def agent_command(command: str) -> str:
    """ "/nehmen 12" as Element users type it: "!nehmen 12"."""
    return "!" + command.removeprefix("/")


def notice_content(notice: Notice) -> dict[str, Any]:
    """A notice as an `m.notice`, the card's actions as the commands to type."""
    body = notice.text
    formatted = text_html(notice.text)
    if notice.actions:
        lines = [f"{agent_command(action.command)} – {action.label}" for action in notice.actions]
        body += "\n\n" + "\n".join(lines)
        formatted += "<br><br>" + "<br>".join(text_html(line) for line in lines)
    return {"msgtype": MSGTYPE, "body": body, "format": HTML_FORMAT, "formatted_body": formatted}


class MatrixAgentRoom:
    """The agents' room: posts and edits for the desk, agents' messages to it."""

    name = CHANNEL

    def __init__(
        self, channel: MatrixChannel, room_id: str, desk: Desk, agent_power_level: int = 50
    ) -> None:
        self.channel = channel
        self.room_id = room_id
        self.desk = desk
        self.agent_power_level = agent_power_level
        self._refused: set[str] = set()  # members told they are no agents (once each)
        self._creators: frozenset[str] | None = None  # read once: creators never change

    @property
    def address(self) -> str:
        return self.room_id

    # --- the desk's side -------------------------------------------------------------------

    async def post(self, notice: Notice, reply_to: str | None = None) -> str | None:
        content = notice_content(notice)
        if reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.channel.send_content(self.room_id, content, uuid.uuid4().hex)

    async def edit(self, ref: str, notice: Notice) -> None:
        new = notice_content(notice)
        content = {
            **new,
            "body": "* " + new["body"],
            "formatted_body": "* " + new["formatted_body"],
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": ref},
        }
        await self.channel.send_content(self.room_id, content, uuid.uuid4().hex)

    async def delete(self, ref: str) -> bool:
        """Redact the event: its content is gone for every member and the server."""
        reason = self.desk.tr.gettext("Der Nutzer hat seine Daten löschen lassen.")
        response = await self.channel.client.room_redact(self.room_id, ref, reason=reason)
        if not isinstance(response, RoomRedactResponse):
            log.info("could not redact %s in the agents' room: %s", ref, response)
            return False
        return True

    # --- the agents' side ------------------------------------------------------------------

    async def on_message(self, event: Any) -> None:
        """A text message in the agents' room (the channel routes it here)."""
        try:
            content: dict[str, Any] = event.source.get("content", {})
            if is_edit(content):
                return  # an agent correcting a typo: the user already has the first version
            text = message_text(content)
            replied = await self._replied_to(content)
            sender = str(event.sender)
            if not await self._is_agent(sender):
                if replied is not None or parse_command(text) is not None:
                    await self._refuse(sender, str(event.event_id))
                return
            answer = await self.desk.on_message(self.name, self._agent_name(sender), text, replied)
            if answer is not None:
                await self.post(answer, str(event.event_id))
        except Exception:
            log.exception("handling a message in the agents' room failed")

    async def _is_agent(self, sender: str) -> bool:
        """A member with the agents' power level in this room (as the latest sync knows it)."""
        room = self.channel.client.rooms.get(self.room_id)
        if room is None:
            return False
        if room.power_levels.get_user_level(sender) >= self.agent_power_level:
            return True
        return sender in await self._room_creators()

    async def _room_creators(self) -> frozenset[str]:
        if self._creators is None:
            response = await self.channel.client.room_get_state(self.room_id)
            if not isinstance(response, RoomGetStateResponse):
                log.warning("could not read the agents' room's state: %s", response)
                return frozenset()  # asked again next time
            self._creators = privileged_creators(response.events)
        return self._creators

    async def _refuse(self, sender: str, event_id: str) -> None:
        """Tell a member below the agents' power level why nothing happens, once."""
        if sender in self._refused:
            return
        self._refused.add(sender)
        log.info("a member below the agents' power level tried to act in the agents' room")
        text = self.desk.tr.gettext(
            "Tickets bearbeiten können hier nur Mitglieder ab Berechtigungsstufe {level} "
            "(Moderation). Bitte wenden Sie sich an die Verwaltung dieses Raums."
        ).format(level=self.agent_power_level)
        await self.post(Notice(text), event_id)

    def _agent_name(self, sender: str) -> str:
        room = self.channel.client.rooms.get(self.room_id)
        name = room.user_name(sender) if room is not None else None
        return f"{name} ({sender})" if name and name != sender else sender

    async def _replied_to(self, content: dict[str, Any]) -> RepliedTo | None:
        """The bot's message this one replies to and its ticket; None for no reply to the bot."""
        relates = content.get("m.relates_to")
        reply = relates.get("m.in_reply_to") if isinstance(relates, dict) else None
        event_id = reply.get("event_id") if isinstance(reply, dict) else None
        if not isinstance(event_id, str):
            return None
        known = await self.desk.ticket_of(self, event_id)
        if known is not None:
            return RepliedTo(known)
        return await self._fetch_replied_to(event_id)

    async def _fetch_replied_to(self, event_id: str) -> RepliedTo | None:
        """A message recorded for no ticket: read it; a reply to an agent is agents' talk, one
        to the bot answers the card or relay it starts as (posted before records existed)."""
        client = self.channel.client
        response = await client.room_get_event(self.room_id, event_id)
        if isinstance(response, RoomGetEventError):
            log.warning("could not read the replied-to event: %s", response)
            return None
        event = response.event
        if isinstance(event, MegolmEvent):
            try:
                event = client.decrypt_event(event)
            except Exception:
                return None
        if str(event.sender) != self.channel.user_id:
            return None
        return RepliedTo(self.desk.ticket_named_at_start(str(getattr(event, "body", ""))))


async def connect_agents(runner: MatrixRunner, settings: Settings, desk: Desk) -> Stopper:
    """Let tickets reach Matrix users, and run the agents' room if one is configured; the
    stopper disconnects them again (the channel stopped in this process: shutdown, or the
    lease went to another instance), so nothing is sent through its closed client."""
    channel = runner.channel
    assert channel is not None
    # What may fail (resolving the room's alias) comes first: nothing is connected then.
    room_id = (
        await _room_id(channel, settings.matrix_agent_room) if settings.matrix_agent_room else None
    )
    tickets = desk.tickets
    if tickets is not None:
        tickets.register_user_sender(CHANNEL, runner.send)
    if room_id is not None:
        agents = MatrixAgentRoom(channel, room_id, desk, settings.matrix_agent_power_level)
        channel.agent_room = room_id
        channel.on_agent_message = agents.on_message
        desk.add_chat(agents)

    async def disconnect(_within: float) -> None:
        desk.remove_chat(CHANNEL)
        if desk.tickets is not None:
            desk.tickets.unregister_user_sender(CHANNEL)

    return disconnect


async def _room_id(channel: MatrixChannel, setting: str) -> str:
    """`LOTSE_MATRIX_AGENT_ROOM` as a room id ("!abc:uni.example"); an alias is resolved."""
    if not setting.startswith("#"):
        return setting
    response = await channel.client.room_resolve_alias(setting)
    room_id = getattr(response, "room_id", None)
    if not room_id:
        raise ValueError(f"LOTSE_MATRIX_AGENT_ROOM {setting}: alias not found ({response})")
    return str(room_id)
