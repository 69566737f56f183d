"""The connection check in parallel against the same check one endpoint after the other.

Starts the loopback mail servers of the tests (`tests.servers.mail`: Dovecot IMAP/POP3 and
Postfix SMTP, 7 endpoints like production's server.yaml without EAS), warms up once, then runs
both variants `--rounds` times and prints their medians, the ratio, and the parallel check
against its slowest endpoint (measured alone, in the sequential run).

Target: the parallel check takes at most 1.5 times its slowest endpoint.
Run (as root, like the tests): `.venv/bin/python -m benchmarks.check [--rounds 11]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

from bot.check.checker import check_server, check_server_sequentially
from bot.check.report import CheckReport
from bot.knowledge.models import Server
from tests.servers.mail import missing_reason, running_mail_servers

TARGET = 1.5


async def measure(
    server: Server, ca: Path, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds per round: parallel checks, sequential checks, slowest endpoint when alone."""
    for _ in range(2):  # warm-up: TLS contexts, Postfix's smtpd processes
        await check_server(server, timeout=10, ca_file=ca)
    parallel: list[float] = []
    sequential: list[float] = []
    slowest: list[float] = []
    for _ in range(rounds):
        report = await check_server(server, timeout=10, ca_file=ca)
        _require_ok(report)
        parallel.append(report.duration_ms / 1000)
        one_by_one = await check_server_sequentially(server, timeout=10, ca_file=ca)
        _require_ok(one_by_one)
        sequential.append(one_by_one.duration_ms / 1000)
        slowest.append(max(e.duration_ms for e in one_by_one.endpoints) / 1000)
    return parallel, sequential, slowest


def _require_ok(report: CheckReport) -> None:
    if report.overall != "ok":
        problems = [(e.port, [f.code for f in e.findings]) for e in report.endpoints]
        raise SystemExit(f"the loopback servers are not all ok: {problems}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        print(f"cannot start the mail servers: {reason}", file=sys.stderr)
        return 2
    with running_mail_servers() as servers:
        server = servers.good_server()
        print(
            f"servers started in {servers.start_seconds:.2f} s; {len(server.endpoints)} endpoints"
        )
        parallel, sequential, slowest = asyncio.run(measure(server, servers.pki.ca, args.rounds))
    p, s, w = (statistics.median(v) * 1000 for v in (parallel, sequential, slowest))
    print(f"parallel:   {p:7.1f} ms (median of {args.rounds}; min {min(parallel) * 1000:.1f})")
    print(f"sequential: {s:7.1f} ms (median of {args.rounds}; min {min(sequential) * 1000:.1f})")
    print(f"sequential / parallel: {s / p:.2f}x")
    print(
        f"slowest endpoint alone: {w:.1f} ms; parallel / slowest: {p / w:.2f} (target <= {TARGET})"
    )
    return 0 if p / w <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
