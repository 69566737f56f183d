"""The grading rules (bot/check/grading.py's docstring) on facts made by hand: what each profile
says about suites, keys and versions, and how findings from both profiles are merged."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.check.endpoint import Failure, Observation, Target
from bot.check.grading import cipher_problems, grade
from bot.check.report import CertificateInfo, CheckReport, EndpointResult, Finding, Status, TlsFacts
from bot.check.texts import details
from bot.check.tls import matches_hostname
from bot.i18n import translator

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TARGET = Target("imap", 993, "tls", "mail.example.org", "192.0.2.1")


def certificate(**changes: object) -> CertificateInfo:
    values: dict[str, object] = {
        "subject": "mail.example.org",
        "issuer": "Example CA",
        "names": ("mail.example.org",),
        "not_before": NOW - dt.timedelta(days=100),
        "not_after": NOW + dt.timedelta(days=200),
        "days_left": 200,
        "hostname_match": True,
        "trusted": True,
        "verify_error": None,
        "self_signed": False,
        "key_type": "EC secp256r1",
        "key_bits": 256,
        "signature_algorithm": "ecdsa-with-SHA256",
        "signature_hash": "sha256",
        "fingerprint_sha256": "00",
    }
    return CertificateInfo(**(values | changes))  # type: ignore[arg-type]


def graded(
    version: str = "TLSv1.3",
    cipher: str = "TLS_AES_256_GCM_SHA384",
    cert: CertificateInfo | None = None,
    legacy: dict[str, bool | None] | None = None,
) -> tuple[dict[str, Finding], dict[str, Status]]:
    obs = Observation(tls=TlsFacts(version, cipher, 256, cert or certificate()))
    findings, grades = grade(TARGET, obs, legacy or {"TLSv1": False, "TLSv1.1": False}, NOW)
    return {f.code: f for f in findings}, grades


def test_tls_1_3_with_a_modern_certificate_has_no_findings() -> None:
    assert graded() == ({}, {"bsi": "ok", "mozilla": "ok"})


def test_ecdhe_with_aes_gcm_passes_both_profiles() -> None:
    assert graded("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256") == ({}, {"bsi": "ok", "mozilla": "ok"})


def test_cbc_with_sha256_is_fine_for_the_bsi_but_not_for_mozilla() -> None:
    findings, grades = graded("TLSv1.2", "ECDHE-RSA-AES128-SHA256")
    assert grades == {"bsi": "ok", "mozilla": "warning"}
    assert findings["weak_cipher"].rules == ("Mozilla intermediate: Cipher-Suiten",)


def test_chacha20_is_fine_for_mozilla_and_only_a_note_for_the_bsi() -> None:
    findings, grades = graded("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")
    assert grades == {"bsi": "ok", "mozilla": "ok"}
    assert findings["weak_cipher"].severity == "info"


def test_rsa_key_exchange_with_sha1_is_weak_for_both() -> None:
    findings, grades = graded("TLSv1.2", "AES128-SHA")
    assert grades == {"bsi": "warning", "mozilla": "warning"}
    assert findings["weak_cipher"].params["reasons"] == "no_forward_secrecy,sha1_mac,cbc"
    assert len(findings["weak_cipher"].rules) == 2


@pytest.mark.parametrize(
    ("version", "cipher", "problems"),
    [
        ("TLSv1.3", "TLS_AES_128_CCM_8_SHA256", ["short_tag"]),
        ("TLSv1.2", "DHE-RSA-AES256-GCM-SHA384", []),
        ("TLSv1.2", "DES-CBC3-SHA", ["broken", "no_forward_secrecy", "sha1_mac", "cbc"]),
        ("TLSv1.2", "ECDHE-RSA-RC4-SHA", ["broken", "sha1_mac", "cbc"]),
    ],
)
def test_cipher_problems_name_what_is_wrong(version: str, cipher: str, problems: list[str]) -> None:
    assert cipher_problems(version, cipher) == problems


def test_rsa_2048_is_only_a_bsi_note_while_1024_is_an_error_for_both() -> None:
    findings, grades = graded(cert=certificate(key_type="RSA", key_bits=2048))
    assert findings["weak_key"].severity == "info"
    assert grades == {"bsi": "ok", "mozilla": "ok"}
    findings, grades = graded(cert=certificate(key_type="RSA", key_bits=1024))
    assert findings["weak_key"].severity == "error"
    assert grades == {"bsi": "error", "mozilla": "error"}


def test_a_sha1_signature_is_an_error() -> None:
    findings, _ = graded(cert=certificate(signature_hash="sha1"))
    assert findings["weak_signature"].severity == "error"


def test_a_certificate_not_yet_valid_counts_as_expired() -> None:
    findings, _ = graded(cert=certificate(not_before=NOW + dt.timedelta(days=1)))
    assert findings["cert_expired"].params["when"] == "before"


def test_legacy_versions_are_one_finding_naming_both_profiles() -> None:
    findings, grades = graded(legacy={"TLSv1": False, "TLSv1.1": True})
    outdated = findings["tls_version_outdated"]
    assert outdated.params["versions"] == "TLS 1.1"
    assert outdated.rules == ("BSI TR-02102-2 3.2", "Mozilla intermediate: Protokolle")
    assert grades == {"bsi": "warning", "mozilla": "warning"}


def test_worst_findings_come_first() -> None:
    cert = certificate(trusted=False, days_left=3, not_after=NOW + dt.timedelta(days=3))
    obs = Observation(tls=TlsFacts("TLSv1.3", "TLS_AES_128_GCM_SHA256", 128, cert))
    findings, _ = grade(TARGET, obs, {}, NOW)
    assert [f.code for f in findings] == ["cert_untrusted", "cert_expires_soon"]


def test_a_failure_without_tls_has_no_grades() -> None:
    obs = Observation(failure=Failure("unreachable", "connect", "refused"))
    findings, grades = grade(TARGET, obs, {"TLSv1": None, "TLSv1.1": None}, NOW)
    assert [(f.code, f.severity) for f in findings] == [("unreachable", "error")]
    assert grades == {}


@pytest.mark.parametrize(
    ("host", "names", "match"),
    [
        ("mail.example.org", ("MAIL.example.org",), True),
        ("mail.example.org", ("*.example.org",), True),
        ("example.org", ("*.example.org",), False),
        ("a.mail.example.org", ("*.example.org",), False),
        ("mail.example.org", ("*.org",), False),
        ("mail.example.org", ("other.example.org",), False),
        ("192.0.2.1", ("192.0.2.1",), True),
        ("192.0.2.1", ("mail.example.org",), False),
    ],
)
def test_hostnames_match_as_rfc_6125_says(host: str, names: tuple[str, ...], match: bool) -> None:
    assert matches_hostname(host, names) is match


@pytest.mark.parametrize(
    ("locale", "rule"),
    [("de", "Mozilla intermediate: Protokolle"), ("en", "Mozilla intermediate: protocols")],
)
def test_the_reports_details_name_the_rules_in_the_readers_language(locale: str, rule: str) -> None:
    legacy = {"TLSv1": False, "TLSv1.1": True}
    obs = Observation(tls=TlsFacts("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, certificate()))
    findings, grades = grade(TARGET, obs, legacy, NOW)
    endpoint = EndpointResult(
        "imap", 993, "tls", TARGET.host, TARGET.address, 12.0, tuple(findings),
        tls=obs.tls, legacy_tls=legacy, grades=grades,
    )  # fmt: skip
    report = CheckReport(TARGET.host, NOW, 12.0, (endpoint,))
    assert rule in "\n".join(details(report, translator(locale)))
