"""What the profile files share: the endpoint to configure, its host, XML as people read it."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from bot.knowledge.models import Endpoint, Server

__all__ = ["host_of", "preferred", "serialise"]


def preferred(server: Server, protocol: str) -> Endpoint | None:
    """The endpoint to configure: encrypted from the first byte when the server has one."""
    endpoints = server.endpoints_for(protocol)
    return next((e for e in endpoints if e.security == "tls"), endpoints[0] if endpoints else None)


def host_of(server: Server, endpoint: Endpoint) -> str:
    return endpoint.host or server.host


def serialise(root: ET.Element) -> bytes:
    """An XML document with declaration, indented for people who open it."""
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
