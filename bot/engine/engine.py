"""The conversation engine: state + understood message + knowledge -> new state + replies.

Channel-neutral and free of I/O. Side effects (connection check, hand-over, deleting data) are
returned as actions for the conversation service to dispatch.

The flow: greeting -> program -> version (only when the program has several guides) ->
protocol (only when the guide differs by protocol) -> steps -> finish (settings, offers).
From any stage the user can restart, go back, repeat, ask for an explanation or the settings,
correct the program, ask for a check or a human, or have their data deleted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Literal

from bot.commands import menu
from bot.engine.advice import diagnose_settings
from bot.engine.decision import (
    Decision,
    DeleteUserData,
    HandOver,
    HandOverReason,
    Reply,
    RunCheck,
    SendProfile,
)
from bot.engine.state import ConversationState, Option, Stage
from bot.gate import MAX_MESSAGE_LENGTH
from bot.i18n import SUPPORTED_LOCALES, Translator, pick_locale, translator
from bot.knowledge import render
from bot.knowledge.accounts import ForeignAddress, account_for, find_address
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Computer, FaqEntry, Guide, Step, TroubleshootingEntry
from bot.knowledge.versions import covers, guide_for_version
from bot.normalize import normalize, words
from bot.numbers import ascii_number
from bot.understanding.types import Understanding

__all__ = ["LANGUAGE_PAYLOAD", "Engine", "Rejection", "secret_warning"]

Rejection = Literal["too_long", "unreadable", "secret"]
LANGUAGE_PAYLOAD = "sprache:"  # an option that switches the language, e.g. "sprache:en"


def secret_warning(tr: Translator) -> str:
    """Said when the gate removed a password. True whatever was removed: it never claims that
    nothing of a password was kept, only what the bot did with what it recognised."""
    return tr.gettext(
        "Bitte schicken Sie mir niemals Ihr Passwort – ich brauche es nicht. Was wie ein "
        "Passwort aussah, habe ich aus Ihrer Nachricht entfernt, bevor ich sie gespeichert oder "
        "weitergegeben habe. Falls es Ihr echtes Passwort war, ändern Sie es bitte "
        "vorsichtshalber."
    )


class Engine:
    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge

    # --- entry points ------------------------------------------------------------------

    def decide(self, state: ConversationState, message: Understanding, tr: Translator) -> Decision:
        return _Turn(self.knowledge, dataclasses.replace(state), tr).handle(message)

    def welcome(
        self,
        state: ConversationState,
        tr: Translator,
        *,
        guide: str | None = None,
        last_seen: str | None = None,
    ) -> Decision:
        """The opening of a session: a greeting, or where the user stood when they come back."""
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        return turn.welcome(guide, last_seen)

    def reject(self, state: ConversationState, reason: Rejection, tr: Translator) -> Decision:
        """A message the bot will not process: too long, unreadable, or containing a password."""
        return _Turn(self.knowledge, dataclasses.replace(state), tr).reject(reason)

    def unknown_command(
        self, state: ConversationState, tr: Translator, commands: Sequence[str]
    ) -> Decision:
        """A "/word" the bot does not know: the commands it does know, then the question again."""
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        turn.say(
            tr.gettext(
                "Diesen Befehl kenne ich nicht. Ich verstehe diese Befehle: {commands}"
            ).format(commands=", ".join(f"/{command}" for command in commands))
        )
        turn.ask()
        return turn.done()

    def help(self, state: ConversationState, tr: Translator) -> Decision:
        """What the user can say, then the current question again."""
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        turn.help()
        return turn.done()

    def choose_language(self, state: ConversationState, tr: Translator) -> Decision:
        """Offer the languages the bot speaks (`/sprache`)."""
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        options = [
            Option(translator(locale).language_name.capitalize(), f"{LANGUAGE_PAYLOAD}{locale}")
            for locale in SUPPORTED_LOCALES
        ]
        turn.say(tr.gettext("In welcher Sprache möchten Sie schreiben?"), options)
        return turn.done()

    def switch_language(self, state: ConversationState, locale: str) -> Decision:
        """Speak `locale` from now on, and ask the current question again in it."""
        state = dataclasses.replace(
            state, locale=pick_locale(locale, state.locale), locale_settled=True
        )
        tr = translator(state.locale)
        turn = _Turn(self.knowledge, state, tr)
        turn.say(tr.gettext("Gern, ab jetzt schreibe ich auf Deutsch."))
        turn.ask()
        return turn.done()

    def resume(
        self, state: ConversationState, tr: Translator, *, guide: str | None, intro: str
    ) -> Decision:
        """Lotse speaks first (an agent handed the user back): the intro, then the start of
        `guide` (from scratch) or the current question."""
        if guide is not None and guide in self.knowledge.guides:
            state = state.fresh()
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        turn.say(intro)
        if guide is not None and guide in self.knowledge.guides:
            turn.open_guide(guide)
        else:
            turn.ask()
        return turn.done()

    def prompt(self, state: ConversationState, tr: Translator) -> Decision:
        """Ask the current question again (after an action's own replies, for example)."""
        turn = _Turn(self.knowledge, dataclasses.replace(state), tr)
        turn.ask()
        return turn.done()


class _Turn:
    """One turn's work; collects replies and actions on the way."""

    def __init__(self, knowledge: KnowledgeBase, state: ConversationState, tr: Translator) -> None:
        self.kb = knowledge
        self.state = state
        self.tr = tr
        self._ = tr.gettext
        self.decision = Decision(state)
        self._repair()
        # Where the user stands: answers that miss the question are counted per point.
        self._point = self._where()

    def _repair(self) -> None:
        """A conversation saved under knowledge that has changed since (and was not kept)."""
        if self.state.guide is None:
            return
        guide = self.kb.guides.get(self.state.guide)
        if guide is None:
            self.state = self.state.fresh()
            self.say(
                self._(
                    "Die Anleitung, bei der wir waren, gibt es in dieser Form nicht mehr. "
                    "Fangen wir neu an."
                )
            )
            return
        last = len(guide.steps_for(self.state.protocol)) - 1
        self.state.step = max(0, min(self.state.step, last))

    # --- plumbing ----------------------------------------------------------------------

    def say(self, text: str, options: list[Option] | None = None) -> None:
        self.decision.outputs.append(Reply(text, tuple(options or ())))
        if options is not None:
            self.state.options = list(options)

    def done(self) -> Decision:
        if self._where() != self._point:
            self.state.misses = 0
        self.decision.state = self.state
        return self.decision

    def _where(self) -> tuple[Stage, str | None, int]:
        return (self.state.stage, self.state.guide, self.state.step)

    def _missed(self) -> int:
        """Count one more answer that missed the open question; returns how many so far."""
        self.state.misses += 1
        return self.state.misses

    @property
    def guide(self) -> Guide | None:
        return self.kb.guides.get(self.state.guide) if self.state.guide else None

    # --- the turn ----------------------------------------------------------------------

    def handle(self, message: Understanding) -> Decision:
        intent = message.intent
        entities = message.entities
        if message.alternative and message.alternative != intent and self._ask_which(message):
            return self.done()
        if self.state.stage is Stage.CONFIRM_DELETE:
            return self._confirm_delete(intent == "affirm")
        at_address = self.state.stage is Stage.PROFILE_ADDRESS
        if at_address and (intent == "deny" or find_address(message.text)):
            # Checked before the intents: "test@uni-beispiel.de" is an address, not a request.
            self._profile_address(message)
            return self.done()
        if entities.get("profile") == "ask" and self._offers_profile():
            self._ask_profile_address()
            return self.done()
        if entities.get("profile") == "ask" and self._program_offers_profile(message):
            # "Kann ich fürs iPhone nicht einfach ein Profil laden?": the offer the guide has.
            if self.state.stage is Stage.START:
                self.say(self._greeting_text())
            self.state.program = self._program_named(message)
            self._ask_profile_address()
            return self.done()
        self._fill_slots(message)
        handlers: dict[str, Callable[[Understanding], None]] = {
            "delete_data": self._ask_delete,
            "restart": self._restart,
            "request_check": self._request_check,
            "request_human": self._request_human,
            "bot_challenge": self._bot_challenge,
            "thank": self._thank,
            "goodbye": self._goodbye,
            "ask_settings": self._settings,
            "ask_explanation": self._explain,
        }
        topic = entities.get("topic")
        asked_step = ascii_number(entities["step"], 2) if "step" in entities else None
        if intent in ("delete_data", "restart", "bot_challenge"):
            handlers[intent](message)
        elif topic == "password":
            self._password_elsewhere()
        elif intent == "request_human" and self._names_a_program(message):
            # "nothing works on my Android phone – can I talk to a person?": the person wins;
            # the program is kept for the guide offered beside the helpdesk.
            self.state.program = self._program_named(message)
            self._request_human(message)
        elif entities.get("protocol") == "eas" and intent not in _REQUESTS:
            self._answer_faq("exchange-activesync")  # a protocol without a guide: its fact
        elif (
            topic == "elsewhere" and intent not in _REQUESTS and not self._names_a_program(message)
        ):
            self._off_topic()
            self._ask_what_next_or_continue()
        elif topic == "password_again" and intent not in _REQUESTS:
            if self._names_a_program(message):
                self._inform(message)  # answers the question first, then keeps the program
            else:
                self._answer_faq("password-unchanged")
        elif topic == "contact" and intent != "request_check":
            self._contact()
        elif topic == "help":
            self.help()
        elif topic == "wait":
            self.say(self._("Lassen Sie sich Zeit – schreiben Sie einfach, wenn Sie so weit sind."))
        elif (
            topic == "username"
            and (
                intent in ("ask_explanation", "out_of_scope", "inform")
                # "was kommt bei Anmeldename rein?" is a question, not a complaint about the step
                or (intent == "step_problem" and _is_question(message.text))
            )
            and not {"trouble", "error"} & entities.keys()  # the error's answer names it too
        ):
            self._username()
        elif entities.get("client") in self.kb.cards and intent not in _REQUESTS:
            self._show_card(entities["client"])
        elif self._names_a_program(message) and not self._names_the_current_guide(message):
            self._inform(message)
        elif entities.get("device") == "generic" and self._asks_platform(message):
            self._ask_platform()
        elif self._computer(message) is not None and self._asks_platform(message):
            self._ask_program_on(entities["device"])
        elif self._reports_an_error(message) and intent not in _REQUESTS_BESIDES_A_CHECK:
            # "Identität … kann nicht überprüft werden" is an error message, not a request.
            if self._is_complaint(message) or self.state.stage is Stage.GUIDE:
                self._complaint(message)
            else:
                self._trouble(message)
        elif self._answers_the_question(message):
            # "keine Ahnung", "egal" answer the open question whatever intent came with them.
            self._answer_question(message)
        elif self._closes_mid_guide(message):
            self._thanks_mid_guide()
        elif self._asks_a_question_mid_guide(message):
            pass
        elif asked_step is not None and self.guide and self.state.stage in _IN_GUIDE:
            self._go_to_step(asked_step)
        elif self._is_complaint(message):
            self._complaint(message)
        elif self._diagnose_settings(message):
            pass
        elif intent in handlers:
            handlers[intent](message)
        elif self.state.stage is Stage.PROFILE_ADDRESS:
            self._profile_address(message)
        elif entities.get("protocol") in ("imap", "pop3") and self.state.stage in (
            Stage.PROTOCOL,
            *_IN_GUIDE,
        ):
            self._set_protocol(entities["protocol"])
        elif self.state.stage is Stage.PROTOCOL and _incoming_protocol(self.kb, entities):
            self._set_protocol(_incoming_protocol(self.kb, entities) or "imap")
        elif "version" in entities and self.state.program and self._may_be_version(message):
            self._set_version(entities["version"])
        elif intent == "greet":
            self._greet()
        elif self.state.stage in _QUESTIONS:
            self._answer_question(message)
        elif self.state.stage is Stage.GUIDE:
            self._in_guide(message)
        else:
            self._finished(message)
        return self.done()

    def welcome(self, guide: str | None, last_seen: str | None) -> Decision:
        _ = self._
        if guide and guide in self.kb.guides:
            self.say(_("Hallo! Ich bin Lotse und helfe Ihnen, die Verschlüsselung einzuschalten."))
            self._choose_guide(self.kb.guides[guide], version=None, note=None)
        elif self.state.stage in (Stage.START, Stage.PROGRAM):
            self.state.stage = Stage.PROGRAM
            self.say(self._greeting_text())
            self._ask_program()
        else:
            if last_seen:
                text = _("Willkommen zurück! Am {date} waren wir hier stehen geblieben:")
                self.say(text.format(date=last_seen))
            else:
                self.say(_("Willkommen zurück! Hier waren wir stehen geblieben:"))
            self.ask()
        return self.done()

    def reject(self, reason: Rejection) -> Decision:
        _ = self._
        if reason == "secret":
            self.say(secret_warning(self.tr))
        elif reason == "too_long":
            self.say(
                _(
                    "Ihre Nachricht ist leider zu lang für mich (mehr als {limit} Zeichen). "
                    "Bitte beschreiben Sie Ihr Anliegen in ein, zwei Sätzen."
                ).format(limit=self.tr.number(MAX_MESSAGE_LENGTH))
            )
        else:
            self.say(
                _(
                    "Diese Nachricht kann ich leider nicht lesen. "
                    "Bitte schreiben Sie mir in ganzen Worten."
                )
            )
        self.ask()
        return self.done()

    # --- asking ------------------------------------------------------------------------

    def ask(self) -> None:
        """Ask the question that belongs to the current stage."""
        stage = self.state.stage
        if stage in (Stage.START, Stage.PROGRAM):
            self._ask_program()
        elif stage is Stage.VERSION:
            self._ask_version()
        elif stage is Stage.PROTOCOL:
            self._ask_protocol()
        elif stage is Stage.GUIDE:
            self._show_step()
        elif stage is Stage.FINISHED:
            self._ask_what_next()
        elif stage is Stage.PROFILE_ADDRESS:
            self._ask_profile_address()
        else:
            self._ask_delete_confirmation()

    def _greeting_text(self) -> str:
        return self._(
            "Hallo! Ich bin Lotse, der Chatbot des Mail-Service. Ich helfe Ihnen Schritt für "
            "Schritt, die Verschlüsselung (TLS/SSL) in Ihrem Mailprogramm einzuschalten."
        )

    def _program_options(self) -> list[Option]:
        options = [Option(p.name, f"inform:client={p.id}") for p in self.kb.programs.values()]
        options.append(Option(self._("Anderes Programm"), "inform:answer=other"))
        return options

    def _ask_program(self) -> None:
        self.state.stage = Stage.PROGRAM
        self.say(self._("Welches Mailprogramm benutzen Sie?"), self._program_options())

    def _ask_version(self, *, with_person: bool = False) -> None:
        _ = self._
        assert self.state.program is not None
        program = self.kb.programs[self.state.program]
        options = [
            Option(guide.localized(self.tr.locale).label, f"inform:guide={guide.id}")
            for guide in self.kb.guides_of_program[program.id]
        ]
        options.append(Option(_("Weiß ich nicht"), "inform:answer=unknown"))
        if with_person:
            options.append(self._person_option())
        self.state.stage = Stage.VERSION
        self.say(_("Welche Version von {program} haben Sie?").format(program=program.name), options)

    def _ask_protocol(self, *, with_person: bool = False) -> None:
        _ = self._
        self.state.stage = Stage.PROTOCOL
        options = [
            Option("IMAP", "inform:protocol=imap"),
            Option("POP3", "inform:protocol=pop3"),
            Option(_("Weiß ich nicht"), "inform:answer=unknown"),
        ]
        if with_person:
            options.append(self._person_option())
        self.say(_("Rufen Sie Ihre E-Mails per IMAP oder per POP3 ab?"), options)

    def _programs_or_person(self) -> list[Option]:
        return [*self._program_options()[:-1], self._person_option()]

    def _person_option(self) -> Option:
        return Option(self._("Mit einem Menschen sprechen"), "request_human")

    def _step_options(self) -> list[Option]:
        _ = self._
        options = [Option(_("Erledigt – weiter"), "next_step")]
        if self.state.step > 0:
            options.append(Option(_("Zurück"), "previous_step"))
        options.append(Option(_("Klappt nicht"), "step_problem"))
        guide = self.guide
        if guide is not None and guide.offers_profile and self.kb.server.mail_domains:
            options.append(Option(_("Profil installieren"), "inform:profile=ask"))
        return options

    def _program_offers_profile(self, message: Understanding) -> bool:
        """The program the message names has a profile in every one of its guides."""
        if self.guide is not None or not self._names_a_program(message):
            return False
        guides = self.kb.guides_of_program[self._program_named(message)]
        return bool(guides) and all(guide.offers_profile for guide in guides)

    def _offers_profile(self) -> bool:
        if self.guide is not None:
            return self.guide.offers_profile
        card = self.state.card
        return card is not None and "apple-profile" in self.kb.settings_card(card).setup

    def _show_step(self) -> None:
        guide = self.guide
        assert guide is not None
        self.state.stage = Stage.GUIDE
        self.say(
            render.step_text(guide, self.state.protocol, self.state.step, self.tr),
            self._step_options(),
        )

    def _what_next_options(self) -> list[Option]:
        _ = self._
        return [
            Option(_("Verbindung testen"), "request_check"),
            Option(_("Mit einem Menschen sprechen"), "request_human"),
            Option(_("Andere Anleitung"), "restart"),
            Option(_("Fertig, danke"), "goodbye"),
        ]

    def _ask_what_next(self) -> None:
        self.say(self._("Was möchten Sie als Nächstes tun?"), self._what_next_options())

    def _ask_delete_confirmation(self) -> None:
        _ = self._
        self.say(
            _(
                "Soll ich wirklich alles löschen, was ich über Sie gespeichert habe "
                "(Gesprächsverlauf und Stand)? Das lässt sich nicht rückgängig machen."
            ),
            [Option(_("Ja, alles löschen"), "affirm"), Option(_("Nein, behalten"), "deny")],
        )

    # --- program, version, protocol ----------------------------------------------------

    def _ask_which(self, message: Understanding) -> bool:
        """Two intents scored alike: let the user pick instead of guessing.

        Returns False when one of them cannot be offered as an option (then the better one wins).
        """
        labels = _intent_labels(self.tr)
        candidates = [i for i in (message.intent, message.alternative) if i in labels]
        if len(candidates) < 2:
            return False
        self.say(self._("Meinten Sie …?"), [Option(labels[i], i) for i in candidates])
        return True

    def _diagnose_settings(self, message: Understanding) -> bool:
        """ "Ich habe Port 993 mit STARTTLS eingestellt": compare with server.yaml and explain."""
        advice = self._advice(message)
        if advice is None:
            return False
        self.say(advice)
        self._ask_what_next_or_continue()
        return True

    def _advice(self, message: Understanding) -> str | None:
        """What server.yaml says about a port the user names together with an encryption or
        a protocol; None otherwise. Requests such as "Mensch" or "prüfen" in the same message
        still win."""
        entities = message.entities
        asked = message.intent in ("ask_settings", "ask_explanation") or _is_question(message.text)
        if "port" not in entities or not ({"security", "protocol"} & entities.keys() or asked):
            # A bare port answers a question ("bei mir steht 993"); asked about, it gets its fact.
            return None
        port = ascii_number(entities["port"], 5)
        if port is None or message.intent in (
            "request_check",
            "request_human",
            "delete_data",
            "restart",
        ):
            return None
        return diagnose_settings(
            self.kb.server,
            entities.get("protocol"),
            port,
            entities.get("security"),
            self.tr,
        )

    def _fill_slots(self, message: Understanding) -> None:
        """Keep what the user said before it is asked: the protocol ("Outlook 2016 mit IMAP",
        "bei mir steht 993") and, while no program is known, the version ("ich hab Version
        2007" -> used once the program is named)."""
        entities = message.entities
        if self.state.stage in _IN_GUIDE:
            return  # mid-guide a protocol changes the steps: `_set_protocol` does that
        protocol = _incoming_protocol(self.kb, entities)
        if protocol is not None:
            self.state.protocol = protocol
        if (
            self.state.guide is None
            and "version" in entities
            and not self._names_a_program(message)
        ):
            self.state.version = entities["version"]

    def _names_the_current_guide(self, message: Understanding) -> bool:
        """ "Und wo finde ich das in Outlook?" inside the Outlook guide: the program is named,
        but nothing new is said about it; the rest of the message decides."""
        return (
            self.state.stage in _IN_GUIDE
            and message.guide is None
            and message.entities.get("client") == self.state.program
            and not {"version", "protocol", "port", "error", "trouble"} & message.entities.keys()
        )

    def _names_a_program(self, message: Understanding) -> bool:
        return bool(message.guide or message.entities.get("client") in self.kb.programs)

    def _program_named(self, message: Understanding) -> str:
        if message.guide:
            return self.kb.program_of_guide[message.guide]
        program_id = message.entities.get("client")
        assert program_id is not None
        return program_id

    def _answer_asides(self, message: Understanding) -> None:
        """Questions asked beside the program ("welche Ports …, und bleibt mein
        Benutzername?"): each gets its answer before the path goes on."""
        entities = message.entities
        advice = self._advice(message)
        if advice:
            self.say(advice)
        elif _ASKS_PORTS.search(message.text):
            self.say(render.settings_text(self.kb, entities.get("protocol"), self.tr))
        topic = entities.get("topic")
        if topic == "username":
            self.say(self._login_name_text())
        elif topic == "password_again":
            self._say_faq("password-unchanged")
        if _ASKS_MEANING.search(message.text) and entities.get("security") == "starttls":
            self._say_faq("starttls-vs-ssl-ports")

    def _say_faq(self, faq_id: str) -> None:
        entry = self._faq_by_id(faq_id)
        if entry is not None:
            self.say(entry.answer.get(self.tr.locale))

    def _inform(self, message: Understanding) -> None:
        _ = self._
        program_id = self._program_named(message)
        if self.state.stage is Stage.START:
            self.say(self._greeting_text())
        elif (
            self.state.program
            and self.state.program != program_id
            and self.state.stage
            in (
                Stage.GUIDE,
                Stage.FINISHED,
            )
        ):
            self.say(_("Alles klar, dann wechseln wir das Programm."))
        self.state.program = program_id
        version = message.entities.get("version") or self._pending_version(program_id)
        self._answer_asides(message)
        troubled = {"error", "trouble"} & message.entities.keys()
        if troubled and not self._troubleshoot(message, program_id):
            self._unknown_error()
        if message.guide:
            guide = self.kb.guides[message.guide]
            exact = version is None or covers(guide, version) or not guide.versions
            self._choose_guide(guide, version, note=None if exact else version)
        elif version:
            self._set_version(version)
        else:
            guides = self.kb.guides_of_program[program_id]
            if len(guides) == 1:
                self._choose_guide(guides[0], version=None, note=None)
            elif message.entities.get("answer") == "unknown":
                self._at_version(message)  # "Outlook, weiß aber nicht welche Version"
            else:
                self._ask_version()

    def _may_be_version(self, message: Understanding) -> bool:
        """A bare number answers the version question; inside a guide it only switches the
        guide when it names a version exactly ("ne, doch 2013"), not "ich habe 2 Konten"."""
        if self.state.stage not in _IN_GUIDE:
            return True
        assert self.state.program is not None
        guides = self.kb.guides_of_program[self.state.program]
        choice = guide_for_version(guides, message.entities["version"])
        return choice is not None and choice.exact

    def _pending_version(self, program_id: str) -> str | None:
        """A version said before the program, if one of the program's guides covers it."""
        version = self.state.version if self.state.guide is None else None
        if version is None:
            return None
        choice = guide_for_version(self.kb.guides_of_program[program_id], version)
        return version if choice is not None and choice.exact else None

    def _set_version(self, version: str) -> None:
        assert self.state.program is not None
        card = self.kb.card_for_version(self.state.program, version)
        if card is not None:  # "iOS 18": newer than the guides
            self._show_card(card.id)
            return
        choice = guide_for_version(self.kb.guides_of_program[self.state.program], version)
        if choice is None:
            self.say(self._("Diese Version kenne ich nicht."))
            self._ask_version()
            return
        self._choose_guide(choice.guide, version, note=None if choice.exact else version)

    def open_guide(self, guide_id: str) -> None:
        self._choose_guide(self.kb.guides[guide_id], version=None, note=None)

    def _choose_guide(self, guide: Guide, version: str | None, note: str | None) -> None:
        _ = self._
        program = self.kb.program_for(guide.id)
        changed = self.state.guide != guide.id
        self.state.program = program.id
        self.state.guide = guide.id
        self.state.card = None
        self.state.version = version
        self.state.revision = self.kb.revision
        if changed:
            self.state.step = 0
            self.state.problems_at_step = 0
        title = guide.localized(self.tr.locale).title
        if note:
            self.say(
                _(
                    "Für {program} {version} habe ich keine eigene Anleitung. Ich zeige Ihnen "
                    "die Anleitung für {title}; die Menüs können bei Ihnen etwas anders aussehen."
                ).format(program=program.name, version=note, title=title)
            )
        else:
            self.say(_("Gut, dann zeige ich Ihnen die Anleitung für {title}.").format(title=title))
        if guide.differs_by_protocol() and self.state.protocol is None:
            self._ask_protocol()
        else:
            self._show_step()

    def _set_protocol(self, protocol: str, *, confirm: bool = True) -> None:
        guide = self.guide
        answered = self.state.stage is Stage.PROTOCOL or self.state.protocol != protocol
        self.state.protocol = protocol
        if confirm and answered and guide is not None:
            # Say what was understood: the answer may have been a port ("993") or a word.
            self.say(
                self._("Gut, dann zeige ich Ihnen die Schritte für {protocol}.").format(
                    protocol=_PROTOCOL_NAMES.get(protocol, protocol)
                )
            )
        if guide is None and self.state.card is not None:
            self._show_card(self.state.card)  # only the chosen protocol's settings now
            return
        if guide is None:
            self.ask()
            return
        # The number of steps may change with the protocol; stay within the guide.
        last = len(guide.steps_for(protocol)) - 1
        self.state.step = min(self.state.step, last)
        if self.state.stage is Stage.FINISHED:
            self._finish()
        else:
            self._show_step()

    # --- answers at the program, version and protocol questions -------------------------

    def _answers_the_question(self, message: Understanding) -> bool:
        """An answer without a fact ("egal", "keine Ahnung"; not "POP3, glaub ich")."""
        entities = message.entities
        return (
            "answer" in entities
            and self.state.stage in _QUESTIONS
            and message.intent not in _REQUESTS
            and not {"protocol", "port", "version"} & entities.keys()
        )

    def _answer_question(self, message: Understanding) -> None:
        if self.state.stage is Stage.VERSION:
            self._at_version(message)
        elif self.state.stage is Stage.PROTOCOL:
            self._at_protocol(message)
        else:
            self._at_program(message)

    def _at_program(self, message: Understanding) -> None:
        """Which program? Anything but a program name: help to answer it, never a dead end."""
        _ = self._
        first = self.state.stage is Stage.START
        answer = message.entities.get("answer")
        if first:
            self.say(self._greeting_text())
        if answer == "other":
            self.say(
                _("Welches Programm ist es? Schreiben Sie mir seinen Namen."),
                self._programs_or_person(),
            )
            self.state.stage = Stage.PROGRAM
            return
        if self._answer_from_faq(message):
            return
        if _looks_like_a_name(message):
            self._unknown_program()
            return
        if answer == "unknown" or message.intent == "step_problem":
            if self._missed() == 1:
                self.say(
                    _(
                        "Kein Problem. Denken Sie daran, womit Sie Ihre E-Mails lesen: Am "
                        "Windows-PC ist es meist Outlook oder Thunderbird, am Mac Apple Mail, "
                        "auf dem Handy die Mail-App des iPhone oder von Android."
                    )
                )
                self._ask_program()
            else:
                self._program_or_person()
            return
        on_topic = message.intent in _ON_TOPIC or bool(message.entities)
        if not on_topic:
            self._off_topic()
        if self._missed() >= 3:
            self._program_or_person()
        else:
            self._ask_program()

    def _program_or_person(self) -> None:
        self.say(
            self._(
                "Wählen Sie einfach das Programm, das am ehesten passt – oder ein Mensch aus "
                "dem Helpdesk hilft Ihnen weiter."
            ),
            self._programs_or_person(),
        )
        self.state.stage = Stage.PROGRAM

    def _unknown_program(self) -> None:
        _ = self._
        self.say(
            _(
                "Dieses Programm kenne ich leider nicht, eine eigene Anleitung habe ich dafür "
                "nicht. Die Verschlüsselung stellen Sie in den Kontoeinstellungen Ihres "
                "Programms mit diesen Angaben ein:"
            )
        )
        card = self.kb.settings_card(None, self.state.protocol)
        self.say(render.card_text(self.kb, card, self.tr, intro=False))
        names = ", ".join(p.name for p in self.kb.programs.values())
        self.say(
            _(
                "Anleitungen habe ich für: {names}. Wenn Ihr Programm nicht dabei ist, hilft "
                "Ihnen gern ein Mensch aus dem Helpdesk weiter."
            ).format(names=names)
        )
        self.state.stage = Stage.PROGRAM
        self.say(
            _("Welches Mailprogramm benutzen Sie?"),
            self._programs_or_person(),
        )

    def _show_card(self, card_id: str) -> None:
        """A program without a guide: its settings card, then the check, a person, or another
        program."""
        _ = self._
        if self.state.stage is Stage.START:
            self.say(self._greeting_text())
        self.state.card = card_id
        self.state.program = self.state.guide = None
        self.state.step = 0
        self.state.stage = Stage.FINISHED
        card = self.kb.settings_card(card_id, self.state.protocol)
        self.say(render.card_text(self.kb, card, self.tr))
        self.say(
            _(
                "Wenn Sie die Angaben eingetragen haben, kann ich die Verbindung zum Mailserver "
                "prüfen. Oder ein Mensch aus dem Helpdesk hilft Ihnen weiter."
            ),
            self._after_card_options(),
        )

    def _after_card_options(self) -> list[Option]:
        _ = self._
        options = [
            Option(_("Verbindung testen"), "request_check"),
            self._person_option(),
            Option(_("Anderes Programm"), "restart"),
        ]
        if self._offers_profile() and self.kb.server.mail_domains:
            options.insert(0, Option(_("Profil installieren"), "inform:profile=ask"))
        return options

    def _asks_platform(self, message: Understanding) -> bool:
        """ "Handy" answers which program; mid-guide only as a new device ("und jetzt noch
        aufm Smartphone"), not as a complaint about the step, nor beside a correction of the
        protocol or version ("doch IMAP, ich seh die Ordner auch am Handy")."""
        if self.state.program and {"protocol", "version"} & message.entities.keys():
            return False
        if self.state.stage is Stage.GUIDE:
            return not self._is_complaint(message)
        return self.state.stage in _ASKS_PLATFORM

    def _ask_platform(self) -> None:
        """ "Handy", "Tablet": the platform decides the guide."""
        _ = self._
        if self.state.stage is Stage.START:
            self.say(self._greeting_text())
        self.state.stage = Stage.PROGRAM
        programs = self.kb.devices.platform_programs
        options = [
            Option(_("iPhone/iPad"), f"inform:client={programs['ios']}"),
            Option(_("Android"), f"inform:client={programs['android']}"),
            self._person_option(),
        ]
        self.say(_("Ist es ein iPhone/iPad oder ein Android-Gerät?"), options)

    def _computer(self, message: Understanding) -> Computer | None:
        device = message.entities.get("device")
        return next((c for c in self.kb.devices.computers if c.id == device), None)

    def _ask_program_on(self, computer_id: str) -> None:
        """ "Windows-Laptop": a computer names no mail program; offer those usual on it."""
        _ = self._
        computer = next(c for c in self.kb.devices.computers if c.id == computer_id)
        if self.state.stage is Stage.START:
            self.say(self._greeting_text())
        self.state.stage = Stage.PROGRAM
        options = []
        for program_id in computer.programs:
            if program_id in self.kb.programs:
                name = self.kb.programs[program_id].name
            else:
                name = self.kb.cards[program_id].name.get(self.tr.locale)
            options.append(Option(name, f"inform:client={program_id}"))
        options += [
            Option(_("Anderes Programm"), "inform:answer=other"),
            Option(_("Die Servereinstellungen sehen"), "ask_settings"),
            self._person_option(),
        ]
        self.say(
            _("Welches Mailprogramm benutzen Sie unter {system}?").format(system=computer.name),
            options,
        )

    def _at_version(self, message: Understanding) -> None:
        """Which version? "keine Ahnung", "wo find i des", "hä": how to find it, then the
        options with a person, alternating, so the same text never comes twice in a row."""
        _ = self._
        assert self.state.program is not None
        if self._answer_from_faq(message):
            return
        program = self.kb.programs[self.state.program]
        answer = message.entities.get("answer")
        unknown = answer == "unknown" or message.intent == "step_problem"
        newest = self.kb.guides_of_program[program.id][-1]
        if (
            answer == "any"
            or message.intent in ("next_step", "affirm")
            or (unknown and (not newest.from_seed or self.state.misses >= 1))
        ):
            # "egal", "weiter", "weiß nicht" again: the newest version is what most users
            # have; the hint lets them switch when their menus differ.
            self.say(
                _(
                    "Dann nehme ich die Anleitung für die neueste Version ({label}) – die haben "
                    "die meisten. Falls Ihre Menüs ganz anders aussehen, nennen Sie mir einfach "
                    "Ihre Version. So finden Sie sie: {hint}"
                ).format(
                    label=newest.localized(self.tr.locale).label,
                    hint=program.version_hint.get(self.tr.locale),
                )
            )
            self._choose_guide(newest, version=None, note=None)
            return
        misses = self._missed()
        if misses == 1 or (misses % 2 == 1 and message.entities.get("answer") != "unknown"):
            if message.entities.get("answer") != "unknown":
                self.say(_("Ich frage, weil die Menüs je nach Version anders heißen."))
            self.say(program.version_hint.get(self.tr.locale))
            self._ask_version()
        elif misses % 2 == 0:
            self.say(
                _(
                    "Kein Problem. Wählen Sie die Version, die am ehesten passt – oder ein "
                    "Mensch aus dem Helpdesk schaut mit Ihnen nach."
                )
            )
            self._ask_version(with_person=True)
        else:
            self.say(
                _(
                    "Wenn Sie die Version nicht finden, hilft Ihnen gern ein Mensch aus dem "
                    "Helpdesk weiter: Tippen Sie auf „Mit einem Menschen sprechen“."
                )
            )
            self._ask_version(with_person=True)
        # The miss counts at the version question even when the program came in this message
        # ("Outlook, weiß aber nicht welche Version"): the next "weiß nicht" takes the default.
        self._point = self._where()

    def _at_protocol(self, message: Understanding) -> None:
        """IMAP or POP3? "egal", "ja", "weiter": IMAP, with the reason. "Weiß ich nicht":
        where to look, then IMAP. Anything else: what the question means, then a person."""
        _ = self._
        answer = message.entities.get("answer")
        if answer == "any" or message.intent in ("affirm", "next_step"):
            self._default_protocol()
            return
        if self._answer_from_faq(message):
            return
        misses = self._missed()
        if answer == "unknown" or message.intent == "step_problem":
            if misses >= 2:
                self._default_protocol()
                return
            self.say(
                _(
                    "Das sehen Sie in Ihrem Mailprogramm in den Kontoeinstellungen beim "
                    "Posteingangsserver: Dort steht IMAP oder POP3. Wenn Sie unsicher sind, "
                    "nehmen Sie IMAP – das nutzen die meisten."
                )
            )
            self._ask_protocol(with_person=True)
        elif misses % 2 == 1:
            self.say(
                _(
                    "Ich frage, wie Ihr Programm die E-Mails abholt: per IMAP (sie bleiben auf "
                    "dem Server) oder per POP3 (sie werden auf das Gerät geladen). Wenn Sie "
                    "unsicher sind, nehmen Sie IMAP – dann antworten Sie einfach „ja“."
                )
            )
            self._ask_protocol()
        else:
            self.say(
                _(
                    "Antworten Sie einfach „IMAP“ oder „POP3“ – oder ein Mensch aus dem "
                    "Helpdesk hilft Ihnen weiter."
                )
            )
            self._ask_protocol(with_person=True)

    def _default_protocol(self) -> None:
        self.say(
            self._(
                "Dann nehmen wir IMAP – das nutzen die meisten. Der einzige Unterschied ist ein "
                "zusätzlicher Schritt für POP3; falls Sie doch POP3 nutzen, schreiben Sie "
                "einfach „POP3“."
            )
        )
        self._set_protocol("imap", confirm=False)

    # --- configuration profile (Apple) ---------------------------------------------------

    def _ask_profile_address(self) -> None:
        _ = self._
        self.state.stage = Stage.PROFILE_ADDRESS
        self.say(
            _(
                "Statt die Schritte einzeln durchzugehen, kann ich Ihnen ein Profil schicken, "
                "das Ihr Konto mit Verschlüsselung einrichtet. Für welche E-Mail-Adresse? "
                "(Ihr Passwort brauche ich nicht – das fragt das Gerät beim Installieren ab.)"
            ),
            [Option(_("Abbrechen – zurück zur Anleitung"), "deny")],
        )

    def _profile_address(self, message: Understanding) -> None:
        _ = self._
        if message.intent == "deny" and find_address(message.text) is None:
            if self.guide is None and self.state.card is None and self.state.program:
                self._ask_version()  # offered before the version was known: the guide's way
            elif self.guide is None:  # from a settings card
                self.state.stage = Stage.FINISHED
                self._ask_what_next()
            else:
                self._show_step()
            return
        address = find_address(message.text)
        if address is None:
            self.say(_("Das sieht nicht nach einer E-Mail-Adresse aus."))
            self._ask_profile_address()
            return
        try:
            account = account_for(self.kb.server, address)
        except ForeignAddress:
            domains = ", ".join(self.kb.server.mail_domains)
            self.say(
                _(
                    "Ein Profil kann ich nur für Adressen des Mail-Service erstellen "
                    "({domains}). Bitte nennen Sie Ihre Adresse dort – oder gehen Sie die "
                    "Anleitung Schritt für Schritt durch."
                ).format(domains=domains)
            )
            self._ask_profile_address()
            return
        self.decision.outputs.append(SendProfile(account.address))
        self.state.stage = Stage.FINISHED
        self._ask_what_next()

    # --- inside a guide ----------------------------------------------------------------

    def _in_guide(self, message: Understanding) -> None:
        _ = self._
        guide = self.guide
        assert guide is not None
        intent = message.intent
        if intent in ("next_step", "affirm") or message.entities.get("answer") == "any":
            self.state.problems_at_step = 0
            if self.state.step + 1 < len(guide.steps_for(self.state.protocol)):
                self.state.step += 1
                self._show_step()
            else:
                self._finish()
        elif intent == "previous_step":
            if self.state.step == 0:
                self.say(_("Das ist bereits der erste Schritt."))
            else:
                self.state.step -= 1
                self.state.problems_at_step = 0
            self._show_step()
        elif intent == "repeat_step":
            self._show_step()
        elif intent == "deny":
            self.say(_("Dann habe ich wohl das falsche Programm erwischt."))
            self._ask_program()
        elif not words(message.text):  # "?", "…": the user is lost here
            self._show_step()
        elif not self._answer_from_faq(message):
            self._off_topic()
            self.say(_("Weiter mit der Anleitung:"))
            self._show_step()

    def _go_to_step(self, number: int) -> None:
        """ "Was war nochmal Schritt 1?", "zeig mir Schritt 5": that step of this guide."""
        guide = self.guide
        assert guide is not None
        total = len(guide.steps_for(self.state.protocol))
        if 1 <= number <= total:
            self.state.step = number - 1
            self.state.problems_at_step = 0
        else:
            self.say(
                self._("Diese Anleitung hat {total} Schritte.").format(total=self.tr.number(total))
            )
        self._show_step()

    def _is_complaint(self, message: Understanding) -> bool:
        """ "geht nicht", "sehe ich nicht", "weiß nicht", a pasted error: about the step the
        user is at (or the whole guide, after the last step)."""
        if self.state.stage not in _IN_GUIDE or self.guide is None:
            return False
        if message.intent == "step_problem":
            return True
        if message.intent in ("out_of_scope", "inform") and _WHERE.search(normalize(message.text)):
            return True  # "wo ist Extras???": what the step names is not where it says
        troubled = bool({"error", "trouble"} & message.entities.keys())
        troubled = troubled or message.entities.get("answer") == "unknown"
        return troubled and message.intent in _MAY_BE_A_COMPLAINT

    def _complaint(self, message: Understanding) -> None:
        """The step's own help (or the step again, looked at closely; the settings for an
        error), then the check and a person. The second time at the same step: a person."""
        _ = self._
        guide = self.guide
        assert guide is not None
        self.state.problems_at_step += 1
        if self.state.problems_at_step >= 2:
            self._stuck()
            return
        finished = self.state.stage is Stage.FINISHED
        steps = guide.steps_for(self.state.protocol)
        step = steps[min(self.state.step, len(steps) - 1)]
        help_text = _step_help(step, normalize(message.text), self.tr.locale)
        if {"error", "trouble"} & message.entities.keys() and self._troubleshoot(message):
            pass
        elif help_text and not finished:
            self.say(help_text)
        elif "error" in message.entities or finished:
            self.say(
                _(
                    "Dann passen meist Port und Verschlüsselung noch nicht zusammen. So muss es "
                    "eingestellt sein:"
                )
            )
            self.say(render.settings_text(self.kb, self.state.protocol, self.tr))
        else:
            self.say(
                _(
                    "Schauen wir uns den Schritt noch einmal genau an. Die Wörter in "
                    "Anführungszeichen sind die Menüs und Schaltflächen, nach denen Sie suchen:"
                )
            )
            self.say(render.step_text(guide, self.state.protocol, self.state.step, self.tr))
        program = self.kb.program_for(guide.id)
        if self.state.version is None and len(self.kb.guides_of_program[program.id]) > 1:
            # The guide was picked without a version: it may be the wrong one.
            self.say(
                _(
                    "Falls Ihr Programm ganz anders aussieht, ist es vielleicht eine andere "
                    "Version. {hint}"
                ).format(hint=program.version_hint.get(self.tr.locale))
            )
        options = [Option(_("Schritt noch einmal zeigen"), "repeat_step")] if not finished else []
        options += [
            Option(_("Verbindung testen"), "request_check"),
            self._person_option(),
            Option(_("Anderes Programm"), "restart"),
        ]
        self.say(
            _(
                "Wenn es trotzdem nicht klappt, kann ich die Verbindung zum Mailserver prüfen "
                "oder einen Menschen aus dem Helpdesk dazuholen."
            ),
            options,
        )

    def _troubleshoot(self, message: Understanding, program: str | None = None) -> bool:
        """An error message the knowledge knows (troubleshooting.yaml): its cause and fix."""
        entry = self._trouble_entry(message, program)
        if entry is None:
            return False
        locale = self.tr.locale
        text = entry.explanation.get(locale) + "\n\n" + entry.fix.get(locale)
        if entry.cause == "login":  # the login name's form is in server.yaml, not in the entry
            text += "\n\n" + self._login_name_text()
        self.say(text)
        return True

    def _unknown_error(self) -> None:
        """An error message the knowledge does not know: the usual cause and the settings."""
        self.say(
            self._(
                "Eine solche Fehlermeldung bedeutet meist, dass Port und Verschlüsselung nicht "
                "zusammenpassen. So muss es eingestellt sein:"
            )
        )
        self.say(render.settings_text(self.kb, self.state.protocol, self.tr))

    def _trouble_entry(
        self, message: Understanding, program: str | None = None
    ) -> TroubleshootingEntry | None:
        """The entry the understanding found, else the best match for the user's program."""
        found = self.kb.troubleshooting.get(message.entities.get("trouble", ""))
        if found is not None:
            return found
        known = program or self.state.program or self.state.card
        entries = self.kb.troubleshooting.match(message.text, known)
        return entries[0] if entries else None

    def _reports_an_error(self, message: Understanding) -> bool:
        """An error message the knowledge knows, or any error before a program is known (then
        the usual cause and the settings beat asking for the program first)."""
        if "trouble" in message.entities:
            return True
        unplaced = self.state.stage in (Stage.START, Stage.PROGRAM)
        return unplaced and "error" in message.entities and "answer" not in message.entities

    def _trouble(self, message: Understanding) -> None:
        """A pasted error message outside a guide: cause and fix, then the check and a person;
        the program (or the question) the user was at stays."""
        _ = self._
        entry = self._trouble_entry(message)
        if self.state.stage is Stage.START:
            self.state.stage = Stage.PROGRAM
        if not self._troubleshoot(message):
            self._unknown_error()
        offer = [self._person_option()]
        if entry is None or entry.offer_check:
            offer.insert(0, Option(_("Verbindung testen"), "request_check"))
            text = _(
                "Ich kann die Verbindung zum Mailserver prüfen oder einen Menschen aus dem "
                "Helpdesk dazuholen."
            )
        else:
            text = _("Wenn es dann noch nicht klappt, hilft Ihnen ein Mensch aus dem Helpdesk.")
        if self.state.stage is Stage.PROGRAM:
            text += " " + _(
                "Wenn Sie mir Ihr Mailprogramm nennen, zeige ich Ihnen, wo Sie das einstellen."
            )
            self.say(text, [*offer, *self._program_options()])
        elif self.state.stage in (Stage.VERSION, Stage.PROTOCOL):
            self.say(text, offer)
            self.ask()
        else:
            self.say(text, [*offer, Option(_("Anderes Programm"), "restart")])

    def _stuck(self) -> None:
        _ = self._
        # Stuck at the same step twice: versions differ too much for a text to help.
        if self.state.problems_at_step == 2:
            self.say(
                _(
                    "Dieser Schritt klappt bei Ihnen auch beim zweiten Mal nicht – da hole "
                    "ich besser einen Menschen dazu."
                )
            )
            self.decision.outputs.append(HandOver("stuck"))
        elif self.state.ticket is not None:  # the helpdesk has it already: no new ticket
            self.say(
                _(
                    "Dieser Schritt klappt leider weiterhin nicht. Der Helpdesk kennt Ihre "
                    "Anfrage Nr. {number} schon und meldet sich hier im Chat."
                ).format(number=self.state.ticket)
            )
        else:  # the ticket was closed meanwhile
            self.say(_("Dieser Schritt klappt leider weiterhin nicht."))
            self.decision.outputs.append(HandOver("stuck"))
        self.say(
            _("Wie möchten Sie weitermachen?"),
            [
                Option(_("Schritt noch einmal zeigen"), "repeat_step"),
                Option(_("Verbindung testen"), "request_check"),
                Option(_("Anderes Programm"), "restart"),
            ],
        )

    def _finish(self) -> None:
        _ = self._
        self.state.stage = Stage.FINISHED
        self.say(
            _("Geschafft – das war der letzte Schritt! Zur Kontrolle die Servereinstellungen:")
        )
        self.say(render.settings_text(self.kb, self.state.protocol, self.tr))
        self._ask_what_next()

    def _finished(self, message: Understanding) -> None:
        guide = self.guide
        intent = message.intent
        if intent == "previous_step" and guide is not None:
            self.state.step = len(guide.steps_for(self.state.protocol)) - 1
            self._show_step()
        elif intent == "repeat_step" and self.state.card is not None:
            self._show_card(self.state.card)
        elif intent == "repeat_step":
            self._finish()
        elif intent == "next_step" and self.state.card is not None:
            # "weiter" after a settings card: it has no steps, so what comes next is the check.
            self.say(
                self._(
                    "Weitere Schritte gibt es hier nicht: Tragen Sie die Angaben von oben in "
                    "Ihrem Programm ein. Danach kann ich die verschlüsselten Ports von {server} "
                    "prüfen – oder ein Mensch aus dem Helpdesk hilft Ihnen weiter."
                ).format(server=self.kb.server.name),
                self._after_card_options(),
            )
        elif intent == "step_problem" and self.state.card is not None:
            # "sieht bei mir ganz anders aus" after a settings card: the details do not depend
            # on the menus; whoever cannot find where they go gets a person offered.
            self.say(
                self._(
                    "Die Menüs heißen je nach Version etwas anders – die Angaben bleiben aber "
                    "dieselben. Ein Mensch aus dem Helpdesk kann mit Ihnen zusammen nachsehen, "
                    "wo sie bei Ihnen stehen."
                )
            )
            self._show_card(self.state.card)
        elif intent in ("deny", "next_step", "affirm"):
            # "fertig", "passt", "nein danke" at "Was möchten Sie als Nächstes tun?": done.
            self._goodbye(None)
        elif self._answer_from_faq(message):
            return
        else:
            if intent == "out_of_scope":
                self._off_topic()
            self._ask_what_next()

    # --- available everywhere ----------------------------------------------------------

    def help(self) -> None:
        """What the user can say, then the current question again."""
        self.say(
            self._(
                "Ich führe Sie Schritt für Schritt durch die Anleitung für Ihr Mailprogramm. "
                "Sie können jederzeit schreiben:\n"
                "• „weiter“, „zurück“ oder „nochmal“ – durch die Schritte gehen\n"
                "• „Einstellungen“ – Server und Ports anzeigen\n"
                "• „Was ist STARTTLS?“ – eine Erklärung bekommen\n"
                "• „prüfen“ – die Verbindung zum Mailserver testen\n"
                "• „Mensch“ – mit dem Helpdesk sprechen\n"
                "• „von vorne“ – neu anfangen\n"
                "• „meine Daten löschen“ – alles löschen, was ich gespeichert habe\n"
                "Auf eine Frage können Sie auch einfach die Nummer einer Antwort schicken."
            )
            + "\n\n"
            + self._("Befehle:")
            + "".join(f"\n• /{name} – {text}" for name, text in menu(self.tr))
        )
        self.ask()

    def _password_elsewhere(self) -> None:
        """A password change or reset: not Lotse's job; where to go for it."""
        self.say(
            self._(
                "Ihr Passwort kann ich nicht ändern oder zurücksetzen – und ich frage auch nie "
                "danach. Dabei hilft Ihnen der Helpdesk."
            )
        )
        self.say(render.helpdesk_text(self.kb, self.tr))
        self._ask_what_next_or_continue()

    def _contact(self) -> None:
        """When and how the helpdesk is reached: an answer, not a ticket."""
        self.say(render.helpdesk_text(self.kb, self.tr))
        self._ask_what_next_or_continue()

    def _username(self) -> None:
        self.say(self._login_name_text())
        self._ask_what_next_or_continue()

    def _login_name_text(self) -> str:
        """What users log in with: the FAQ's answer for server.yaml's rule (or built from it)."""
        _ = self._
        entry = self._faq_by_id("login-name")
        if entry is not None:
            return entry.answer.get(self.tr.locale)
        server = self.kb.server
        domain = server.mail_domains[0] if server.mail_domains else None
        if server.login_name == "address":
            text = _("Ihr Benutzername ist Ihre vollständige E-Mail-Adresse")
            example = _("(zum Beispiel vorname.nachname@{domain})")
        else:
            text = _("Ihr Benutzername ist der Teil Ihrer E-Mail-Adresse vor dem @")
            example = _("(bei vorname.nachname@{domain} also vorname.nachname)")
        if domain:
            text += " " + example.format(domain=domain)
        return (
            text
            + ". "
            + _(
                "Benutzername und Passwort bleiben beim Einschalten der Verschlüsselung wie bisher."
            )
        )

    def _off_topic(self) -> None:
        """Not Lotse's job (a full mailbox, spam, VPN): who helps instead, with their contact."""
        self.say(
            self._(
                "Darauf weiß ich leider keine Antwort – ich helfe Ihnen, die Verschlüsselung "
                "(TLS/SSL) in Ihrem Mailprogramm einzuschalten. Bei anderen Fragen hilft Ihnen "
                "der Helpdesk weiter."
            )
            + "\n"
            + render.helpdesk_text(self.kb, self.tr)
        )

    def _answer_from_faq(self, message: Understanding) -> bool:
        """A question in between ("Muss ich das Passwort neu eingeben?") that the FAQ answers."""
        if message.intent not in ("out_of_scope", "inform") or not _is_question(message.text):
            return False
        entry = self._faq_for(message.text)
        if entry is None:
            return False
        self.say(entry.answer.get(self.tr.locale))
        self._ask_what_next_or_continue()
        return True

    def _answer_faq(self, faq_id: str) -> None:
        self._say_faq(faq_id)
        self._ask_what_next_or_continue()

    def _asks_a_question_mid_guide(self, message: Understanding) -> bool:
        """ "Muss ich danach das Passwort nochmal eingeben?": inside a guide a question the FAQ
        answers is no navigation word, although "nochmal" or "weiter" is in it."""
        if self.state.stage not in _IN_GUIDE or message.intent not in _NAVIGATION:
            return False
        if not _is_question(message.text) or message.entities.keys() & {"step", "answer"}:
            return False
        entry = self._faq_for(message.text)
        if entry is None:
            return False
        self._answer_faq(entry.id)
        return True

    def _closes_mid_guide(self, message: Understanding) -> bool:
        """ "super, hat geklappt, danke!", "thanks, all done": thanks before the guide's end."""
        guide = self.guide
        if self.state.stage is not Stage.GUIDE or guide is None:
            return False
        thanks = message.intent == "thank" or "thanks" in message.entities
        asks = _is_question(message.text)  # "Danke. Und wo finde ich das?": not closing
        return thanks and not asks and message.intent in ("thank", "goodbye", "next_step", "affirm")

    def _thanks_mid_guide(self) -> None:
        """Thanks, and where the guide stands: the user may be done, or only with this step."""
        _ = self._
        guide = self.guide
        assert guide is not None
        total = len(guide.steps_for(self.state.protocol))
        self.say(_("Gern geschehen!"))
        if self.state.step + 1 >= total:
            self._finish()
            return
        self.state.problems_at_step = 0
        self.say(
            _(
                "Die Anleitung ist aber noch nicht ganz fertig: Sie sind bei Schritt {step} von "
                "{total}. Erst mit allen Schritten ist die Verschlüsselung eingeschaltet. "
                "Möchten Sie weitermachen?"
            ).format(step=self.tr.number(self.state.step + 1), total=self.tr.number(total)),
            [
                Option(
                    _("Weiter mit Schritt {step}").format(step=self.tr.number(self.state.step + 2)),
                    "next_step",
                ),
                Option(_("Das Gespräch beenden"), "goodbye"),
            ],
        )

    def _greet(self) -> None:
        _ = self._
        if self.state.stage is Stage.START:
            self.say(self._greeting_text())
        else:
            self.say(_("Hallo! Hier waren wir:"))
        self.ask()

    def _restart(self, _message: Understanding) -> None:
        self.state = self.state.fresh()
        self.say(self._("Gut, wir fangen von vorne an."))
        self._ask_program()

    def _request_check(self, message: Understanding) -> None:
        self.decision.outputs.append(RunCheck(details=message.entities.get("detail") == "1"))
        self._ask_what_next_or_continue()

    def _request_human(self, _message: Understanding) -> None:
        reason: HandOverReason = (
            "unknown_program" if self.state.stage is Stage.PROGRAM else "requested"
        )
        if self.state.problems_at_step >= 1 and self.state.stage is Stage.GUIDE:
            reason = "stuck"
        self.decision.outputs.append(HandOver(reason))

    def _bot_challenge(self, _message: Understanding) -> None:
        self.say(
            self._(
                "Ich bin Lotse, ein Chatbot – kein Mensch. Wenn Sie lieber mit einem Menschen "
                "sprechen möchten, sagen Sie einfach „Mensch“."
            )
        )
        self.ask()

    def _thank(self, _message: Understanding) -> None:
        self.say(self._("Gern geschehen!"))
        if self.state.stage is not Stage.FINISHED:
            self.ask()

    def _goodbye(self, _message: Understanding | None) -> None:
        _ = self._
        self.say(
            _(
                "Auf Wiedersehen! Wenn Sie wieder schreiben, machen wir da weiter, "
                "wo wir aufgehört haben."
            )
        )

    def _settings(self, message: Understanding) -> None:
        protocol = message.entities.get("protocol") or self.state.protocol
        text = render.settings_text(self.kb, protocol, self.tr)
        if message.entities.get("topic") == "username":  # "Welchen Benutzernamen trage ich ein?"
            text += "\n\n" + self._login_name_text()
        self.say(text)
        self._ask_what_next_or_continue()

    def _explain(self, message: Understanding) -> None:
        _ = self._
        locale = self.tr.locale
        asked_faq = "faq" in message.entities
        if self.state.stage is Stage.VERSION and self.state.program and not asked_faq:
            self._at_version(message)
            return
        if self.state.stage is Stage.PROTOCOL and not asked_faq:
            self.say(
                _(
                    "Das steht in den Kontoeinstellungen Ihres Programms beim "
                    "Posteingangsserver. Die meisten nutzen IMAP."
                )
            )
            entry = self._faq_by_id("imap-vs-pop3")
            if entry:
                self.say(entry.answer.get(locale))
            self._ask_protocol()
            return
        entry = self._faq_by_id(message.entities.get("faq")) or self._faq_for(message.text)
        if entry is None:
            options = [
                Option(e.question.get(locale), f"ask_explanation:faq={e.id}") for e in self.kb.faq
            ]
            self.say(_("Dazu kann ich Folgendes erklären:"), options)
            return
        self.say(entry.answer.get(locale))
        self._ask_what_next_or_continue()

    def _faq_by_id(self, faq_id: str | None) -> FaqEntry | None:
        return next((e for e in self.kb.faq if e.id == faq_id), None)

    def _faq_for(self, text: str) -> FaqEntry | None:
        said = set(words(text))
        best, best_hits = None, 0
        for entry in self.kb.faq:
            hits = sum(1 for keyword in entry.keywords if set(words(keyword)) <= said)
            if hits > best_hits:
                best, best_hits = entry, hits
        return best

    def _ask_what_next_or_continue(self) -> None:
        """After an aside, return to the question the user was answering."""
        if self.state.stage is Stage.GUIDE:
            self.say(self._("Weiter mit der Anleitung:"))
        self.ask()

    def _ask_delete(self, _message: Understanding) -> None:
        self.state.previous_stage = self.state.stage
        self.state.stage = Stage.CONFIRM_DELETE
        self._ask_delete_confirmation()

    def _confirm_delete(self, confirmed: bool) -> Decision:
        _ = self._
        if confirmed:
            self.decision.outputs.append(DeleteUserData())
            self.state = self.state.fresh()
            self.say(
                _(
                    "Erledigt: Ich habe alles gelöscht, was ich über Sie gespeichert hatte. "
                    "Wenn Sie wieder schreiben, beginnen wir neu."
                )
            )
            return self.done()
        self.state.stage = self.state.previous_stage or Stage.PROGRAM
        self.state.previous_stage = None
        self.say(_("In Ordnung, ich lösche nichts."))
        self.ask()
        return self.done()


_IN_GUIDE = (Stage.GUIDE, Stage.FINISHED)
# Where "Handy" answers which program: ask the platform.
_PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3"}
_ASKS_PLATFORM = (Stage.START, Stage.PROGRAM, Stage.FINISHED)
# Asides in a long message beside the program: "welche Ports", "what does STARTTLS mean".
_ASKS_PORTS = re.compile(
    r"\b(ports?|portnummer\w*|anschlussnummer\w*|anschl(ü|ue)sse)\b", re.IGNORECASE
)
_ASKS_MEANING = re.compile(
    r"\b(was (ist|sind|bedeutet|hei(ß|ss)t)|what (is|does|'s))\b", re.IGNORECASE
)
_QUESTIONS = (Stage.START, Stage.PROGRAM, Stage.VERSION, Stage.PROTOCOL)
# Words that move through a guide; inside a question they are not meant as navigation.
_NAVIGATION = ("next_step", "previous_step", "repeat_step", "affirm")
# What the user asks for explicitly wins over an answer in the same message.
_REQUESTS = ("request_check", "request_human", "delete_data", "restart", "goodbye", "thank")
# An error message's words ("überprüft") may read as a request for the check.
_REQUESTS_BESIDES_A_CHECK = tuple(r for r in _REQUESTS if r != "request_check")


# Intents that show the user is talking about their mail, even without a program named.
_ON_TOPIC = ("affirm", "deny", "next_step", "previous_step", "repeat_step", "step_problem")
# With an error or "weiß nicht" in it, these are a complaint about the step.
_MAY_BE_A_COMPLAINT = (
    "inform",
    "deny",
    "out_of_scope",
    "request_check",
    "ask_explanation",
    "ask_settings",
    "repeat_step",
)
_WHERE = re.compile(
    r"^(?:und |aber |ok |okay )?(?:wo|where|wohin|woh?er)\b|\bwo (?:finde|ist|sind)\b"
)
_QUESTION_WORDS = ("was", "wie", "wo", "wann", "warum", "wieso", "muss", "kann", "soll", "what")


def _incoming_protocol(knowledge: KnowledgeBase, entities: dict[str, str]) -> str | None:
    """IMAP or POP3, named ("mit IMAP") or implied by a port ("bei mir steht 993")."""
    protocol = entities.get("protocol")
    if protocol in ("imap", "pop3"):
        return protocol
    if "port" in entities and protocol is None:
        for endpoint in knowledge.server.endpoints:
            if str(endpoint.port) == entities["port"] and endpoint.protocol in ("imap", "pop3"):
                return endpoint.protocol
    return None


def _is_question(text: str) -> bool:
    said = words(text)
    return "?" in text or bool(said and said[0] in _QUESTION_WORDS)


def _looks_like_a_name(message: Understanding) -> bool:
    """A short answer to "Which program?" that is nothing else: the name of a program."""
    return (
        # Rasa reads an unknown name as `inform` (it recognises "Mailbird" as a client).
        message.intent in ("out_of_scope", "inform")
        and not message.entities
        and 0 < len(words(message.text)) <= 3
        and not _is_question(message.text)
    )


def _step_help(step: Step, said: str, locale: str) -> str | None:
    """The step's help entry for what the user said, when the knowledge has one (`help:`)."""
    entry = step.help_for(said)
    return entry.text.get(locale) if entry is not None else None


def _intent_labels(tr: Translator) -> dict[str, str]:
    """What each intent offers, as an option label for "Meinten Sie …?"."""
    _ = tr.gettext
    return {
        "next_step": _("Zum nächsten Schritt"),
        "previous_step": _("Einen Schritt zurück"),
        "repeat_step": _("Den Schritt noch einmal zeigen"),
        "restart": _("Von vorne beginnen"),
        "step_problem": _("Bei diesem Schritt hakt es"),
        "request_check": _("Die Verbindung zum Mailserver testen"),
        "request_human": _("Mit einem Menschen sprechen"),
        "ask_settings": _("Die Servereinstellungen sehen"),
        "ask_explanation": _("Eine Erklärung bekommen"),
        "delete_data": _("Meine Daten löschen"),
        "goodbye": _("Das Gespräch beenden"),
        "bot_challenge": _("Wissen, mit wem ich schreibe"),
    }
