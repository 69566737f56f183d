"""`lotse serve` in this test's event loop: health, metrics, the mail clients' autoconfiguration
over HTTP, the Telegram channel against the fake Bot API, and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import aiohttp
import pytest
import yaml

from bot.config import Settings
from bot.knowledge.loader import load_knowledge
from bot.serve.process import serve
from bot.storage.store import Store
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import KNOWLEDGE_DIR, free_port, wait_until

ANNA = FakeUser(3001, "Anna", "de")
OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture
def knowledge_dir(tmp_path: Path) -> Path:
    """A copy of the repo's knowledge base that a test may edit as an admin would."""
    directory = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, directory)
    return directory


def settings_for(tmp_path: Path, knowledge_dir: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        "knowledge_dir": knowledge_dir,
        "http_port": free_port(),
    }
    return Settings(_env_file=None, **(values | extra))


def telegram_settings(api: FakeTelegram) -> dict[str, Any]:
    return {"telegram_token": api.token, "telegram_base_url": api.base_url}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """`serve` until the block ends (then stopped as SIGTERM would, and it must exit 0)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop))
    base = f"http://127.0.0.1:{settings.http_port}"
    async with aiohttp.ClientSession() as http:

        async def answers() -> bool:
            assert not task.done(), f"serve ended early: {task.result()}"
            try:
                async with http.get(base + "/healthz") as response:
                    await response.read()
                    return True
            except aiohttp.ClientConnectorError:
                return False

        await wait_until(answers, "the HTTP server to come up", within=20)
        try:
            yield http, base
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 20) == 0


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def health_until(
    http: aiohttp.ClientSession, base: str, holds: Any, what: str, within: float = 15
) -> dict[str, Any]:
    seen: list[tuple[int, dict[str, Any]]] = []

    async def shows() -> dict[str, Any] | None:
        seen.append(await get_json(http, base + "/healthz"))
        return seen[-1][1] if holds(*seen[-1]) else None

    report: dict[str, Any] = await wait_until(
        shows, lambda: f"/healthz to show {what} (last: {seen[-1]})", within=within, every=0.1
    )
    return report


# --- health and metrics ------------------------------------------------------------------


async def test_healthz_reports_database_knowledge_and_a_running_telegram_channel(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    settings = settings_for(tmp_path, knowledge_dir, **telegram_settings(telegram_api))
    async with running(settings) as (http, base):
        report = await health_until(http, base, lambda status, _r: status == 200, "200")
        assert report["status"] == "ok"
        assert report["database"] == {"ok": True, "dialect": "sqlite"}
        assert report["knowledge"]["ok"] is True
        assert report["knowledge"]["guides"] == len(load_knowledge(knowledge_dir).guides)
        assert report["knowledge"]["last_reload_rejected"] is False
        assert report["channels"] == {
            "telegram": {"ok": True, "state": "running", "detail": "polling"}
        }
        assert "rasa" not in report  # LOTSE_NLU=lexicon

        anna = TelegramChat(telegram_api, ANNA)
        await anna.say("Thunderbird 60", mentions("Schritt 1 von 5"))
        async with http.get(base + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            metrics = await response.text()
        assert 'lotse_turns_total{channel="telegram"}' in metrics
        assert "lotse_turn_seconds_bucket" in metrics
        assert 'lotse_understandings_total{backend="lexicon"}' in metrics


async def test_a_rejected_knowledge_edit_makes_health_degraded_but_not_failing(
    tmp_path: Path, knowledge_dir: Path
) -> None:
    settings = settings_for(tmp_path, knowledge_dir)
    async with running(settings) as (http, base):
        server_file = knowledge_dir / "server.yaml"
        server_file.write_text(server_file.read_text().replace("port: 993", "port: nine"))
        report = await health_until(
            http, base, lambda _s, r: r["knowledge"]["last_reload_rejected"], "the rejection"
        )
        assert report["status"] == "degraded"
        assert "server.yaml" in report["knowledge"]["report"]
        status, _ = await get_json(http, base + "/healthz")
        assert status == 200  # the last good revision still answers users


async def test_without_a_chat_channel_serve_runs_http_and_says_so(
    tmp_path: Path, knowledge_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.serve.process")
    async with running(settings_for(tmp_path, knowledge_dir)) as (http, base):
        status, report = await get_json(http, base + "/healthz")
        assert status == 200
        assert report["channels"] == {}
        assert report["channels_note"] == "no chat channel configured"
    assert "no chat channel configured" in caplog.text


async def test_rasa_down_is_reported_and_degrades_while_the_lexicon_answers(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    # What compose's bot meets while nlu has started but not loaded its model yet.
    rasa_url = f"http://lotse:rasa-geheim@127.0.0.1:{free_port()}"
    settings = settings_for(
        tmp_path, knowledge_dir, nlu="rasa", rasa_url=rasa_url, **telegram_settings(telegram_api)
    )
    async with running(settings) as (http, base):
        report = await health_until(
            http, base, lambda _s, r: r["channels"]["telegram"]["ok"], "Telegram running"
        )
        status, report = await get_json(http, base + "/healthz")
        assert status == 200
        assert report["status"] == "degraded"
        assert report["rasa"]["ok"] is False
        assert report["rasa"]["error"] == "ConnectError"  # the class only, never a message
        assert report["rasa"]["url"] == rasa_url.replace("rasa-geheim", "***")
        await TelegramChat(telegram_api, ANNA).say("Thunderbird 60", mentions("Schritt 1 von 5"))


async def test_a_channel_that_cannot_start_makes_health_fail_and_the_rest_keeps_running(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    telegram_api.fail("getMe", code=401, description="Unauthorized", times=100)
    settings = settings_for(tmp_path, knowledge_dir, **telegram_settings(telegram_api))
    async with running(settings) as (http, base):
        report = await health_until(http, base, lambda status, _r: status == 503, "503")
        assert report["status"] == "failing"
        assert report["channels"]["telegram"]["state"] == "failed"
        assert report["database"]["ok"] is True
        async with http.get(base + "/mail/config-v1.1.xml") as response:
            assert response.status == 200


async def test_a_channel_failing_for_longer_than_the_setting_ends_serve_with_1_for_a_restart(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    telegram_api.fail("getMe", code=401, description="Unauthorized", times=100)
    settings = settings_for(
        tmp_path, knowledge_dir, channel_failure_exit_seconds=1.0, **telegram_settings(telegram_api)
    )
    started = time.monotonic()
    # Nobody sets `stop`: serve ends by itself, with 1, so `restart: unless-stopped` restarts it.
    assert await asyncio.wait_for(serve(settings, stop=asyncio.Event()), 20) == 1
    assert time.monotonic() - started >= 1.0


async def test_with_the_exit_switched_off_a_failed_channel_keeps_serve_running(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    telegram_api.fail("getMe", code=401, description="Unauthorized", times=100)
    settings = settings_for(
        tmp_path, knowledge_dir, channel_failure_exit_seconds=0, **telegram_settings(telegram_api)
    )
    async with running(settings) as (http, base):
        await health_until(http, base, lambda status, _r: status == 503, "503")
        # Longer than the 1 s after which the test above ended; with the exit switched off
        # there is no timer whose not firing could be waited on, so only time shows it.
        await asyncio.sleep(1.5)
        status, _report = await get_json(http, base + "/healthz")
        assert status == 503  # still serving (autoconfig and /healthz), still reporting it


async def test_a_database_that_went_away_makes_health_fail(
    postgres_url: str, tmp_path: Path, knowledge_dir: Path
) -> None:
    settings = settings_for(tmp_path, knowledge_dir, database_url=postgres_url)
    async with running(settings) as (http, base):
        status, report = await get_json(http, base + "/healthz")
        assert (status, report["database"]) == (200, {"ok": True, "dialect": "postgresql"})
        # Every connection of this database is ended, and new ones are refused.
        admin = await Store.open(postgres_url.rsplit("/", 1)[0] + "/postgres", migrate=False)
        database = postgres_url.rsplit("/", 1)[1]
        await admin.run(
            lambda conn: conn.exec_driver_sql(
                f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false'
            )
        )
        await admin.run(
            lambda conn: conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'"
            )
        )
        try:
            report = await health_until(http, base, lambda status, _r: status == 503, "503")
            assert report["database"]["ok"] is False
        finally:
            await admin.run(
                lambda conn: conn.exec_driver_sql(
                    f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true'
                )
            )
            await admin.close()


# --- configuration problems --------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("smtp_url", "http://desk:geheim-123@mail.example", "LOTSE_SMTP_URL must start with"),
        ("smtp_url", "smtps://desk:geheim-123@mail.example:99999", "LOTSE_SMTP_URL has an invalid"),
        ("handoff_secret", "abc", "LOTSE_HANDOFF_SECRET is too short"),
    ],
)
async def test_a_setting_that_cannot_work_ends_serve_with_2_and_a_message_before_it_starts(
    setting: str,
    value: str,
    named: str,
    tmp_path: Path,
    knowledge_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_for(tmp_path, knowledge_dir, **{setting: value})
    assert await asyncio.wait_for(serve(settings, stop=asyncio.Event()), 10) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err and "geheim-123" not in err
    assert not (tmp_path / "lotse.sqlite3").exists()  # nothing started: not even the database
    with socket.socket() as probe:  # and no HTTP server
        assert probe.connect_ex(("127.0.0.1", settings.http_port)) != 0


# --- graceful stop -----------------------------------------------------------------------


async def test_stopping_lets_the_answer_under_way_reach_the_user(
    telegram_api: FakeTelegram, tmp_path: Path, knowledge_dir: Path
) -> None:
    settings = settings_for(tmp_path, knowledge_dir, **telegram_settings(telegram_api))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop))
    await telegram_api.wait_for(lambda: bool(telegram_api.calls_to("getUpdates")), "polling")
    telegram_api.delays["sendMessage"] = 1.0  # the answer is on its way when the stop comes
    TelegramChat(telegram_api, ANNA).send("Thunderbird 60")
    await telegram_api.wait_for(lambda: bool(telegram_api.calls_to("sendMessage")), "an answer")
    stop.set()
    assert await asyncio.wait_for(task, 15) == 0
    assert "Schritt 1 von 5" in telegram_api.messages_to(ANNA.id)[-1].text


# --- autoconfiguration -------------------------------------------------------------------


def expected_endpoints(knowledge_dir: Path) -> set[tuple[str, str, int, str]]:
    server = yaml.safe_load((knowledge_dir / "server.yaml").read_text())["server"]
    socket_type = {"tls": "SSL", "starttls": "STARTTLS"}
    return {
        (e["protocol"], e.get("host", server["host"]), e["port"], socket_type[e["security"]])
        for e in server["endpoints"]
        if e["protocol"] in ("imap", "pop3", "smtp")
    }


def thunderbird_endpoints(document: bytes) -> set[tuple[str, str, int, str]]:
    root = ET.fromstring(document)
    return {
        (
            entry.get("type", ""),
            entry.findtext("hostname", ""),
            int(entry.findtext("port", "0")),
            entry.findtext("socketType", ""),
        )
        for entry in root.iter()
        if entry.tag in ("incomingServer", "outgoingServer")
    }


@pytest.mark.parametrize(
    "path", ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"]
)
async def test_thunderbird_gets_every_endpoint_of_server_yaml_and_a_foreign_address_a_404(
    path: str, tmp_path: Path, knowledge_dir: Path
) -> None:
    async with running(settings_for(tmp_path, knowledge_dir)) as (http, base):
        # What Thunderbird sends: the address the user typed.
        query = {"emailaddress": "anna.muster@uni-beispiel.de"}
        async with http.get(base + path, params=query) as response:
            assert response.status == 200
            assert response.content_type == "text/xml"
            document = await response.read()
        assert thunderbird_endpoints(document) == expected_endpoints(knowledge_dir)
        root = ET.fromstring(document)
        assert [d.text for d in root.iter("domain")] == ["uni-beispiel.de"]
        assert {u.text for u in root.iter("username")} == {"%EMAILADDRESS%"}

        for foreign in ("eve@example.com", "kein-address", "anna@uni-beispiel.de.evil.example"):
            async with http.get(base + path, params={"emailaddress": foreign}) as response:
                assert response.status == 404


async def test_an_admins_edit_of_server_yaml_is_served_at_once(
    tmp_path: Path, knowledge_dir: Path
) -> None:
    async with running(settings_for(tmp_path, knowledge_dir)) as (http, base):
        server_file = knowledge_dir / "server.yaml"
        text = server_file.read_text().replace(
            "  mail_domains:",
            "    - {protocol: imap, port: 993, security: tls, host: imap.uni-beispiel.de}\n"
            "  mail_domains:",
        )
        server_file.write_text(text)
        served: set[tuple[str, str, int, str]] = set()

        async def reloaded() -> bool:
            async with http.get(base + "/mail/config-v1.1.xml") as response:
                served.clear()
                served.update(thunderbird_endpoints(await response.read()))
            return served == expected_endpoints(knowledge_dir)

        await wait_until(reloaded, lambda: f"the edit to be served (still: {served})", every=0.2)
        assert ("imap", "imap.uni-beispiel.de", 993, "SSL") in served


def outlook_protocols(document: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(document)
    return {
        protocol.findtext(f"{RESPONSE}Type", ""): {
            child.tag.removeprefix(RESPONSE): child.text or "" for child in protocol
        }
        for protocol in root.iter(f"{RESPONSE}Protocol")
    }


@pytest.mark.parametrize(
    "path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]
)
async def test_outlook_posts_its_request_and_gets_imap_and_smtp_with_ssl_for_the_address(
    path: str, tmp_path: Path, knowledge_dir: Path
) -> None:
    async with running(settings_for(tmp_path, knowledge_dir)) as (http, base):
        body = OUTLOOK_REQUEST.format(address="anna.muster@uni-beispiel.de")
        headers = {"Content-Type": "text/xml"}
        async with http.post(base + path, data=body.encode(), headers=headers) as response:
            assert response.status == 200
            assert response.content_type == "text/xml"
            protocols = outlook_protocols(await response.read())
        assert set(protocols) == {"IMAP", "SMTP"}
        imap, smtp = protocols["IMAP"], protocols["SMTP"]
        assert (imap["Server"], imap["Port"], imap["SSL"]) == ("mbox1.belwue.de", "993", "on")
        assert (smtp["Server"], smtp["Port"], smtp["SSL"]) == ("mbox1.belwue.de", "465", "on")
        assert imap["LoginName"] == smtp["LoginName"] == "anna.muster@uni-beispiel.de"

        async with http.get(base + path) as response:  # a GET, without an address
            assert response.status == 200
            assert "LoginName" not in outlook_protocols(await response.read())["IMAP"]

        foreign = OUTLOOK_REQUEST.format(address="eve@example.com")
        async with http.post(base + path, data=foreign.encode(), headers=headers) as response:
            root = ET.fromstring(await response.read())
        assert root.findtext(f".//{RESPONSE}Error/{RESPONSE}ErrorCode") == "600"
        assert not outlook_protocols(ET.tostring(root))

        async with http.post(base + path, data=b"<kaputt", headers=headers) as response:
            assert response.status == 400
