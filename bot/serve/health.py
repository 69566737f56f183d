"""What `/healthz` reports: database, Rasa, knowledge base, chat channels.

Required parts decide the HTTP status (200 or 503): the database and every configured chat
channel. Rasa and a rejected knowledge-base edit are reported but only make the status
"degraded": the lexicon answers while Rasa is away, and the last good knowledge stays in
service, so taking the instance out of a load balancer would help nobody. Monitoring alerts
on "degraded"; orchestrators restart on 503.

The report may reach anyone (a proxy publishing the wrong path), so it names states and
exception classes only: error messages quote tokens and URLs (the log has the details,
with secrets masked), and URLs are shown without their password.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from bot.config import Settings, without_password
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import ReloadOutcome

__all__ = ["PROBE_SECONDS", "ChannelState", "ChannelStatus", "Health"]

PROBE_SECONDS = 2.0  # per part; /healthz answers within this even when a part hangs


ChannelState = Literal["starting", "running", "standby", "stopping", "stopped", "failed"]


@dataclass
class ChannelStatus:
    """A chat channel's state as its runner last set it."""

    name: str
    # standby: another instance holds the channel's lease (Matrix runs in one instance only)
    # and this one takes over.
    state: ChannelState = "starting"
    detail: str | None = None  # a fixed word or an exception class, never a message

    @property
    def ok(self) -> bool:
        return self.state in ("running", "standby")


@dataclass
class Health:
    settings: Settings
    service: ConversationService
    channels: dict[str, ChannelStatus] = field(default_factory=dict)
    last_reload: ReloadOutcome | None = None

    def follow_reloads(self) -> None:
        """Remember the outcome of every knowledge-base reload (call once at start)."""

        def remember(outcome: ReloadOutcome, _current: KnowledgeBase) -> None:
            self.last_reload = outcome

        self.service.registry.on_reload(remember)

    def channel(self, name: str) -> ChannelStatus:
        status = self.channels[name] = ChannelStatus(name)
        return status

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the JSON report); healthy means every required part is ok."""
        database, rasa = await asyncio.gather(self._database(), self._rasa())
        parts: dict[str, Any] = {"database": database}
        if rasa is not None:
            parts["rasa"] = rasa
        parts["knowledge"] = self._knowledge()
        parts["channels"] = {
            name: {"ok": status.ok, "state": status.state}
            | ({"detail": status.detail} if status.detail else {})
            for name, status in self.channels.items()
        }
        required_ok = database["ok"] and all(status.ok for status in self.channels.values())
        optional_ok = (rasa is None or rasa["ok"]) and parts["knowledge"]["ok"]
        status = "failing" if not required_ok else "ok" if optional_ok else "degraded"
        if not self.channels:
            parts["channels_note"] = "no chat channel configured"
        return required_ok, {"status": status, **parts}

    async def _database(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.service.store.ping(), PROBE_SECONDS)
        except Exception as error:  # any failure is the report, not a crash of /healthz
            return {"ok": False, "error": _describe(error)}
        return {"ok": True, "dialect": self.service.store.dialect}

    async def _rasa(self) -> dict[str, Any] | None:
        if self.settings.nlu != "rasa":
            return None
        url = self.settings.rasa_url.rstrip("/") + "/version"
        shown = without_password(self.settings.rasa_url)
        try:
            async with httpx.AsyncClient(timeout=PROBE_SECONDS) as client:
                response = await client.get(url)
            response.raise_for_status()
            version = response.json().get("version")
        except Exception as error:
            return {"ok": False, "url": shown, "error": _describe(error)}
        return {"ok": True, "url": shown, "version": version}

    def _knowledge(self) -> dict[str, Any]:
        knowledge = self.service.knowledge
        part: dict[str, Any] = {
            "ok": True,
            "revision": knowledge.revision,
            "guides": len(knowledge.guides),
            "last_reload_rejected": False,
        }
        if self.last_reload is not None and self.last_reload.rejected:
            part.update(
                ok=False,
                last_reload_rejected=True,
                rejected_revision=self.last_reload.revision,
                report=self.last_reload.report,
            )
        return part


def _describe(error: BaseException) -> str:
    """The exception's class only: messages may quote URLs with passwords or tokens."""
    return type(error).__name__
