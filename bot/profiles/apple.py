"""Apple configuration profile (`.mobileconfig`, payload `com.apple.mail.managed`).

IMAP (or POP3 when the server has no IMAP) and SMTP with SSL, the user's address and login
name, and no password: the device asks for it when the profile is installed. Optionally signed
(CMS) with a configured certificate and key, so the device shows it as verified.
"""

from __future__ import annotations

import plistlib
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from bot.knowledge.accounts import Account
from bot.knowledge.models import Server
from bot.profiles.account import host_of, preferred

__all__ = ["mobileconfig", "sign"]

_NAMESPACE = uuid.UUID("6f1f2d4e-8f0b-4c39-9a55-3d1c2c7a9e10")  # Lotse's; keeps UUIDs stable


def _identifier(server: Server) -> str:
    domain = server.mail_domains[0] if server.mail_domains else server.host
    return ".".join(reversed(domain.split("."))) + ".lotse.mail"


def mobileconfig(server: Server, account: Account) -> bytes:
    incoming = preferred(server, "imap") or preferred(server, "pop3")
    outgoing = preferred(server, "smtp")
    if incoming is None or outgoing is None:
        raise ValueError("server.yaml has no incoming or no outgoing endpoint")
    identifier = _identifier(server)
    # The same address gives the same UUIDs: installing again replaces, not duplicates.
    account_uuid = uuid.uuid5(_NAMESPACE, f"mail:{account.address}")
    profile_uuid = uuid.uuid5(_NAMESPACE, f"profile:{account.address}")
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.account.{account_uuid}",
        "PayloadUUID": str(account_uuid).upper(),
        "PayloadDisplayName": f"E-Mail {account.address}",
        "EmailAccountDescription": f"{account.address} ({server.name})",
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap" else "EmailTypePOP",
        "EmailAddress": account.address,
        "IncomingMailServerHostName": host_of(server, incoming),
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": account.login,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": host_of(server, outgoing),
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": account.login,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.{profile_uuid}",
        "PayloadUUID": str(profile_uuid).upper(),
        "PayloadDisplayName": f"E-Mail ({server.name})",
        "PayloadDescription": (
            f"Richtet {account.address} mit verschlüsselter Verbindung (SSL/TLS) ein."
        ),
        "PayloadOrganization": server.name,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def sign(profile: bytes, certificate: Path, key: Path) -> bytes:
    """The profile as CMS signed data (DER), as `security cms -S` would make it."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(profile)
    signer = builder.add_signer(cert, private_key, hashes.SHA256())  # type: ignore[arg-type]
    return signer.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
