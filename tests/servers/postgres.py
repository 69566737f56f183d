"""A throwaway PostgreSQL cluster for tests (pytest plugin, see `tests/conftest.py`).

`postgres_server` (session) runs `initdb` + `pg_ctl` from Debian's `postgresql` package in a temp
directory on a free loopback port; `postgres_url` (function) gives each test a fresh database.
Without the binaries the tests are skipped, except under `CI=true`, where that is a failure.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Connection, text

from tests.support import free_port

# Tuning for a cluster that is thrown away: durability buys nothing here, only time.
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
"""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    bin_dir: Path
    start_seconds: float  # measured, for the curious (`pytest -s` prints it)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@{self.host}:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> None:
        """Run a client tool (createdb, dropdb, ...) against this server as superuser."""
        where = ["-h", self.host, "-p", str(self.port), "-U", "postgres"]
        _run([str(self.bin_dir / tool), *where, *args], timeout=30)


def _run(command: list[str], timeout: float) -> None:
    """Like check=True, but the error shows the tool's own message (CalledProcessError hides it)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(reason)


def _find_bin_dir() -> Path | None:
    """Debian keeps the server binaries out of PATH, one directory per major version."""

    def major(path: Path) -> int:
        match = re.fullmatch(r"\d+", path.parent.parent.name)
        return int(match.group()) if match else -1

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=major, reverse=True)
    for initdb in candidates:
        if (initdb.parent / "pg_ctl").exists():
            return initdb.parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    return None


def _run_as() -> list[str]:
    """initdb and postgres refuse to run as root, so as root use an unprivileged user."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root, but there is neither a `postgres` nor a `nobody` user")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _missing("PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _missing("running as root needs `runuser` (util-linux) to start PostgreSQL")

    as_user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="lotse-pg-"))
    if as_user:
        user = pwd.getpwnam(as_user[2])
        os.chown(base, user.pw_uid, user.pw_gid)
    data, log = base / "data", base / "server.log"
    port = free_port()
    started = time.monotonic()
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        # trust: only loopback and the private socket dir can reach this cluster.
        _run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            timeout=120,
        )  # fmt: skip
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(port=port, socket_dir=base))
        try:
            _run([*pg_ctl, "-l", str(log), "-w", "-t", "60", "start"], timeout=90)
        except RuntimeError as error:  # the reason is in the server's log, not pg_ctl's output
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{error}\n{server_log}") from None
        yield PostgresServer("127.0.0.1", port, bin_dir, time.monotonic() - started)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-w", "-m", "fast", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database per test, so tests cannot see each other's rows or schema."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.run("createdb", name)
    try:
        yield postgres_server.url(name)
    finally:
        # --force: a test that forgot to close its engine must not make the drop hang or fail.
        postgres_server.run("dropdb", "--force", "--if-exists", name)


# --- what other sessions are doing (tests wait on it instead of sleeping) ------------------


def waiting_for_a_lock(conn: Connection) -> bool:
    """Whether another session's statement waits for a lock (a row, an advisory lock)."""
    query = text("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()")
    return bool(conn.execute(query).scalar_one())


def running_statement(conn: Connection, statement: str) -> bool:
    """Whether another session is running `statement` right now."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = :statement "
        "AND pid <> pg_backend_pid()"
    )
    return bool(conn.execute(query, {"statement": statement}).scalar_one())
