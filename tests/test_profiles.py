"""Configuration profiles and autoconfig files, all made from server.yaml alone."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from bot.conversation import ConversationService
from bot.knowledge.accounts import ForeignAddress, account_for
from bot.knowledge.base import KnowledgeBase
from bot.profiles.apple import mobileconfig, sign
from bot.profiles.export import export
from bot.profiles.outlook import OUTLOOK_NS, REQUEST_NS, address_from_request, autodiscover
from bot.profiles.thunderbird import autoconfig
from tests.support import REPO, Chat

ADDRESS = "erika.muster@uni-beispiel.de"


def test_the_apple_profile_sets_up_imap_and_smtp_with_ssl_and_holds_no_password(
    knowledge: KnowledgeBase,
) -> None:
    server = knowledge.server
    profile = plistlib.loads(mobileconfig(server, account_for(server, ADDRESS)))
    assert profile["PayloadType"] == "Configuration"
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == ADDRESS
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        server.host,
        993,
    )
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (
        server.host,
        465,
    )
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == ADDRESS  # login_name: address
    assert not any("password" in key.lower() and "Same" not in key for key in mail)


def test_with_local_part_logins_the_profile_and_autoconfig_use_the_local_part(
    knowledge: KnowledgeBase,
) -> None:
    server = knowledge.server.model_copy(update={"login_name": "local_part"})
    profile = plistlib.loads(mobileconfig(server, account_for(server, ADDRESS)))
    assert profile["PayloadContent"][0]["IncomingMailServerUsername"] == "erika.muster"
    assert b"%EMAILLOCALPART%" in autoconfig(server)


def test_addresses_outside_the_mail_domains_get_no_profile(knowledge: KnowledgeBase) -> None:
    for foreign in ("someone@gmail.com", "not-an-address", "x@uni-beispiel.de.evil.org"):
        with pytest.raises(ForeignAddress):
            account_for(knowledge.server, foreign)


def test_a_signed_profile_is_cms_that_openssl_verifies(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=Lotse Test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    plain = mobileconfig(knowledge.server, account_for(knowledge.server, ADDRESS))
    signed = tmp_path / "signed.mobileconfig"
    signed.write_bytes(sign(plain, cert, key))
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(signed),
         "-CAfile", str(cert), "-purpose", "any"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert verified.stdout == plain


def test_thunderbird_autoconfig_lists_every_endpoint_with_its_socket_type(
    knowledge: KnowledgeBase,
) -> None:
    root = ET.fromstring(autoconfig(knowledge.server))
    provider = root.find("emailProvider")
    assert provider is not None
    assert [d.text for d in provider.findall("domain")] == knowledge.server.mail_domains
    servers = provider.findall("incomingServer") + provider.findall("outgoingServer")
    listed = {(s.get("type"), s.findtext("port"), s.findtext("socketType")) for s in servers}
    expected = {
        (e.protocol, str(e.port), {"tls": "SSL", "starttls": "STARTTLS"}[e.security])
        for e in knowledge.server.endpoints
        if e.protocol != "eas"
    }
    assert listed == expected
    assert provider.findall("incomingServer")[0].findtext("port") == "993"


def test_outlook_autodiscover_answers_the_request_outlook_sends(knowledge: KnowledgeBase) -> None:
    request = (
        f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}">'
        f"<Request><EMailAddress>{ADDRESS}</EMailAddress><AcceptableResponseSchema>"
        f"{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>"
    ).encode()
    address = address_from_request(request)
    assert address == ADDRESS
    status, body = autodiscover(knowledge.server, address)
    assert status == 200
    ns = {"o": OUTLOOK_NS}
    protocols = ET.fromstring(body).findall(".//o:Protocol", ns)
    found = [
        (p.findtext("o:Type", namespaces=ns), p.findtext("o:Port", namespaces=ns),
         p.findtext("o:SSL", namespaces=ns), p.findtext("o:LoginName", namespaces=ns))
        for p in protocols
    ]  # fmt: skip
    assert found == [("IMAP", "993", "on", ADDRESS), ("SMTP", "465", "on", ADDRESS)]
    _, refused = autodiscover(knowledge.server, "someone@gmail.com")
    assert ET.fromstring(refused).findtext(".//o:ErrorCode", namespaces=ns) == "600"


def test_autoconfig_export_writes_the_files_where_clients_look(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "autoconfig", "export", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "config-v1.1.xml" in result.stdout
    for relative in (
        "mail/config-v1.1.xml",
        ".well-known/autoconfig/mail/config-v1.1.xml",
        "autodiscover/autodiscover.xml",
    ):
        ET.parse(tmp_path / relative)  # well-formed


def test_export_is_built_from_the_given_server_only(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    other = knowledge.server.model_copy(update={"host": "mail.example.net"})
    export(other, tmp_path)
    assert b"mail.example.net" in (tmp_path / "mail/config-v1.1.xml").read_bytes()
    assert b"mbox1.belwue.de" not in (tmp_path / "autodiscover/autodiscover.xml").read_bytes()


async def test_an_iphone_user_can_take_a_profile_instead_of_the_steps(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("iPhone mit iOS 12")
    assert "Profil installieren" in chat.options
    await chat.tap("Profil installieren")
    assert "Für welche E-Mail-Adresse?" in chat.text
    await chat.say("jemand@gmail.com")
    assert "nur für Adressen des Mail-Service" in chat.text
    await chat.say(f"meine Adresse ist {ADDRESS}")
    (with_file,) = [r for r in chat.replies if r.attachment is not None]
    assert with_file.attachment is not None
    assert with_file.attachment.filename == "E-Mail-erika.muster.mobileconfig"
    assert plistlib.loads(with_file.attachment.content)["PayloadContent"][0]["EmailAddress"] == (
        ADDRESS
    )
    assert "Entfernen Sie danach Ihr altes Konto" in with_file.text
    assert "Was möchten Sie als Nächstes tun?" in chat.text
    transcript = await service.store.transcript(chat.channel, chat.user)
    assert any("[Datei: E-Mail-erika.muster.mobileconfig]" in m.text for m in transcript)


def test_the_terminal_chat_writes_the_profile_to_a_file(tmp_path: Path) -> None:
    env = dict(os.environ, LOTSE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--json", "--user", "p"],
        input=f"iPhone mit iOS 12\nProfil installieren\n{ADDRESS}\n",
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    (saved,) = [r["file"] for r in replies if "file" in r]
    assert Path(saved) == tmp_path / "E-Mail-erika.muster.mobileconfig"
    assert plistlib.loads(Path(saved).read_bytes())["PayloadType"] == "Configuration"
