"""Business time: when a deadline, a reminder or a customer check falls for one tenant.

Pure arithmetic over a ``Calendar`` built from the tenant's policy; nothing here does I/O
(the public holidays come from the ``holidays`` library, which computes them locally).

Two ways of counting hours, both in the tenant's time zone so that DST changes land where a
person expects them:

- wall-clock time: 48 hours after Friday 10:00 is Sunday 10:00 local, also when the clocks
  change in between (that Sunday is then 47 or 49 real hours away);
- business time: only the working hours of working days that are not public holidays count,
  so 16 business hours from Thursday 14:00 before a Friday holiday (08:00-17:00) end on
  Tuesday 12:00.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot.domain import InvalidInput

MAX_SCAN_DAYS = 5 * 366
"""How far to look for working time before giving up (a calendar with no working day)."""

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Calendar:
    """A tenant's working week. ``business`` makes deadlines count business hours."""

    zone: ZoneInfo
    work_days: frozenset[int] = frozenset(range(5))  # Monday = 0
    start: time = time(8, 0)
    end: time = time(17, 0)
    holidays: Container[date] = field(default=frozenset(), compare=False)
    business: bool = False

    # --- wall-clock time ----------------------------------------------------------------

    def shift(self, when: datetime, hours: float = 0, days: float = 0) -> datetime:
        """``when`` moved by local wall-clock time; a time skipped by DST moves forward."""
        naive = when.astimezone(self.zone).replace(tzinfo=None)
        moved = naive + timedelta(hours=hours, days=days)
        return moved.replace(tzinfo=self.zone).astimezone(UTC)

    # --- working time -------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.work_days and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The working hours of ``day`` as UTC instants (real length, DST included)."""
        opens = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
        return opens, closes

    def _days(self, first: date, step: int) -> Iterator[date]:
        for n in range(MAX_SCAN_DAYS):
            day = first + timedelta(days=n * step)
            if self.is_working_day(day):
                yield day
        raise ValueError("this calendar has no working time")

    def add_business_hours(self, when: datetime, hours: float) -> datetime:
        """The instant ``hours`` of working time after ``when``."""
        remaining = timedelta(hours=hours)
        for day in self._days(when.astimezone(self.zone).date(), 1):
            opens, closes = self.window(day)
            begin = max(opens, when)
            if begin >= closes:
                continue
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
        raise AssertionError("unreachable")

    def sub_business_hours(self, when: datetime, hours: float) -> datetime:
        """The instant ``hours`` of working time before ``when``."""
        remaining = timedelta(hours=hours)
        for day in self._days(when.astimezone(self.zone).date(), -1):
            opens, closes = self.window(day)
            end = min(closes, when)
            if end <= opens:
                continue
            if remaining <= end - opens:
                return end - remaining
            remaining -= end - opens
        raise AssertionError("unreachable")

    def next_open(self, when: datetime) -> datetime:
        """``when`` if it is working time, else the start of the next working hours."""
        return self.add_business_hours(when, 0)

    # --- what the policy asks for -------------------------------------------------------

    def deadline(self, start: datetime, hours: float) -> datetime:
        """A claim's deadline: business hours when the tenant chose them, else wall-clock."""
        if self.business:
            return self.add_business_hours(start, hours)
        return self.shift(start, hours=hours)

    def before(self, due: datetime, hours: float) -> datetime:
        """When a reminder ``hours`` before ``due`` falls, counted like the deadline was."""
        if self.business:
            return self.sub_business_hours(due, hours)
        return self.shift(due, hours=-hours)

    def add_days(self, when: datetime, days: int) -> datetime:
        """An extension by ``days``: working days (same local time) or calendar days."""
        if not self.business:
            return self.shift(when, days=days)
        local = when.astimezone(self.zone)
        day, moved = local.date(), 0
        while moved < days:
            day += timedelta(days=1)
            moved += self.is_working_day(day)
        return datetime.combine(day, local.time(), tzinfo=self.zone).astimezone(UTC)


def calendar_of(tenant: Any) -> Calendar:
    """The calendar of a Tenant row (or anything with the same policy attributes)."""
    return Calendar(
        zone=ZoneInfo(tenant.timezone),
        work_days=frozenset(tenant.work_days),
        start=parse_clock(tenant.work_start),
        end=parse_clock(tenant.work_end),
        holidays=public_holidays(tenant.holiday_country, tenant.holiday_subdiv),
        business=tenant.deadline_business_hours,
    )


@lru_cache(maxsize=128)
def public_holidays(country: str, subdiv: str = "") -> Container[date]:
    """Public holidays of a country (and subdivision), for any year asked about."""
    if not country:
        return frozenset()
    import holidays as holidays_lib  # here: 35 modules no CLI listing needs

    return holidays_lib.country_holidays(country, subdiv=subdiv or None)


# --- parsing the policy a tenant sets (CLI, API) ------------------------------------------

_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    match = _CLOCK_RE.match(text.strip())
    if not match:
        raise InvalidInput("bad_time", value=text)
    return time(int(match.group(1)), int(match.group(2)))


def parse_work_hours(text: str) -> tuple[str, str]:
    """``08:00-17:00`` → ("08:00", "17:00"); the end must come after the start."""
    parts = text.replace("–", "-").split("-")
    if len(parts) != 2:
        raise InvalidInput("bad_hours", value=text)
    start, end = parse_clock(parts[0]), parse_clock(parts[1])
    if end <= start:
        raise InvalidInput("hours_backwards", value=text)
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def _day_number(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 1 <= int(token) <= 7:
        return int(token) - 1  # ISO: 1 = Monday
    for names in (DAY_NAMES, _FULL_NAMES):
        if token in names:
            return names.index(token)
    raise InvalidInput("bad_weekday", value=token)


def parse_work_days(text: str) -> list[int]:
    """``mon-fri``, ``mon,tue,thu``, ``1-5`` → sorted weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day_number(first), _day_number(last)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        else:
            days.add(_day_number(part))
    if not days:
        raise InvalidInput("no_work_days")
    return sorted(days)


def format_work_days(days: Iterable[int]) -> str:
    """The inverse of ``parse_work_days``, compact (``mon-fri``, ``mon,wed``)."""
    ordered = sorted(set(days))
    runs: list[list[int]] = []
    for day in ordered:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs
    )


def parse_report_day(text: str) -> int | None:
    """The weekly report's weekday: ``mon`` … ``sun`` (or 1 … 7) → 0 … 6; ``none`` → None."""
    if text.strip().lower() in {"", "none", "off", "-"}:
        return None
    return _day_number(text)


def format_report_day(day: int | None) -> str:
    return "none" if day is None else DAY_NAMES[day]


def parse_holidays(text: str) -> tuple[str, str]:
    """``CH-ZH`` → ("CH", "ZH"); ``CH`` → ("CH", ""); ``none`` or empty → ("", "")."""
    text = text.strip()
    if text.lower() in {"", "none", "-"}:
        return "", ""
    country, _, subdiv = text.partition("-")
    country = country.strip().upper()
    import holidays as holidays_lib

    supported = holidays_lib.list_supported_countries()
    if country not in supported:
        raise InvalidInput("bad_country", value=country)
    if not subdiv.strip():
        return country, ""
    by_key = {s.casefold(): s for s in supported[country]}
    found = by_key.get(subdiv.strip().casefold())
    if found is None:
        raise InvalidInput(
            "bad_subdivision", value=subdiv, country=country, choices=supported[country][:40]
        )
    return country, found


def format_holidays(country: str, subdiv: str) -> str:
    if not country:
        return "none"
    return f"{country}-{subdiv}" if subdiv else country


def parse_hours_list(text: str) -> list[int]:
    """Reminder offsets ``24,2`` → [24, 2] (largest first); ``none`` → []."""
    if text.strip().lower() in {"", "none", "-"}:
        return []
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip().lower().removesuffix("h")
        if not part.isdigit() or not 1 <= int(part) <= 24 * 30:
            raise InvalidInput("bad_hours_list", value=part)
        values.add(int(part))
    return sorted(values, reverse=True)
