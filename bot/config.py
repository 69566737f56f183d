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
    model_config = SettingsConfigDict(env_prefix="LOTSE_", env_file=".env", extra="ignore")

    database_url: str = default_database_url()
    knowledge_dir: Path = REPO_KNOWLEDGE_DIR
    locale: Literal["de", "en"] = "de"
    nlu: Literal["lexicon", "rasa"] = "lexicon"
    rasa_url: str = "http://127.0.0.1:5005"
    telegram_token: SecretStr | None = None
    telegram_base_url: str | None = None
    matrix_homeserver: str | None = None
    matrix_user: str | None = None
    matrix_password: SecretStr | None = None
    matrix_store_dir: Path | None = None
