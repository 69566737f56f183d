"""Dialogue acts and slots beyond program and version, on normalised text.

What a user does with a message besides naming their program: ask for a step by number
("was war nochmal Schritt 1?"), say they do not know ("keine Ahnung", "woaß i ned") or do not
care ("egal", "beides"), ask for something Lotse does not do (a new password) or for the
helpdesk's contact, paste an error message, or say who they are ("ich bin Mitarbeiterin am
Institut …"), which is no request for a person. The lexicon and the Rasa back end both use
these, so a message means the same with either.
"""

from __future__ import annotations

import re

__all__ = [
    "ERROR_CODE",
    "NEGATION",
    "answer_kind",
    "error_in",
    "profile_asked",
    "step_asked",
    "thanked",
    "topic",
    "without_identity",
    "without_replaced",
]

# "ich bin Mitarbeiterin", "bin student im 3. semester", "I'm a visiting researcher": who the
# user is, removed before intents are matched so that "Mitarbeiter" does not ask for a person.
_IDENTITY = re.compile(
    r"\b(?:ich )?bin (?:hier |uebrigens |auch |selbst |ja |nur )*(?:ein |eine |der |die )?"
    r"(?:\w+ )?(?:mitarbeiter\w*|student\w*|studi|doktorand\w*|promovend\w*|professor\w*|prof|"
    r"sekretaer\w*|dozent\w*|lehrbeauftragt\w*|hiwi|hilfskraft|azubi\w*|gast\w*|angestellt\w*|"
    r"beschaeftigt\w*|referent\w*|verwaltung\w*|lehrer\w*|wissenschaftler\w*|forscher\w*|"
    r"emerit\w*|techniker\w*|bibliothekar\w*|praktikant\w*)\b"
    r"|\b(?:i'?m|i am) (?:a |an |the )?(?:\w+ )?(?:student|researcher|employee|staff member|"
    r"member of staff|professor|lecturer|phd student|postdoc|visitor|guest)\b"
)

# "Schritt 3", "schritt nr 3", "step 2", "den 4. schritt": the step asked for, by number.
_STEP = re.compile(
    r"\b(?:schritt|step|punkt)(?: nr| nummer| number| no)? ([0-9]{1,2})\b"
    r"|\b([0-9]{1,2}) (?:schritt|step)\b"
    r"|\b(erste|zweite|dritte|vierte|fuenfte|sechste|first|second|third|fourth|fifth|sixth)"
    r"[nrsm]? (?:schritt|step)\b"
)
_ORDINALS = {
    "erste": 1,
    "zweite": 2,
    "dritte": 3,
    "vierte": 4,
    "fuenfte": 5,
    "sechste": 6,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
}

# "Weiß ich nicht", "keine Ahnung", "ka", "woaß i ned", "wo find i des", "no idea", "dunno":
# the user cannot answer the question. ("Hab ich nicht gefunden" is a complaint, `step_problem`,
# which the engine treats alike at a question.)
_UNKNOWN = re.compile(
    r"\b(?:weiss|weis|wees|woass|woas|waas|wiss|know|knowing)\w* (?:ich |i |ick )?"
    r"(?:doch |leider |echt |wirklich |gar |halt |eben |auch |aber |so |grad |gerade |jetzt )*"
    r"(?:nicht|nich|net|ned|nit|nix)\b"
    r"|\b(?:ich |i )?(?:weiss|weis|woass|woas) (?:es |des |das )?(?:doch |leider |echt |wirklich "
    r"|gar |halt |auch )*(?:nicht|nich|net|ned|nit|nix)\b"
    r"|\b(?:keine?|ka|koa|kei|null|nicht die geringste) ahnung\b|^(?:ka|kp|idk|k a)$"
    r"|\bkein(?:en)? (?:plan|schimmer|blassen)\b|\bno clue\b|\bidk\b"
    r"|\bwo (?:finde|find|seh|sehe|steht|stehen|schau|schaue|guck|gucke) (?:ich |i |man )?"
    r"(?:das|des|die|den|sowas|so was|es)?\b"
    r"|\b(?:no|not an?) idea\b|\bdunno\b|\bdon'?t know\b|\bdo not know\b|\bnot sure\b"
    r"|\bunsicher\b|\bkeine idee\b|\bnicht sicher\b"
    r"|\bwie finde ich (?:das|es) raus\b"
)

# "egal", "beides", "das normale", "whatever": any answer will do; the bot may pick its default.
_ANY = re.compile(
    r"\b(?:egal|wurscht|wurst|beides|beide|whatever|either|both|(?:des|das|the) normale?|"
    r"standard|default|nimm (?:was|das|des|du)\w*|such (?:du )?(?:was )?aus|empfiehlst|"
    r"empfohlen\w*|was (?:du|sie) (?:meinst|meinen|willst|wollen)|doesn'?t matter|"
    r"don'?t care|no preference|ist mir gleich)\b"
)

# Things Lotse does not do, and where it sends the user: a password change or reset.
_PASSWORD_CHANGE = re.compile(
    r"\b(?:passwort\w*|passwoerter|kennwort\w*|password\w*|pw)\b.*\b(?:aender\w*|vergessen|"
    r"zuruecksetz\w*|zurueck ?setzen|reset\w*|neu(?:es)? (?:setzen|vergeben|anlegen)|"
    r"gesperrt|abgelaufen|change|forgot\w*|forgotten|expired|locked)\b"
    r"|\b(?:aender\w*|vergessen|zuruecksetz\w*|reset|change|forgot)\b.*\b(?:passwort\w*|"
    r"kennwort\w*|password)\b"
)
# Whether the password is entered again or stays ("Muss ich das Passwort neu eingeben?",
# "bleibt mein Kennwort gleich?"): a question the FAQ answers, not a navigation word.
_PASSWORD_AGAIN = re.compile(
    r"\b(?:passwort\w*|kennwort\w*|password\w*|pw)\b.*\b(?:eingeb\w*|eingetragen|eintrag\w*|"
    r"neu|nochmal|noch ?mal|erneut|wieder|bleib\w*|gleich\w*|dasselbe|enter\w*|re-?enter|again|"
    r"same|stay\w*)\b"
    r"|\b(?:neu|nochmal|noch ?mal|erneut|wieder|re-?enter|again)\b.*\b(?:passwort\w*|"
    r"kennwort\w*|password\w*)\b"
)
# "Lieber Helpdesk, …": whom the message is written to, no request for a person.
_SALUTATION = re.compile(
    r"^(?:liebe[rs]?|sehr geehrte[rs]?|hallo|guten tag|dear|hi|hello) (?:liebe[rs]? )?"
    r"(?:it-)?(?:helpdesk|servicedesk|service-desk|support|it-support|hotline)(?:-?team)?\b"
)
# Mail matters that are not Lotse's job: forwarding, a full mailbox, an autoreply, spam.
_ELSEWHERE = re.compile(
    r"\b(?:weiterleit\w*|umleit\w*|forward\w*|quota|speicherplatz|postfach (?:ist )?voll|"
    r"mailbox (?:is )?full|abwesenheit\w*|autorepl\w*|automatic repl\w*|"
    r"automatische antwort\w*|spam\w*|verteiler\w*|"
    r"mailingliste\w*)\b"
)
# The helpdesk's contact or hours, asked for: an answer, not a ticket.
_CONTACT = re.compile(
    r"\b(?:helpdesk|servicedesk|service-desk|support|hotline|it-service\w*|euch|ihnen|jemand\w*|"
    r"rechenzentrum|it)\b.*\b(?:erreichbar\w*|erreichen|oeffnungszeit\w*|sprechzeit\w*|"
    r"geoeffnet|offen|telefon\w*|nummer|mailadresse|e-mail-adresse|adresse|anrufen|"
    r"per (?:mail|e-mail|telefon))\b"
    r"|\b(?:wann|wie) (?:ist|sind|hat|haben|erreiche|erreicht)\b.*\b(?:helpdesk|servicedesk|"
    r"support|hotline)\b|\bopening hours\b|\bphone number\b|\b(?:call|reach|contact) (?:the )?"
    r"(?:helpdesk|service ?desk|support)\b"
    r"|\bwhen (?:is|are|does|do|can)\b.*\b(?:helpdesk|service ?desk|support|hotline|you)\b.*"
    r"\b(?:open|available|reach\w*|work\w*)\b|\b(?:helpdesk|support)(?: opening)? hours\b"
)
# Thanks said in passing ("super, hat geklappt, danke!"): the user may be closing.
_THANKS = re.compile(
    r"\b(?:danke\w*|dank|thx|thanks|thank you|thank u|merci|cheers|much appreciated)\b"
)
# The login name asked for ("Was ist mein Benutzername?"): server.yaml knows its form.
_USERNAME = re.compile(
    r"\b(?:benutzername\w*|username|user name|login ?name|loginname|anmeldename\w*|"
    r"kennung|benutzerkennung|nutzername|login)\b"
    # "die ganze Mailadresse oder nur den Teil vorm @?": the login name in other words
    r"|\b(?:ganze|vollstaendige|komplette|full|whole|entire) (?:e-?mail-?|mail)?(?:adresse|"
    r"address)\b.*\b(?:oder|or|nur|only|just)\b|\b(?:teil|part) (?:vor|vorm|before)\b"
    r"|\b(?:womit|wie) (?:melde|logge) ich mich\b|\bwhat do i log in with\b"
)
# Words that show a message is about Lotse's job (or just asks for help) although it names no
# program: "ich möchte die Verschlüsselung einschalten", "Hallo, ich hätte eine Frage".
_ENCRYPTION = re.compile(r"\b(?:\w*verschluessel\w*|encrypt\w*|hilfe|helfen|hilf|help|frage)\b")
# "Moment", "warte kurz": the user needs time; nothing to answer yet.
_WAIT = re.compile(
    r"^(?:(?:einen|ein|nen|n) )?(?:moment|momentchen|augenblick|sekunde|sek|sec|mom)"
    r"(?: mal| bitte)?$|^(?:warte?|wart|wait)(?: mal| kurz| bitte| a (?:moment|sec|second))*$"
    r"|^(?:gleich|kurz|one moment|hold on|just a (?:moment|sec|second))$"
    r"|^(?:bin )?(?:gleich wieder da|brb)$"
)
_HELP = re.compile(
    r"^(?:hilfe|help|huelfe|hilfe bitte|bitte hilfe|help me|help please|ich brauche hilfe|"
    r"brauche hilfe|ich brauch hilfe|sos|hiiilfe|hilfeee|hilfe!)$"
)

# An error message the user pasted or describes: a code such as 0x800CCC0E, or the words.
# Normalising splits "0x800CCC0E" after the leading digit: "0 x800ccc0e".
ERROR_CODE = re.compile(r"\b0 ?x([0-9a-f]{6,8})\b")
_ERROR_WORDS = re.compile(
    r"\b(?:fehler\w*|fehlermeldung\w*|error\w*|fehlgeschlagen|failed|failure|"
    r"kann nicht (?:ueber)?prueft werden|konnte nicht (?:ueber)?prueft werden|nicht unterstuetzt|"
    r"unterstuetzt (?:den|die|das)\b.*\bnicht|does not support|doesn'?t support|"
    r"zeitueberschreitung|timeout|timed out|zertifikat\w*|certificate\w*|abgelehnt|refused|"
    r"identitaet|nicht verifiziert|cannot be verified|could not be verified|"
    r"unterbrochen|abgebrochen|getrennt|verweigert|nicht moeglich|nicht hergestellt|"
    r"(?:konnte|kann) keine verbindung|interrupted|disconnected|denied|not possible|"
    r"unable to connect|could not connect|couldn'?t connect)\b"
)

# A negative statement ("ist bei mir kein Mehr", "das Häkchen gibts nicht", "lässt sich nicht
# setzen", "grau"): with no other meaning, a complaint about the current step.
NEGATION = re.compile(
    r"\b(?:nicht|nich|net|ned|nit|nichts|kein\w*|nix|nirgends|nirgendwo|fehlt|fehlen|grau|ausgegraut|"
    r"not|no|nothing|missing|greyed|grayed|can'?t|cannot|isn'?t|doesn'?t|don'?t|won'?t)\b"
)


# "nicht 2013, sondern 2016", "vorher 2010, jetzt 2016", "statt 2007 hab ich 2019", "2016, nicht
# 2013": the value the user replaces, beside the one they mean (Rasa's role `previous`).
_REPLACED = re.compile(
    r"\b(?:nicht|not|statt|anstatt|instead of|vorher|frueher|previously|before|hatte|had)"
    r"(?: (?:mehr|die|der|das|version|the|mal|ich|i|zuerst|noch))* "
    r"[0-9]{1,4}(?:\.[0-9]{1,3})*\b(?=\D*[0-9])"
    r"|(?<=[0-9]) (?:nicht|not|statt|anstatt|instead of)(?: (?:die|der|das|version|the))* "
    r"[0-9]{1,4}(?:\.[0-9]{1,3})*\b"
)


def without_replaced(normalized: str) -> str:
    """The message without a value the user replaces by the one after it."""
    return " ".join(_REPLACED.sub(" ", normalized).split())


def without_identity(normalized: str) -> str:
    """The message without the part where the user says who they are, and without a salutation
    ("Lieber Helpdesk"): both address someone, neither asks for anyone."""
    return " ".join(_SALUTATION.sub(" ", _IDENTITY.sub(" ", normalized)).split())


def step_asked(normalized: str) -> tuple[str | None, str]:
    """The step number asked for ("3"), and the text without that phrase (so "Schritt 1" is
    never read as version 1)."""
    match = _STEP.search(normalized)
    if match is None:
        return None, normalized
    number = match.group(1) or match.group(2)
    value = int(number) if number else _ORDINALS[match.group(3)]
    rest = normalized[: match.start()] + " " + normalized[match.end() :]
    return str(value), " ".join(rest.split())


def answer_kind(normalized: str) -> str | None:
    """ "unknown" (the user cannot answer), "any" (any answer will do) or None."""
    if _UNKNOWN.search(normalized):
        return "unknown"
    if _ANY.search(normalized):
        return "any"
    return None


def topic(normalized: str) -> str | None:
    """What the user asks for besides the guide: "password" (change or reset it, which Lotse
    does not do), "password_again" (whether it is entered anew), "contact" (the helpdesk's
    hours or address), "username" (what to log in with), "elsewhere" (another mail matter:
    forwarding, quota), "help" (what Lotse can do), "wait" (the user needs a moment) or
    "encryption" (on Lotse's subject without naming a program)."""
    if _HELP.match(normalized):
        return "help"
    if _WAIT.match(normalized):
        return "wait"
    if _PASSWORD_CHANGE.search(normalized):
        return "password"
    if _PASSWORD_AGAIN.search(normalized):
        return "password_again"
    if _CONTACT.search(normalized):
        return "contact"
    if _USERNAME.search(normalized):
        return "username"
    if _ELSEWHERE.search(normalized):
        return "elsewhere"
    if _ENCRYPTION.search(normalized):
        return "encryption"
    return None


# "ein Konfigurationsprofil runterladen", "a configuration profile": the automatic way asked for.
_PROFILE = re.compile(r"\b(?:konfigurations|configuration |config )?profile?s?\b|\bmobileconfig\b")


def profile_asked(normalized: str) -> bool:
    return _PROFILE.search(normalized) is not None


def thanked(normalized: str) -> bool:
    """Whether the message thanks the bot, whatever else it says."""
    return _THANKS.search(normalized) is not None


def error_in(normalized: str) -> str | None:
    """An error the message reports: its code ("0x800ccc0e") or "message" for error words."""
    code = ERROR_CODE.search(normalized)
    if code:
        return "0x" + code.group(1)
    return "message" if _ERROR_WORDS.search(normalized) else None
