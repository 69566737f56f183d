"""Carries out `SendProfile`: builds (and, when configured, signs) the Apple profile and
explains in German how to install it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bot.engine.decision import Action, Attachment, Reply, SendProfile
from bot.knowledge.accounts import account_for
from bot.knowledge.models import Server
from bot.profiles.apple import mobileconfig, sign
from bot.turns import ActionContext, Handled

__all__ = ["MEDIA_TYPE", "ProfileHandler"]

MEDIA_TYPE = "application/x-apple-aspen-config"


class ProfileHandler:
    def __init__(
        self,
        server: Callable[[], Server],
        *,
        signing_certificate: Path | None = None,
        signing_key: Path | None = None,
    ) -> None:
        self._server = server  # the current server.yaml, also after a reload
        self._signing = (
            (signing_certificate, signing_key) if signing_certificate and signing_key else None
        )

    async def __call__(self, action: Action, context: ActionContext) -> Handled:
        assert isinstance(action, SendProfile)
        _ = context.translator.gettext
        server = self._server()
        account = account_for(server, action.address)
        profile = mobileconfig(server, account)
        if self._signing is not None:
            profile = await asyncio.to_thread(sign, profile, *self._signing)
        local = account.address.split("@")[0]
        filename = f"E-Mail-{local}.mobileconfig"
        text = _(
            "Hier ist Ihr Profil für {address}. So installieren Sie es:\n"
            "• iPhone/iPad: Datei öffnen, dann „Einstellungen“ – „Profil geladen“ – "
            "„Installieren“ und Ihr Passwort eingeben.\n"
            "• Mac: Datei doppelklicken, dann „Systemeinstellungen“ – „Datenschutz & "
            "Sicherheit“ – „Profile“ (ältere Versionen: „Profile“ direkt in den "
            "Systemeinstellungen) – „Installieren“.\n"
            "Das Profil legt ein neues Konto an. Entfernen Sie danach Ihr altes Konto für "
            "diese Adresse, sonst sehen Sie Ihre E-Mails doppelt."
        ).format(address=account.address)
        return Handled([Reply(text, attachment=Attachment(filename, profile, MEDIA_TYPE))])
