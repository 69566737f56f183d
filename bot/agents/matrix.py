"""The agents' chat on Matrix: a room (`LOTSE_MATRIX_AGENT_ROOM`, a room id or alias) where
ticket cards appear, and pushing agents' answers to Matrix users.

- The bot joins the agents' room when invited; whoever writes there is an agent. Messages in
  that room go to the desk, never to the user flow.
- Matrix has no buttons: the commands that act on a card are listed under it ("!nehmen 12",
  with "!" because Element catches unknown "/commands"; "/" works where the client lets it
  through). Cards are edited in place (`m.replace`) when the ticket changes; relayed user
  messages and status lines reply to the card (`m.in_reply_to`).
- An agent answers by replying to a card or relayed message (the ticket is found from the
  replied-to event: remembered, or fetched from the homeserver after a restart) or with
  `!antwort N text`.
- Users' direct chats are remembered in `direct_rooms.json` in `LOTSE_MATRIX_STORE_DIR`
  whenever a user writes in one, so an agent's answer finds its way after a restart too.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from nio import MegolmEvent, RoomGetEventError  # type: ignore[import-untyped]

from bot.agents.cards import Notice
from bot.agents.commands import ticket_number_in
from bot.agents.desk import Desk
from bot.channels.matrix import CHANNEL, MatrixChannel
from bot.channels.matrix_format import HTML_FORMAT, MSGTYPE, is_edit, message_text, text_html
from bot.config import Settings
from bot.engine.decision import Reply

log = logging.getLogger(__name__)
DIRECT_ROOMS_FILE = "direct_rooms.json"


class DirectRooms:
    """Which direct chat each Matrix user talks to the bot in, kept in a small JSON file."""

    def __init__(self, path: Path | None, channel: MatrixChannel) -> None:
        self.path = path
        self.channel = channel
        self._rooms: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable %s (%s)", self.path, error)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(user): str(room) for user, room in data.items()}

    def remember(self, user: str, room_id: str) -> None:
        if self._rooms.get(user) == room_id:
            return
        self._rooms[user] = room_id
        if self.path is not None:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._rooms), encoding="utf-8")
            os.replace(temporary, self.path)

    def find(self, user: str) -> str | None:
        """The user's direct chat: remembered, or a two-person room the bot shares with them."""
        remembered = self._rooms.get(user)
        if remembered is not None:
            return remembered
        for room in self.channel.client.rooms.values():
            if room.member_count <= 2 and user in room.users:
                self.remember(user, room.room_id)
                return str(room.room_id)
        return None


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

    def __init__(self, channel: MatrixChannel, room_id: str, desk: Desk) -> None:
        self.channel = channel
        self.room_id = room_id
        self.desk = desk

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

    # --- the agents' side ------------------------------------------------------------------

    async def on_message(self, event: Any) -> None:
        """A text message in the agents' room (the channel routes it here)."""
        try:
            content: dict[str, Any] = event.source.get("content", {})
            if is_edit(content):
                return  # an agent correcting a typo: the user already has the first version
            replied_to = await self._ticket_replied_to(content)
            agent = self._agent_name(str(event.sender))
            answer = await self.desk.on_message(agent, message_text(content), replied_to)
            if answer is not None:
                await self.post(answer, str(event.event_id))
        except Exception:
            log.exception("handling a message in the agents' room failed")

    def _agent_name(self, sender: str) -> str:
        room = self.channel.client.rooms.get(self.room_id)
        name = room.user_name(sender) if room is not None else None
        return f"{name} ({sender})" if name and name != sender else sender

    async def _ticket_replied_to(self, content: dict[str, Any]) -> int | None:
        relates = content.get("m.relates_to")
        reply = relates.get("m.in_reply_to") if isinstance(relates, dict) else None
        event_id = reply.get("event_id") if isinstance(reply, dict) else None
        if not isinstance(event_id, str):
            return None
        known = self.desk.ticket_of(self.name, event_id)
        return known if known is not None else await self._fetch_ticket_number(event_id)

    async def _fetch_ticket_number(self, event_id: str) -> int | None:
        """After a restart: read the replied-to event; only the bot's own messages count."""
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
        return ticket_number_in(str(getattr(event, "body", "")))


async def connect_agents(channel: MatrixChannel, settings: Settings) -> Desk:
    """Let tickets reach Matrix users, and run the agents' room if one is configured."""
    desk = Desk.for_service(channel.service, settings.locale)
    store = settings.matrix_store_dir
    rooms = DirectRooms(store / DIRECT_ROOMS_FILE if store else None, channel)
    channel.on_direct_message = rooms.remember
    tickets = desk.tickets
    if tickets is not None:

        async def push(user: str, replies: list[Reply]) -> None:
            room = rooms.find(user)
            if room is None:
                raise LookupError("no direct chat with this Matrix user")
            await channel.send(room, replies, uuid.uuid4().hex)

        tickets.register_user_sender(CHANNEL, push)
    if settings.matrix_agent_room:
        room_id = await _room_id(channel, settings.matrix_agent_room)
        agents = MatrixAgentRoom(channel, room_id, desk)
        channel.agent_room = room_id
        channel.on_agent_message = agents.on_message
        desk.add_chat(agents)
    return desk


async def _room_id(channel: MatrixChannel, setting: str) -> str:
    """`LOTSE_MATRIX_AGENT_ROOM` as a room id ("!abc:uni.example"); an alias is resolved."""
    if not setting.startswith("#"):
        return setting
    response = await channel.client.room_resolve_alias(setting)
    room_id = getattr(response, "room_id", None)
    if not room_id:
        raise ValueError(f"LOTSE_MATRIX_AGENT_ROOM {setting}: alias not found ({response})")
    return str(room_id)
