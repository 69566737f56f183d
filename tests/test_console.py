"""`lotse chat`, the terminal channel, run as a real process."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO


def _chat(
    database: Path, lines: list[str], *args: str, user: str = "test"
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LOTSE_DATABASE_URL=f"sqlite:///{database}")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", user, *args],
        input="".join(line + "\n" for line in lines),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_piped_input_is_one_message_per_line_and_options_are_numbered(tmp_path: Path) -> None:
    result = _chat(tmp_path / "db.sqlite3", ["Hallo", "5"])
    assert "Welches Mailprogramm benutzen Sie?\n  1) Microsoft Outlook\n" in result.stdout
    assert "  5) Android" in result.stdout
    assert "Android 6.X (Beispiel Samsung) – Schritt 1 von 6" in result.stdout
    assert result.stderr == ""


def test_json_prints_each_reply_as_one_json_line(tmp_path: Path) -> None:
    result = _chat(tmp_path / "db.sqlite3", ["outlok 2013", "IMAP"], "--json")
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(reply) == {"text", "options"} for reply in replies)
    assert replies[-1]["options"] == ["Erledigt – weiter", "Klappt nicht"]
    assert replies[-1]["text"].startswith("Microsoft Outlook 2010/13/16 – Schritt 1 von 4")


def test_closing_the_terminal_and_starting_again_continues_where_the_user_stood(
    tmp_path: Path,
) -> None:
    database = tmp_path / "db.sqlite3"
    _chat(database, ["Thunderbird 60", "weiter", "weiter"])
    result = _chat(database, ["nochmal"])
    assert "Mozilla Thunderbird (60.3.1) – Schritt 3 von 5" in result.stdout
    other = _chat(database, ["nochmal"], user="someone-else")
    assert "Welches Mailprogramm benutzen Sie?" in other.stdout


def test_on_a_terminal_the_bot_greets_first_and_answers_typed_lines(tmp_path: Path) -> None:
    env = dict(os.environ, LOTSE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    pid, fd = pty.fork()
    if pid == 0:  # the child: lotse chat on a pseudo-terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "bot.cli", "chat", "--user", "t"], env)
    try:
        screen = _read_until(fd, "Sie: ")
        assert "Hallo! Ich bin Lotse" in screen
        os.write(fd, b"iPad mit iOS 12\n")
        screen = _read_until(fd, "Sie: ")
        assert "Apple iPhone (iOS 12) – Schritt 1 von 5" in screen
        os.write(fd, b"\x04")  # Ctrl-D ends the chat
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)


def _read_until(fd: int, marker: str, timeout: float = 30.0) -> str:
    output = ""
    deadline = time.monotonic() + timeout
    while marker not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in {output!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            output += os.read(fd, 4096).decode("utf-8", "replace")
    return output
