"""One endpoint, checked: connect, greeting, capabilities, STARTTLS, TLS, and the legacy probes.

Every step is async (asyncio streams; TLS via `StreamWriter.start_tls`) and runs under the
check's one deadline, so a silent server or a tarpit ends in a `timeout` naming the step, never
in a hang. What was seen before a failure is kept in an `Observation`, which `grading` turns
into findings.

Per protocol, before TLS (security `starttls`):
- IMAP: the greeting's or `CAPABILITY`'s capabilities; plaintext login is offered unless
  `LOGINDISABLED` is there (or when `AUTH=PLAIN`/`AUTH=LOGIN` is); then `STARTTLS`.
- POP3: `CAPA`; plaintext login is `USER` or `SASL PLAIN`/`LOGIN`; then `STLS`.
- SMTP: `EHLO` with our FQDN (or an address literal, RFC 5321 4.1.3); plaintext login is
  `AUTH PLAIN`/`LOGIN`; then `STARTTLS`.
With security `tls` the handshake comes first and the greeting after it. `eas` is HTTPS: a
handshake on 443 and the status line of an `OPTIONS /Microsoft-Server-ActiveSync` request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bot.check.report import TlsFacts
from bot.check.tls import Contexts, session_facts
from bot.knowledge.models import Endpoint, Server
from bot.numbers import ascii_number

__all__ = [
    "ConnectionClosed",
    "Failure",
    "FailureKind",
    "Observation",
    "ProtocolError",
    "StartTlsMissing",
    "Target",
    "observe",
    "probe_legacy",
]

_MAX_LINE = 8192
_CLOSE_WAIT = 0.3  # seconds to let a connection close politely after our goodbye


@dataclass(frozen=True)
class Target:
    protocol: str
    port: int
    security: str
    host: str  # SNI and certificate name
    address: str  # where to connect

    @classmethod
    def of(cls, server: Server, endpoint: Endpoint) -> Target:
        host = endpoint.host or server.host
        address = endpoint.address or (server.address if not endpoint.host else None) or host
        return cls(endpoint.protocol, endpoint.port, endpoint.security, host, address)

    @property
    def tls_first(self) -> bool:
        return self.security == "tls" or self.protocol == "eas"


FailureKind = Literal[
    "unreachable", "timeout", "closed", "unexpected_answer", "starttls_missing", "handshake_failed"
]


@dataclass(frozen=True)
class Failure:
    """Why the dialog stopped."""

    kind: FailureKind
    stage: str
    detail: str = ""


@dataclass
class Observation:
    """What one endpoint showed, filled in as the dialog goes on (kept when it stops early)."""

    stage: str = "connect"  # connect, greeting, capabilities, starttls, handshake, after_tls
    connect_ms: float | None = None
    handshake_ms: float | None = None
    greeting: str | None = None
    capabilities: list[str] = field(default_factory=list)
    starttls_offered: bool | None = None
    plaintext_auth: bool | None = None
    verify_error: str | None = None
    tls: TlsFacts | None = None
    http_status: str | None = None
    failure: Failure | None = None


class ProtocolError(Exception):
    """The server's answer does not fit the protocol (the answer is the message)."""


class ConnectionClosed(Exception):
    """The server closed the connection where an answer was due."""


class StartTlsMissing(Exception):
    """STARTTLS/STLS is not offered, or the server refused it (the answer is the message)."""


class _Line:
    """Line-based reading and writing over one connection (plain or, later, TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self) -> str:
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:
            if error.partial:
                raise ProtocolError(_text(error.partial)) from None
            raise ConnectionClosed() from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("(overlong line)") from None
        return _text(raw)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode("ascii") + b"\r\n")
        await self.writer.drain()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")[:300]


# --- the protocols -----------------------------------------------------------------------


class _Dialog:
    """Greeting, capabilities and STARTTLS of one protocol; subclasses fill in the words."""

    def __init__(self, line: _Line, obs: Observation, host: str) -> None:
        self.line = line
        self.obs = obs
        self.host = host

    async def greet(self) -> None:
        """Read the greeting (after the handshake for implicit TLS)."""

    async def before_tls(self) -> None:
        """Capabilities in plain text, then ask for TLS; raises StartTlsMissing."""
        raise NotImplementedError

    async def after_tls(self) -> None:
        """One request over TLS, to see the session works."""

    async def goodbye(self) -> None:
        """End the session politely."""


class _Imap(_Dialog):
    _tag = 0

    def _next_tag(self) -> str:
        self._tag += 1
        return f"L{self._tag}"

    async def greet(self) -> None:
        self.obs.stage = "greeting"
        greeting = await self.line.read()
        if not greeting.startswith(("* OK", "* PREAUTH")):
            raise ProtocolError(greeting)
        self.obs.greeting = greeting
        match = re.search(r"\[CAPABILITY ([^\]]*)\]", greeting, re.IGNORECASE)
        if match:
            self.obs.capabilities = match.group(1).upper().split()

    async def _command(self, command: str) -> tuple[str, list[str]]:
        tag = self._next_tag()
        await self.line.send(f"{tag} {command}")
        untagged: list[str] = []
        while True:
            answer = await self.line.read()
            if answer.startswith(f"{tag} "):
                return answer[len(tag) + 1 :], untagged
            untagged.append(answer)

    async def _capabilities(self) -> list[str]:
        status, untagged = await self._command("CAPABILITY")
        if not status.upper().startswith("OK"):
            raise ProtocolError(status)
        words = [w for u in untagged if u.upper().startswith("* CAPABILITY") for w in u.split()[2:]]
        return [w.upper() for w in words]

    async def before_tls(self) -> None:
        self.obs.stage = "capabilities"
        if not self.obs.capabilities:
            self.obs.capabilities = await self._capabilities()
        caps = set(self.obs.capabilities)
        self.obs.starttls_offered = "STARTTLS" in caps
        self.obs.plaintext_auth = "LOGINDISABLED" not in caps or bool(
            caps & {"AUTH=PLAIN", "AUTH=LOGIN"}
        )
        if not self.obs.starttls_offered:
            raise StartTlsMissing("")
        self.obs.stage = "starttls"
        status, _ = await self._command("STARTTLS")
        if not status.upper().startswith("OK"):
            raise StartTlsMissing(status)

    async def after_tls(self) -> None:
        await self._capabilities()

    async def goodbye(self) -> None:
        await self._command("LOGOUT")


class _Pop3(_Dialog):
    async def greet(self) -> None:
        self.obs.stage = "greeting"
        greeting = await self.line.read()
        if not greeting.startswith("+OK"):
            raise ProtocolError(greeting)
        self.obs.greeting = greeting

    async def _capa(self) -> list[str] | None:
        await self.line.send("CAPA")
        status = await self.line.read()
        if not status.startswith("+OK"):
            return None  # a server without CAPA (RFC 1939 only)
        lines: list[str] = []
        while (answer := await self.line.read()) != ".":
            lines.append(answer.upper())
        return lines

    async def before_tls(self) -> None:
        self.obs.stage = "capabilities"
        capa = await self._capa()
        if capa is not None:
            self.obs.capabilities = capa
            self.obs.starttls_offered = "STLS" in capa
            sasl = next((c.split()[1:] for c in capa if c.startswith("SASL")), [])
            self.obs.plaintext_auth = "USER" in capa or bool({"PLAIN", "LOGIN"} & set(sasl))
            if not self.obs.starttls_offered:
                raise StartTlsMissing("")
        self.obs.stage = "starttls"
        await self.line.send("STLS")
        answer = await self.line.read()
        if not answer.startswith("+OK"):
            self.obs.starttls_offered = False
            raise StartTlsMissing(answer)
        self.obs.starttls_offered = True

    async def after_tls(self) -> None:
        await self._capa()

    async def goodbye(self) -> None:
        await self.line.send("QUIT")
        await self.line.read()


class _Smtp(_Dialog):
    async def _reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while True:
            answer = await self.line.read()
            code = ascii_number(answer[:3], 3)
            if code is None or len(answer) < 3:
                raise ProtocolError(answer)
            lines.append(answer[4:])
            if answer[3:4] != "-":
                return code, lines

    async def greet(self) -> None:
        self.obs.stage = "greeting"
        code, lines = await self._reply()
        if code != 220:
            raise ProtocolError(f"{code} {' '.join(lines)}")
        self.obs.greeting = f"{code} {lines[0]}"

    async def _ehlo(self) -> list[str]:
        await self.line.send(f"EHLO {_ehlo_name(self.line.writer)}")
        code, lines = await self._reply()
        if code != 250:
            raise ProtocolError(f"{code} {' '.join(lines)}")
        return [line.upper() for line in lines[1:]]

    async def before_tls(self) -> None:
        self.obs.stage = "capabilities"
        keywords = await self._ehlo()
        self.obs.capabilities = keywords
        self.obs.starttls_offered = "STARTTLS" in keywords
        mechanisms = {
            word
            for keyword in keywords
            if keyword.startswith(("AUTH ", "AUTH="))
            for word in keyword[5:].split()
        }
        self.obs.plaintext_auth = bool(mechanisms & {"PLAIN", "LOGIN"})
        if not self.obs.starttls_offered:
            raise StartTlsMissing("")
        self.obs.stage = "starttls"
        await self.line.send("STARTTLS")
        code, lines = await self._reply()
        if code != 220:
            raise StartTlsMissing(f"{code} {' '.join(lines)}")

    async def after_tls(self) -> None:
        await self._ehlo()

    async def goodbye(self) -> None:
        await self.line.send("QUIT")
        await self._reply()


class _ActiveSync(_Dialog):
    async def after_tls(self) -> None:
        self.obs.stage = "after_tls"
        request = (
            "OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\n"
            f"Host: {self.host}\r\nUser-Agent: Lotse-Check\r\nConnection: close\r\n"
        )
        await self.line.send(request)
        status = await self.line.read()
        if not status.startswith("HTTP/"):
            raise ProtocolError(status)
        self.obs.http_status = status


_DIALOGS: dict[str, type[_Dialog]] = {
    "imap": _Imap,
    "pop3": _Pop3,
    "smtp": _Smtp,
    "eas": _ActiveSync,
}


def _ehlo_name(writer: asyncio.StreamWriter) -> str:
    """Our fully qualified name if the machine has one, else an address literal."""
    name = socket.gethostname()  # no DNS query: just the kernel's name
    if "." in name and not name.startswith("localhost"):
        return name
    local = writer.get_extra_info("sockname")
    address = str(local[0]) if local else "127.0.0.1"
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


# --- one session -------------------------------------------------------------------------


async def _session(
    target: Target,
    context: ssl.SSLContext,
    obs: Observation,
    *,
    full: bool,
    on_tls: Callable[[ssl.SSLObject], None],
) -> None:
    """Connect, talk until TLS is up (and, when `full`, one request over TLS and goodbye).

    Raises what went wrong; `obs.stage` says where.
    """
    loop = asyncio.get_running_loop()
    obs.stage = "connect"
    started = loop.time()
    reader, writer = await asyncio.open_connection(target.address, target.port, limit=_MAX_LINE)
    if obs.connect_ms is None:
        obs.connect_ms = (loop.time() - started) * 1000
    polite = False
    try:
        dialog = _DIALOGS[target.protocol](_Line(reader, writer), obs, target.host)
        if not target.tls_first:
            await dialog.greet()
            await dialog.before_tls()
        obs.stage = "handshake"
        started = loop.time()
        await writer.start_tls(context, server_hostname=target.host)
        obs.handshake_ms = (loop.time() - started) * 1000
        ssl_object = writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        on_tls(ssl_object)
        if not full:
            return
        obs.stage = "after_tls"
        if target.tls_first:
            await dialog.greet()
            obs.stage = "after_tls"
        await dialog.after_tls()
        await dialog.goodbye()
        polite = True
    finally:
        await _close(writer, polite)


async def _close(writer: asyncio.StreamWriter, polite: bool) -> None:
    """After a goodbye the server closes too, so waiting briefly is cheap; otherwise (probes,
    failures) drop the connection at once."""
    if not polite:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_WAIT):
            await writer.wait_closed()


def _failure(error: BaseException, stage: str) -> Failure:
    if isinstance(error, StartTlsMissing):
        return Failure("starttls_missing", stage, str(error))
    if isinstance(error, ProtocolError):
        return Failure("unexpected_answer", stage, str(error))
    if stage == "handshake" and isinstance(
        error, ssl.SSLError | ConnectionError | ConnectionClosed
    ):
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        return Failure("handshake_failed", stage, str(reason))
    if isinstance(error, ConnectionClosed | ConnectionError) and stage != "connect":
        return Failure("closed", stage)
    if isinstance(error, TimeoutError):
        return Failure("timeout", stage)
    if isinstance(error, ConnectionRefusedError):
        return Failure("unreachable", stage, "refused")
    if isinstance(error, socket.gaierror):
        return Failure("unreachable", stage, "dns")
    return Failure("unreachable", stage, str(error) or type(error).__name__)


_EXPECTED = (OSError, ProtocolError, ConnectionClosed, StartTlsMissing)


async def observe(target: Target, contexts: Contexts, now: dt.datetime, obs: Observation) -> None:
    """The main session: verifying handshake; after a failed verification a second session
    without verification reads the certificate. Fills `obs` as it goes (so a caller that
    cancels it at the deadline still has what was seen); failures are recorded, not raised."""

    def record(trusted: bool) -> Callable[[ssl.SSLObject], None]:
        def on_tls(ssl_object: ssl.SSLObject) -> None:
            obs.tls = session_facts(
                ssl_object,
                target.host,
                trusted=trusted,
                verify_error=obs.verify_error,
                now=now,
            )

        return on_tls

    try:
        try:
            await _session(target, contexts.verify, obs, full=True, on_tls=record(True))
        except ssl.SSLCertVerificationError as error:
            obs.verify_error = error.verify_message or str(error)
            await _session(target, contexts.facts, obs, full=True, on_tls=record(False))
    except _EXPECTED as error:
        obs.failure = _failure(error, obs.stage)


async def probe_legacy(target: Target, context: ssl.SSLContext) -> bool | None:
    """Does the server still complete a handshake with this (old) TLS version?

    None when the probe could not get as far as the handshake (closed port, no STARTTLS).
    """
    obs = Observation()
    try:
        await _session(target, context, obs, full=False, on_tls=lambda _ssl_object: None)
    except _EXPECTED:
        if obs.stage == "handshake":
            return False
        return None
    return True
