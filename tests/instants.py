"""The instants at which time-sensitive tests run, so none passes only at some hours.

A test that starts the service (the scheduler catches up at start-up), runs sweeps, sends
digests, holds leases or runs end to end takes ``instant_clock`` (a ``FrozenClock`` set to
each instant in turn) instead of the wall clock; ``instant`` gives the instant with what is
special about it. The four are the ones that once broke the suite or easily could:

- a Friday afternoon (UTC): after the day's digests, before the weekend;
- a Monday 06:59 in Zurich: one minute before the week's first digests;
- the night the clocks go back in Zurich (02:30 CEST, and an hour later 02:30 CET again);
- Christmas Day, a Friday and a Swiss public holiday, at the digest time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from lyra_bot.clock import FrozenClock

ZURICH = ZoneInfo("Europe/Zurich")


@dataclass(frozen=True)
class Instant:
    id: str
    at: datetime  # UTC
    working_day: bool  # in Zurich: Monday to Friday and not a public holiday
    about: str

    def digests_due(self, later: timedelta = timedelta(0)) -> bool:
        """Whether a default tenant (Zurich, digests at 07:00 on working days) sends the
        day's digests at this instant (or ``later``, the same day)."""
        return self.working_day and (self.at + later).astimezone(ZURICH).time() >= time(7)

    def __str__(self) -> str:
        return self.id


INSTANTS: tuple[Instant, ...] = (
    Instant(
        "fri-1600-utc",
        datetime(2026, 12, 4, 16, 0, tzinfo=UTC),
        True,
        "Friday 17:00 in Zurich: the day's digests are due, the weekend is near",
    ),
    Instant(
        "mon-0659-zurich",
        datetime(2026, 11, 30, 6, 59, tzinfo=ZURICH).astimezone(UTC),
        True,
        "Monday 06:59 in Zurich: one minute before the default digest time",
    ),
    Instant(
        "dst-2026-10-25",
        datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=ZURICH).astimezone(UTC),
        False,
        "Sunday 02:30 CEST in Zurich; at 03:00 the clocks go back to 02:00 CET",
    ),
    Instant(
        "holiday-2026-12-25",
        datetime(2026, 12, 25, 7, 0, tzinfo=ZURICH).astimezone(UTC),
        False,
        "Christmas Day, a Friday and a Swiss public holiday, at the digest time",
    ),
)


@pytest.fixture(params=INSTANTS, ids=str)
def instant(request: pytest.FixtureRequest) -> Instant:
    """Each of the four instants in turn."""
    return request.param


@pytest.fixture
def instant_clock(instant: Instant) -> FrozenClock:
    """A frozen clock at each of the four instants in turn (moved only by the test)."""
    return FrozenClock(instant.at)
