"""The check's result in words: finding messages, the short summary, the details.

German is the source language (`_ = tr.gettext`); dates through `tr.date`, numbers through
`tr.number`. Bullets and line breaks stay outside the translated texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.check.grading import BSI_KEYS, MOZ_CERT, MOZ_CIPHERS, MOZ_PROTOCOLS
from bot.check.report import worst
from bot.engine.advice import protocol_label, security_label
from bot.i18n import Translator

__all__ = [
    "ICONS",
    "cached_note",
    "codes_of",
    "details",
    "details_option_label",
    "endpoint_label",
    "failed_text",
    "finding_message",
    "short_label",
    "summary",
    "throttled_note",
]

if TYPE_CHECKING:
    from bot.check.report import CheckReport, EndpointResult, Finding, Status

ICONS: dict[str, str] = {"ok": "✅", "warning": "⚠️", "error": "❌"}


def endpoint_label(endpoint: EndpointResult, tr: Translator) -> str:
    return tr.gettext("Port {port} ({security})").format(
        port=endpoint.port, security=security_label(endpoint.security)
    )


def _starttls_command(protocol: str) -> str:
    return "STLS" if protocol == "pop3" else "STARTTLS"


def _status_word(status: Status, tr: Translator) -> str:
    _ = tr.gettext
    return {"ok": _("in Ordnung"), "warning": _("Warnung"), "error": _("Fehler")}[status]


# --- one finding -------------------------------------------------------------------------


def _reasons(codes: str, tr: Translator) -> str:
    _ = tr.gettext
    words = {
        "broken": _("veraltetes Verfahren"),
        "no_forward_secrecy": _("ohne Forward Secrecy"),
        "sha1_mac": _("Prüfsumme mit SHA-1"),
        "cbc": _("CBC-Modus statt AEAD"),
        "short_tag": _("verkürzte Prüfsumme (CCM_8)"),
        "not_listed": _("nicht in der Empfehlung des BSI"),
    }
    return ", ".join(words.get(code, code) for code in codes.split(",") if code)


def finding_message(finding: Finding, endpoint: EndpointResult, tr: Translator) -> str:
    """The finding in a sentence for the user (or an agent)."""
    _ = tr.gettext
    p = finding.params
    port = endpoint.port
    detail = str(p.get("detail", ""))
    cert = endpoint.tls.certificate if endpoint.tls else None
    code = finding.code
    if code == "unreachable":
        if detail == "refused":
            return _(
                "Port {port} ist nicht erreichbar: Der Server lehnt die Verbindung ab."
            ).format(port=port)
        if detail == "dns":
            return _("Der Servername {host} lässt sich nicht auflösen.").format(host=endpoint.host)
        return _("Port {port} ist nicht erreichbar ({detail}).").format(port=port, detail=detail)
    if code == "timeout":
        by_stage = {
            "connect": _("Port {port} antwortet nicht: Der Verbindungsaufbau dauerte zu lange."),
            "greeting": _(
                "Port {port} nimmt die Verbindung an, aber der Server meldet sich nicht "
                "(keine Begrüßung innerhalb der Frist)."
            ),
            "handshake": _("Port {port}: Die TLS-Verschlüsselung kam nicht rechtzeitig zustande."),
            "after_tls": _(
                "Port {port}: Nach dem Aufbau der Verschlüsselung antwortet der Server nicht mehr."
            ),
        }
        text = by_stage.get(
            str(p.get("stage")),
            _("Port {port}: Der Server antwortet vor der Verschlüsselung nicht mehr."),
        )
        return text.format(port=port)
    if code == "connection_closed":
        return _("Port {port}: Der Server hat die Verbindung unerwartet beendet.").format(port=port)
    if code == "unexpected_answer":
        return _(
            "Port {port}: Die Antwort des Servers passt nicht zu {protocol}: „{answer}“"
        ).format(port=port, protocol=protocol_label(endpoint.protocol), answer=detail)
    if code == "starttls_missing":
        command = _starttls_command(endpoint.protocol)
        if detail:
            return _("Der Server lehnt {command} auf Port {port} ab: „{answer}“").format(
                command=command, port=port, answer=detail
            )
        return _(
            "Der Server bietet auf Port {port} kein {command} an, obwohl die Verschlüsselung "
            "dort so vorgesehen ist."
        ).format(port=port, command=command)
    if code == "plaintext_auth_before_tls":
        return _(
            "Auf Port {port} bietet der Server schon vor {command} eine Anmeldung an, bei der "
            "das Passwort unverschlüsselt übertragen würde. Das trifft Mailprogramme, in denen "
            "die Verschlüsselung nicht eingeschaltet ist."
        ).format(port=port, command=_starttls_command(endpoint.protocol))
    if code == "tls_handshake_failed":
        return _(
            "Auf Port {port} kam keine TLS-Verbindung (TLS 1.2 oder neuer) zustande: {detail}"
        ).format(port=port, detail=detail)
    if code == "cert_untrusted":
        if p.get("reason") == "self_signed":
            return _("Das Zertifikat ist selbst signiert; Mailprogramme vertrauen ihm nicht.")
        return _(
            "Dem Zertifikat wird nicht vertraut: Es stammt nicht von einer bekannten "
            "Zertifizierungsstelle ({detail})."
        ).format(detail=detail)
    if code == "cert_expired" and cert is not None:
        if p.get("when") == "before":
            return _("Das Zertifikat ist erst ab {date} gültig.").format(
                date=tr.date(cert.not_before)
            )
        return _("Das Zertifikat ist am {date} abgelaufen.").format(date=tr.date(cert.not_after))
    if code == "cert_expires_soon" and cert is not None:
        return _("Das Zertifikat läuft bald ab: am {date}.").format(date=tr.date(cert.not_after))
    if code == "cert_hostname_mismatch" and cert is not None:
        return _("Das Zertifikat gilt nicht für {host}, sondern für: {names}.").format(
            host=endpoint.host, names=", ".join(cert.names) or "–"
        )
    if code == "weak_signature" and cert is not None:
        return _(
            "Das Zertifikat ist mit einem veralteten Verfahren signiert ({algorithm})."
        ).format(algorithm=cert.signature_algorithm)
    if code == "tls_version_outdated":
        return _("Der Server akzeptiert noch veraltete TLS-Versionen: {versions}.").format(
            versions=p.get("versions", "")
        )
    if code == "weak_cipher":
        if finding.severity == "info":
            return _(
                "Das Verschlüsselungsverfahren {cipher} ist sicher, steht aber nicht in der "
                "Empfehlung des BSI."
            ).format(cipher=p.get("cipher", ""))
        return _(
            "Das ausgehandelte Verschlüsselungsverfahren {cipher} gilt als schwach: {reasons}."
        ).format(cipher=p.get("cipher", ""), reasons=_reasons(str(p.get("reasons", "")), tr))
    if code == "weak_key":
        return _(
            "Der Schlüssel des Zertifikats ist kürzer als empfohlen: {key_type} mit {bits} Bit "
            "(empfohlen: mindestens {minimum} Bit)."
        ).format(key_type=p.get("key_type"), bits=p.get("bits"), minimum=p.get("minimum"))
    return short_label(finding, tr)


def short_label(finding: Finding, tr: Translator) -> str:
    """A few words for the summary line."""
    _ = tr.gettext
    labels: dict[str, Callable[[], str]] = {
        "unreachable": lambda: _("nicht erreichbar"),
        "timeout": lambda: _("keine Antwort"),
        "connection_closed": lambda: _("Verbindung abgebrochen"),
        "unexpected_answer": lambda: _("unerwartete Antwort"),
        "starttls_missing": lambda: _("kein STARTTLS"),
        "plaintext_auth_before_tls": lambda: _("Anmeldung ohne Verschlüsselung möglich"),
        "tls_handshake_failed": lambda: _("TLS-Fehler"),
        "cert_untrusted": lambda: _("Zertifikat nicht vertrauenswürdig"),
        "cert_expired": lambda: _("Zertifikat abgelaufen"),
        "cert_expires_soon": lambda: _("Zertifikat läuft bald ab"),
        "cert_hostname_mismatch": lambda: _("Zertifikat passt nicht zum Servernamen"),
        "weak_signature": lambda: _("veraltete Zertifikatssignatur"),
        "tls_version_outdated": lambda: _("veraltete TLS-Versionen erlaubt"),
        "weak_cipher": lambda: _("schwache Verschlüsselung"),
        "weak_key": lambda: _("zu kurzer Schlüssel"),
    }
    label = labels.get(finding.code)
    return label() if label else finding.code


# --- the whole report --------------------------------------------------------------------


def _groups(report: CheckReport) -> dict[str, list[EndpointResult]]:
    groups: dict[str, list[EndpointResult]] = {}
    for endpoint in report.endpoints:
        groups.setdefault(endpoint.protocol, []).append(endpoint)
    return groups


def _group_status(endpoints: list[EndpointResult]) -> Status:
    return worst([e.status for e in endpoints])


def _endpoint_part(endpoint: EndpointResult, tr: Translator) -> str:
    label = endpoint_label(endpoint, tr)
    problems = [short_label(f, tr) for f in endpoint.findings if f.severity != "info"]
    if not problems:
        return tr.gettext("{endpoint} in Ordnung").format(endpoint=label)
    return f"{label}: {', '.join(problems)}"


def summary(report: CheckReport, tr: Translator) -> str:
    """A heading, one line per protocol, and what it means for the user."""
    _ = tr.gettext
    seconds = tr.number(round(report.duration_ms / 1000, 1))
    lines = [
        _("Verbindungstest für {server} ({seconds} s):").format(
            server=report.server, seconds=seconds
        )
    ]
    for protocol, endpoints in _groups(report).items():
        parts = "; ".join(_endpoint_part(e, tr) for e in endpoints)
        icon = ICONS[_group_status(endpoints)]
        lines.append(f"{icon} {protocol_label(protocol)}: {parts}")
    lines.append("")
    conclusions = {
        "ok": _(
            "Alle Ports funktionieren und sind richtig verschlüsselt. Wenn Ihr Mailprogramm "
            "trotzdem keine Verbindung bekommt, liegt es wahrscheinlich an den Einstellungen dort."
        ),
        "warning": _(
            "Die Verbindungen funktionieren. Die Hinweise betreffen die Sicherheit des Servers, "
            "nicht Ihre Einstellungen."
        ),
        "error": _(
            "Mindestens ein Port hat ein Problem auf der Seite des Servers. Das können Sie nicht "
            "selbst beheben; bitte melden Sie es dem Helpdesk."
        ),
    }
    down = {"unreachable", "timeout"}
    if report.endpoints and all(codes_of(e) & down for e in report.endpoints):
        # Nothing answered at all: an outage (or our network), not a setting of the server.
        lines.append(
            _(
                "Der Mailserver ist gerade überhaupt nicht erreichbar, vermutlich eine Störung. "
                "Bitte versuchen Sie es später noch einmal oder wenden Sie sich an den Helpdesk."
            )
        )
    else:
        lines.append(conclusions[report.overall])
    return "\n".join(lines)


def codes_of(endpoint: EndpointResult) -> set[str]:
    return {finding.code for finding in endpoint.findings}


def details(report: CheckReport, tr: Translator) -> list[str]:
    """One text per protocol (short enough for one chat message each)."""
    return [
        "\n\n".join([protocol_label(protocol), *(_endpoint_details(e, tr) for e in endpoints)])
        for protocol, endpoints in _groups(report).items()
    ]


def _endpoint_details(endpoint: EndpointResult, tr: Translator) -> str:
    _ = tr.gettext
    head = f"{ICONS[endpoint.status]} {endpoint_label(endpoint, tr)}: "
    head += _status_word(endpoint.status, tr)
    facts: list[str] = []
    if endpoint.connect_ms is not None:
        facts.append(_("Verbindung in {ms} ms").format(ms=tr.number(round(endpoint.connect_ms, 1))))
    tls = endpoint.tls
    if tls is not None:
        facts.append(_("{version} mit {cipher}").format(version=tls.version, cipher=tls.cipher))
        cert = tls.certificate
        if cert is not None:
            facts.append(
                _("Zertifikat für {subject}, ausgestellt von {issuer}, gültig bis {date}").format(
                    subject=cert.subject, issuer=cert.issuer, date=tr.date(cert.not_after)
                )
            )
            facts.append(
                _("Schlüssel: {key_type} mit {bits} Bit, Signatur: {algorithm}").format(
                    key_type=cert.key_type, bits=cert.key_bits, algorithm=cert.signature_algorithm
                )
            )
    if endpoint.http_status:
        facts.append(_("HTTP-Antwort: {status}").format(status=endpoint.http_status))
    known = {v: ok for v, ok in endpoint.legacy_tls.items() if ok is not None}
    if known and not any(known.values()):
        facts.append(_("TLS 1.0 und 1.1 werden abgelehnt."))
    if endpoint.grades:
        facts.append(
            _("Bewertung: BSI TR-02102-2 {bsi}, Mozilla „intermediate“ {mozilla}").format(
                bsi=_status_word(endpoint.grades.get("bsi", "ok"), tr),
                mozilla=_status_word(endpoint.grades.get("mozilla", "ok"), tr),
            )
        )
    lines = [head, *(f"  • {fact}" for fact in facts)]
    for finding in endpoint.findings:
        icon = {"info": "ℹ️", "warning": "⚠️", "error": "❌"}[finding.severity]
        names = "; ".join(_rule_name(rule, tr) for rule in finding.rules)
        rules = _("Regel: {rules}").format(rules=names)
        lines.append(f"  {icon} {finding_message(finding, endpoint, tr)} ({rules})")
    return "\n".join(lines)


def _rule_name(rule: str, tr: Translator) -> str:
    """A rule id as the reader says it: the ids with German words are translated."""
    _ = tr.gettext
    names = {
        BSI_KEYS: _("BSI TR-02102-1 (Schlüssellängen)"),
        MOZ_PROTOCOLS: _("Mozilla intermediate: Protokolle"),
        MOZ_CIPHERS: _("Mozilla intermediate: Cipher-Suiten"),
        MOZ_CERT: _("Mozilla intermediate: Zertifikat"),
    }
    return names.get(rule, rule)


# --- notes for the chat ------------------------------------------------------------------


def cached_note(age_seconds: float, tr: Translator) -> str:
    return tr.gettext("Ergebnis von vor {seconds} Sekunden.").format(
        seconds=tr.number(round(age_seconds))
    )


def throttled_note(wait_seconds: float, tr: Translator) -> str:
    return tr.gettext(
        "Sie haben den Server gerade erst prüfen lassen; hier ist Ihr letztes Ergebnis. "
        "Einen neuen Test kann ich in {seconds} Sekunden starten."
    ).format(seconds=tr.number(max(1, round(wait_seconds))))


def details_option_label(tr: Translator) -> str:
    return tr.gettext("Details anzeigen")


def failed_text(tr: Translator) -> str:
    return tr.gettext(
        "Der Verbindungstest selbst ist leider fehlgeschlagen. Bitte versuchen Sie es später "
        "noch einmal oder wenden Sie sich an den Helpdesk."
    )
