"""Outlook Autodiscover, "POX" flavour (`/autodiscover/autodiscover.xml`).

Outlook POSTs a request naming the address; the answer lists IMAP (or POP3) and SMTP with
SSL on. Addresses outside the mail domains get an Autodiscover error, not settings.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from bot.knowledge.accounts import Account, ForeignAddress, account_for
from bot.knowledge.models import Server
from bot.profiles.account import host_of, preferred, serialise

__all__ = ["OUTLOOK_NS", "REQUEST_NS", "RESPONSE_NS", "address_from_request", "autodiscover"]

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def address_from_request(body: bytes) -> str | None:
    """The EMailAddress of an Autodiscover request, or None when the body is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    element = root.find(f".//{{{REQUEST_NS}}}EMailAddress")
    if element is None:
        element = root.find(".//EMailAddress")
    return element.text.strip() if element is not None and element.text else None


def autodiscover(server: Server, address: str | None) -> tuple[int, bytes]:
    """HTTP status and body for a request about `address` (None: a static, address-free file)."""
    account: Account | None = None
    if address is not None:
        try:
            account = account_for(server, address)
        except ForeignAddress:
            return 200, _error("600", "Invalid Request")
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account_element = ET.SubElement(response, "Account")
    ET.SubElement(account_element, "AccountType").text = "email"
    ET.SubElement(account_element, "Action").text = "settings"
    incoming = preferred(server, "imap") or preferred(server, "pop3")
    outgoing = preferred(server, "smtp")
    for endpoint in (incoming, outgoing):
        if endpoint is None:
            continue
        protocol = ET.SubElement(account_element, "Protocol")
        ET.SubElement(protocol, "Type").text = endpoint.protocol.upper()
        ET.SubElement(protocol, "Server").text = host_of(server, endpoint)
        ET.SubElement(protocol, "Port").text = str(endpoint.port)
        if account is not None:
            ET.SubElement(protocol, "LoginName").text = account.login
        ET.SubElement(protocol, "DomainRequired").text = "off"
        ET.SubElement(protocol, "SPA").text = "off"
        # "on" is SSL from the first byte; STARTTLS endpoints are announced as TLS.
        ET.SubElement(protocol, "SSL").text = "on" if endpoint.security == "tls" else "off"
        if endpoint.security == "starttls":
            ET.SubElement(protocol, "Encryption").text = "TLS"
        ET.SubElement(protocol, "AuthRequired").text = "on"
    return 200, serialise(root)


def _error(code: str, message: str) -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    error = ET.SubElement(response, "Error")
    ET.SubElement(error, "ErrorCode").text = code
    ET.SubElement(error, "Message").text = message
    return serialise(root)
