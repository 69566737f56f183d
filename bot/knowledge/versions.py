"""Which guide of a program family fits a version the user named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.knowledge.models import Guide
from bot.numbers import ascii_number

__all__ = ["GuideChoice", "covers", "guide_for_version", "parse_version"]


@dataclass(frozen=True)
class GuideChoice:
    guide: Guide
    # False when no guide covers the version and this is only the nearest one:
    # the user is told that screens may differ.
    exact: bool


def parse_version(version: str) -> tuple[int, ...]:
    numbers = (ascii_number(part) for part in version.split("."))
    return tuple(number for number in numbers if number is not None)


def _same_release(said: str, listed: str) -> bool:
    """ "60.3" is covered by "60"; "12" by "12.1"; "6" is not covered by "60"."""
    return said == listed or said.startswith(listed + ".") or listed.startswith(said + ".")


def covers(guide: Guide, version: str) -> bool:
    return any(_same_release(version, listed) for listed in guide.versions)


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return tuple(abs(x - y) for x, y in zip(a, b, strict=True))


def guide_for_version(guides: Sequence[Guide], version: str) -> GuideChoice | None:
    """The guide covering `version`, else the nearest one (see below), else None."""
    for candidate in (version, "20" + version if len(version) == 2 else None):
        if candidate is None:
            continue
        for guide in guides:
            if covers(guide, candidate):
                return GuideChoice(guide, exact=True)
    said = parse_version(version)
    listed = [(guide, parse_version(v)) for guide in guides for v in guide.versions]
    if not said or not listed:
        return None
    newest = max(listed, key=lambda item: item[1])
    oldest = min(listed, key=lambda item: item[1])
    if said > newest[1]:  # newer than every guide: the newest screens are the closest
        return GuideChoice(newest[0], exact=False)
    if said < oldest[1]:
        return GuideChoice(oldest[0], exact=False)
    # In between: the nearest listed version of the same major release, the newer one on a
    # tie ("10.14" -> "10.13"). Across a change of major release the newer guide's screens
    # are the closer ones ("macOS 11" follows "10.13", it is no neighbour of "10.11").
    same_major = [item for item in listed if item[1][0] == said[0]]
    if not same_major:
        newer = min((item for item in listed if item[1] > said), key=lambda item: item[1])
        return GuideChoice(newer[0], exact=False)
    guide, _ = min(
        same_major, key=lambda item: (_distance(said, item[1]), tuple(-x for x in item[1]))
    )
    return GuideChoice(guide, exact=False)
