"""Typed models of the knowledge base that admins keep as YAML in `knowledge/`.

The YAML files map one to one onto these models: `server.yaml` -> `ServerFile`, one file per
program family -> `ProgramFile`, `faq.yaml` -> `FaqFile`. Validation errors carry the field path;
`bot.knowledge.loader` turns that path into a file and line for the admin.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
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


class Localized(Strict):
    """A text in German, optionally with an English translation.

    In YAML an admin may write a plain string (German) or a mapping `{de: ..., en: ...}`.
    """

    de: NonEmpty
    en: NonEmpty | None = None

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


class StepItem(Strict):
    """A bullet inside a step (the seed nests port tables two levels deep)."""

    text: NonEmpty
    items: list[StepItem] = Field(default_factory=list)


class Step(Strict):
    text: NonEmpty
    items: list[StepItem] = Field(default_factory=list)
    # Shown only to users of these incoming protocols (e.g. the seed's POP3 notes).
    only_for: list[IncomingProtocol] = Field(default_factory=list)

    def applies_to(self, protocol: str | None) -> bool:
        return not self.only_for or protocol is None or protocol in self.only_for


VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*$")


def _version_to_text(value: object) -> object:
    # YAML reads 2013 as an int; our loader keeps numbers as text, but models built in code
    # (tests, tools) may still pass ints.
    return str(value) if isinstance(value, int) else value


Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN.pattern)]


class Guide(Strict):
    id: Slug
    title: NonEmpty  # the seed's heading, e.g. "Microsoft Outlook 2010/13/16"
    label: NonEmpty  # short name for buttons, e.g. "Outlook 2010/2013/2016"
    versions: list[Version] = Field(default_factory=list)
    aliases: list[NonEmpty] = Field(default_factory=list)
    # Offer an Apple configuration profile ("Profil installieren") as an alternative.
    offers_profile: bool = False
    steps: list[Step] = Field(min_length=1)

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


# --- faq.yaml ----------------------------------------------------------------------------


class FaqEntry(Strict):
    id: Slug
    question: LocalizedText
    keywords: list[NonEmpty] = Field(min_length=1)
    answer: LocalizedText


class FaqFile(Strict):
    faq: list[FaqEntry] = Field(min_length=1)
