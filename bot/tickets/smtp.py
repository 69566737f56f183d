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

__all__ = [
    "BatchResult",
    "SmtpSender",
    "SmtpTarget",
    "SmtpUrlError",
    "parse_smtp_url",
    "permanent_refusal",
]


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
        """Deliver in order over one connection. A message the server refuses for good is
        noted and the next one sent; anything else (the server down, busy or refusing the
        login) stops the batch there."""
        if not messages:
            return BatchResult([], None)
        refusals: list[str | None] = []
        try:
            with self._connect() as client:
                for message in messages:
                    try:
                        client.send_message(message)
                        refusals.append(None)
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as error:
                        refusal = permanent_refusal(error)
                        if refusal is None:
                            raise
                        refusals.append(refusal)  # smtplib has reset the transaction
        except (OSError, smtplib.SMTPException) as error:
            if len(refusals) < len(messages):
                return BatchResult(refusals, error)
            # All handed over; only saying goodbye failed.
        return BatchResult(refusals, None)


def permanent_refusal(error: smtplib.SMTPException) -> str | None:
    """Why the server refused this one message for good (5xx for its recipient or content),
    as "550 5.1.1 ..."; None for a temporary refusal (4xx), to be retried."""
    answers: list[tuple[int, bytes | str]]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
    elif isinstance(error, smtplib.SMTPDataError):
        answers = [(error.smtp_code, error.smtp_error)]
    else:
        return None
    if not answers or not all(500 <= code < 600 for code, _text in answers):
        return None
    code, text = answers[0]
    reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {reason}"


@dataclass(frozen=True)
class BatchResult:
    # One per message tried, in order: None when the server accepted it, else why it refused
    # it for good.
    refusals: list[str | None]
    # Why the message after those was not sent (the server, not that message); the rest
    # were not tried.
    error: OSError | smtplib.SMTPException | None

    @property
    def sent(self) -> int:
        return sum(1 for refusal in self.refusals if refusal is None)
