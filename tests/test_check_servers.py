"""The connection check against real Dovecot and Postfix servers on loopback.

Every finding code of the output contract comes from a real server here (see
`tests/servers/mail.py` for how each fault is made); only the silent listener and the HTTPS
endpoint are small asyncio servers in this file. The faulty endpoints are checked once, all in
one parallel check, and each test reads its endpoint from that report.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot.check import check_server
from bot.check.report import CheckReport, EndpointResult
from bot.check.texts import summary
from bot.i18n import translator
from tests.servers.mail import HOST, LOCAL, REMOTE, MailServers
from tests.support import free_port

pytestmark = pytest.mark.slow

TIMEOUT = 5.0
CONTRACT_FINDING_CODES = {
    "unreachable",
    "timeout",
    "starttls_missing",
    "plaintext_auth_before_tls",
    "tls_handshake_failed",
    "cert_expired",
    "cert_expires_soon",
    "cert_hostname_mismatch",
    "cert_untrusted",
    "tls_version_outdated",
    "weak_cipher",
    "weak_key",
}


def codes(endpoint: EndpointResult) -> set[str]:
    return {finding.code for finding in endpoint.findings}


def finding(endpoint: EndpointResult, code: str) -> tuple[str, str]:
    """(severity, German message) of the endpoint's finding with this code."""
    found = next(f for f in endpoint.findings if f.code == code)
    message = next(
        f["message"] for f in endpoint.as_json(translator("de"))["findings"] if f["code"] == code
    )
    return found.severity, message


@pytest.fixture(scope="session")
async def good_report(mail_servers: MailServers) -> CheckReport:
    return await check_server(
        mail_servers.good_server(), timeout=TIMEOUT, ca_file=mail_servers.pki.ca
    )


@pytest.fixture(scope="session")
async def faults(mail_servers: MailServers) -> dict[str, EndpointResult]:
    """Every deliberately bad endpoint, checked once in one parallel check, by scenario."""
    p, bad = mail_servers.postfix, mail_servers.dovecot_bad
    scenarios = {
        "expired": ("smtp", p.expired, "tls", LOCAL),
        "expires_soon": ("smtp", p.expires_soon, "tls", LOCAL),
        "wrong_host": ("smtp", p.wrong_host, "tls", LOCAL),
        "self_signed": ("smtp", p.self_signed, "tls", LOCAL),
        "no_starttls": ("smtp", p.no_starttls, "starttls", LOCAL),
        "smtp_auth_before_tls": ("smtp", p.auth_before_tls, "starttls", LOCAL),
        "imap_login_before_tls": ("imap", bad.imap, "starttls", REMOTE),
        "pop3_user_before_tls": ("pop3", bad.pop3, "starttls", REMOTE),
        "legacy": ("smtp", p.legacy, "tls", LOCAL),
        "tls10_only": ("smtp", p.tls10_only, "tls", LOCAL),
        # server.yaml says SSL/TLS, the port speaks plain SMTP first: the handshake fails.
        "plain_port_as_tls": ("smtp", p.submission, "tls", LOCAL),
        "closed": ("imap", free_port(), "tls", LOCAL),  # nobody listens there
        "imap_via_loopback": ("imap", mail_servers.dovecot.imap, "starttls", LOCAL),
    }
    server = mail_servers.server(*scenarios.values())
    report = await check_server(server, timeout=TIMEOUT, ca_file=mail_servers.pki.ca)
    by_port = {(e.port, e.address): e for e in report.endpoints}
    return {name: by_port[(port, address)] for name, (_, port, _, address) in scenarios.items()}


# --- a good server -----------------------------------------------------------------------


async def test_a_well_configured_server_is_ok_on_every_endpoint(good_report: CheckReport) -> None:
    assert good_report.overall == "ok"
    assert [(e.protocol, e.status) for e in good_report.endpoints] == [
        ("imap", "ok"),
        ("imap", "ok"),
        ("pop3", "ok"),
        ("pop3", "ok"),
        ("smtp", "ok"),
        ("smtp", "ok"),
        ("smtp", "ok"),
    ]
    for endpoint in good_report.endpoints:
        assert endpoint.findings == ()
        assert endpoint.tls is not None and endpoint.tls.version in ("TLSv1.2", "TLSv1.3")
        cert = endpoint.tls.certificate
        assert cert is not None
        assert (cert.subject, cert.issuer) == (HOST, "Lotse Test CA")
        assert cert.trusted and cert.hostname_match and cert.days_left > 300
        assert (cert.key_type, cert.key_bits) == ("EC secp256r1", 256)
        assert dict(endpoint.legacy_tls) == {"TLSv1": False, "TLSv1.1": False}
        assert dict(endpoint.grades) == {"bsi": "ok", "mozilla": "ok"}


async def test_starttls_endpoints_report_what_they_offered_before_tls(
    good_report: CheckReport,
) -> None:
    starttls = [e for e in good_report.endpoints if e.security == "starttls"]
    assert len(starttls) == 4
    for endpoint in starttls:
        assert endpoint.starttls_offered is True
        assert endpoint.plaintext_auth_before_tls is False
        assert endpoint.greeting
    assert all(e.starttls_offered is None for e in good_report.endpoints if e.security == "tls")


async def test_endpoints_are_checked_in_parallel(good_report: CheckReport) -> None:
    durations = [e.duration_ms for e in good_report.endpoints]
    assert good_report.duration_ms < sum(durations)
    assert good_report.duration_ms < TIMEOUT * 1000


async def test_the_json_report_follows_the_output_contract(good_report: CheckReport) -> None:
    data = good_report.as_json()
    assert set(data) == {"server", "started", "duration_ms", "overall", "endpoints"}
    assert data["server"] == HOST and data["overall"] == "ok"
    for endpoint in data["endpoints"]:
        assert {
            "protocol",
            "port",
            "security",
            "status",
            "duration_ms",
            "tls_version",
            "cipher",
            "certificate",
            "findings",
        } <= set(endpoint)
        assert endpoint["certificate"]["subject"] == HOST


# --- faults, one real server each -------------------------------------------------------


def test_every_finding_code_of_the_contract_comes_from_a_real_server(
    faults: dict[str, EndpointResult], silent_result: EndpointResult
) -> None:
    seen = set().union(*(codes(e) for e in faults.values()), codes(silent_result))
    assert seen >= CONTRACT_FINDING_CODES, CONTRACT_FINDING_CODES - seen


def test_an_expired_certificate_is_an_error_naming_the_day_it_ended(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["expired"]
    assert endpoint.status == "error"
    assert codes(endpoint) == {"cert_expired"}  # the chain itself is fine: not "untrusted"
    cert = endpoint.tls.certificate if endpoint.tls else None
    assert cert is not None and cert.trusted and cert.days_left < 0
    severity, message = finding(endpoint, "cert_expired")
    assert severity == "error"
    assert message == f"Das Zertifikat ist am {translator('de').date(cert.not_after)} abgelaufen."


def test_a_certificate_ending_within_30_days_is_a_warning(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["expires_soon"]
    assert endpoint.status == "warning"
    assert codes(endpoint) == {"cert_expires_soon"}
    assert endpoint.tls and endpoint.tls.certificate
    assert 3 <= endpoint.tls.certificate.days_left <= 5


def test_a_certificate_for_another_name_is_a_hostname_mismatch(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["wrong_host"]
    assert codes(endpoint) == {"cert_hostname_mismatch"}
    _, message = finding(endpoint, "cert_hostname_mismatch")
    assert message == f"Das Zertifikat gilt nicht für {HOST}, sondern für: other.lotse.test."


def test_a_self_signed_certificate_is_untrusted_and_still_described(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["self_signed"]
    assert codes(endpoint) == {"cert_untrusted"}
    cert = endpoint.tls.certificate if endpoint.tls else None
    assert cert is not None
    assert cert.self_signed and not cert.trusted and cert.verify_error
    assert cert.subject == cert.issuer == HOST
    _, message = finding(endpoint, "cert_untrusted")
    assert "selbst signiert" in message


def test_a_port_without_starttls_is_an_error_and_never_reaches_tls(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["no_starttls"]
    assert codes(endpoint) == {"starttls_missing"}
    assert endpoint.starttls_offered is False
    assert endpoint.tls is None
    assert all(v is None for v in endpoint.legacy_tls.values())  # the probes got no further


@pytest.mark.parametrize(
    "scenario", ["smtp_auth_before_tls", "imap_login_before_tls", "pop3_user_before_tls"]
)
def test_a_plaintext_login_offered_before_tls_is_a_warning(
    faults: dict[str, EndpointResult], scenario: str
) -> None:
    endpoint = faults[scenario]
    assert endpoint.plaintext_auth_before_tls is True
    assert endpoint.starttls_offered is True
    assert codes(endpoint) == {"plaintext_auth_before_tls"}
    assert endpoint.status == "warning"


def test_dovecot_offers_plaintext_login_on_127_0_0_1_but_not_to_remote_clients(
    faults: dict[str, EndpointResult], good_report: CheckReport
) -> None:
    # The pitfall from the test-server notes: 127.0.0.1 -> 127.0.0.1 counts as secure.
    assert faults["imap_via_loopback"].plaintext_auth_before_tls is True
    same_port_remote = next(
        e for e in good_report.endpoints if e.protocol == "imap" and e.security == "starttls"
    )
    assert same_port_remote.address == REMOTE
    assert same_port_remote.plaintext_auth_before_tls is False


def test_a_legacy_server_is_reported_for_old_tls_weak_cipher_and_short_key(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["legacy"]
    assert codes(endpoint) == {"tls_version_outdated", "weak_cipher", "weak_key"}
    assert dict(endpoint.legacy_tls) == {"TLSv1": True, "TLSv1.1": True}
    assert endpoint.tls is not None and endpoint.tls.cipher == "AES128-SHA"
    assert endpoint.tls.certificate and endpoint.tls.certificate.key_bits == 1024
    assert finding(endpoint, "weak_key")[0] == "error"
    assert finding(endpoint, "weak_cipher") == (
        "warning",
        "Das ausgehandelte Verschlüsselungsverfahren AES128-SHA gilt als schwach: ohne Forward "
        "Secrecy, Prüfsumme mit SHA-1, CBC-Modus statt AEAD.",
    )
    assert finding(endpoint, "tls_version_outdated")[1] == (
        "Der Server akzeptiert noch veraltete TLS-Versionen: TLS 1.0, TLS 1.1."
    )
    assert dict(endpoint.grades) == {"bsi": "error", "mozilla": "error"}
    rules = {rule for f in endpoint.findings for rule in f.rules}
    assert any(rule.startswith("BSI") for rule in rules)
    assert any(rule.startswith("Mozilla") for rule in rules)


def test_a_server_speaking_only_tls_1_0_fails_the_handshake_and_is_outdated(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["tls10_only"]
    assert codes(endpoint) == {"tls_handshake_failed", "tls_version_outdated"}
    assert dict(endpoint.legacy_tls) == {"TLSv1": True, "TLSv1.1": False}
    assert endpoint.status == "error"


def test_a_plain_port_listed_as_ssl_tls_fails_the_handshake(
    faults: dict[str, EndpointResult],
) -> None:
    endpoint = faults["plain_port_as_tls"]
    assert codes(endpoint) == {"tls_handshake_failed"}
    assert endpoint.connect_ms is not None and endpoint.tls is None


def test_a_closed_port_is_unreachable(faults: dict[str, EndpointResult]) -> None:
    endpoint = faults["closed"]
    assert codes(endpoint) == {"unreachable"}
    assert finding(endpoint, "unreachable")[1] == (
        f"Port {endpoint.port} ist nicht erreichbar: Der Server lehnt die Verbindung ab."
    )
    assert endpoint.connect_ms is None


def test_messages_follow_the_locale(faults: dict[str, EndpointResult]) -> None:
    endpoint = faults["closed"]
    english = endpoint.as_json(translator("en"))["findings"][0]["message"]
    assert english == f"Port {endpoint.port} is not reachable: the server refuses the connection."


# --- a listener that never greets, and HTTPS (small servers of our own) ----------------


@pytest.fixture(scope="session")
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never says a word (a tarpit)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, LOCAL, 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


@dataclass(frozen=True)
class TimedCheck:
    report: CheckReport
    seconds: float  # wall time of the whole check


@pytest.fixture(scope="session")
async def silent_check(silent_port: int, mail_servers: MailServers) -> TimedCheck:
    """The silent listener next to a good port, under a 1 s deadline."""
    server = mail_servers.server(
        ("smtp", silent_port, "starttls", LOCAL),
        ("smtp", mail_servers.postfix.submission, "starttls", LOCAL),
    )
    started = time.monotonic()
    report = await check_server(server, timeout=1.0, ca_file=mail_servers.pki.ca)
    return TimedCheck(report, time.monotonic() - started)


@pytest.fixture(scope="session")
def silent_result(silent_check: TimedCheck) -> EndpointResult:
    return silent_check.report.endpoints[0]


def test_a_listener_that_never_greets_times_out_waiting_for_the_greeting(
    silent_result: EndpointResult,
) -> None:
    assert codes(silent_result) == {"timeout"}
    assert silent_result.connect_ms is not None  # the port was open
    severity, message = finding(silent_result, "timeout")
    assert severity == "error"
    assert "keine Begrüßung" in message


def test_one_silent_endpoint_ends_the_check_at_its_deadline_and_spoils_no_other(
    silent_check: TimedCheck,
) -> None:
    assert 1.0 <= silent_check.seconds < 2.0  # the deadline, plus a busy machine's slack
    good = silent_check.report.endpoints[1]
    assert good.status == "ok" and good.duration_ms < 1000


@pytest.fixture(scope="session")
async def https_port(mail_servers: MailServers) -> AsyncIterator[int]:
    """An Exchange ActiveSync stand-in: TLS, then 401 to any request, as EAS does without
    credentials."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(mail_servers.pki.good)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, LOCAL, 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_an_activesync_endpoint_is_ok_when_https_answers(
    https_port: int, mail_servers: MailServers
) -> None:
    server = mail_servers.server(("eas", https_port, "tls", LOCAL))
    report = await check_server(server, timeout=TIMEOUT, ca_file=mail_servers.pki.ca)
    (endpoint,) = report.endpoints
    assert endpoint.status == "ok", endpoint.findings
    assert endpoint.http_status == "HTTP/1.1 401 Unauthorized"
    assert endpoint.tls is not None and endpoint.tls.certificate is not None


async def test_without_the_test_ca_the_good_server_is_untrusted(
    mail_servers: MailServers,
) -> None:
    server = mail_servers.server(("smtp", mail_servers.postfix.smtps, "tls", LOCAL))
    report = await check_server(server, timeout=TIMEOUT)  # the system's CAs only
    assert codes(report.endpoints[0]) == {"cert_untrusted"}
    _, message = finding(report.endpoints[0], "cert_untrusted")
    assert "Zertifizierungsstelle" in message


async def test_when_nothing_answers_the_summary_speaks_of_an_outage(
    mail_servers: MailServers,
) -> None:
    server = mail_servers.server(
        ("imap", free_port(), "tls", LOCAL), ("smtp", free_port(), "starttls", LOCAL)
    )
    report = await check_server(server, timeout=TIMEOUT, ca_file=mail_servers.pki.ca)
    text = summary(report, translator("de"))
    assert text.splitlines()[-1].startswith("Der Mailserver ist gerade überhaupt nicht erreichbar")
