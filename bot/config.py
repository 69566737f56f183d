"""Settings from `LOTSE_*` environment variables (a `.env` file is read too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"


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
