"""Values from `server.yaml` inside texts: `{server}`, `{smtp_starttls_port}`, `{domain}` ….

FAQ answers, step help, troubleshooting and card notes may name the server and its ports
through placeholders, so that a change in `server.yaml` reaches every answer at once. The loader
fills them in when it builds the knowledge base (callers see finished text); the checks report
a placeholder that `server.yaml` cannot fill, with file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from bot.knowledge.models import Localized, Server

__all__ = ["PROTOCOLS", "SECURITIES", "fill", "fill_localized", "names", "unknown", "values"]

_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")
PROTOCOLS = ("imap", "pop3", "smtp")
SECURITIES = ("tls", "starttls")


def values(server: Server) -> dict[str, str]:
    """Every placeholder `server` can fill, with its value."""
    result = {"server": server.name}
    if server.mail_domains:
        result["domain"] = server.mail_domains[0]
    for protocol in PROTOCOLS:
        for security in SECURITIES:
            ports = [
                e.port
                for e in server.endpoints_for(protocol)
                if e.security == security and (e.host or server.host) == server.host
            ]
            if ports:  # the first listed is the one to recommend (587 before 25)
                result[f"{protocol}_{security}_port"] = str(ports[0])
    return result


def names(text: str) -> list[str]:
    return _PLACEHOLDER.findall(text)


def fill(text: str, known: dict[str, str]) -> str:
    """`text` with its placeholders replaced; unknown ones stay as written (the checks say)."""
    return _PLACEHOLDER.sub(lambda m: known.get(m.group(1), m.group(0)), text)


def fill_localized(text: Localized, known: dict[str, str]) -> Localized:
    return text.model_copy(
        update={"de": fill(text.de, known), "en": fill(text.en, known) if text.en else None}
    )


def unknown(
    model: BaseModel, known: dict[str, str], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, placeholder) for each placeholder in a `Localized` text that `known` lacks."""
    if isinstance(model, Localized):
        for language in ("de", "en"):
            text = getattr(model, language)
            for name in names(text or ""):
                if name not in known:
                    yield (*path, language), name
        return
    for field in type(model).model_fields:
        value = getattr(model, field)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, BaseModel):
                where = (*path, field, index) if isinstance(value, list) else (*path, field)
                yield from unknown(item, known, where)
