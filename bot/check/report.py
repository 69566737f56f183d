"""The result of a connection check, and its JSON form (the output contract of `lotse check`).

```
{"server", "started", "duration_ms", "overall",
 "endpoints": [{"protocol", "port", "security", "status", "duration_ms", "tls_version",
                "cipher", "certificate": {...} | null,
                "findings": [{"code", "severity", "message", "rules"}], ...}]}
```

`overall` and `status` are `ok`, `warning` or `error`; a finding's `severity` is `info`,
`warning` or `error`. Messages are rendered for a locale when the JSON is made, so a report can
be shown in German and English alike. Keys beyond the contract (facts such as `grades`,
`legacy_tls`, `starttls_offered`) come after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.i18n import Translator, translator

__all__ = [
    "EXIT_CODES",
    "PROFILES",
    "CertificateInfo",
    "CheckReport",
    "EndpointResult",
    "Finding",
    "Severity",
    "Status",
    "TlsFacts",
    "worst",
]

Severity = Literal["info", "warning", "error"]
Status = Literal["ok", "warning", "error"]

_RANK: dict[str, int] = {"info": 0, "ok": 0, "warning": 1, "error": 2}
PROFILES = ("bsi", "mozilla")  # BSI TR-02102-2 and Mozilla's "intermediate" (see grading)


def worst(severities: list[Severity] | list[Status]) -> Status:
    """The status that a set of severities amounts to (info counts as ok)."""
    rank = max((_RANK[s] for s in severities), default=0)
    statuses: tuple[Status, ...] = ("ok", "warning", "error")
    return statuses[rank]


@dataclass(frozen=True)
class Finding:
    """Something the check noticed. `rules` name where the verdict comes from (see grading);
    `params` fill the message (`texts.finding_message`)."""

    code: str
    severity: Severity
    rules: tuple[str, ...] = ()
    params: Mapping[str, str | int] = field(default_factory=dict)
    profiles: tuple[str, ...] = PROFILES  # the grading profiles this finding counts against


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    days_left: int
    hostname_match: bool
    trusted: bool
    verify_error: str | None
    self_signed: bool
    key_type: str
    key_bits: int
    signature_algorithm: str
    signature_hash: str | None
    fingerprint_sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "names": list(self.names),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left,
            "hostname_match": self.hostname_match,
            "trusted": self.trusted,
            "verify_error": self.verify_error,
            "self_signed": self.self_signed,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "signature_algorithm": self.signature_algorithm,
            "fingerprint_sha256": self.fingerprint_sha256,
        }


@dataclass(frozen=True)
class TlsFacts:
    version: str  # "TLSv1.3"
    cipher: str  # OpenSSL's name, e.g. "ECDHE-RSA-AES128-GCM-SHA256"
    cipher_bits: int
    certificate: CertificateInfo | None


@dataclass(frozen=True)
class EndpointResult:
    protocol: str
    port: int
    security: str
    host: str  # the name for SNI and the certificate check
    address: str  # where the check connected
    duration_ms: float
    findings: tuple[Finding, ...]
    connect_ms: float | None = None
    handshake_ms: float | None = None
    greeting: str | None = None
    starttls_offered: bool | None = None
    plaintext_auth_before_tls: bool | None = None
    http_status: str | None = None
    tls: TlsFacts | None = None
    # "TLSv1"/"TLSv1.1" -> accepted? (None: could not tell, e.g. the port is closed)
    legacy_tls: Mapping[str, bool | None] = field(default_factory=dict)
    grades: Mapping[str, Status] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst([f.severity for f in self.findings])

    def as_json(self, tr: Translator) -> dict[str, Any]:
        from bot.check.texts import finding_message  # texts imports this module

        return {
            "protocol": self.protocol,
            "port": self.port,
            "security": self.security,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 1),
            "tls_version": self.tls.version if self.tls else None,
            "cipher": self.tls.cipher if self.tls else None,
            "certificate": (
                self.tls.certificate.as_json() if self.tls and self.tls.certificate else None
            ),
            "findings": [
                {
                    "code": f.code,
                    "severity": f.severity,
                    "message": finding_message(f, self, tr),
                    "rules": list(f.rules),
                }
                for f in self.findings
            ],
            "host": self.host,
            "address": self.address,
            "connect_ms": _rounded(self.connect_ms),
            "handshake_ms": _rounded(self.handshake_ms),
            "greeting": self.greeting,
            "starttls_offered": self.starttls_offered,
            "plaintext_auth_before_tls": self.plaintext_auth_before_tls,
            "http_status": self.http_status,
            "legacy_tls": dict(self.legacy_tls),
            "grades": dict(self.grades),
        }


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


@dataclass(frozen=True)
class CheckReport:
    server: str
    started: dt.datetime  # UTC
    duration_ms: float
    endpoints: tuple[EndpointResult, ...]

    @property
    def overall(self) -> Status:
        return worst([e.status for e in self.endpoints])

    def as_json(self, tr: Translator | None = None) -> dict[str, Any]:
        """The output contract; messages in German unless another translator is given."""
        tr = tr or translator("de")
        return {
            "server": self.server,
            "started": self.started.isoformat(),
            "duration_ms": round(self.duration_ms, 1),
            "overall": self.overall,
            "endpoints": [e.as_json(tr) for e in self.endpoints],
        }


EXIT_CODES: dict[Status, int] = {"ok": 0, "warning": 1, "error": 2}
