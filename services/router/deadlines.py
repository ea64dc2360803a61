"""Time limits (时限) counted as the rules count them: in hours, calendar days or working days.

Plain Python (no I/O). The matter catalogue gives each limit as text ("24 hours", "15 calendar days",
"5 working days"); this module parses it, sets the due time of a limit that starts at a given moment,
and measures the time that counts on a clock — for a working-day clock only the time of working days.

The rules (docs/router.md, "How limits are counted"):

- Days are days of Beijing time (Asia/Shanghai: UTC+8, no daylight saving since 1991).
- "N hours" ends N hours after its start, whatever the day.
- "N calendar days" ends at the end (24:00) of the Nth day after the day it starts: the starting day
  is not counted (民法典 第二百零一条), holidays are not skipped.
- "N working days" ends at the end of the Nth working day after the day it starts. Working days are
  those of the official PRC calendar (国务院办公厅 holiday notices, with the swapped working days,
  调休): weekdays that are not public holidays, and the weekends declared working days. Years the
  calendar package does not know yet count Monday to Friday, with a warning.
- On a working-day clock a working day counts whole (24 hours) and a rest day not at all: pausing or
  extending such a clock moves its due time by working time only.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from functools import lru_cache

import chinese_calendar

log = logging.getLogger(__name__)

# Beijing time. A fixed offset is exact: China has kept UTC+8 without daylight saving since 1991.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
DAY = timedelta(days=1)


class LimitUnit(StrEnum):
    """What a limit is counted in."""

    HOURS = "hours"
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"


_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(hours?|calendar\s+days?|working\s+days?)\s*$")
_WORDS = {"hour": LimitUnit.HOURS, "calendar day": LimitUnit.CALENDAR_DAYS, "working day": LimitUnit.WORKING_DAYS}
_NAMES = {unit: words for words, unit in _WORDS.items()}


@dataclass(frozen=True)
class Limit:
    """A time limit: an amount in a unit ("5 working days")."""

    amount: float
    unit: LimitUnit

    @classmethod
    def parse(cls, text: str) -> "Limit":
        """Read "24 hours", "0.5 hours", "15 calendar days", "1 working day"; days are whole numbers."""
        m = _LIMIT.match(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"{text!r} is not a time limit: write '<number> hours', '<number> calendar days' "
                             "or '<number> working days'")
        unit = _WORDS[" ".join(m[2].split()).removesuffix("s")]
        amount = float(m[1])
        if amount <= 0:
            raise ValueError(f"{text!r}: a time limit is longer than zero")
        if unit is not LimitUnit.HOURS and amount != int(amount):
            raise ValueError(f"{text!r}: a limit in days is a whole number of days")
        return cls(amount, unit)

    def __str__(self) -> str:
        return f"{self.amount:g} {_NAMES[self.unit]}{'' if self.amount == 1 else 's'}"

    def scaled(self, factor: float) -> "Limit":
        """The limit shortened by a risk factor: hours exactly; days to whole days, rounded down, at
        least one (red halves 7 working days to 3, yellow takes them to 5)."""
        if self.unit is LimitUnit.HOURS:
            return Limit(self.amount * factor, self.unit)
        return Limit(max(1, math.floor(self.amount * factor + 1e-9)), self.unit)

    @property
    def span(self) -> timedelta:
        """The time that counts on a clock of the limit's unit (a day counts 24 hours)."""
        return timedelta(hours=self.amount) if self.unit is LimitUnit.HOURS else self.amount * DAY

    def due(self, start: datetime) -> datetime:
        """When the limit ends if it starts at `start` (a limit in days: in UTC)."""
        if self.unit is LimitUnit.HOURS:
            return start + self.span
        day = beijing(start).date()
        days = int(self.amount)
        if self.unit is LimitUnit.CALENDAR_DAYS:
            day += days * DAY
        else:
            while days:
                day += DAY
                if is_working_day(day):
                    days -= 1
        return _midnight_after(day)


def beijing(t: datetime) -> datetime:
    """The moment in Beijing time (a naive time is taken as UTC)."""
    return _utc(t).astimezone(BEIJING)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _midnight_after(day: date) -> datetime:
    """The end (24:00) of a Beijing day, in UTC."""
    return datetime.combine(day + DAY, time(0), BEIJING).astimezone(UTC)


@lru_cache(maxsize=8192)
def is_working_day(day: date) -> bool:
    """A working day of the official PRC calendar (调休 weekends included, public holidays excluded);
    Monday to Friday for a year the calendar does not know yet (warned once per year)."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        _warn_unknown_year(day.year)
        return day.weekday() < 5


@lru_cache(maxsize=None)
def _warn_unknown_year(year: int) -> None:
    log.warning("the holiday calendar does not know %s: working days counted as Monday to Friday "
                "(update chinese-calendar)", year, extra={"year": year})


def elapsed(unit: LimitUnit, start: datetime, end: datetime) -> timedelta:
    """The time that counts on a clock of `unit` from `start` to `end` (zero when end is not later):
    wall time for hours and calendar days, the time of working days for working days."""
    if end <= start:
        return timedelta(0)
    if unit is not LimitUnit.WORKING_DAYS:
        return end - start
    a, b = beijing(start), beijing(end)
    total = timedelta(0)
    day = a.date()
    while day <= b.date():
        if is_working_day(day):
            day_start = datetime.combine(day, time(0), BEIJING)
            total += min(b, day_start + DAY) - max(a, day_start)
        day += DAY
    return total


def advance(unit: LimitUnit, start: datetime, span: timedelta) -> datetime:
    """The first moment at which `span` of counted time has passed since `start`: `start + span` for
    hours and calendar days; for working days (in UTC) rest days are skipped, and a span that ends
    with a working day ends at its 24:00."""
    if unit is not LimitUnit.WORKING_DAYS or span <= timedelta(0):
        return start + max(span, timedelta(0))
    t = beijing(start)
    day = t.date()
    for _ in range(3660):  # ten years of days: never reached (every week has working days)
        day_start = datetime.combine(day, time(0), BEIJING)
        if is_working_day(day):
            begin = max(t, day_start)
            left = day_start + DAY - begin
            if span <= left:
                return (begin + span).astimezone(UTC)
            span -= left
        day += DAY
    raise ValueError("no working day within ten years")
