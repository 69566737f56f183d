"""Phrase patterns for the intents, on normalised text (umlauts spelt out: "zurueck").

Order matters: the first pattern that matches wins, so specific phrases ("bist du ein Mensch")
come before general ones ("Mensch").
"""

from __future__ import annotations

import re

from bot.understanding.types import Intent

__all__ = ["COMPILED", "GREETING", "KEYWORDS", "match_intent"]

_GREET = (
    r"^(hallo|hallihallo|hi|hey|moin|moinsen|servus|gruess gott|gruss gott|gruezi|griass di|"
    r"guten (morgen|tag|tach|abend)|schoenen guten|hello|good (morning|afternoon|evening)|"
    r"huhu|tach|tag auch|tag|griasdi|griass di|hallochen|halloechen|halloele)\b|^na$"
)

_PATTERNS: list[tuple[Intent, str]] = [
    (
        "bot_challenge",
        r"\b(bist du|sind sie|are you|is this)( denn| wirklich| eigentlich)? (ein |eine |an? )?"
        r"(echte[rs]? |richtige[rs]? |kuenstliche |real )?"
        r"(bot|chatbot|chatgpt|mensch|maschine|roboter|ki|intelligenz|computer|programm|echt|"
        r"human|robot|real|person|mitarbeiter\w*)\b"
        r"|\b(mit wem|wer) (spreche|rede|schreibe|antwortet|schreibt)\b|^(wer|was) bist du\b"
        r"|\b(rede|spreche|schreibe|bin) ich (hier )?mit (einem|einer) (echten )?"
        r"(mensch\w*|maschine|bot|computer|programm)\b|\btalking to a (bot|human|machine)\b"
        r"|\bantwortet (hier|mir) (ein|eine) (programm|maschine|bot)\b|^wer ist da\b",
    ),
    (
        "delete_data",
        r"\b(loesch|entfern|vergiss|vergessen)\w*\b.*\b(daten|verlauf|alles|mich|gespraech)"
        r"|\b(daten|verlauf)\b.*\b(loesch|entfern)\w*|\bdelete\b.*\b(data|history)\b|\bforget me\b"
        r"|\bloesch(e|en|t|ung)?\b|\bgeloescht werden\b|\balles vergisst\b|\bdaten weg\b",
    ),
    (
        "request_human",
        # "support" as a verb ("does the server support ActiveSync?") asks for no one
        r"\b(mensch|menschen|mitarbeiter\w*|kollegin|kollegen|person|agent\w*|"
        r"(?<!not )(?<!server )(?<!you )support(?! (exchange|activesync|eas|imap|pop|smtp|tls))|"
        r"helpdesk|"
        r"servicedesk|service-desk|hotline|human|someone|somebody)\b"
        r"|\b(jemand\w*) (echte\w*|richtige\w*|von euch|von ihnen|vom)\b|\banrufen\b|\bticket\w*\b"
        r"|\bpersoenliche hilfe\b",
    ),
    (
        "request_check",
        r"\b(pruef\w*|ueberpruef\w*|test\w*|check\w*|erreichbar\w*)\b"
        r"|\b(mail)?server\b.*\b(geht|laeuft|down|kaputt|online|offline|ausgefallen|stoerung|"
        r"gestoert|probleme?)\b|\b(stoerung\w*|kaputt bei euch)\b"
        r"|\bports?( \d+)? (offen|erreichbar|blockiert)\b"
        r"|\b(geht|laeuft|funktioniert)\b.*\bder server\b|\bserverstatus\b",
    ),
    (
        "restart",
        r"\b(von vorne?|neu ?start\w*|neu anfangen|neuanfang|restart|start over|reset|"
        r"neue anleitung|andere[ns]? (programm|anleitung|geraet|app)|alles auf anfang|"
        r"zurueck (auf|zum) (start|anfang)|neu beginnen|starte? neu|von anfang an|ganz neu|"
        r"falsche programm)\b",
    ),
    (
        "previous_step",
        r"\b(zurueck\w*|vorherige\w*|vorige\w*|back|previous)\b"
        r"|\b(schritt|einen) (davor|vorher)\b|^(davor|vorher)$",
    ),
    (
        "repeat_step",
        r"\b(nochmal|noch ?mal|noch einmal|wiederhol\w*|repeat|again|no ?a?moi|nochamol|nomol)\b"
        r"|^(wie bitte|hae|wie war das)\b",
    ),
    (
        "step_problem",
        r"\b(geht|klappt|funktioniert|passt|tut)( es| das)?"
        r"( leider| immer| noch| mehr| trotzdem| jetzt| wieder| aber| halt| bei mir| hier)* "
        r"(nicht|nich|net|ned|nit)\b|\bkeine (mails?|e-mails?|nachrichten)\b"
        r"|\b(antwortet|reagiert|angenommen)\w* nicht\b|\bnicht angenommen\b|\b(ausgegraut|grau)\b"
        r"|^wo ist (das|der|die) (menue|feld|knopf|button|reiter|punkt|haken|option)\b"
        r"|\bzertifikat\w*\b|\bda steht was anderes\b"
        r"|\b(finde|find|sehe|gibt|habe|hab|hob)\b.*\b(nicht|kein\w*|nich|net|ned)\b"
        r"|\b(fehler\w*|problem\w*|haengt|error|fehlt|anders aus|sieht anders)\b"
        r"|\b(doesn'?t|does not|can'?t|cannot|don'?t) (work|find|see)\b|\bnot working\b"
        r"|\bverstehe? (ich )?nicht\b|\bkomme? nicht weiter\b|\bstecke? fest\b",
    ),
    (
        "ask_settings",
        r"\b(einstellungen|serverdaten|zugangsdaten|servername\w*|serveradresse\w*|hostname|"
        r"settings|ports?|portnummer\w*|welcher server|\w*ausgangsserver|\w*eingangsserver|"
        r"servereinstellung\w*|eintragen|trage ich|(post)?ausgang)\b"
        r"|\bwie (heisst|lautet) (der|die|das) (\w+ )?(mail|imap|pop3?|smtp)?-? ?server\w*"
        r"|\bwo (stell|schalt|aktivier)\w* ich\b",
    ),
    (
        "ask_explanation",
        r"\b(was (ist|sind|bedeutet|heisst|bringt)|warum|wieso|weshalb|wozu|wofuer|erklaer\w*|"
        r"unterschied|what is|what's|why|explain|difference)\b"
        r"|\b(brauch|benoetig)\w* (sie|du|ihr) (mein|das) passwort\b|\bpasswort angeben\b"
        r"|^ist das (auch )?sicher\b",
    ),
    (
        "next_step",
        r"\b(weiter(?!leit|geleit)\w*|weida|weita|next|naechste\w*|erledigt|fertig|ferti|gemacht|gmacht|done|"
        r"geschafft|continue|hab ich|habe ich|habs|hab's|hob i|hobs|und jetzt|und dann|und nun|"
        r"was nun|wie weiter)\b"
        r"|^(klappt|geht|funktioniert)$|\b(hat|hats|es hat) (geklappt|funktioniert)\b"
        r"|\b(klappt|geht|funktioniert) (jetzt|wieder)\b",
    ),
    (
        "goodbye",
        r"\b(tschuess|tschues|tschau|ciao|auf wiedersehen|bis bald|bis dann|bye|adieu|ade|"
        r"schoenen tag noch|machs gut|mach's gut|auf wiederschauen|wiedersehen|"
        r"bis (spaeter|morgen|zum naechsten mal)|man sieht sich|schoenes wochenende|"
        r"schoenen feierabend|pfiat di|tschuessikowski|bin dann mal weg|das wars|see you|goodbye|"
        r"gute nacht)\b",
    ),
    (
        "deny",
        r"^(nein|ne|nee|noe+|no|nope|falsch|stimmt nicht|nicht richtig|auf keinen fall|"
        r"lieber nicht|eher nicht|das ist falsch|keinesfalls|nicht noetig|nicht wirklich|nix da)\b",
    ),
    ("thank", r"\b(danke\w*|dank|thx|thanks|thank you|merci|vielen dank)\b"),
    ("greet", _GREET),
    (
        "affirm",
        r"^(ja|jo|joa|jep|jap|japp|jup|yes|yep|yup|genau|richtig|stimmt|passt|basst|"
        r"(des|das) passt|ok|okay|okey|k|kk|"
        r"oki|okidoki|alles klar|klaro|mhm|mhmm|aha|top|super|prima|perfekt|verstanden|gut|"
        r"alright|got it|cool|fine|"
        r"korrekt|sicher|klar|na klar|gerne?|jawohl|jawoll|jaja|jaa+|jepp|sure|correct|natuerlich|"
        r"bitte|auf jeden fall|so ist es|exakt|ganz genau)\b",
    ),
]

# English phrasings beside the German ones, joined to the intent's pattern (same place in the
# order): "which server do I use", "what does SSL mean", "different program", "cheers".
_ENGLISH: dict[Intent, str] = {
    "delete_data": r"\b(delete|erase|remove|wipe)\b.*\b(everything|all|my (messages|conversation|"
    r"chat|account data))\b",
    "request_human": r"\b(talk|speak|chat|write) (to|with) (a |an |some )?(real )?(people|staff|"
    r"colleague|technician)\b|\breal person\b|\bcall (you|someone)\b",
    "request_check": r"\b(is|are) (the |your )?(mail )?server\w* (down|up|working|online|offline|"
    r"ok|reachable)\b|\bserver (is )?down\b|\boutage\b",
    "restart": r"\b(different|another|other|wrong) (program|app|client|device|guide|mail program|"
    r"email app|mail app)\b|\bstart (again|from scratch|from the beginning)\b|\bbegin again\b",
    "repeat_step": r"\bone more time\b|\bcome again\b|^(pardon|sorry)$|\bsay (that|it) again\b",
    "step_problem": r"^where (is|are) (it|that|this|they|the \w+)\b|\bi (can'?t|cannot|don'?t) "
    r"(see|find|get)\b|\b(isn'?t|is not|aren'?t) there\b|\bnothing happens\b|\bstuck\b"
    r"|\blooks different\b|\b(greyed|grayed) out\b|\bdidn'?t work\b|\bstill (not|no)\b",
    "ask_settings": r"\b(which|what) (server|port|host)s?\b|\b(incoming|outgoing) (mail )?"
    r"(server|port)s?\b|\bserver (name|address|settings|details)\b|\b(smtp|imap|pop3?) server\b",
    "ask_explanation": r"\bwhat (does|do) .*\bmean\b|\bmeaning of\b|\bwhat are\b"
    r"|\bhow (does|do) .* work\b|\bdo you need my password\b",
    "next_step": r"\b(did it|go on|what now|what'?s next|and now|then what|i'?m done|all done|"
    r"next one|it worked|that worked|works now|did that|(?<!not )completed|"
    r"(?<!not )(?<!not yet )finished)\b",
    "goodbye": r"\b(see ya|cya|take care|have a (nice|good|great) (day|evening|weekend))\b",
    "deny": r"^(nah|no thanks|not really|wrong|incorrect|negative|that'?s wrong)\b",
    "thank": r"\b(cheers|thank u|ty|much appreciated)\b",
    "greet": r"^(hiya|greetings|good day|howdy|yo|heya)\b",
    "affirm": r"^(yeah|ya|yea|absolutely|of course|sounds good|right|exactly|true|indeed|"
    r"that'?s (right|correct)|go ahead|please do)\b",
}

COMPILED: list[tuple[Intent, re.Pattern[str]]] = [
    (intent, re.compile(f"{pattern}|{_ENGLISH[intent]}" if intent in _ENGLISH else pattern))
    for intent, pattern in _PATTERNS
]

# The greeting at the start of a message, to read what follows it on its own.
GREETING = next(pattern for intent, pattern in COMPILED if intent == "greet")

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
