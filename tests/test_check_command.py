"""`lotse check` as a user runs it: a subprocess against a knowledge directory whose
`server.yaml` points at the loopback mail servers, with the test CA as `--ca-file`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.check.command import run_check_command
from bot.config import Settings
from tests.servers.mail import HOST, LOCAL, REMOTE, MailServers
from tests.support import KNOWLEDGE_DIR, REPO

pytestmark = pytest.mark.slow


# Minimal program and FAQ files: the loader checks that ports named in guides are endpoints of
# server.yaml, so the repo's guides (which name 993, 587, ...) cannot come along.
PROGRAM = """
program:
  id: testprogramm
  name: Testprogramm
  aliases: [Testprogramm]
  version_hint: Steht im Menü „Hilfe“.
guides:
  - id: testprogramm
    title: Testprogramm
    label: Testprogramm
    source: seed
    steps:
      - text: Schalten Sie die Verschlüsselung ein.
"""
FAQ = """
faq:
  - id: warum
    question: Warum verschlüsseln?
    keywords: [warum]
    answer: Damit niemand mitliest.
"""


def knowledge_dir(base: Path, name: str, endpoints: list[dict[str, Any]]) -> Path:
    directory = base / name
    directory.mkdir()
    helpdesk = yaml.safe_load((KNOWLEDGE_DIR / "server.yaml").read_text())["helpdesk"]
    server = {"name": HOST, "host": HOST, "endpoints": endpoints}
    (directory / "server.yaml").write_text(
        yaml.safe_dump({"server": server, "helpdesk": helpdesk}, allow_unicode=True)
    )
    (directory / "testprogramm.yaml").write_text(PROGRAM)
    (directory / "faq.yaml").write_text(FAQ)
    return directory


def lotse_check(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTSE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "check", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def good_endpoints(servers: MailServers) -> list[dict[str, Any]]:
    d, p = servers.dovecot, servers.postfix
    return [
        {"protocol": "imap", "port": d.imaps, "security": "tls", "address": REMOTE},
        {"protocol": "imap", "port": d.imap, "security": "starttls", "address": REMOTE},
        {"protocol": "pop3", "port": d.pop3s, "security": "tls", "address": REMOTE},
        {"protocol": "smtp", "port": p.submission, "security": "starttls", "address": LOCAL},
        {"protocol": "smtp", "port": p.smtps, "security": "tls", "address": LOCAL},
    ]


@pytest.fixture(scope="module")
def runs(mail_servers: MailServers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The exit codes 0, 1 and 2 as real processes, run at the same time (each process spends
    about 1.5 s importing the bot, so sequential runs would dominate the test time)."""
    base = tmp_path_factory.mktemp("check-command")
    p, bad = mail_servers.postfix, mail_servers.dovecot_bad
    dirs = {
        "good": good_endpoints(mail_servers),
        "warnings": [
            {"protocol": "smtp", "port": p.expires_soon, "security": "tls", "address": LOCAL},
            {"protocol": "imap", "port": bad.imap, "security": "starttls", "address": REMOTE},
        ],
        "error": [{"protocol": "smtp", "port": p.expired, "security": "tls", "address": LOCAL}],
    }
    knowledge = {name: str(knowledge_dir(base, name, e)) for name, e in dirs.items()}
    ca = str(mail_servers.pki.ca)
    command_lines = {
        "good": ["--json", "--knowledge", knowledge["good"], "--ca-file", ca],
        "warnings": ["--json", "--knowledge", knowledge["warnings"], "--ca-file", ca],
        "error": ["--json", "--locale", "en", "--knowledge", knowledge["error"], "--ca-file", ca],
    }
    started = {name: lotse_check(*args) for name, args in command_lines.items()}
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=60)
        results[name] = Run(process.returncode, stdout, stderr)
    return results


def test_json_output_of_a_good_server_exits_0(runs: dict[str, Run]) -> None:
    done = runs["good"]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1  # one JSON object
    report = json.loads(lines[0])
    assert report["server"] == HOST and report["overall"] == "ok"
    assert [e["status"] for e in report["endpoints"]] == ["ok"] * 5
    assert report["duration_ms"] < 5000


def test_warnings_only_exit_1(runs: dict[str, Run]) -> None:
    done = runs["warnings"]
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["overall"] == "warning"
    found = [f["code"] for e in report["endpoints"] for f in e["findings"]]
    assert found == ["cert_expires_soon", "plaintext_auth_before_tls"]


def test_an_error_exits_2_with_english_messages_under_locale_en(runs: dict[str, Run]) -> None:
    done = runs["error"]
    assert done.returncode == 2, done.stderr
    (endpoint,) = json.loads(done.stdout)["endpoints"]
    (finding,) = endpoint["findings"]
    assert finding["code"] == "cert_expired" and finding["severity"] == "error"
    assert finding["message"].startswith("The certificate expired on ")


def run_in_process(knowledge: Path | None, ca_file: Path, **options: Any) -> int:
    """The same command without a new process (for what does not need one)."""
    arguments = {"json": False, "knowledge": knowledge, "ca_file": ca_file, "timeout": None,
                 "locale": None} | options  # fmt: skip
    return run_check_command(Settings(), argparse.Namespace(**arguments))


def test_without_json_it_prints_the_german_summary_and_details(
    mail_servers: MailServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = knowledge_dir(tmp_path, "one", good_endpoints(mail_servers)[:1])
    assert run_in_process(directory, mail_servers.pki.ca) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Verbindungstest für {HOST} (")
    assert "✅ IMAP: Port" in out
    assert "Bewertung: BSI TR-02102-2 in Ordnung" in out


def test_a_missing_ca_file_is_an_error_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_in_process(None, tmp_path / "no.pem", json=True) == 2
    captured = capsys.readouterr()
    assert "no.pem" in captured.err and captured.out == ""
