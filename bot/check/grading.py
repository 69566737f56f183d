"""Findings for one endpoint, and its grade against two profiles: BSI TR-02102-2 and Mozilla's
"intermediate" server profile. Pure: facts in, findings out.

Every finding names the rule(s) it comes from (the ids below, in `Finding.rules`). Findings of
the connection and the certificate count against both profiles; the others only against the
profile whose rule they come from, so the two grades can differ (a CBC suite is fine for the BSI,
not for Mozilla; ChaCha20 the other way round).

Connection (both profiles; the endpoint does not work as `server.yaml` says)
- `unreachable` (error, CONN): no TCP connection (refused, no route, name unknown).
- `timeout` (error, CONN): no answer before the check's deadline; the message names the step
  (connect, greeting, STARTTLS, handshake, answer over TLS).
- `connection_closed`, `unexpected_answer` (error, CONN): the server hung up, or answered
  something that is not IMAP/POP3/SMTP/HTTP.
- `starttls_missing` (error, STARTTLS): a `starttls` endpoint does not offer STARTTLS (IMAP,
  SMTP) or STLS (POP3), or refuses it (RFC 2595, RFC 3207).
- `plaintext_auth_before_tls` (warning, AUTH-TLS): before TLS the server offers a login that
  sends the password readable: IMAP without LOGINDISABLED or with AUTH=PLAIN/LOGIN, POP3 USER or
  SASL PLAIN/LOGIN, SMTP AUTH PLAIN/LOGIN (RFC 2595 2.3, RFC 4954 4).
- `tls_handshake_failed` (error, CONN): no TLS 1.2+ handshake (what current mail programs need).

Certificate (both profiles; RFC 5280, RFC 6125)
- `cert_untrusted` (error, X509-CHAIN): the chain does not verify against the trust store
  (system CAs or `--ca-file`); self-signed certificates included.
- `cert_expired` (error, X509-DATES): the validity period has ended (or not yet begun).
- `cert_expires_soon` (warning, X509-DATES): fewer than 30 days left.
- `cert_hostname_mismatch` (error, RFC6125): the host is not among the certificate's names
  (SAN; wildcard only as the whole left-most label; CN only when there is no SAN).
- `weak_signature` (error, X509-SIG): signed with MD5 or SHA-1.

BSI TR-02102-2 (TLS), with key lengths from TR-02102-1
- BSI-VERSIONS (Abschnitt 3.2) -> `tls_version_outdated` (warning): only TLS 1.2 and 1.3 are
  recommended; a server that still completes a TLS 1.0 or 1.1 handshake is reported.
- BSI-SUITES (Abschnitt 3.3) -> `weak_cipher`: TLS 1.2 needs forward secrecy (ECDHE/DHE) with
  AES in GCM, CCM or CBC with SHA-256/384 (warning otherwise: RSA key exchange, SHA-1 MAC,
  3DES, RC4, ...; info for ChaCha20, which works but is not on the BSI list). TLS 1.3: AES-GCM
  and AES-CCM (CCM_8: warning; ChaCha20: info).
- BSI-KEYS (TR-02102-1) -> `weak_key`: RSA/DSA below 2000 bits and EC below 250 bits: error;
  RSA below 3000 bits: info (the BSI recommends 3000 bits for use beyond 2023).

Mozilla Server Side TLS, "intermediate" (version 5.7)
- MOZ-PROTOCOLS -> `tls_version_outdated` (warning): TLS 1.2 and 1.3 only.
- MOZ-CIPHERS -> `weak_cipher` (warning): TLS 1.2 only with ECDHE-ECDSA/ECDHE-RSA/DHE-RSA and
  AES-128/256-GCM or ChaCha20-Poly1305; every TLS 1.3 suite is fine.
- MOZ-CERT -> `weak_key` (error): RSA below 2048 bits, EC below 256 bits.

The same code from several rules becomes one finding listing all rules, with the highest
severity. An endpoint's status is its worst finding (info counts as ok).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from bot.check.endpoint import Observation, Target
from bot.check.report import PROFILES, Finding, Severity, Status, TlsFacts, worst

__all__ = [
    "AUTH_TLS",
    "BSI_KEYS",
    "BSI_SUITES",
    "BSI_VERSIONS",
    "CONN",
    "EXPIRY_WARNING_DAYS",
    "MOZ_CERT",
    "MOZ_CIPHERS",
    "MOZ_PROTOCOLS",
    "RFC6125",
    "STARTTLS",
    "X509_CHAIN",
    "X509_DATES",
    "X509_SIG",
    "cipher_problems",
    "grade",
]

EXPIRY_WARNING_DAYS = 30

# Rule ids, as they appear in `Finding.rules` (explained in the module docstring).
CONN = "CONN"
STARTTLS = "STARTTLS (RFC 2595, RFC 3207)"
AUTH_TLS = "AUTH-TLS (RFC 2595 2.3, RFC 4954 4)"
X509_CHAIN = "X509-CHAIN (RFC 5280 6)"
X509_DATES = "X509-DATES (RFC 5280 4.1.2.5)"
X509_SIG = "X509-SIG"
RFC6125 = "RFC6125 (6.4)"
BSI_VERSIONS = "BSI TR-02102-2 3.2"
BSI_SUITES = "BSI TR-02102-2 3.3"
BSI_KEYS = "BSI TR-02102-1 (Schlüssellängen)"
MOZ_PROTOCOLS = "Mozilla intermediate: Protokolle"
MOZ_CIPHERS = "Mozilla intermediate: Cipher-Suiten"
MOZ_CERT = "Mozilla intermediate: Zertifikat"

_MOZILLA_TLS12 = {
    f"{kx}-{cipher}"
    for kx in ("ECDHE-ECDSA", "ECDHE-RSA")
    for cipher in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305")
} | {
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
}
_BROKEN = ("RC4", "3DES", "DES-CBC", "NULL", "EXP", "MD5", "IDEA", "SEED", "ADH", "AECDH")


def grade(
    target: Target,
    obs: Observation,
    legacy: Mapping[str, bool | None],
    now: dt.datetime,
) -> tuple[tuple[Finding, ...], dict[str, Status]]:
    """The findings of one endpoint and its grade per profile ({} when TLS never came up)."""
    raw: list[Finding] = []
    raw.extend(_connection(target, obs))
    if obs.tls is not None:
        raw.extend(_certificate(obs.tls, target, now))
        raw.extend(_cipher(obs.tls))
        raw.extend(_key(obs.tls))
    raw.extend(_versions(legacy))
    grades: dict[str, Status] = {}
    if obs.tls is not None:
        # From the unmerged findings: each profile counts only its own rules' severities.
        grades = {
            profile: worst([f.severity for f in raw if profile in f.profiles])
            for profile in PROFILES
        }
    return _merge(raw), grades


def _finding(
    code: str,
    severity: Severity,
    rule: str,
    profiles: tuple[str, ...] = PROFILES,
    **params: str | int,
) -> Finding:
    return Finding(code, severity, (rule,), params, profiles)


def _connection(target: Target, obs: Observation) -> list[Finding]:
    found: list[Finding] = []
    if obs.plaintext_auth and target.security == "starttls":
        found.append(_finding("plaintext_auth_before_tls", "warning", AUTH_TLS))
    failure = obs.failure
    if failure is None:
        return found
    codes = {
        "unreachable": ("unreachable", CONN),
        "timeout": ("timeout", CONN),
        "closed": ("connection_closed", CONN),
        "unexpected_answer": ("unexpected_answer", CONN),
        "starttls_missing": ("starttls_missing", STARTTLS),
        "handshake_failed": ("tls_handshake_failed", CONN),
    }
    code, rule = codes[failure.kind]
    found.append(_finding(code, "error", rule, stage=failure.stage, detail=failure.detail))
    return found


def _certificate(tls: TlsFacts, target: Target, now: dt.datetime) -> list[Finding]:
    cert = tls.certificate
    if cert is None:
        return []
    found: list[Finding] = []
    if not cert.trusted:
        found.append(
            _finding(
                "cert_untrusted",
                "error",
                X509_CHAIN,
                reason="self_signed" if cert.self_signed else "issuer",
                detail=cert.verify_error or "",
            )
        )
    if cert.not_after < now:
        found.append(_finding("cert_expired", "error", X509_DATES, when="after"))
    elif cert.not_before > now:
        found.append(_finding("cert_expired", "error", X509_DATES, when="before"))
    elif cert.days_left < EXPIRY_WARNING_DAYS:
        found.append(_finding("cert_expires_soon", "warning", X509_DATES, days=cert.days_left))
    if not cert.hostname_match:
        found.append(_finding("cert_hostname_mismatch", "error", RFC6125, host=target.host))
    if (cert.signature_hash or "").lower() in ("md5", "sha1"):
        found.append(_finding("weak_signature", "error", X509_SIG))
    return found


def cipher_problems(version: str, cipher: str) -> list[str]:
    """What is wrong with a negotiated suite, as reason codes (see texts.REASONS)."""
    name = cipher.upper()
    reasons: list[str] = []
    if version == "TLSv1.3":
        if name.endswith("CCM_8_SHA256"):
            reasons.append("short_tag")
        return reasons
    if any(part in name for part in _BROKEN):
        reasons.append("broken")
    if not name.startswith(("ECDHE-", "DHE-", "EDH-")):
        reasons.append("no_forward_secrecy")
    if name.endswith("-SHA"):
        reasons.append("sha1_mac")
    if not any(mode in name for mode in ("GCM", "CCM", "CHACHA20")):
        reasons.append("cbc")
    return reasons


def _cipher(tls: TlsFacts) -> list[Finding]:
    if not tls.cipher:
        return []
    name = tls.cipher.upper()
    reasons = cipher_problems(tls.version, tls.cipher)
    found: list[Finding] = []
    # BSI: severity by what is wrong; CBC with SHA-256/384 is still on its list.
    bsi_reasons = [r for r in reasons if r != "cbc"]
    chacha = "CHACHA20" in name
    if bsi_reasons:
        found.append(_weak_cipher(tls, "warning", BSI_SUITES, ("bsi",), reasons))
    elif chacha or ("AES" not in name and tls.version != "TLSv1.3"):
        found.append(_weak_cipher(tls, "info", BSI_SUITES, ("bsi",), ["not_listed"]))
    # Mozilla intermediate: a fixed list for TLS 1.2; all of TLS 1.3 is fine.
    if tls.version != "TLSv1.3" and name not in _MOZILLA_TLS12:
        found.append(_weak_cipher(tls, "warning", MOZ_CIPHERS, ("mozilla",), reasons or ["cbc"]))
    return found


def _weak_cipher(
    tls: TlsFacts, severity: Severity, rule: str, profiles: tuple[str, ...], reasons: list[str]
) -> Finding:
    return _finding(
        "weak_cipher", severity, rule, profiles, cipher=tls.cipher, reasons=",".join(reasons)
    )


def _key(tls: TlsFacts) -> list[Finding]:
    cert = tls.certificate
    if cert is None:
        return []
    kind, bits = cert.key_type.split()[0], cert.key_bits
    found: list[Finding] = []
    params: dict[str, str | int] = {"key_type": cert.key_type, "bits": bits}
    if kind in ("RSA", "DSA"):
        if bits < 2000:
            found.append(_finding("weak_key", "error", BSI_KEYS, ("bsi",), minimum=3000, **params))
        elif bits < 3000:
            found.append(_finding("weak_key", "info", BSI_KEYS, ("bsi",), minimum=3000, **params))
        if bits < 2048:
            found.append(
                _finding("weak_key", "error", MOZ_CERT, ("mozilla",), minimum=2048, **params)
            )
    elif kind == "EC":
        if bits < 250:
            found.append(_finding("weak_key", "error", BSI_KEYS, ("bsi",), minimum=250, **params))
        if bits < 256:
            found.append(
                _finding("weak_key", "error", MOZ_CERT, ("mozilla",), minimum=256, **params)
            )
    return found


def _versions(legacy: Mapping[str, bool | None]) -> list[Finding]:
    accepted = [version for version, ok in legacy.items() if ok]
    if not accepted:
        return []
    names = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1"}
    versions = ", ".join(names.get(v, v) for v in accepted)
    return [
        _finding("tls_version_outdated", "warning", BSI_VERSIONS, ("bsi",), versions=versions),
        _finding("tls_version_outdated", "warning", MOZ_PROTOCOLS, ("mozilla",), versions=versions),
    ]


_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def _merge(raw: list[Finding]) -> tuple[Finding, ...]:
    """One finding per code: rules and profiles joined, the highest severity and its params."""
    merged: dict[str, Finding] = {}
    for finding in raw:
        before = merged.get(finding.code)
        if before is None:
            merged[finding.code] = finding
            continue
        stronger = (
            finding
            if _SEVERITY_RANK[finding.severity] > _SEVERITY_RANK[before.severity]
            else before
        )
        merged[finding.code] = Finding(
            finding.code,
            stronger.severity,
            before.rules + finding.rules,
            stronger.params,
            tuple(dict.fromkeys(before.profiles + finding.profiles)),
        )
    # Worst first: summaries show the first finding.
    return tuple(sorted(merged.values(), key=lambda f: -_SEVERITY_RANK[f.severity]))
