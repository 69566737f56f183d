"""Which language a message is written in (German or English), and requests to switch.

A word list, not a statistical model: the bot only tells German from English, and the
messages that decide are short ("Hello, I need help with Outlook"). Only words that belong to
one language count; names, versions, error codes and words both languages use ("ok", "hi",
"Outlook 2016", "IMAP") are no evidence, so such a message decides nothing.
"""

from __future__ import annotations

import re
from typing import Literal

from bot.normalize import normalize

__all__ = ["Language", "evidence", "requested"]

Language = Literal["de", "en"]

# Function words and the helpdesk's everyday words, normalised (umlauts spelt out), with
# dialect forms ("i hob", "des geht ned", "woas i ned"). Words both languages write alike are in
# neither list: "i" and "a" (Bavarian "ich", "ein"), "find" ("ich find"), "will" ("I will").
_GERMAN_WORDS = """
    ich mich mir mein meine meinen meinem meiner du dich dir dein deine sie ihnen ihr ihre
    wir uns unser er es ist bin sind war habe hab haben hat hatte kann koennen konnte muss
    muessen moechte moechten wollen soll sollte wuerde wird werden hast kannst gemacht
    hob hobs host ned net koa koane woas woass waas wois scho gmacht mei moi bissl gell isch
    nimmer nimma ois ebbes gehts gibts schritt einrichten weida weita ferti basst amoi nomoi
    der die das den dem des ein eine einen einem einer kein keine keinen nicht nichts nix
    und oder aber auch noch schon nur mit ohne von vom zu zum zur bei beim auf im fuer ueber
    unter nach wie wo wann warum wieso welche welcher welches wer hier da dort jetzt dann
    bitte danke hallo moin servus tschuess ja nein nee jo doch mal gerne genau
    weiter zurueck nochmal fertig erledigt geht klappt funktioniert finde sehe gibt steht
    einstellungen verschluesselung verschluesselt handy rechner konto postfach anleitung
    hilfe brauche benutze nutze verwende weiss keine ahnung egal passt stimmt richtig falsch
    gut guten tag morgen abend
"""
_ENGLISH_WORDS = """
    i'm i've ive me my mine you your you're we our he she it it's its is are were
    have has had can could can't cant cannot must would won't should do does did don't
    dont doesn't didn't not no yes yeah yep nope
    the this that these those and or but still only with without from of to on at
    for about by into how what what's where when why which who here there now then
    please thanks thank hello bye goodbye
    next back again done finished works working work see shows says get got step stuck
    broken changed newest latest
    settings encryption encrypted phone account mailbox guide instructions
    help need use using know idea sure whatever fine great good morning evening pls plz thx
"""
_GERMAN = frozenset(_GERMAN_WORDS.split())
_ENGLISH = frozenset(_ENGLISH_WORDS.split())
_SWITCH = re.compile(
    r"^(?:(?:can|could) (?:you|we) (?:please )?(?:speak|write|talk|answer)(?: in)?|"
    r"(?:please )?(?:speak|write|answer|reply)(?: in)?|koennen (?:sie|wir)(?: bitte)?"
    r"(?: auf)?|(?:bitte )?(?:auf|in)|(?:i'?d like|i want|i prefer)(?: it)?(?: in)?)?"
    r" ?(english|englisch|deutsch|german)"
    r"(?: (?:please|pls|bitte|sprechen|schreiben|reden|antworten))*"
    r"(?: (?:please|pls|bitte))?$"
)
# The same request inside a longer message: "sorry, my German is bad, can we do English?",
# "Könnten wir bitte auf Deutsch weitermachen?".
_SWITCH_INSIDE = re.compile(
    r"\b(?:(?:can|could|may) (?:we|you|i)(?: please)? (?:do|use|switch to|continue in|go on in|"
    r"have|get|speak|write|talk|answer|reply|chat)(?: (?:it|this|that|this chat))?(?: in)?|"
    r"switch to|(?:koennen|koennten|duerfen) (?:sie|wir|ich)(?: bitte)?(?: das)?(?: auf| in)?)"
    r" (english|englisch|deutsch|german)\b"
)
# "my German is bad", "mein Englisch ist nicht so gut": the other language is meant.
_WEAK_IN = re.compile(
    r"\b(?:my|mein) (english|englisch|deutsch|german) (?:is|ist) (?:not (?:so |very )?good|"
    r"bad|poor|limited|nicht (?:so |sehr )?gut|schlecht)"
)
_OTHER: dict[Language, Language] = {"de": "en", "en": "de"}
_SERVER_REPLY = re.compile(r"\s*[2-5][0-9]{2}[ -]")
_LANGUAGE_WORDS: dict[str, Language] = {
    "english": "en",
    "englisch": "en",
    "deutsch": "de",
    "german": "de",
}


def evidence(text: str) -> tuple[Language, bool] | None:
    """The language `text` is written in and whether it shows it clearly (two words more of
    it than of the other), or None when it shows neither more than the other."""
    words = normalize(text).split()
    german = sum(1 for word in words if word in _GERMAN)
    english = sum(1 for word in words if word in _ENGLISH)
    # Umlauts are German whatever the words ("Passwörter", "Konten-Einstellungen für …").
    if any(char in text.casefold() for char in "äöüß"):
        german += 1
    if german == english:
        return None
    # A pasted server reply ("530 5.7.0 Must issue …") is the server's English, not the user's.
    strong = abs(german - english) >= 2 and not _SERVER_REPLY.match(text)
    return ("de" if german > english else "en"), strong


def requested(text: str) -> Language | None:
    """The language asked for by "English please", "Deutsch bitte", "can you speak English?"."""
    normalized = normalize(text)
    match = _SWITCH.match(normalized) or _SWITCH_INSIDE.search(normalized)
    if match:
        return _LANGUAGE_WORDS[match.group(1)]
    weak = _WEAK_IN.search(normalized)
    return _OTHER[_LANGUAGE_WORDS[weak.group(1)]] if weak else None
