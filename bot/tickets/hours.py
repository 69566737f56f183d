"""When someone from the helpdesk will answer, from the hours in `server.yaml`.

"ist heute bis 16 Uhr erreichbar" while the helpdesk is open, else the next opening:
"heute ab 9 Uhr", "morgen ab 9 Uhr", "am Montag ab 9 Uhr", after a long closure "am 04.01.2027
ab 9 Uhr". Public holidays and closing days from `server.yaml` count as closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.i18n import Translator
from bot.knowledge.models import Helpdesk

__all__ = ["LOOKAHEAD_DAYS", "answer_time"]


def _clock(minutes: int, tr: Translator) -> str:
    _ = tr.gettext
    hour, minute = divmod(minutes, 60)
    if minute == 0:
        return _("{hour} Uhr").format(hour=hour)
    return _("{hour}:{minute} Uhr").format(hour=hour, minute=f"{minute:02d}")


def _weekday(number: int, tr: Translator) -> str:
    _ = tr.gettext
    names = (
        _("Montag"),
        _("Dienstag"),
        _("Mittwoch"),
        _("Donnerstag"),
        _("Freitag"),
        _("Samstag"),
        _("Sonntag"),
    )
    return names[number]


# How far to look for the next opening: past the longest closure (Christmas to Epiphany).
LOOKAHEAD_DAYS = 31


def answer_time(helpdesk: Helpdesk, now: datetime, tr: Translator) -> str | None:
    """One sentence saying when an agent answers; None when no hours are configured (or none
    within LOOKAHEAD_DAYS: the bot promises nothing it does not know)."""
    _ = tr.gettext
    if not helpdesk.hours:
        return None
    local = now.astimezone(ZoneInfo(helpdesk.timezone))
    minutes = local.hour * 60 + local.minute
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        if helpdesk.is_closed(day):
            continue
        weekday = day.weekday()
        windows = sorted(
            (h for h in helpdesk.hours if weekday in h.weekdays), key=lambda h: h.opens_minutes
        )
        for window in windows:
            if offset == 0 and window.opens_minutes <= minutes < window.closes_minutes:
                # Open now, but "answers by 16:00" would be a promise at 15:58.
                return _("Der Helpdesk ist heute bis {time} erreichbar.").format(
                    time=_clock(window.closes_minutes, tr)
                )
            if offset == 0 and window.opens_minutes <= minutes:
                continue  # this window is over for today
            time = _clock(window.opens_minutes, tr)
            if offset == 0:
                return _("Jemand aus dem Helpdesk meldet sich heute ab {time}.").format(time=time)
            if offset == 1:
                return _("Jemand aus dem Helpdesk meldet sich morgen ab {time}.").format(time=time)
            if offset < 7:
                return _("Jemand aus dem Helpdesk meldet sich am {weekday} ab {time}.").format(
                    weekday=_weekday(weekday, tr), time=time
                )
            # A weekday name a week or more ahead would read as the coming one.
            return _("Jemand aus dem Helpdesk meldet sich am {date} ab {time}.").format(
                date=tr.date(day), time=time
            )
    return None
