"""`lotse autoconfig export DIR`: the autoconfig files for any static web server."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge.models import Server
from bot.profiles.outlook import autodiscover
from bot.profiles.thunderbird import autoconfig

__all__ = ["AUTOCONFIG_PATHS", "AUTODISCOVER_PATHS", "export"]

# Where Thunderbird and Outlook look (relative to autoconfig.<domain> / the domain itself).
AUTOCONFIG_PATHS = ("mail/config-v1.1.xml", ".well-known/autoconfig/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = ("autodiscover/autodiscover.xml", "Autodiscover/Autodiscover.xml")


def export(server: Server, directory: Path) -> list[Path]:
    written: list[Path] = []
    files = {path: autoconfig(server) for path in AUTOCONFIG_PATHS}
    # A static file cannot read the request: it leaves the login name to Outlook's default,
    # the address. Serve it from `lotse serve` when users log in with the local part.
    files.update({path: autodiscover(server, None)[1] for path in AUTODISCOVER_PATHS})
    for relative, content in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written
