"""Phrase patterns for the intents, on normalised text (umlauts spelt out: "zurueck").

Order matters: the first pattern that matches wins, so specific phrases ("bist du ein Mensch")
come before general ones ("Mensch").
"""

from __future__ import annotations

import re

from bot.understanding.types import Intent

_PATTERNS: list[tuple[Intent, str]] = [
    (
        "bot_challenge",
        r"\b(bist du|sind sie|are you)( denn| wirklich| eigentlich)? (ein |eine |an? )?"
        r"(bot|chatbot|mensch|maschine|roboter|ki|computer|programm|echt|human|robot|real)\b"
        r"|\bmit wem (spreche|rede|schreibe)\b",
    ),
    (
        "delete_data",
        r"\b(loesch|entfern|vergiss|vergessen)\w*\b.*\b(daten|verlauf|alles|mich|gespraech)"
        r"|\b(daten|verlauf)\b.*\b(loesch|entfern)\w*|\bdelete\b.*\b(data|history)\b|\bforget me\b",
    ),
    (
        "request_human",
        r"\b(mensch|menschen|mitarbeiter\w*|kollegin|kollegen|person|support|agent|helpdesk|"
        r"servicedesk|service-desk|hotline|human|someone|somebody)\b"
        r"|\b(jemand\w*) (echte\w*|richtige\w*|von euch|vom)\b|\banrufen\b",
    ),
    (
        "request_check",
        r"\b(pruef\w*|ueberpruef\w*|test\w*|check\w*|erreichbar\w*)\b"
        r"|\bserver\b.*\b(geht|laeuft|down|kaputt|online|offline|ausgefallen|stoerung)\b"
        r"|\b(geht|laeuft|funktioniert)\b.*\bder server\b|\bserverstatus\b",
    ),
    (
        "restart",
        r"\b(von vorne?|neu ?start\w*|neu anfangen|neuanfang|restart|start over|reset|"
        r"neue anleitung|andere[ns]? (programm|anleitung|geraet|app))\b",
    ),
    ("previous_step", r"\b(zurueck|vorherige\w*|vorige\w*|back|previous)\b"),
    ("repeat_step", r"\b(nochmal|noch ?mal|noch einmal|wiederhol\w*|repeat|again)\b"),
    (
        "step_problem",
        r"\b(geht|klappt|funktioniert|passt|tut)( es| das)? (leider )?(nicht|nich|net)\b"
        r"|\b(finde|sehe|gibt|habe|hab)\b.*\b(nicht|kein\w*|nich|net)\b"
        r"|\b(fehler\w*|problem\w*|haengt|error|fehlt|anders aus|sieht anders)\b"
        r"|\b(doesn'?t|does not|can'?t|cannot|don'?t) (work|find|see)\b|\bnot working\b"
        r"|\bverstehe? (ich )?nicht\b|\bkomme? nicht weiter\b|\bstecke? fest\b",
    ),
    (
        "ask_settings",
        r"\b(einstellungen|serverdaten|zugangsdaten|servername\w*|serveradresse\w*|hostname|"
        r"settings|ports?|welcher server|postausgangsserver|posteingangsserver)\b",
    ),
    (
        "ask_explanation",
        r"\b(was (ist|sind|bedeutet|heisst|bringt)|warum|wieso|weshalb|wozu|wofuer|erklaer\w*|"
        r"unterschied|what is|what's|why|explain|difference)\b",
    ),
    (
        "next_step",
        r"\b(weiter\w*|next|naechste\w*|erledigt|fertig|gemacht|done|geschafft|continue|"
        r"hab ich|habe ich|und jetzt|und dann)\b|^(klappt|geht|funktioniert)$",
    ),
    (
        "goodbye",
        r"\b(tschuess|tschues|tschau|ciao|auf wiedersehen|bis bald|bis dann|bye|adieu|ade|"
        r"schoenen tag noch|machs gut)\b",
    ),
    ("thank", r"\b(danke\w*|dank|thx|thanks|thank you|merci|vielen dank)\b"),
    (
        "greet",
        r"^(hallo|hallihallo|hi|hey|moin|moinsen|servus|gruess gott|gruss gott|gruezi|griass di|"
        r"guten (morgen|tag|abend)|hello|good (morning|afternoon|evening)|huhu|tach|na)\b",
    ),
    (
        "affirm",
        r"^(ja|jo|joa|jep|jap|japp|jup|yes|yep|yup|genau|richtig|stimmt|passt|ok|okay|okey|"
        r"korrekt|sicher|klar|gerne?|jawohl|sure|correct|natuerlich|bitte)\b",
    ),
    ("deny", r"^(nein|ne|nee|noe|no|nope|falsch|stimmt nicht|nicht richtig|auf keinen fall)\b"),
]

COMPILED: list[tuple[Intent, re.Pattern[str]]] = [
    (intent, re.compile(pattern)) for intent, pattern in _PATTERNS
]

# Single words users mistype; matched fuzzily when no pattern matched.
KEYWORDS: dict[str, Intent] = {
    "weiter": "next_step",
    "zurueck": "previous_step",
    "nochmal": "repeat_step",
    "hallo": "greet",
    "danke": "thank",
    "tschuess": "goodbye",
    "pruefen": "request_check",
    "mensch": "request_human",
    "erledigt": "next_step",
    "fertig": "next_step",
}


def match_intent(normalized: str) -> Intent | None:
    for intent, pattern in COMPILED:
        if pattern.search(normalized):
            return intent
    return None
