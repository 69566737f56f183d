"""The chat's connection check: carries out the engine's `RunCheck` action.

- One shared result for everyone, cached for 60 s: a busy helpdesk hour must not turn into a
  scan of the mail server. Requests while a check runs wait for that same check.
- Per user at most one request per 30 s: a second request within 30 s gets the user's last
  result with a note instead of a new check (throttled requests do not extend the 30 s).
- One deadline for the whole check (`timeout`, default 10 s, from `LOTSE_CHECK_TIMEOUT`).
- The reply is a summary (one line per protocol) with a "Details anzeigen" option; its payload
  `request_check:detail=1` comes back as `RunCheck(details=True)`, which shows the details of a
  fresh result without checking again.
- The result goes into the conversation (`state.last_check`, as the handler's state change) for
  agents to see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot import metrics
from bot.check import texts
from bot.check.checker import check_server
from bot.check.report import CheckReport
from bot.engine.decision import Action, Reply, RunCheck
from bot.engine.state import Option
from bot.i18n import Translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Server
from bot.knowledge.render import helpdesk_text
from bot.turns import ActionContext, Handled, StateChange

__all__ = ["CACHE_SECONDS", "DETAILS_PAYLOAD", "USER_INTERVAL", "CheckActionHandler", "Checker"]

log = logging.getLogger(__name__)

USER_INTERVAL = 30.0  # seconds between two checks one user may ask for
CACHE_SECONDS = 60.0  # how long everyone gets the last result
DETAILS_PAYLOAD = "request_check:detail=1"

Checker = Callable[[Server, float, Path | None], Awaitable[CheckReport]]


async def _check(server: Server, seconds: float, ca_file: Path | None) -> CheckReport:
    return await check_server(server, timeout=seconds, ca_file=ca_file)


@dataclass(frozen=True)
class _Result:
    report: CheckReport
    at: float  # clock time the check finished


class CheckActionHandler:
    def __init__(
        self,
        knowledge: Callable[[], KnowledgeBase],
        *,
        timeout: float,
        ca_file: Path | None,
        clock: Callable[[], float] = time.monotonic,
        checker: Checker = _check,
    ) -> None:
        # Read at every check: it reaches only the endpoints in the knowledge in service now.
        self.knowledge = knowledge
        self.timeout = timeout
        self.ca_file = ca_file
        self.clock = clock
        self.checker = checker
        self._shared: _Result | None = None
        self._running: asyncio.Task[_Result] | None = None
        # (channel, user) -> (time of the last served request, the result it got)
        self._users: dict[tuple[str, str], tuple[float, _Result]] = {}

    async def __call__(self, action: Action, context: ActionContext) -> Handled:
        if not isinstance(action, RunCheck):
            return Handled([])
        tr = context.translator
        key = (context.inbound.channel, context.inbound.user)
        now = self.clock()
        self._forget_old(now)
        mine = self._users.get(key)

        if action.details:
            fresh = self._fresh(mine, now)
            if fresh is not None:
                return _handled(self._detail_replies(fresh, now, tr), fresh)

        if mine is not None and now - mine[0] < USER_INTERVAL:
            # Too soon: no new check, the user's last result with a note.
            result = mine[1]
            note = texts.throttled_note(USER_INTERVAL - (now - mine[0]), tr)
            if action.details:
                return _handled([Reply(note), *self._detail_replies(result, now, tr)], result)
            return _handled([self._summary_reply(result, now, tr, note=note)], result)

        try:
            result = await self._result(now)
        except Exception:
            log.exception("connection check failed")
            metrics.ERRORS.labels("check").inc()
            failed = texts.failed_text(tr) + "\n\n" + helpdesk_text(self.knowledge(), tr)
            return Handled([Reply(failed)])
        self._users[key] = (self.clock(), result)
        if action.details:
            return _handled(self._detail_replies(result, self.clock(), tr), result)
        return _handled([self._summary_reply(result, self.clock(), tr)], result)

    # --- results -------------------------------------------------------------------------

    def _fresh(self, mine: tuple[float, _Result] | None, now: float) -> _Result | None:
        """The newest result still within the cache time: the user's own or the shared one."""
        candidates = [r for r in (mine[1] if mine else None, self._shared) if r is not None]
        fresh = [r for r in candidates if now - r.at < CACHE_SECONDS]
        return max(fresh, key=lambda r: r.at) if fresh else None

    async def _result(self, now: float) -> _Result:
        """The shared result if fresh, else a new check (one at a time, shared by all)."""
        if self._shared is not None and now - self._shared.at < CACHE_SECONDS:
            return self._shared
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run())
        # shield: one user's cancelled turn must not cancel the check others wait for.
        return await asyncio.shield(self._running)

    async def _run(self) -> _Result:
        report = await self.checker(self.knowledge().server, self.timeout, self.ca_file)
        metrics.CHECKS.labels(report.overall).inc()
        result = _Result(report, self.clock())
        self._shared = result
        return result

    def _forget_old(self, now: float) -> None:
        """Drop users whose last request no longer limits or informs anything."""
        if len(self._users) < 256:
            return
        horizon = max(USER_INTERVAL, CACHE_SECONDS)
        self._users = {k: v for k, v in self._users.items() if now - v[0] < horizon}

    # --- replies -------------------------------------------------------------------------

    def _summary_reply(
        self, result: _Result, now: float, tr: Translator, note: str | None = None
    ) -> Reply:
        text = texts.summary(result.report, tr)
        age = now - result.at
        if note is not None:
            text = f"{note}\n\n{text}"
        elif age >= 1:
            text = f"{text}\n{texts.cached_note(age, tr)}"
        if result.report.overall == "error":
            text = f"{text}\n\n{helpdesk_text(self.knowledge(), tr)}"
        option = Option(texts.details_option_label(tr), DETAILS_PAYLOAD)
        return Reply(text, (option,))

    def _detail_replies(self, result: _Result, now: float, tr: Translator) -> list[Reply]:
        replies = [Reply(text) for text in texts.details(result.report, tr)]
        age = now - result.at
        if age >= 1:
            replies.append(Reply(texts.cached_note(age, tr)))
        return replies


def _handled(replies: list[Reply], result: _Result) -> Handled:
    """The replies, and the result kept in the conversation for agents to see."""
    return Handled(replies, StateChange(last_check=result.report.as_json()))
