"""TLS facts: the client contexts the check uses, and what a finished handshake tells.

Three kinds of `ssl.SSLContext`, built once per trust store and shared by all connections:

- `verify`: TLS 1.2+, chain verified against the system CAs (or `--ca-file`). The hostname is
  matched by us (`matches_hostname`) and validity dates are compared by us, so one handshake
  tells "untrusted", "expired" and "wrong name" apart instead of stopping at the first.
- `facts`: TLS 1.2+, no verification, security level 0: after a failed verification a second
  handshake still reads the certificate, so the user learns *why* it is not trusted.
- `legacy[version]`: exactly TLS 1.0 or TLS 1.1 at security level 0. OpenSSL 3 refuses both
  client-side by default (and Debian's openssl.cnf sets MinProtocol TLSv1.2), so the probe needs
  its own context to see whether the *server* still accepts them.

The certificate is parsed with the `cryptography` package (`certificate_info`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from bot.check.report import CertificateInfo, TlsFacts

__all__ = [
    "LEGACY_VERSIONS",
    "Contexts",
    "build_contexts",
    "certificate_info",
    "contexts_for",
    "matches_hostname",
    "session_facts",
]

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify the chain, but leave the dates to us.
_NO_CHECK_TIME = 0x200000
# Security level 1 (not Python's 2) so a weak key or cipher is *reported*, not just refused.
_MAIN_CIPHERS = "DEFAULT:@SECLEVEL=1"
_ANY_CIPHERS = "DEFAULT:@SECLEVEL=0"
LEGACY_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}


@dataclass(frozen=True)
class Contexts:
    verify: ssl.SSLContext
    facts: ssl.SSLContext
    legacy: dict[str, ssl.SSLContext]


def _client_context(
    minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, ciphers: str
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = minimum
    context.maximum_version = maximum
    context.set_ciphers(ciphers)
    return context


def build_contexts(ca_file: Path | None) -> Contexts:
    """Blocking (reads the trust store): call through `contexts_for` from async code."""
    newest = ssl.TLSVersion.MAXIMUM_SUPPORTED
    verify = _client_context(ssl.TLSVersion.TLSv1_2, newest, _MAIN_CIPHERS)
    verify.verify_mode = ssl.CERT_REQUIRED
    verify.verify_flags |= _NO_CHECK_TIME
    if ca_file is not None:
        verify.load_verify_locations(cafile=str(ca_file))
    else:
        verify.load_default_certs()
    facts = _client_context(ssl.TLSVersion.TLSv1_2, newest, _ANY_CIPHERS)
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 for connections; probing for them is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = {name: _client_context(v, v, _ANY_CIPHERS) for name, v in LEGACY_VERSIONS.items()}
    return Contexts(verify, facts, legacy)


@lru_cache(maxsize=4)
def _cached_contexts(ca_file: Path | None, _mtime: float) -> Contexts:
    return build_contexts(ca_file)


async def contexts_for(ca_file: Path | None) -> Contexts:
    """The contexts for a trust store, built in a thread once and then reused (an edited CA
    file is read again)."""

    def load() -> Contexts:
        mtime = ca_file.stat().st_mtime if ca_file is not None else 0.0
        return _cached_contexts(ca_file, mtime)

    return await asyncio.to_thread(load)


# --- what a handshake tells --------------------------------------------------------------


def session_facts(
    ssl_object: ssl.SSLObject,
    host: str,
    *,
    trusted: bool,
    verify_error: str | None,
    now: dt.datetime,
) -> TlsFacts:
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    certificate = (
        certificate_info(der, host, trusted=trusted, verify_error=verify_error, now=now)
        if der
        else None
    )
    return TlsFacts(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        cipher_bits=cipher[2] if cipher else 0,
        certificate=certificate,
    )


def certificate_info(
    der: bytes, host: str, *, trusted: bool, verify_error: str | None, now: dt.datetime
) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    names = _names(cert)
    key_type, key_bits = _key(cert)
    not_after = cert.not_valid_after_utc
    return CertificateInfo(
        subject=_common_name(cert.subject) or cert.subject.rfc4514_string(),
        issuer=_common_name(cert.issuer) or cert.issuer.rfc4514_string(),
        names=names,
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        days_left=int((not_after - now).total_seconds() // 86400),
        hostname_match=matches_hostname(host, names),
        trusted=trusted,
        verify_error=verify_error,
        self_signed=_self_signed(cert),
        key_type=key_type,
        key_bits=key_bits,
        signature_algorithm=_signature_algorithm(cert),
        signature_hash=_signature_hash(cert),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    """The names the certificate is for: its SAN entries; the CN only when there is no SAN
    (RFC 6125 6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common_name = _common_name(cert.subject)
        return (common_name,) if common_name else ()
    dns = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def matches_hostname(host: str, names: tuple[str, ...]) -> bool:
    """RFC 6125: exact (case-insensitive) match, or a wildcard as the whole left-most label
    (`*.example.org` matches `mail.example.org`, not `example.org` or `a.b.example.org`)."""
    host = host.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for name in names:
        name = name.rstrip(".").lower()
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                continue
            continue
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            label, _, rest = host.partition(".")
            if label and rest == name[2:] and "." in rest:
                return True
    return False


def _key(cert: x509.Certificate) -> tuple[str, int]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string


def _signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # an algorithm cryptography does not know
        return None
    return algorithm.name if algorithm is not None else None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True
