"""The connection check: every endpoint of the server in parallel, under one deadline.

Only endpoints from the knowledge base are ever contacted (`Server` comes from `server.yaml`,
never from what a user types). Each endpoint runs its main session and its TLS 1.0/1.1 probes
at the same time, so the whole check takes about as long as its slowest endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar

from bot.check.endpoint import Failure, Observation, Target, observe, probe_legacy
from bot.check.grading import grade
from bot.check.report import CheckReport, EndpointResult
from bot.check.tls import Contexts, contexts_for
from bot.clock import utcnow
from bot.knowledge.models import Endpoint, Server

__all__ = ["check_endpoint", "check_server", "check_server_sequentially"]

T = TypeVar("T")


# `timeout` (not a context manager) is the interface callers know; it becomes the one deadline
# every connection of the check runs under.
async def check_server(
    server: Server,
    *,
    timeout: float,  # noqa: ASYNC109
    ca_file: Path | None = None,
) -> CheckReport:
    """Check all endpoints in parallel; the whole check ends within `timeout` seconds."""
    return await _check(server, server.endpoints, seconds=timeout, ca_file=ca_file, parallel=True)


async def check_server_sequentially(
    server: Server,
    *,
    timeout: float,  # noqa: ASYNC109
    ca_file: Path | None = None,
) -> CheckReport:
    """The same check, one endpoint after the other (for the benchmark's comparison)."""
    return await _check(server, server.endpoints, seconds=timeout, ca_file=ca_file, parallel=False)


async def _check(
    server: Server,
    endpoints: list[Endpoint],
    *,
    seconds: float,
    ca_file: Path | None,
    parallel: bool,
) -> CheckReport:
    loop = asyncio.get_running_loop()
    started_at = utcnow()
    started = loop.time()
    deadline = started + seconds
    contexts = await contexts_for(ca_file)
    targets = [Target.of(server, endpoint) for endpoint in endpoints]
    if parallel:
        results = await asyncio.gather(
            *(check_endpoint(t, contexts, deadline=deadline, now=started_at) for t in targets)
        )
    else:
        results = [
            await check_endpoint(t, contexts, deadline=deadline, now=started_at) for t in targets
        ]
    return CheckReport(
        server=server.name,
        started=started_at,
        duration_ms=(loop.time() - started) * 1000,
        endpoints=tuple(results),
    )


async def _by(deadline: float, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None when the deadline comes first."""
    try:
        async with asyncio.timeout_at(deadline):
            return await work
    except TimeoutError:
        return None


async def _true(work: Awaitable[None]) -> bool:
    await work
    return True


async def check_endpoint(
    target: Target, contexts: Contexts, *, deadline: float, now: dt.datetime
) -> EndpointResult:
    loop = asyncio.get_running_loop()
    started = loop.time()
    probes = {
        version: asyncio.create_task(_by(deadline, probe_legacy(target, context)))
        for version, context in contexts.legacy.items()
    }
    obs = Observation()
    finished = await _by(deadline, _true(observe(target, contexts, now, obs)))
    if not finished:
        obs.failure = Failure("timeout", obs.stage)
    legacy: Mapping[str, bool | None] = {v: await task for v, task in probes.items()}
    findings, grades = grade(target, obs, legacy, now)
    return EndpointResult(
        protocol=target.protocol,
        port=target.port,
        security=target.security,
        host=target.host,
        address=target.address,
        duration_ms=(loop.time() - started) * 1000,
        findings=findings,
        connect_ms=obs.connect_ms,
        handshake_ms=obs.handshake_ms,
        greeting=obs.greeting,
        starttls_offered=obs.starttls_offered,
        plaintext_auth_before_tls=obs.plaintext_auth,
        http_status=obs.http_status,
        tls=obs.tls,
        legacy_tls=legacy,
        grades=grades,
    )
