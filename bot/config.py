"""Settings from `LOTSE_*` environment variables (a `.env` file is read too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "MIN_MASKED_SECRET",
    "REPO_KNOWLEDGE_DIR",
    "ConfigurationError",
    "Settings",
    "default_database_url",
    "without_password",
]

REPO_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"
# Shorter secrets are not masked in logs: replacing "abc" everywhere would garble every line,
# and a secret that short protects nothing (the configuration check refuses short ones).
MIN_MASKED_SECRET = 6


def default_database_url() -> str:
    """A SQLite file in the user's data directory, so `lotse chat` needs no set-up."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'lotse' / 'lotse.sqlite3'}"


class Settings(BaseSettings):
    # An empty `LOTSE_X=` (a line of .env.example filled in halfway) means "not set".
    model_config = SettingsConfigDict(
        env_prefix="LOTSE_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    database_url: str = default_database_url()
    knowledge_dir: Path = REPO_KNOWLEDGE_DIR
    locale: Literal["de", "en"] = "de"
    nlu: Literal["lexicon", "rasa"] = "lexicon"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout: float = 0.5  # seconds per parse; the lexicon answers when Rasa is slower
    telegram_token: SecretStr | None = None
    telegram_base_url: str | None = None
    # Webhook mode (several instances share the load); long polling when no URL is set.
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = 8443
    # Group chats are ignored unless their ids are listed (comma-separated).
    telegram_allowed_groups: str = ""
    matrix_homeserver: str | None = None
    matrix_user: str | None = None
    matrix_password: SecretStr | None = None
    matrix_store_dir: Path | None = None
    matrix_access_token: SecretStr | None = None  # instead of the password
    # Group rooms are answered only when their ids are listed (comma-separated).
    matrix_allowed_rooms: str = ""
    # Sign Apple configuration profiles with this certificate and key (PEM); unsigned if unset.
    profile_signing_certificate: Path | None = None
    profile_signing_key: Path | None = None
    check_timeout: float = 10.0  # seconds for the whole connection check
    check_ca_file: Path | None = None  # trust these CAs instead of the system's

    # --- `lotse serve` (production) ---
    # The HTTP server for /healthz, /metrics and the mail clients' autoconfiguration.
    http_listen: str = "127.0.0.1"
    http_port: int = 8080
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- hand-over to helpdesk agents (tickets) ---
    # Where agents see new tickets and answer: a Telegram group id and/or a Matrix room id.
    telegram_agent_chat: int | None = None
    matrix_agent_room: str | None = None
    # Members of the Matrix agents' room act as agents from this power level on (50: moderator).
    matrix_agent_power_level: int = 50
    # The bot's Telegram username (without @), for hand-back deep links t.me/<name>?start=...
    telegram_bot_username: str | None = None
    # Ticket mail: smtps://user:password@host:465 (implicit TLS) or
    # smtp://user:password@host:587 (STARTTLS, required); the helpdesk queue's address.
    smtp_url: SecretStr | None = None
    smtp_ca_file: Path | None = None  # trust these CAs for the mail server instead of the system's
    mail_from: str = "lotse@localhost"
    helpdesk_email: str | None = None
    # Signs hand-back links; links stay valid this many days and work once.
    handoff_secret: SecretStr | None = None
    handoff_link_days: int = 14
    # Retention (DSGVO): conversations without a ticket, and transcripts of closed tickets.
    retention_days: int = 30
    ticket_retention_days: int = 180

    # --- `lotse serve` keeps running while a required channel is down for this long, then ends
    # with exit code 1 so that `restart: unless-stopped` starts it afresh; 0: never ends.
    channel_failure_exit_seconds: float = 300.0

    def secret_values(self) -> list[str]:
        """Every configured secret as it may show up in an error message, longest first: the
        SecretStr settings, and the passwords in the database, Rasa and SMTP URLs (as written
        and percent-decoded)."""
        found: set[str] = set()
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found.add(value.get_secret_value())
        urls = [self.database_url, self.rasa_url]
        if self.smtp_url is not None:
            urls.append(self.smtp_url.get_secret_value())
        for url in urls:
            password = _password_in(url)
            if password:
                found.update((password, unquote(password)))
        return sorted((s for s in found if len(s) >= MIN_MASKED_SECRET), key=len, reverse=True)


def _password_in(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:  # not a URL at all: nothing to find in it
        return None


def without_password(url: str) -> str:
    """`url` with the password (if any) shown as *** (for reports anyone may read)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class ConfigurationError(Exception):
    """A setting cannot work; the message says which and why."""
