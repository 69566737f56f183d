"""The HTTP server of `lotse serve` (aiohttp): health, metrics, mail clients' autoconfiguration.

- `/healthz`: JSON from `Health.report`, 200 or 503.
- `/metrics`: Prometheus text from `bot.metrics.REGISTRY`.
- `/mail/config-v1.1.xml`, `/.well-known/autoconfig/mail/config-v1.1.xml`: Thunderbird's
  autoconfig (it sends `?emailaddress=user@domain`); 404 for an address of another domain.
- `/autodiscover/autodiscover.xml` (and Outlook's capitalised spelling): Autodiscover POX.
  Outlook POSTs a request naming the address; GET (with or without `?emailaddress=`) works
  too. A foreign address gets Autodiscover's own error response.

The files are built per request from `service.knowledge.server`, so an admin's edit of
`server.yaml` is served as soon as the knowledge base reloads. Nothing here logs addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.conversation import ConversationService
from bot.knowledge.accounts import ForeignAddress, account_for
from bot.profiles.export import AUTOCONFIG_PATHS, AUTODISCOVER_PATHS
from bot.profiles.outlook import address_from_request, autodiscover
from bot.profiles.thunderbird import autoconfig
from bot.serve.health import Health

__all__ = ["MAX_REQUEST_BYTES", "XML", "AutoconfigRoutes", "build_http_app"]

log = logging.getLogger(__name__)

XML = "text/xml"
MAX_REQUEST_BYTES = 64 * 1024  # an Autodiscover request is a few hundred bytes


def build_http_app(health: Health) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    routes = AutoconfigRoutes(health.service)
    app.router.add_get("/healthz", _health_handler(health))
    app.router.add_get("/metrics", _metrics)
    for path in AUTOCONFIG_PATHS:
        app.router.add_get("/" + path, routes.thunderbird)
    for path in AUTODISCOVER_PATHS:
        app.router.add_route("*", "/" + path, routes.outlook)
    return app


def _health_handler(health: Health) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def healthz(_request: web.Request) -> web.Response:
        healthy, report = await health.report()
        return web.json_response(report, status=200 if healthy else 503)

    return healthz


async def _metrics(_request: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    response = web.Response(body=body)
    # The exposition format's content type carries a version parameter; aiohttp's
    # `content_type` argument takes no parameters, so the header is set as a whole.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


class AutoconfigRoutes:
    def __init__(self, service: ConversationService) -> None:
        self.service = service

    async def thunderbird(self, request: web.Request) -> web.Response:
        server = self.service.knowledge.server
        address = request.query.get("emailaddress")
        if address is not None:
            try:
                account_for(server, address)
            except ForeignAddress:
                # Thunderbird then goes on to its other sources (ISP database, guessing).
                return web.Response(status=404, text="not a mail domain of this service\n")
        return web.Response(body=autoconfig(server), content_type=XML, charset="utf-8")

    async def outlook(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        address = request.query.get("emailaddress")
        if request.method == "POST":
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413, text="request too large\n")
            address = address_from_request(body)
            if address is None:
                return web.Response(status=400, text="not an Autodiscover request\n")
        status, document = autodiscover(self.service.knowledge.server, address)
        return web.Response(status=status, body=document, content_type=XML, charset="utf-8")
