"""Sending mail by SMTP: implicit TLS (smtps://) or STARTTLS, required (smtp://).

LOTSE_SMTP_URL is `smtps://user:password@host:465` or `smtp://user:password@host:587`; user
and password are URL-encoded. The server's certificate is always verified (against
LOTSE_SMTP_CA_FILE when set). Plain SMTP without TLS is refused: tickets hold transcripts.
A batch goes over one connection (one TLS handshake and login, not one per mail).
stdlib smtplib, run in a thread by the caller.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit


class SmtpUrlError(ValueError):
    """LOTSE_SMTP_URL cannot work; the message says why."""


@dataclass(frozen=True)
class SmtpTarget:
    implicit_tls: bool
    host: str
    port: int
    user: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise SmtpUrlError(
            "LOTSE_SMTP_URL must start with smtps:// (implicit TLS, port 465) or smtp:// "
            "(STARTTLS, port 587)"
        )
    if not parts.hostname:
        raise SmtpUrlError("LOTSE_SMTP_URL names no host")
    implicit = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit else 587)
    except ValueError:
        raise SmtpUrlError("LOTSE_SMTP_URL has an invalid port") from None
    return SmtpTarget(
        implicit_tls=implicit,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class SmtpSender:
    def __init__(self, url: str, ca_file: Path | None = None, timeout: float = 20.0) -> None:
        self.target = parse_smtp_url(url)
        self.ca_file = ca_file
        self.timeout = timeout

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        """A connection that is encrypted and logged in; raises when it cannot be."""
        target = self.target
        client: smtplib.SMTP
        if target.implicit_tls:
            client = smtplib.SMTP_SSL(
                target.host, target.port, timeout=self.timeout, context=self._context()
            )
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
        try:
            client.ehlo()
            if not target.implicit_tls:
                if not client.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS")
                client.starttls(context=self._context())
                client.ehlo()
            if target.user is not None:
                client.login(target.user, target.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send_batch(self, messages: Sequence[EmailMessage]) -> BatchResult:
        """Deliver in order over one connection, up to the first failure."""
        if not messages:
            return BatchResult(0, None)
        sent = 0
        try:
            with self._connect() as client:
                for message in messages:
                    client.send_message(message)
                    sent += 1
        except (OSError, smtplib.SMTPException) as error:
            if sent < len(messages):
                return BatchResult(sent, error)
            # All accepted; only saying goodbye failed.
        return BatchResult(sent, None)

    def send(self, message: EmailMessage) -> None:
        """Deliver one message; raises OSError or smtplib.SMTPException when it was not."""
        result = self.send_batch([message])
        if result.error is not None:
            raise result.error


@dataclass(frozen=True)
class BatchResult:
    sent: int  # the first this many were accepted by the server
    error: OSError | smtplib.SMTPException | None  # why the next one was not
