"""Typed models of the knowledge base that admins keep as YAML in `knowledge/`.

The YAML files map one to one onto these models: `server.yaml` -> `ServerFile`, one file per
program family -> `ProgramFile`, `faq.yaml` -> `FaqFile`. Validation errors carry the field path;
`bot.knowledge.loader` turns that path into a file and line for the admin.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
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


class Helpdesk(Strict):
    name: NonEmpty
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    phone: NonEmpty | None = None


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
