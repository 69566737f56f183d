"""Passwords out of what users write, before anything is stored, understood, relayed or mailed.

Lotse never asks for a password, but users paste them anyway. Three kinds of message carry one:
- a disclosure around a password word: "mein Passwort ist …", "Kennwort: …", "PW …",
  "… ist mein Passwort", "Zugangsdaten: anna / …" (typos such as "passwrot" included). Everything
  after the phrase goes, up to the end of the line or to where a new clause starts with a word
  that is no password ("…, hab ich schon probiert"; a quoted value: up to the closing quote), so
  a password of several words is never half kept. A phrase about the password ("ist falsch",
  "vergessen?", "nach dem Passwort") is no disclosure: the first word after it decides;
- a line that is one token shaped like a password ("Sommer2024!" alone);
- a token in running text with a part of three classes (lower, upper, digits, symbols inside),
  eight or more characters long (six on a line that names a password).
Things users legitimately type in that shape are never passwords: addresses, host names,
versions, error codes such as 0x800CCC0E, ports, program names with their version
("Outlook2016"), codes in capitals, and tokens that separators (paths, menus, "Fehler:0x…",
"Strg+Alt+Entf") split into such known parts and plain words.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from rapidfuzz.distance import OSA

__all__ = ["REDACTED", "Redaction", "is_password_word", "redact"]

REDACTED = "[Passwort entfernt]"

# Words that name a password or a set of credentials; a compound ending in one ("Uni-Passwort",
# "Mailpasswort") counts too. Typos within two edits of the long forms count as well.
_PASSWORD_WORDS_TEXT = """
    passwort passworte passworts passwörter password passwords passwd pw pwd kennwort kennworte
    kennworts kennwörter passphrase pin
"""
_PASSWORD_WORDS = frozenset(_PASSWORD_WORDS_TEXT.split())
_LONG_FORMS = ("passwort", "password", "kennwort")
_CREDENTIAL_WORDS_TEXT = """
    zugangsdaten anmeldedaten logindaten login-daten zugangscode credentials
"""
_CREDENTIAL_WORDS = frozenset(_CREDENTIAL_WORDS_TEXT.split())
# A phrase after a password word that is about the password, not the password itself. Only the
# first word after "ist", ":" etc. is looked at; "übrigens", "jetzt" and the like are skipped.
_NOT_A_VALUE_TEXT = """
    nicht nich net ned nie niemals kein keine keinen keiner nix nichts weder falsch richtig
    korrekt korekt ok okay o.k. gültig ungültig abgelaufen gesperrt geändert zurückgesetzt
    vergessen weg futsch kaputt leer neu alt alte altes neue neues gleich gleiche dasselbe
    derselbe dieselbe identisch anders unbekannt bekannt sicher unsicher zu sehr bestimmt
    sicherlich wirklich definitiv vermutlich wohl anscheinend offenbar angeblich plötzlich seit
    schon bereits dabei drin da hier dort egal lang kurz schwach stark einfach kompliziert
    abgelehnt akzeptiert richtige falsche korrekte siehe s. hinterlegt erforderlich nötig
    notwendig vorhanden verlangt benötigt verschlüsselt unverändert vorgegeben der die das dem
    den des ein eine einen einem einer mein meine meins meinen meinem dein deine sein seine ihr
    ihre unser unsere euer welches welche welcher was wer wo wie warum wann woher wohin ob ich
    du er sie es wir man mir mich dir dich uns euch ihm ihn ihnen und oder aber weil dass denn
    wenn als bei beim mit für fürs von vom zum zur nach vor über unter in im an am auf aus um
    ohne gegen durch ist sind war waren wird wurde werden hat habe hab hatte haben kann muss
    soll darf will möchte geht ging funktioniert klappt stimmt passt fehlt fragt kommt steht
    bleibt heißt not no never wrong correct right incorrect expired locked blocked invalid
    valid the a an my your our his her its same fine changed reset forgotten unknown empty old
    new saved stored required needed rejected accepted working broken too and or but in on for
    of to what which where how why who when is are was were does doesn't isn't being
    eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf mehrere viele
    super total echt ziemlich recht relativ extrem voll ganz etwas bisschen viel eher nur fast
    genau
"""
_NOT_A_VALUE = frozenset(_NOT_A_VALUE_TEXT.split())
_CONJUNCTIONS = frozenset(("und", "aber", "doch", "oder", "and", "but", "or"))
# Skipped between "ist"/":" and the value: "ist übrigens …", "lautet wie folgt: …".
_FILLER = re.compile(
    r"(?i)(?:(?:übrigens|eigentlich|immer\s+noch|noch|jetzt|nun|momentan|aktuell|derzeit|"
    r"zurzeit|halt|eben|ja|doch|eh|auch|leider|also|wie\s+folgt|folgendermaßen|folgendes|still|now|"
    r"currently|actually)\b[:,]?\s*)*"
)
# What joins a password word to its value: "ist", "lautet", ":", "=" (with an optional
# "für anna@…" or "(falls nötig)" before it).
_CONNECTOR = re.compile(
    r"(?i)(?:\s*\([^)\n]{0,60}\))?"
    r"(?:\s+(?:für|fürs|von|vom|bei|beim|of|for)\s+\S+(?:\s+\S+){0,2}?(?=\s+(?:ist|lautet|is)\b|\s*:))?"
    r"(?:\s*[:=]\s*|\s+(?:ist|sind|lautet|lauten|lautete|heißt|heisst|hieß|wäre|war|is|was|"
    r"are)\b[ \t]*:?[ \t]*)"
)
# Before a password word, what makes the colon after it a topic, not a label ("Frage zum
# Passwort: …", "nach dem Passwort").
_TOPIC = re.compile(
    r"(?i)\b(?:zum|zur|beim|dem|vom|am|im|über|wegen|nach|about|with|regarding)\s+"
    r"(?:\w+\s+)?$"
)
# "hier das Passwort …", "here's my password: …": the rest of the line is the password.
_HERE = re.compile(r"(?i)\b(?:hier|anbei|here|here's)\b(?:\s+\w+){0,2}\s*$")
# "Sommer2024 ist mein Passwort", "ich nehme X als Passwort", "I use X as password".
_VALUE_BEFORE = re.compile(
    r"(?i)(\S+)\s+(?:ist|is|sind|war|was|als|as)\s+"
    r"(?:(?:mein|meine|das|dein|unser|my|the|your)\s+)?(?:(?:neues|neue|altes|alte|new|old)\s+)?$"
)
# "Benutzer anna, Passwort …": a user name given just before.
_USER_WORDS = r"(?:benutzer|benutzername|nutzer|nutzername|user|username|login|kennung)"
_USER_LABEL = re.compile(rf"(?i){_USER_WORDS}")
_USER_BEFORE = re.compile(
    rf"(?i)\b{_USER_WORDS}\b"
    r"\s*[:=]?\s*(\S+?)\s*[,/;]?\s*(?:und\s+|and\s+)?$"
)
_PARTICIPLE = re.compile(
    r"(?:(?:ab|an|auf|aus|ein|vor|zurück|um|weg)?ge[^\W\d_]{3,}(?:t|en)"
    r"|(?:be|er|ver|ent|zer|hinter|über)[^\W\d_]{3,}t|[^\W\d_]+iert)"
)
_QUOTES = {'"': '"', "'": "'", "„": "“”", "“": "”", "‚": "‘’", "»": "«", "«": "»"}
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
_TOKEN = re.compile(r"\S+")
_SPACES = re.compile(r"[ \t]+")
_SEPARATORS = re.compile(r"[ \t,:]*")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # quotes, brackets, punctuation, emoji around a word
_LONGEST = 64  # longer tokens are data (a hash, a pasted log), not something typed as a password
# Symbols that make a password: ASCII punctuation and what German keyboards add. Separators in
# names, paths, menus and markup ("E-Mail", "C:\\Users", "Datei>Optionen", "Fehler:0x…") and
# symbols such as ® or emoji do not count.
_SEPARATORS_IN_TOKEN = "/\\<>|:()[]{}+&="
_SPLIT = re.compile(r"[/\\<>|:()\[\]{}+&=\ufffd]+")  # U+FFFD: a control character removed
_STRONG_SYMBOLS = frozenset(string.punctuation + "§€£") - frozenset("/\\<>|:()[]{}-_.'")

# Tokens users type that have a password's shape but are something else.
_HARMLESS = re.compile(
    r"(?ix)^(?:"
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an address
    r"|(?:https?://|www\.)\S+"  # a web address
    r"|[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:/\S*)?"  # a host name (mbox1.belwue.de)
    r"|v?\d+(?:[.,:]\d+)*"  # a version, number, time
    r"|0x[0-9a-f]+"  # an error code
    r"|%\w+%"  # a Windows variable (%APPDATA%)
    r"|\d+(?:x|mal|er|gb|mb|kb|tb|ghz|min|h|s|bit|%)"  # 3x, 2mal, 10GB
    r")$"
)
_LOWER_HEX = re.compile(r"[0-9a-f]{6,}")  # hashes and fingerprints: 3f2a9c01
# Program, device and protocol names that users glue to a version: "Outlook2016", "iOS16".
_PRODUCT = re.compile(
    r"(?i)^(?:outlook|office|o365|m365|microsoft|thunderbird|windows|win|ios|ipados|android|"
    r"macos|osx|iphone|ipad|ipod|mac|macbook|imac|galaxy|samsung|pixel|huawei|xiaomi|redmi|"
    r"oneplus|motorola|nokia|xperia|lenovo|thinkpad|surface|port|eduroam|imap|pop|smtp|tls|"
    r"ssl|starttls|http|https|utf|sha|md|aes|rsa|ipv|x|build|version|kb)"
    # the name alone, or with its version: "Outlook2016", "Win10Pro", "IMAP4rev1", "TLSv1.2"
    r"[-_]?(?:v?\d+(?:[.,]\d+)*(?:[a-z]{1,4}\d*)?)?(?:pro|plus|max|ultra|mini|air|se|esr)?$"
)


@dataclass(frozen=True)
class Redaction:
    text: str  # the message with every password replaced by REDACTED
    found: bool  # whether anything was replaced


def redact(text: str) -> Redaction:
    """Replace every password in `text`; say whether there was one."""
    spans: list[tuple[int, int]] = []
    lines = _lines(text)
    for index, (start, line) in enumerate(lines):
        disclosed = _disclosures(lines, index)
        spans.extend(disclosed)
        mentioned = any(is_password_word(word) for word in _WORD.findall(line))
        spans.extend(_shaped_tokens(line, start, mentioned=mentioned, disclosed=bool(disclosed)))
    if not spans:
        return Redaction(text, False)
    pieces: list[str] = []
    position = 0
    for begin, end in _merged(spans):
        pieces.append(text[position:begin])
        pieces.append(REDACTED)
        position = end
    pieces.append(text[position:])
    return Redaction("".join(pieces), True)


def _lines(text: str) -> list[tuple[int, str]]:
    """Each line with its offset in `text`."""
    result = []
    offset = 0
    for line in text.split("\n"):
        result.append((offset, line))
        offset += len(line) + 1
    return result


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def is_password_word(word: str) -> bool:
    lower = word.lower()
    if lower in _PASSWORD_WORDS or lower in _CREDENTIAL_WORDS:
        return True
    last = lower.rsplit("-", 1)[-1]
    if last in _PASSWORD_WORDS or lower.endswith(_LONG_FORMS):
        return True
    # Typos: "passwrot", "paswort", "Passowrt", "kenwort" (at most two edits, same first letter).
    return 6 <= len(lower) <= 11 and any(
        lower[0] == form[0] and OSA.distance(lower, form) <= 2 for form in _LONG_FORMS
    )


def _disclosures(lines: list[tuple[int, str]], index: int) -> list[tuple[int, int]]:
    """Spans of passwords given around a password word on line `index`."""
    offset, line = lines[index]
    spans: list[tuple[int, int]] = []
    covered = 0  # the line is redacted up to here already
    for word in _WORD.finditer(line):
        if word.start() < covered or not is_password_word(word.group()):
            continue
        credentials = word.group().lower() in _CREDENTIAL_WORDS
        before = line[max(0, word.start() - 120) : word.start()]
        value_before = _VALUE_BEFORE.search(before)
        if value_before and _is_value(value_before.group(1)):
            # "X ist mein Passwort": from the start of the sentence to the value.
            shift = word.start() - len(before)
            spans.append(
                (
                    offset + _sentence_start(line, shift + value_before.start(1)),
                    offset + shift + value_before.end(1),
                )
            )
        if _TOPIC.search(before):
            continue
        value = _value_after(line, word.end(), before)
        if value is None:
            continue
        if value < len(line):
            covered = _value_end(line, value)
            spans.append((offset + value, offset + covered))
        else:  # "Passwort:" at the end of a line: the value is on the next line(s)
            spans.extend(_next_lines(lines, index + 1, all_until_blank=credentials))
    return spans


def _sentence_start(line: str, position: int) -> int:
    marks = [line.rfind(mark, 0, position) for mark in (". ", "! ", "? ", ": ", ", ")]
    return max((mark + 2 for mark in marks if mark >= 0), default=0)


def _value_after(line: str, end: int, before: str) -> int | None:
    """Where the password after a password word starts, or None when there is none."""
    connector = _CONNECTOR.match(line, end)
    if connector is not None:
        filler = _FILLER.match(line, connector.end())
        value = filler.end() if filler else connector.end()
        if value >= len(line):
            return (
                value if line[connector.start() : connector.end()].strip().endswith(":") else None
            )
        if line[value] in _QUOTES:
            return value
        first = _TOKEN.match(line, value)
        assert first is not None
        word = first.group()
        if line[value] in "?…" or word.startswith(".."):
            return None
        if _is_value(word) and not _is_question_word(word):
            return value
        return None
    if _HERE.search(before):
        separators = _SEPARATORS.match(line, end)
        return separators.end() if separators else end
    bare = _SPACES.match(line, end)
    if bare is None:
        return None
    value = bare.end()
    if value >= len(line):
        return None
    if line[value] in _QUOTES:
        return value
    first = _TOKEN.match(line, value)
    assert first is not None
    if _has_password_shape(first.group()):
        return value
    user = _USER_BEFORE.search(before)
    if user and _is_value(user.group(1)) and _is_value(first.group()):
        return value
    return None


def _value_end(line: str, value: int) -> int:
    """A quoted value ends at its closing quote. Anything else ends at the end of the line, or
    where a new clause starts with a word that is no password ("…, hab ich schon probiert",
    "… und es geht nicht"): a password of several words is never half kept."""
    closing = _QUOTES.get(line[value])
    if closing is not None:
        for position in range(value + 1, len(line)):
            if line[position] in closing:
                return position + 1
    tokens = list(_TOKEN.finditer(line, value))
    for index in range(1, len(tokens)):
        previous, word = tokens[index - 1].group(), tokens[index].group().lower()
        if word in _CONJUNCTIONS and index + 1 < len(tokens):
            word = tokens[index + 1].group().lower()
        elif previous[-1] not in ",;.!?":
            continue
        if _core(word) in _NOT_A_VALUE:
            return tokens[index - 1].end()
    return len(line.rstrip())


def _next_lines(
    lines: list[tuple[int, str]], first: int, *, all_until_blank: bool
) -> list[tuple[int, int]]:
    """The value of a "Passwort:" that ends its line: the next line (for "Zugangsdaten:",
    every line up to a blank one)."""
    spans: list[tuple[int, int]] = []
    for start, line in lines[first:]:
        if not line.strip():
            if spans:
                break
            continue
        spans.append((start, start + len(line)))
        if not all_until_blank:
            break
    return spans


def _is_value(token: str) -> bool:
    """Could this first word after "ist"/":" be a password (not "falsch", "das", "?")?"""
    core = _core(token).lower()
    if len(core) < 3 or not any(char.isalnum() for char in core):  # ":D", "?", "******"
        return False
    if core in _NOT_A_VALUE:
        return False
    # Participles describe the password: "gemeint", "gespeichert", "akzeptiert", "verlangt".
    return not _PARTICIPLE.fullmatch(core)


def _is_question_word(token: str) -> bool:
    """ "gemeint?" ends a question; "Winter2025?" is a password that ends in a question mark."""
    return token.endswith("?") and token.rstrip("?").isalpha()


def _core(token: str) -> str:
    return _EDGES.sub("", token)


def _classes(core: str) -> tuple[bool, bool, bool, bool]:
    lower = any(char.islower() for char in core)
    upper = any(char.isupper() for char in core)
    digit = any(char.isdigit() for char in core)
    symbol = any(char in _STRONG_SYMBOLS for char in core)
    return lower, upper, digit, symbol


def _is_known(part: str) -> bool:
    """An address, host, version, error code, product name or code in capitals."""
    if _HARMLESS.match(part) or _PRODUCT.match(part) or _LOWER_HEX.fullmatch(part):
        return True
    lower, upper, _digit, symbol = _classes(part)
    # Codes in capitals: AES256, KB5034441, S21, B-204.
    return upper and not lower and not symbol


def _parts(core: str) -> list[str]:
    """ "Fehler:0x800CCC0E" -> ["Fehler", "0x800CCC0E"]; "Sommer2024!" stays whole."""
    return [_core(part) for part in _SPLIT.split(core) if _core(part)]


def _is_plain(part: str) -> bool:
    """Words and numbers joined by hyphens: "E-Mail", "B-204", "Cisco-AnyConnect-4.10"."""
    return all(
        piece.isalpha() or piece.isdigit() or _is_known(piece)
        for piece in re.split(r"[-_]+", part)
        if piece
    )


def _is_harmless(core: str) -> bool:
    """Known as a whole, or made of plain words, numbers and known parts."""
    return _is_known(core) or all(_is_known(part) or _is_plain(part) for part in _parts(core))


def _strong_part(core: str) -> bool:
    """A part of three classes (lower, upper, digits, symbols) that is nothing known."""
    return any(sum(_classes(part)) >= 3 and not _is_known(part) for part in _parts(core))


def _has_password_shape(token: str) -> bool:
    """After a password word: letters with digits or symbols ("Sommer2024", "Xk9$mP2q")."""
    core = _core(token)
    if len(core) < 4 or _is_harmless(core):
        return False
    lower, upper, digit, symbol = _classes(core)
    return (lower or upper) and (digit or symbol)


def _shaped_tokens(
    line: str, offset: int, *, mentioned: bool, disclosed: bool
) -> list[tuple[int, int]]:
    """Tokens that look like a password wherever they stand: of three classes (from six
    characters on a line that names a password, else from eight), alone on their line, or
    letters with digits on a line that gave a password already ("… war blumen99 und das neue
    ist blumen100"), unless a user name label comes just before."""
    tokens = list(_TOKEN.finditer(line))
    spans = []
    for index, token in enumerate(tokens):
        core = _core(token.group())
        if len(core) > _LONGEST or _is_harmless(core):
            continue
        lower, upper, digit, symbol = _classes(core)
        strong = len(core) >= (6 if mentioned else 8) and _strong_part(core)
        alone = len(tokens) == 1 and len(core) >= 6 and (lower or upper) and (digit or symbol)
        named_user = index > 0 and _USER_LABEL.fullmatch(tokens[index - 1].group().rstrip(":="))
        another = disclosed and len(core) >= 6 and (lower or upper) and digit and not named_user
        if strong or alone or another:
            spans.append((offset + token.start(), offset + token.end()))
    return spans
