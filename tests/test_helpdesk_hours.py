"""When the helpdesk answers: its hours, public holidays and closing days from server.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.models import HolidayCalendar
from bot.tickets.hours import answer_time
from tests.support import KNOWLEDGE_DIR, berlin


def when(knowledge: KnowledgeBase, now: str, locale: str = "de") -> str | None:
    return answer_time(knowledge.helpdesk, berlin(now), translator(locale))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(  # Friday, Christmas Day: the short Friday hours do not count
            "2026-12-25 10:00",
            "Jemand aus dem Helpdesk meldet sich am Montag ab 9 Uhr.",
            id="christmas-day",
        ),
        pytest.param(  # Thursday before Easter: Good Friday, the weekend and Easter Monday
            "2026-04-02 17:00",
            "Jemand aus dem Helpdesk meldet sich am Dienstag ab 9 Uhr.",
            id="before-easter",
        ),
        pytest.param(  # Epiphany is a holiday in Baden-Württemberg (server.yaml's state)
            "2026-01-05 17:00",
            "Jemand aus dem Helpdesk meldet sich am Mittwoch ab 9 Uhr.",
            id="epiphany-in-bw",
        ),
        pytest.param(  # German Unity Day falls on a Saturday in 2026: nothing changes
            "2026-10-02 14:00",
            "Jemand aus dem Helpdesk meldet sich am Montag ab 9 Uhr.",
            id="holiday-on-a-weekend",
        ),
        pytest.param(
            "2026-12-24 10:00",
            "Der Helpdesk ist heute bis 16 Uhr erreichbar.",
            id="christmas-eve-is-no-public-holiday",
        ),
    ],
)
def test_a_user_is_never_promised_an_answer_on_a_public_holiday(now: str, expected: str) -> None:
    assert when(load_knowledge(KNOWLEDGE_DIR), now) == expected


def test_days_the_admins_close_count_like_holidays_and_far_openings_name_the_date() -> None:
    helpdesk = load_knowledge(KNOWLEDGE_DIR).helpdesk
    calendar = HolidayCalendar.model_validate(
        {
            "country": "DE",
            "subdivision": "BW",
            "closed": ["2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31"],
        }
    )
    closed = helpdesk.model_copy(update={"holidays": calendar})
    # Christmas Eve after hours: Christmas, the weekend, the closed days, New Year, the weekend.
    text = answer_time(closed, berlin("2026-12-24 17:00"), translator("de"))
    assert text == "Jemand aus dem Helpdesk meldet sich am 04.01.2027 ab 9 Uhr."
    english = answer_time(closed, berlin("2026-12-24 17:00"), translator("en"))
    assert english == "Someone from the helpdesk will get back to you on Jan 4, 2027 from 9:00."


def test_without_a_holiday_calendar_only_the_hours_count() -> None:
    helpdesk = load_knowledge(KNOWLEDGE_DIR).helpdesk.model_copy(update={"holidays": None})
    text = answer_time(helpdesk, berlin("2026-12-25 10:00"), translator("de"))
    assert text == "Der Helpdesk ist heute bis 13 Uhr erreichbar."


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("{country: XX}", "unknown country 'XX'"),
        ("{country: DE, subdivision: Bayern}", "unknown state 'Bayern' of DE"),
        ("{country: DE, closed: [31.12.2026]}", "closed"),
    ],
)
def test_a_holiday_setting_that_cannot_work_is_reported_with_its_line(
    tmp_path: Path, setting: str, complaint: str
) -> None:
    directory = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, directory)
    server = directory / "server.yaml"
    text = server.read_text(encoding="utf-8")
    old = "holidays: {country: DE, subdivision: BW}"
    assert old in text
    server.write_text(text.replace(old, f"holidays: {setting}"), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if old in row)
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(directory)
    problems = [str(problem) for problem in caught.value.problems]
    assert any(f"server.yaml:{line}" in p and complaint in p for p in problems), problems
