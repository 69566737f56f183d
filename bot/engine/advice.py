"""Diagnose the settings a user describes ("Port 993 mit STARTTLS") against `server.yaml`.

Pure: no connection is made. The rule comes from the seed page: 993, 995 and 465 are encrypted
with SSL/TLS from the first byte; 143, 110, 587 and 25 start unencrypted and need STARTTLS
(STLS for POP3). `server.yaml` decides which of these the server offers; the seed's table only
explains a port the server does not list.
"""

from __future__ import annotations

from bot.i18n import Translator
from bot.knowledge.models import Endpoint, Server

__all__ = ["PROTOCOLS", "SEED_RULES", "diagnose_settings", "protocol_label", "security_label"]

PROTOCOLS = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP", "eas": "Exchange ActiveSync"}
_SECURITY = {"tls": "SSL/TLS", "starttls": "STARTTLS"}


def protocol_label(protocol: str) -> str:
    return PROTOCOLS.get(protocol, protocol.upper())


def security_label(security: str) -> str:
    return _SECURITY.get(security, security)


SEED_RULES: dict[int, tuple[str, str]] = {
    993: ("imap", "tls"),
    995: ("pop3", "tls"),
    465: ("smtp", "tls"),
    143: ("imap", "starttls"),
    110: ("pop3", "starttls"),
    587: ("smtp", "starttls"),
    25: ("smtp", "starttls"),
}

_SECURITY_WORDS = {
    "tls": "tls",
    "ssl": "tls",
    "ssl/tls": "tls",
    "starttls": "starttls",
    "stls": "starttls",
    "start-tls": "starttls",
}


def _normalized(security: str | None) -> str | None:
    if security is None:
        return None
    return _SECURITY_WORDS.get(security.strip().lower())


def _combination(endpoint: Endpoint, tr: Translator) -> str:
    return tr.gettext("Port {port} mit {security}").format(
        port=endpoint.port, security=security_label(endpoint.security)
    )


def _combinations(server: Server, protocol: str, tr: Translator) -> str:
    or_word = tr.gettext("oder")
    return f" {or_word} ".join(_combination(e, tr) for e in server.endpoints_for(protocol))


def diagnose_settings(
    server: Server,
    protocol: str | None,
    port: int | None,
    security: str | None,
    tr: Translator,
) -> str | None:
    """An explanation of what is wrong with the described settings and what is right, a short
    confirmation when they fit, or None when there is nothing to compare (no port, no
    encryption named)."""
    _ = tr.gettext
    wanted = _normalized(security)
    protocols = {e.protocol for e in server.endpoints}
    if protocol not in protocols:
        protocol = None
    if port is None:
        if wanted is None or protocol is None:
            return None
        return _without_port(server, protocol, wanted, tr)

    listed = [e for e in server.endpoints if e.port == port]
    endpoint = next((e for e in listed if e.protocol == protocol), listed[0] if listed else None)
    if endpoint is None:
        return _unknown_port(server, protocol, port, tr)
    name = protocol_label(endpoint.protocol)
    if protocol is not None and endpoint.protocol != protocol:
        return _(
            "Port {port} gehört auf {server} zu {right}, nicht zu {wrong}. Für {wrong} "
            "stellen Sie {combinations} ein."
        ).format(
            port=port,
            server=server.name,
            right=name,
            wrong=protocol_label(protocol),
            combinations=_combinations(server, protocol, tr),
        )
    if wanted is None:
        return _("Port {port} ist für {protocol} mit {security} vorgesehen.").format(
            port=port, protocol=name, security=security_label(endpoint.security)
        )
    if wanted == endpoint.security:
        return _("Das passt: {combination} ist für {protocol} richtig.").format(
            combination=_combination(endpoint, tr), protocol=name
        )
    if endpoint.security == "tls":
        reason = _(
            "Port {port} ist von Anfang an mit SSL/TLS verschlüsselt; STARTTLS passt dort nicht."
        )
    else:
        reason = _(
            "Port {port} beginnt unverschlüsselt und wird erst mit STARTTLS verschlüsselt; "
            "SSL/TLS passt dort nicht."
        )
    alternative = next(
        (e for e in server.endpoints_for(endpoint.protocol) if e.security == wanted), None
    )
    if alternative is None:
        right = _("Richtig ist: {combination}.").format(combination=_combination(endpoint, tr))
    else:
        right = _("Richtig ist entweder {combination} oder {alternative}.").format(
            combination=_combination(endpoint, tr),
            alternative=_combination(alternative, tr),
        )
    return f"{reason.format(port=port)} {right}"


def _without_port(server: Server, protocol: str, wanted: str, tr: Translator) -> str:
    _ = tr.gettext
    matching = [e for e in server.endpoints_for(protocol) if e.security == wanted]
    if matching:
        or_word = f" {_('oder')} "
        return _("Für {protocol} mit {security} ist {ports} richtig.").format(
            protocol=protocol_label(protocol),
            security=security_label(wanted),
            ports=or_word.join(_("Port {port}").format(port=e.port) for e in matching),
        )
    return _(
        "{protocol} mit {security} bietet {server} nicht an. Richtig ist {combinations}."
    ).format(
        protocol=protocol_label(protocol),
        security=security_label(wanted),
        server=server.name,
        combinations=_combinations(server, protocol, tr),
    )


def _unknown_port(server: Server, protocol: str | None, port: int, tr: Translator) -> str:
    _ = tr.gettext
    seed = SEED_RULES.get(port)
    protocol = protocol or (seed[0] if seed else None)
    text = _("Port {port} ist für {server} nicht vorgesehen.").format(port=port, server=server.name)
    if protocol is not None and server.endpoints_for(protocol):
        text += " " + _("Für {protocol} stellen Sie {combinations} ein.").format(
            protocol=protocol_label(protocol), combinations=_combinations(server, protocol, tr)
        )
    return text
