"""Thunderbird autoconfig (`config-v1.1.xml`), served at `/mail/config-v1.1.xml` and
`/.well-known/autoconfig/mail/config-v1.1.xml`, one server entry per endpoint of server.yaml."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from bot.knowledge.models import Server
from bot.profiles.account import host_of, serialise

__all__ = ["autoconfig"]

_SOCKET = {"tls": "SSL", "starttls": "STARTTLS"}


def autoconfig(server: Server) -> bytes:
    username = "%EMAILADDRESS%" if server.login_name == "address" else "%EMAILLOCALPART%"
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(
        root, "emailProvider", id=server.mail_domains[0] if server.mail_domains else server.host
    )
    for domain in server.mail_domains:
        ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = server.name
    ET.SubElement(provider, "displayShortName").text = server.name
    # Encrypted-from-the-start first: Thunderbird takes the first entry it can reach.
    ordered = sorted(server.endpoints, key=lambda e: e.security != "tls")
    for protocol, tag in (
        ("imap", "incomingServer"),
        ("pop3", "incomingServer"),
        ("smtp", "outgoingServer"),
    ):
        for endpoint in (e for e in ordered if e.protocol == protocol):
            entry = ET.SubElement(provider, tag, type=protocol)
            ET.SubElement(entry, "hostname").text = host_of(server, endpoint)
            ET.SubElement(entry, "port").text = str(endpoint.port)
            ET.SubElement(entry, "socketType").text = _SOCKET[endpoint.security]
            ET.SubElement(entry, "username").text = username
            ET.SubElement(entry, "authentication").text = "password-cleartext"
    return serialise(root)
