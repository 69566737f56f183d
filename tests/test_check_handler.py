"""The chat's check service: rate limit per user, one shared cached result, details on request.

A fake clock and a counting fake checker make the 30 s / 60 s rules testable without waiting;
one test runs the real check against the loopback mail servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from bot.check.handler import CACHE_SECONDS, DETAILS_PAYLOAD, USER_INTERVAL, CheckActionHandler
from bot.check.report import CheckReport, EndpointResult, Finding
from bot.engine.decision import HandOver, Reply, RunCheck
from bot.engine.state import ConversationState
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Server
from bot.turns import ActionContext, Inbound
from tests.servers.mail import MailServers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeChecker:
    """Counts checks; each report's duration tells which run it came from."""

    def __init__(self, findings: tuple[Finding, ...] = ()) -> None:
        self.runs = 0
        self.findings = findings
        self.release: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, server: Server, seconds: float, ca_file: Path | None) -> CheckReport:
        self.runs += 1
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        endpoint = EndpointResult(
            protocol="imap",
            port=993,
            security="tls",
            host=server.host,
            address=server.host,
            duration_ms=12.0,
            findings=self.findings,
        )
        return CheckReport(server.name, dt.datetime.now(dt.UTC), float(self.runs), (endpoint,))


def context(user: str = "anna", locale: str = "de") -> ActionContext:
    return ActionContext(
        Inbound("test", user, text="prüfen"), ConversationState(locale=locale), translator(locale)
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def checker() -> FakeChecker:
    return FakeChecker()


@pytest.fixture
def handler(knowledge: KnowledgeBase, clock: Clock, checker: FakeChecker) -> CheckActionHandler:
    return CheckActionHandler(
        lambda: knowledge, timeout=3.0, ca_file=None, clock=clock, checker=checker
    )


def text(replies: list[Reply]) -> str:
    return "\n".join(reply.text for reply in replies)


async def test_a_check_replies_with_a_summary_and_a_details_option(
    handler: CheckActionHandler, checker: FakeChecker
) -> None:
    ctx = context()
    replies = (await handler(RunCheck(), ctx)).replies
    assert checker.runs == 1
    (reply,) = replies
    assert reply.text.splitlines()[1] == "✅ IMAP: Port 993 (SSL/TLS) in Ordnung"
    assert [(o.label, o.payload) for o in reply.options] == [("Details anzeigen", DETAILS_PAYLOAD)]
    assert DETAILS_PAYLOAD == "request_check:detail=1"


async def test_the_result_is_stored_in_the_conversation_for_agents(
    handler: CheckActionHandler,
) -> None:
    kept = (await handler(RunCheck(), context())).change.last_check
    assert kept is not None
    assert kept["overall"] == "ok"
    assert kept["endpoints"][0]["port"] == 993


async def test_a_second_request_within_30_s_gets_the_last_result_with_a_note(
    handler: CheckActionHandler, checker: FakeChecker, clock: Clock
) -> None:
    await handler(RunCheck(), context())
    clock.now += CACHE_SECONDS + 1  # the shared cache is gone ...
    await handler(RunCheck(), context())  # ... so this is a new check (and a new request)
    assert checker.runs == 2
    clock.now += USER_INTERVAL - 10
    replies = (await handler(RunCheck(), context())).replies
    assert checker.runs == 2
    assert text(replies).startswith("Sie haben den Server gerade erst prüfen lassen")
    assert "in 10 Sekunden" in text(replies)


async def test_after_30_s_and_60_s_the_user_gets_a_new_check(
    handler: CheckActionHandler, checker: FakeChecker, clock: Clock
) -> None:
    await handler(RunCheck(), context())
    clock.now += CACHE_SECONDS
    await handler(RunCheck(), context())
    assert checker.runs == 2


async def test_within_60_s_everyone_gets_the_cached_result(
    handler: CheckActionHandler, checker: FakeChecker, clock: Clock
) -> None:
    await handler(RunCheck(), context("anna"))
    clock.now += 45
    replies = (await handler(RunCheck(), context("ben"))).replies
    assert checker.runs == 1
    assert "Ergebnis von vor 45 Sekunden." in text(replies)
    clock.now += 16  # 61 s after the check
    await handler(RunCheck(), context("carla"))
    assert checker.runs == 2


async def test_concurrent_requests_share_one_running_check(
    handler: CheckActionHandler, checker: FakeChecker
) -> None:
    checker.release = asyncio.Event()
    waiting = [asyncio.create_task(handler(RunCheck(), context(user))) for user in "abc"]
    await checker.started.wait()  # the check task starts after all three asked (FIFO)
    checker.release.set()
    results = await asyncio.gather(*waiting)
    assert checker.runs == 1
    assert all(len(handled.replies) == 1 for handled in results)


async def test_details_show_the_fresh_result_without_checking_again(
    handler: CheckActionHandler, checker: FakeChecker, clock: Clock
) -> None:
    await handler(RunCheck(), context())
    clock.now += 5
    replies = (await handler(RunCheck(details=True), context())).replies
    assert checker.runs == 1
    assert replies[0].text.startswith("IMAP\n\n✅ Port 993 (SSL/TLS): in Ordnung")
    assert replies[-1].text == "Ergebnis von vor 5 Sekunden."


async def test_details_without_a_fresh_result_run_a_check(
    handler: CheckActionHandler, checker: FakeChecker, clock: Clock
) -> None:
    replies = (await handler(RunCheck(details=True), context())).replies
    assert checker.runs == 1
    assert replies[0].text.startswith("IMAP")


async def test_an_error_points_the_user_to_the_helpdesk(
    knowledge: KnowledgeBase, clock: Clock
) -> None:
    failing = FakeChecker((Finding("unreachable", "error", ("CONN",), {"detail": "refused"}),))
    handler = CheckActionHandler(
        lambda: knowledge, timeout=3, ca_file=None, clock=clock, checker=failing
    )
    (reply,) = (await handler(RunCheck(), context())).replies
    assert "❌ IMAP: Port 993 (SSL/TLS): nicht erreichbar" in reply.text
    assert knowledge.helpdesk.email in reply.text


async def test_a_crashing_check_gives_a_friendly_answer(
    knowledge: KnowledgeBase, clock: Clock
) -> None:
    async def broken(server: Server, seconds: float, ca_file: Path | None) -> CheckReport:
        raise RuntimeError("boom")

    handler = CheckActionHandler(
        lambda: knowledge, timeout=3, ca_file=None, clock=clock, checker=broken
    )
    (reply,) = (await handler(RunCheck(), context())).replies
    assert reply.text.startswith("Der Verbindungstest selbst ist leider fehlgeschlagen.")


async def test_the_summary_follows_the_users_language(handler: CheckActionHandler) -> None:
    (reply,) = (await handler(RunCheck(), context(locale="en"))).replies
    assert reply.text.splitlines()[1] == "✅ IMAP: Port 993 (SSL/TLS) OK"
    assert reply.options[0].label == "Show details"


async def test_other_actions_are_not_its_business(handler: CheckActionHandler) -> None:
    assert (await handler(HandOver("requested"), context())).replies == []


@pytest.mark.slow
async def test_the_handler_checks_the_real_servers_from_the_knowledge_base(
    knowledge: KnowledgeBase, mail_servers: MailServers
) -> None:
    ours = KnowledgeBase.build(
        server=mail_servers.good_server(),
        helpdesk=knowledge.helpdesk,
        programs=[],
        faq=knowledge.faq,
        revision="test",
    )
    handler = CheckActionHandler(lambda: ours, timeout=5.0, ca_file=mail_servers.pki.ca)
    handled = await handler(RunCheck(), context())
    (reply,) = handled.replies
    lines = reply.text.splitlines()
    assert [line.split(":")[0] for line in lines[1:4]] == ["✅ IMAP", "✅ POP3", "✅ SMTP"]
    kept = handled.change.last_check
    assert kept is not None and kept["overall"] == "ok"
