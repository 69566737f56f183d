"""Typed models of the knowledge base that admins keep as YAML in `knowledge/`.

The YAML files map one to one onto these models: `server.yaml` -> `ServerFile`, one file per
program family -> `ProgramFile`, `faq.yaml` -> `FaqFile`, `cards.yaml` (programs without a
guide) -> `CardsFile`, `devices.yaml` -> `DevicesFile`, `troubleshooting.yaml` ->
`TroubleshootingFile`. Validation errors carry the field path; `bot.knowledge.loader` turns that
path into a file and line for the admin.

German is the source language. Beside every German text stands its English translation (`en`)
and `de_hash`, the short hash of the German text that translation was made from
(`bot.knowledge.translations`): when the German changes, the checks call the English stale.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache, cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from bot.normalize import normalize

__all__ = [
    "GUIDE_ID_PATTERN",
    "VERSION_PATTERN",
    "WEEKDAYS",
    "AutomaticSetup",
    "CardNote",
    "CardProgram",
    "CardsFile",
    "Cause",
    "Clock",
    "Computer",
    "Device",
    "DevicesFile",
    "Domain",
    "Endpoint",
    "FaqEntry",
    "FaqFile",
    "GenericDevices",
    "Guide",
    "GuideEnglish",
    "Helpdesk",
    "HolidayCalendar",
    "IncomingProtocol",
    "Locale",
    "Localized",
    "LocalizedText",
    "LoginName",
    "MobilePlatform",
    "NonEmpty",
    "OpeningHours",
    "Pattern",
    "Patterned",
    "Platform",
    "Program",
    "ProgramFile",
    "Protocol",
    "Provenance",
    "Security",
    "Server",
    "ServerFile",
    "SetupWay",
    "Slug",
    "Source",
    "SourceKind",
    "Step",
    "StepHelp",
    "StepItem",
    "Strict",
    "TextHash",
    "TroubleshootingEntry",
    "TroubleshootingFile",
    "Version",
    "Wording",
    "parse_weekdays",
]

Protocol = Literal["imap", "pop3", "smtp", "eas"]
Security = Literal["tls", "starttls"]
IncomingProtocol = Literal["imap", "pop3"]
Locale = Literal["de", "en"]

GUIDE_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(pattern=GUIDE_ID_PATTERN, max_length=40)]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    ),
]


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _text_from_scalar(value: object) -> object:
    # A hash of digits only ("12345678") or an unquoted date reaches us as a number or date.
    if isinstance(value, int | date) and not isinstance(value, bool):
        return value.isoformat() if isinstance(value, date) else str(value)
    return value


# The short hash of a German text (`bot.knowledge.translations.text_hash`).
TextHash = Annotated[
    str,
    BeforeValidator(_text_from_scalar, json_schema_input_type=str),
    StringConstraints(pattern=r"^[0-9a-f]{8}$"),
]


class Localized(Strict):
    """A text in German with its English translation.

    In YAML: `{de: ..., en: ..., de_hash: ...}`; a plain string is German only (the knowledge
    checks then ask for the translation). `en` is a faithful translation of `de`, and `de_hash`
    says which German text it translates.
    """

    de: NonEmpty
    en: NonEmpty | None = None
    de_hash: TextHash | None = None

    def get(self, locale: str) -> str:
        if locale == "en" and self.en:
            return self.en
        return self.de


def _localized_from_plain(value: object) -> object:
    return {"de": value} if isinstance(value, str) else value


LocalizedText = Annotated[
    Localized,
    BeforeValidator(_localized_from_plain, json_schema_input_type=str | Localized),
]


# --- server.yaml -------------------------------------------------------------------------


class Endpoint(Strict):
    protocol: Protocol
    port: int = Field(ge=1, le=65535)
    security: Security
    host: NonEmpty | None = None
    address: NonEmpty | None = None


class Server(Strict):
    name: NonEmpty
    host: NonEmpty
    address: NonEmpty | None = None
    endpoints: list[Endpoint] = Field(min_length=1)
    # Mail domains of the users' addresses; configuration profiles are made only for these.
    mail_domains: list[Domain] = Field(default_factory=list)
    # What users log in with: the full address or only the part before the @.
    login_name: Literal["address", "local_part"] = "address"

    @field_validator("endpoints")
    @classmethod
    def _no_duplicate_ports(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        seen: set[tuple[str, int]] = set()
        for endpoint in endpoints:
            key = (endpoint.host or "", endpoint.port)
            if key in seen:
                raise ValueError(f"port {endpoint.port} is listed twice")
            seen.add(key)
        return endpoints

    def endpoints_for(self, protocol: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.protocol == protocol]


WEEKDAYS = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")  # Monday is 0, as in datetime.weekday()


def _clock_from_yaml(value: object) -> object:
    """YAML 1.1 reads an unquoted 16:00 as the number 960 (base 60); turn it back into text."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


Clock = Annotated[
    str,
    BeforeValidator(_clock_from_yaml, json_schema_input_type=str),
    StringConstraints(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"),
]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def parse_weekdays(text: str) -> frozenset[int]:
    """ "Mo-Fr" or "Mo, Mi, Fr" or "Sa" -> weekday numbers; ValueError with the reason."""
    days: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, _, last = part.partition("-")
        try:
            start = WEEKDAYS.index(first.strip())
            end = WEEKDAYS.index(last.strip()) if last else start
        except ValueError:
            raise ValueError(
                f"{part!r}: expected weekdays like 'Mo-Fr' or 'Mo, Mi' ({', '.join(WEEKDAYS)})"
            ) from None
        if end < start:
            raise ValueError(f"{part!r}: the range must run forward (Mo-Fr, not Fr-Mo)")
        days.update(range(start, end + 1))
    return frozenset(days)


class OpeningHours(Strict):
    """One line of the helpdesk's hours: `{days: Mo-Do, from: "09:00", to: "16:00"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: NonEmpty
    opens: Clock = Field(alias="from")
    closes: Clock = Field(alias="to")

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: str) -> str:
        parse_weekdays(days)
        return days

    @field_validator("closes")
    @classmethod
    def _after_opening(cls, closes: str, info: ValidationInfo) -> str:
        opens = info.data.get("opens")
        if opens is not None and _minutes(closes) <= _minutes(opens):
            raise ValueError(f"'to' ({closes}) must be later than 'from' ({opens})")
        return closes

    @property
    def weekdays(self) -> frozenset[int]:
        return parse_weekdays(self.days)

    @property
    def opens_minutes(self) -> int:
        return _minutes(self.opens)

    @property
    def closes_minutes(self) -> int:
        return _minutes(self.closes)


@cache
def _public_holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    # One calendar per region; it adds the years asked about as they come.
    return holidays.country_holidays(country, subdiv=subdivision)


class HolidayCalendar(Strict):
    """Days the helpdesk is closed although its hours say open: the public holidays of a
    country and state (from the maintained `holidays` package, not a list kept by hand) and
    days the admins add, such as the days between Christmas and New Year."""

    country: NonEmpty  # ISO 3166-1 code: DE
    subdivision: NonEmpty | None = None  # the state's ISO 3166-2 code without country: BW
    closed: list[date] = Field(default_factory=list)

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        if country not in holidays.list_supported_countries():
            raise ValueError(f"unknown country {country!r}: expected an ISO code such as DE")
        return country

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        known = holidays.list_supported_countries().get(country or "", [])
        if subdivision is not None and subdivision not in known:
            raise ValueError(
                f"unknown state {subdivision!r} of {country}: expected one of {', '.join(known)}"
            )
        return subdivision

    def is_closed(self, day: date) -> bool:
        return day in self.closed or day in _public_holidays(self.country, self.subdivision)


class Helpdesk(Strict):
    name: NonEmpty
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    phone: NonEmpty | None = None
    # When agents answer tickets; without hours the bot does not promise a time.
    hours: list[OpeningHours] = Field(default_factory=list)
    timezone: NonEmpty = "Europe/Berlin"
    holidays: HolidayCalendar | None = None

    def is_closed(self, day: date) -> bool:
        """Closed all day (a holiday), whatever the hours say."""
        return self.holidays is not None and self.holidays.is_closed(day)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (e.g. Europe/Berlin)") from None
        return name


class ServerFile(Strict):
    server: Server
    helpdesk: Helpdesk


# --- one file per program family ---------------------------------------------------------


SourceKind = Literal["vendor", "provider", "third-party", "program"]


class Source(Strict):
    """Published documentation a text is taken from: where, what, and when it was read."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    title: NonEmpty
    read: Annotated[
        str,
        BeforeValidator(_text_from_scalar, json_schema_input_type=str),
        StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$"),
    ]
    # vendor: the program's maker; provider: a university or mail provider's guide;
    # third-party: anyone else; program: the program's own source code or UI strings.
    kind: SourceKind


# A guide or help text either comes from the university's seed page or names its sources.
Provenance = Literal["seed"] | Annotated[list[Source], Field(min_length=1)]


class StepHelp(Strict):
    """What to say when the user cannot find something at this step ("wo finde ich …",
    "gibt es bei mir nicht", "sehe ich nicht")."""

    # Words for what the user misses ("Extras", "Menüleiste", "menu bar"); the engine picks the
    # entry whose keywords the user named, else the first.
    keywords: list[NonEmpty] = Field(min_length=1)
    text: LocalizedText
    source: list[Source] = Field(min_length=1)


class StepItem(Strict):
    """A bullet inside a step (the seed nests port tables two levels deep)."""

    text: NonEmpty
    en: NonEmpty | None = None
    de_hash: TextHash | None = None
    items: list[StepItem] = Field(default_factory=list)

    def localized(self, locale: str) -> StepItem:
        """This item with its texts in `locale` (German where no translation exists)."""
        return self.model_copy(
            update={
                "text": self.en if locale == "en" and self.en else self.text,
                "items": [item.localized(locale) for item in self.items],
            }
        )


class Step(Strict):
    text: NonEmpty
    en: NonEmpty | None = None
    de_hash: TextHash | None = None
    items: list[StepItem] = Field(default_factory=list)
    # Shown only to users of these incoming protocols (e.g. the seed's POP3 notes).
    only_for: list[IncomingProtocol] = Field(default_factory=list)
    help: list[StepHelp] = Field(default_factory=list)

    def applies_to(self, protocol: str | None) -> bool:
        return not self.only_for or protocol is None or protocol in self.only_for

    def localized(self, locale: str) -> Step:
        """This step with its texts in `locale` (German where no translation exists)."""
        return self.model_copy(
            update={
                "text": self.en if locale == "en" and self.en else self.text,
                "items": [item.localized(locale) for item in self.items],
            }
        )

    def help_for(self, said: str) -> StepHelp | None:
        """The help entry whose keywords occur in `said` (already normalised), else the first.

        Plain word containment only; typo tolerance is the lexicon's job.
        """
        padded = f" {said} "
        for entry in self.help:
            if any(f" {normalize(keyword)} " in padded for keyword in entry.keywords):
                return entry
        return self.help[0] if self.help else None


VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*$")


def _version_to_text(value: object) -> object:
    # YAML reads 2013 as an int; our loader keeps numbers as text, but models built in code
    # (tests, tools) may still pass ints.
    return str(value) if isinstance(value, int) else value


Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN.pattern)]


class GuideEnglish(Strict):
    """The English title and button label of a guide, and the hash of the German pair."""

    title: NonEmpty
    label: NonEmpty
    de_hash: TextHash | None = None


class Guide(Strict):
    id: Slug
    title: NonEmpty  # the seed's heading, e.g. "Microsoft Outlook 2010/13/16"
    label: NonEmpty  # short name for buttons, e.g. "Outlook 2010/2013/2016"
    en: GuideEnglish | None = None
    # `seed` for the university's own page (word for word); else the published sources.
    source: Provenance
    versions: list[Version] = Field(default_factory=list)
    aliases: list[NonEmpty] = Field(default_factory=list)
    # Offer an Apple configuration profile ("Profil installieren") as an alternative.
    offers_profile: bool = False
    # false: checked and shown by `lotse kb show`, but not offered to users yet.
    published: bool = True
    steps: list[Step] = Field(min_length=1)

    @property
    def from_seed(self) -> bool:
        return self.source == "seed"

    def localized(self, locale: str) -> Guide:
        """This guide as an English (or German) reader sees it: title, label, steps, items.

        The renderers take the result unchanged: `guide_text(guide.localized("en"), ...)`.
        """
        if locale != "en":
            return self
        return self.model_copy(
            update={
                "title": self.en.title if self.en else self.title,
                "label": self.en.label if self.en else self.label,
                "steps": [step.localized(locale) for step in self.steps],
            }
        )

    @field_validator("versions", mode="before")
    @classmethod
    def _versions_as_text(cls, value: object) -> object:
        if isinstance(value, list):
            return [_version_to_text(v) for v in value]
        return value

    def differs_by_protocol(self) -> bool:
        return any(step.only_for for step in self.steps)

    def steps_for(self, protocol: str | None) -> list[Step]:
        return [step for step in self.steps if step.applies_to(protocol)]


class Program(Strict):
    """A program family with guides (one file each, e.g. `thunderbird.yaml`)."""

    id: Slug
    name: NonEmpty
    aliases: list[NonEmpty] = Field(min_length=1)
    # Names of versions users say instead of numbers ("El Capitan" -> "10.11").
    version_names: dict[NonEmpty, Version] = Field(default_factory=dict)
    version_hint: LocalizedText
    # Where the program appears in the bot's list; the most used programs first.
    order: int = 100


class ProgramFile(Strict):
    program: Program
    guides: list[Guide] = Field(min_length=1)


# --- cards.yaml: programs without a guide -----------------------------------------------

Platform = Literal["windows", "macos", "linux", "ios", "android", "web"]
# The automatic ways Lotse can offer (bot/profiles): Mozilla autoconfig, Microsoft
# Autodiscover, an Apple configuration profile.
SetupWay = Literal["autoconfig", "autodiscover", "apple-profile"]


class AutomaticSetup(Strict):
    """An automatic way the program supports, with the documentation that says so."""

    way: SetupWay
    source: list[Source] = Field(min_length=1)


class CardNote(Strict):
    """A sentence on the settings card (e.g. "discontinued", where the settings are)."""

    text: LocalizedText
    source: list[Source] = Field(min_length=1)


class CardProgram(Strict):
    """A program Lotse knows by name but has no sourced guide for: it answers with a settings
    card (server, ports and security from `server.yaml`, the login name rule, the note that the
    password stays the same) and the automatic ways listed in `setup`."""

    id: Slug
    name: LocalizedText
    aliases: list[NonEmpty] = Field(default_factory=list)
    # A card for the newer versions of a program that has guides for older ones:
    # `family: android, from_version: "7"` answers Android 7 and later.
    family: Slug | None = None
    from_version: Version | None = None
    platforms: list[Platform] = Field(min_length=1)
    setup: list[AutomaticSetup] = Field(default_factory=list)
    # No longer works at all (Windows "Mail und Kalender"): the card says so first.
    discontinued: bool = False
    notes: list[CardNote] = Field(default_factory=list)
    # Where what the card says about the program comes from (its identity, its end).
    source: list[Source] = Field(default_factory=list)
    order: int = 100

    @field_validator("from_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return _version_to_text(value)

    @property
    def setup_ways(self) -> list[SetupWay]:
        return [entry.way for entry in self.setup]


class CardsFile(Strict):
    cards: list[CardProgram] = Field(min_length=1)


# --- devices.yaml ------------------------------------------------------------------------

MobilePlatform = Literal["ios", "android"]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    return pattern


# A regular expression matched against the normalised text (lower case, umlauts spelled out
# as ae/oe/ue/ss, punctuation dropped; see bot.normalize).
Pattern = Annotated[str, StringConstraints(min_length=1), BeforeValidator(_compiles)]


class Patterned(Strict):
    """Something the bot recognises by regular expressions over the normalised text (a device,
    a computer's system, an error message)."""

    patterns: list[Pattern] = Field(min_length=1)

    @cached_property  # matched on every turn: compile once
    def compiled(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern) for pattern in self.patterns]


class Device(Patterned):
    """A family of devices that runs one platform: names and models never mean an OS version."""

    id: Slug
    name: NonEmpty
    platform: MobilePlatform
    # What users write; each must match a pattern (the checks try them).
    examples: list[NonEmpty] = Field(min_length=1)


class GenericDevices(Patterned):
    """Words that name a device but not its platform ("Handy"): the bot asks iPhone/iPad or
    Android."""

    examples: list[NonEmpty] = Field(min_length=1)


class Computer(Patterned):
    """A computer's system ("Windows-Laptop"): it names no mail program, so the bot asks which
    one and offers those usual there. Its version ("Windows 11") is never a program's."""

    id: Slug
    name: NonEmpty  # as in "Welches Mailprogramm benutzen Sie unter Windows?"
    examples: list[NonEmpty] = Field(min_length=1)
    # Program or card ids offered, in this order.
    programs: list[Slug] = Field(min_length=1)


class DevicesFile(Strict):
    # The program whose guides serve each platform's own mail app (iPhone, Android, Mac).
    platform_programs: dict[Platform, Slug]
    devices: list[Device] = Field(min_length=1)
    generic: GenericDevices
    computers: list[Computer] = Field(default_factory=list)


# --- troubleshooting.yaml ----------------------------------------------------------------

Cause = Literal[
    "security-mismatch",  # port and security type do not belong together
    "server-name",  # server name not exactly the one in server.yaml, or not reachable
    "certificate",  # the certificate does not fit the name, or is not trusted
    "timeout",  # no answer on that port (blocked port, or waiting for the wrong handshake)
    "no-encryption",  # the program connects without encryption
    "login",  # user name or password rejected: not a TLS problem
    "tls",  # a TLS handshake that fails for other reasons
]


class Wording(Strict):
    """An error message exactly as a program shows it, with the source of that wording."""

    lang: Locale
    text: NonEmpty
    source: list[Source] = Field(min_length=1)


class TroubleshootingEntry(Patterned):
    id: Slug
    # Program or card ids whose message this is; empty for messages of any program.
    programs: list[Slug] = Field(default_factory=list)
    cause: Cause
    wordings: list[Wording] = Field(default_factory=list)
    # How users paste or retell it (the variants); each must match a pattern.
    examples: list[NonEmpty] = Field(default_factory=list)
    explanation: LocalizedText  # the cause, in the user's words
    fix: LocalizedText
    # Offer the connection check after the answer.
    offer_check: bool = True
    # Where the cause and fix come from, beyond the wordings' own sources.
    source: list[Source] = Field(default_factory=list)


class TroubleshootingFile(Strict):
    troubleshooting: list[TroubleshootingEntry] = Field(min_length=1)


# --- faq.yaml ----------------------------------------------------------------------------

LoginName = Literal["address", "local_part"]


class FaqEntry(Strict):
    id: Slug
    question: LocalizedText
    keywords: list[NonEmpty] = Field(min_length=1)
    answer: LocalizedText
    # Only for this login name rule of server.yaml (two entries word it for both rules).
    for_login_name: LoginName | None = None


class FaqFile(Strict):
    faq: list[FaqEntry] = Field(min_length=1)
