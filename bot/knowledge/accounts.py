"""Whose account an address is: checked against the mail domains of `server.yaml`, with the
login name its rule gives (profiles are made for it; the engine answers a foreign address)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge.models import Server

__all__ = ["Account", "ForeignAddress", "account_for", "find_address"]

# Deliberately plain: local part of letters, digits and . _ % + -, one @, a domain.
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}$")


class ForeignAddress(ValueError):
    """The address is not one of the mail service's; no profile is made for it."""


@dataclass(frozen=True)
class Account:
    address: str
    login: str  # what the user logs in with, by the server's login-name rule

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


def find_address(text: str) -> str | None:
    """The first thing in `text` that looks like a mail address."""
    for word in text.replace(",", " ").replace(";", " ").split():
        word = word.strip("<>()[]\"'.:")
        if _ADDRESS.match(word):
            return word
    return None


def account_for(server: Server, address: str) -> Account:
    """The account for `address`; raises ForeignAddress for other domains or malformed ones."""
    address = address.strip()
    if not _ADDRESS.match(address):
        raise ForeignAddress(address)
    local, domain = address.rsplit("@", 1)
    address = f"{local}@{domain.lower()}"
    if domain.lower() not in server.mail_domains:
        raise ForeignAddress(address)
    return Account(address, address if server.login_name == "address" else local)
