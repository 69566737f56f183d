"""Diagnosing the settings a user describes, against the repo's server.yaml (mbox1.belwue.de:
IMAP 993 SSL/TLS and 143 STARTTLS, POP3 995/110, SMTP 465 SSL/TLS and 587/25 STARTTLS)."""

from __future__ import annotations

import pytest

from bot.engine.advice import diagnose_settings
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Server

DE = translator("de")


@pytest.fixture(scope="module")
def server(knowledge: KnowledgeBase) -> Server:
    return knowledge.server


def test_port_993_with_starttls_is_explained_with_the_right_combinations(server: Server) -> None:
    assert diagnose_settings(server, "imap", 993, "starttls", DE) == (
        "Port 993 ist von Anfang an mit SSL/TLS verschlüsselt; STARTTLS passt dort nicht. "
        "Richtig ist entweder Port 993 mit SSL/TLS oder Port 143 mit STARTTLS."
    )


def test_port_587_with_ssl_tls_is_explained_the_other_way_round(server: Server) -> None:
    assert diagnose_settings(server, "smtp", 587, "tls", DE) == (
        "Port 587 beginnt unverschlüsselt und wird erst mit STARTTLS verschlüsselt; SSL/TLS "
        "passt dort nicht. Richtig ist entweder Port 587 mit STARTTLS oder Port 465 mit SSL/TLS."
    )


@pytest.mark.parametrize(
    ("protocol", "port", "security"),
    [
        ("imap", 993, "tls"),
        ("imap", 143, "starttls"),
        ("pop3", 995, "ssl"),
        ("smtp", 25, "STARTTLS"),
    ],
)
def test_a_right_combination_is_confirmed(
    server: Server, protocol: str, port: int, security: str
) -> None:
    answer = diagnose_settings(server, protocol, port, security, DE)
    assert answer is not None and answer.startswith("Das passt: Port ")


def test_a_port_of_another_protocol_is_pointed_out(server: Server) -> None:
    assert diagnose_settings(server, "imap", 995, "tls", DE) == (
        "Port 995 gehört auf mbox1.belwue.de zu POP3, nicht zu IMAP. Für IMAP stellen Sie "
        "Port 993 mit SSL/TLS oder Port 143 mit STARTTLS ein."
    )


def test_a_port_alone_gets_its_encryption(server: Server) -> None:
    assert diagnose_settings(server, None, 465, None, DE) == (
        "Port 465 ist für SMTP mit SSL/TLS vorgesehen."
    )


def test_encryption_without_a_port_gets_the_matching_port(server: Server) -> None:
    assert diagnose_settings(server, "pop3", None, "starttls", DE) == (
        "Für POP3 mit STARTTLS ist Port 110 richtig."
    )


def test_a_port_the_server_does_not_offer_gets_the_right_ones(server: Server) -> None:
    assert diagnose_settings(server, "imap", 1143, "starttls", DE) == (
        "Port 1143 ist für mbox1.belwue.de nicht vorgesehen. Für IMAP stellen Sie Port 993 mit "
        "SSL/TLS oder Port 143 mit STARTTLS ein."
    )


def test_the_seed_rules_name_the_protocol_of_a_known_port_the_server_lacks(
    server: Server,
) -> None:
    without_25 = server.model_copy(
        update={"endpoints": [e for e in server.endpoints if e.port != 25]}
    )
    answer = diagnose_settings(without_25, None, 25, "starttls", DE)
    assert answer == (
        "Port 25 ist für mbox1.belwue.de nicht vorgesehen. Für SMTP stellen Sie Port 465 mit "
        "SSL/TLS oder Port 587 mit STARTTLS ein."
    )


@pytest.mark.parametrize(
    ("protocol", "port", "security"),
    [(None, None, None), ("imap", None, None), (None, None, "tls")],
)
def test_nothing_to_compare_gives_nothing_to_say(
    server: Server, protocol: str | None, port: int | None, security: str | None
) -> None:
    assert diagnose_settings(server, protocol, port, security, DE) is None


def test_the_explanation_follows_the_locale(server: Server) -> None:
    assert diagnose_settings(server, "imap", 993, "starttls", translator("en")) == (
        "Port 993 is encrypted with SSL/TLS from the start; STARTTLS does not fit there. "
        "The right choice is either Port 993 with SSL/TLS or Port 143 with STARTTLS."
    )
