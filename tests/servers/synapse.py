"""A throwaway Synapse homeserver for tests (pytest plugin, see `tests/conftest.py`).

`synapse_server` (session) runs Synapse from the test environment (`pip install matrix-synapse`)
on a free loopback port with SQLite in a fresh temp directory, so no client's first sync
replays messages of an earlier session. The config is written here rather than generated
(generating imports all of Synapse once more and costs seconds): only the `client` listener,
`bcrypt_rounds: 4`, a `registration_shared_secret`, no federation key servers, and rate limits
high enough that tests never meet them (a test that wants 429s lowers one user's limits with
`override_ratelimit`).

Users are registered through the shared-secret admin API (`register_user`); the device that
registration logs in is logged out again, so a user's device list holds only what the test's
clients create. `restart()` stops and starts the same server (same port, same database).
Without Synapse the tests are skipped, except under `CI=true`, where that is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support import free_port

SERVER_NAME = "localhost"
_START_TIMEOUT = 60.0
_HIGH_LIMIT = {"per_second": 10000, "burst_count": 10000}
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_joins_per_room",
    "rc_3pid_validation",
    "rc_admin_redaction",
    "rc_presence",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_send_email",
)
_RATE_LIMIT_GROUPS = {
    "rc_login": ("address", "account", "failed_attempts"),
    "rc_joins": ("local", "remote"),
    "rc_invites": ("per_room", "per_user", "per_issuer"),
}


@dataclass(frozen=True)
class MatrixAccount:
    user_id: str
    password: str


class SynapseServer:
    """One Synapse process; `restart()` keeps its port and its database."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.shared_secret = secrets.token_hex(16)
        self.config_path = base / "homeserver.yaml"
        self.log_path = base / "synapse.log"
        self.start_seconds = 0.0  # of the last start, measured (`pytest -s` prints it)
        self._process: subprocess.Popen[bytes] | None = None
        self._admin_token: str | None = None

    # --- process -------------------------------------------------------------------------

    def write_config(self) -> None:
        from signedjson.key import generate_signing_key, write_signing_keys

        key_path = self.base / "signing.key"
        with key_path.open("w") as handle:
            write_signing_keys(handle, [generate_signing_key("a_test")])
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "pid_file": str(self.base / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.base / "homeserver.db")},
            },
            "media_store_path": str(self.base / "media"),
            "signing_key_path": str(key_path),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "report_stats": False,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_registration": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            **{name: _HIGH_LIMIT for name in _RATE_LIMITS},
            **{
                name: {part: _HIGH_LIMIT for part in parts}
                for name, parts in _RATE_LIMIT_GROUPS.items()
            },
        }
        # JSON is YAML; no YAML writer needed.
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self) -> None:
        started = time.monotonic()
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config_path),
            ],
            cwd=self.base,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = started + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Synapse exited ({self._process.returncode}):\n{self.log()}")
            if self._healthy():
                self.start_seconds = time.monotonic() - started
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Synapse did not become healthy in {_START_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:  # refused while starting (URLError is an OSError)
            return False

    def log(self, tail: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:]

    # --- admin API -----------------------------------------------------------------------

    def register_user(self, localpart: str, password: str, *, admin: bool = False) -> MatrixAccount:
        """Register through the shared-secret admin API (`POST /_synapse/admin/v1/register`)."""
        response = self._register(localpart, password, admin=admin)
        # Registration logs a device in; log it out so only the test's clients have devices.
        self.request("POST", "/_matrix/client/v3/logout", {}, token=response["access_token"])
        return MatrixAccount(response["user_id"], password)

    def new_account(self, role: str) -> MatrixAccount:
        """A fresh account named after its role ("anna-1a2b3c4d"): tests share one server."""
        return self.register_user(f"{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(12))

    def _register(self, localpart: str, password: str, *, admin: bool) -> dict[str, Any]:
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        message = b"\x00".join(
            [
                nonce.encode(),
                localpart.encode(),
                password.encode(),
                b"admin" if admin else b"notadmin",
            ]
        )
        mac = hmac.new(self.shared_secret.encode(), message, hashlib.sha1).hexdigest()
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        }
        return self.request("POST", "/_synapse/admin/v1/register", body)

    def admin_token(self) -> str:
        if self._admin_token is None:
            response = self._register(
                f"admin-{secrets.token_hex(4)}", secrets.token_hex(8), admin=True
            )
            self._admin_token = str(response["access_token"])
        return self._admin_token

    def override_ratelimit(self, user_id: str, messages_per_second: int, burst: int) -> None:
        """Lower (or lift) one user's message rate limit, to provoke 429s on purpose."""
        self.request(
            "POST",
            f"/_synapse/admin/v1/users/{user_id}/override_ratelimit",
            {"messages_per_second": messages_per_second, "burst_count": burst},
            token=self.admin_token(),
        )

    def devices(self, user_id: str) -> list[str]:
        """The ids of the user's devices, as the server knows them."""
        response = self.request(
            "GET", f"/_synapse/admin/v2/users/{user_id}/devices", token=self.admin_token()
        )
        return sorted(device["device_id"] for device in response["devices"])

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str = ""
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                result: dict[str, Any] = json.loads(response.read() or b"{}")
                return result
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read()!r}") from None


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def synapse_server() -> Iterator[SynapseServer]:
    try:
        import synapse  # noqa: F401
    except ImportError:
        _missing("Synapse is not installed; pip install matrix-synapse")
    base = Path(tempfile.mkdtemp(prefix="lotse-synapse-"))
    server = SynapseServer(base, free_port())
    server.write_config()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
