"""Prometheus metrics of one Lotse process, served by `lotse serve` at /metrics.

One registry of our own (not the client library's global one), so tests and several services in
one process do not share counters by accident. Each instance exposes its own numbers; Prometheus
scrapes every instance and sums them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "CHECKS",
    "ERRORS",
    "MAIL_PARKED",
    "MAIL_QUEUE",
    "REGISTRY",
    "TICKETS",
    "TURNS",
    "TURN_SECONDS",
    "UNDERSTANDINGS",
]

REGISTRY = CollectorRegistry(auto_describe=True)

TURNS = Counter("lotse_turns", "Messages answered (user turns)", ["channel"], registry=REGISTRY)
TURN_SECONDS = Histogram(
    "lotse_turn_seconds",
    "Time from a user's message to the bot's replies, inside the service",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
UNDERSTANDINGS = Counter(
    "lotse_understandings",
    "Typed messages understood, by the back end that decided the intent",
    ["backend"],
    registry=REGISTRY,
)
CHECKS = Counter(
    "lotse_checks", "Connection checks run, by overall result", ["result"], registry=REGISTRY
)
TICKETS = Counter("lotse_tickets", "Tickets opened, by reason", ["reason"], registry=REGISTRY)
ERRORS = Counter(
    "lotse_errors", "Failures caught and answered politely, by where", ["where"], registry=REGISTRY
)
MAIL_QUEUE = Gauge(
    "lotse_mail_queue", "Ticket mails waiting to be sent (as last seen)", registry=REGISTRY
)
MAIL_PARKED = Gauge(
    "lotse_mail_parked",
    "Ticket mails set aside because they cannot be sent as they are (as last seen)",
    registry=REGISTRY,
)
