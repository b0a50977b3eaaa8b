"""Report periods: ISO weeks and custom date ranges, bounded in the tenant's time zone.

A period is a half-open interval ``[start, end)`` of UTC instants whose ends are local
midnights of the tenant's zone, so a week runs from Monday 00:00 to the next Monday 00:00
where the owner lives, across DST changes (such a week is 167 or 169 hours long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from lyra_bot.domain import InvalidInput

_WEEK_RE = re.compile(r"^\s*(\d{4})-?[Ww](\d{1,2})\s*$")
MAX_RANGE_DAYS = 366 * 2


@dataclass(frozen=True)
class Period:
    """Local days ``first``..``last`` (inclusive) as UTC instants ``[start, end)``."""

    kind: Literal["week", "range"]
    first: date
    last: date
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self, zone: ZoneInfo) -> Period:
        """The period of the same length just before (last week, for a week)."""
        last = self.first - timedelta(days=1)
        return days_period(self.kind, last - timedelta(days=self.days - 1), last, zone)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def days_period(kind: Literal["week", "range"], first: date, last: date, zone: ZoneInfo) -> Period:
    return Period(
        kind, first, last, local_midnight(first, zone), local_midnight(last + timedelta(1), zone)
    )


def week_containing(day: date, zone: ZoneInfo) -> Period:
    monday = day - timedelta(days=day.weekday())
    return days_period("week", monday, monday + timedelta(days=6), zone)


def parse_week(text: str, zone: ZoneInfo, now: datetime) -> Period:
    """``2026-W48`` (also ``2026W48``), ``this`` (the week so far) or ``last``."""
    today = now.astimezone(zone).date()
    word = text.strip().lower()
    if word in {"", "this", "current", "now"}:
        return week_containing(today, zone)
    if word in {"last", "previous", "prev"}:
        return week_containing(today - timedelta(days=7), zone)
    match = _WEEK_RE.match(text)
    if not match:
        raise InvalidInput("bad_week", value=text)
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise InvalidInput("no_such_week", value=text) from None
    return week_containing(monday, zone)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("bad_date", value=text) from None


def parse_range(first: str, last: str, zone: ZoneInfo) -> Period:
    """Local days ``first`` to ``last``, both included."""
    a, b = parse_day(first), parse_day(last)
    if b < a:
        raise InvalidInput("range_backwards", start=a.isoformat(), end=b.isoformat())
    if (b - a).days >= MAX_RANGE_DAYS:
        raise InvalidInput("range_too_long", max=MAX_RANGE_DAYS)
    return days_period("range", a, b, zone)


def choose_period(
    zone: ZoneInfo,
    now: datetime,
    week: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> Period:
    """The period a user asked for: a week, or a range (``last`` defaults to today)."""
    if week and (first or last):
        raise InvalidInput("week_or_range")
    if first or last:
        if not first:
            raise InvalidInput("range_start_missing")
        return parse_range(first, last or now.astimezone(zone).date().isoformat(), zone)
    period = parse_week(week or "this", zone, now)
    if period.start > now:
        raise InvalidInput("not_started", period=period.label)
    return period


def weeks_ending(day: date, count: int, zone: ZoneInfo) -> list[Period]:
    """``count`` consecutive weeks, the last one containing ``day``, oldest first."""
    last = week_containing(day, zone)
    return [
        week_containing(last.first - timedelta(days=7 * back), zone)
        for back in range(count - 1, -1, -1)
    ]
