"""Where handlers get "now" from, so tests can move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ShiftedClock:
    """The system clock moved so that it read ``start`` when this was made, running at
    real speed from there (``LYRA_CLOCK_START``: rehearse a Monday morning or a holiday)."""

    def __init__(self, start: datetime) -> None:
        self._offset = start.astimezone(UTC) - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


def clock_for(start: datetime | None) -> Clock:
    """The process's clock: the system's, or shifted to start at ``start`` when one is set."""
    return ShiftedClock(start) if start is not None else SystemClock()


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)).astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now
