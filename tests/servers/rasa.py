"""A real Rasa NLU server for tests (pytest plugin, see `tests/conftest.py`).

`rasa_server` (session) makes sure the Rasa environment and a model trained on the current
`nlu/` exist (`scripts/nlu prepare`: cached under ~/.cache/lotse, so only the first run on a
machine installs and trains), then runs `rasa run --enable-api` on a free loopback port until
`GET /version` answers. Tests may stop it (`RasaServer.stop`); `rasa_url` starts it again for
the next test that needs it. When the environment cannot be had the tests are skipped with the
reason, except under `CI=true`, where that is a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "nlu"
# Cold: install about 4 min plus training 2-3 min, slower while other tests share the cores.
_PREPARE_TIMEOUT = 40 * 60
_START_TIMEOUT = 420.0


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(reason)


def _script(*args: str) -> str:
    """Run scripts/nlu; its last stdout line is the answer (a path)."""
    try:
        done = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=_PREPARE_TIMEOUT,
            cwd=REPO,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        _missing(f"scripts/nlu {' '.join(args)} did not finish: {error}")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        noise = ("WARNING: Location", "Warning", "  ")
        tail = [line for line in done.stderr.splitlines() if not line.startswith(noise)][-8:]
        _missing(f"no Rasa environment (scripts/nlu {' '.join(args)}): " + " | ".join(tail))
    return lines[-1]


@dataclass
class RasaServer:
    python: Path
    model: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    start_seconds: float = 0.0  # measured, for the curious (`pytest -s` prints it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = (self.workdir / "rasa.log").open("ab")
        env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
        }
        command = [str(self.python), "-m", "rasa", "run", "--enable-api"]
        command += ["-m", str(self.model), "-i", "127.0.0.1", "-p", str(self.port)]
        began = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        while time.monotonic() - began < _START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"rasa run exited ({self.process.returncode}):\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/version", timeout=2).status_code == 200:
                    self.start_seconds = time.monotonic() - began
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"rasa run did not answer within {_START_TIMEOUT:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.workdir / "rasa.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[RasaServer]:
    python = Path(_script("env"))
    model = Path(_script("prepare"))
    with tempfile.TemporaryDirectory(prefix="lotse-rasa-") as workdir:
        server = RasaServer(python, model, Path(workdir))
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture
def rasa_url(rasa_server: RasaServer) -> str:
    """The running server's URL; restarts it if an earlier test stopped it."""
    rasa_server.start()
    return rasa_server.url
