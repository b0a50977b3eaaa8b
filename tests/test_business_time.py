"""Business time: deadlines where a person expects them, across weekends, holidays and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra_bot.business_time import (
    Calendar,
    format_work_days,
    parse_holidays,
    parse_hours_list,
    parse_work_days,
    parse_work_hours,
    public_holidays,
)
from lyra_bot.domain import InvalidInput

ZURICH = ZoneInfo("Europe/Zurich")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZURICH)


def business(subdiv: str = "ZH", **kw) -> Calendar:
    return Calendar(ZURICH, holidays=public_holidays("CH", subdiv), business=True, **kw)


def test_business_deadline_skips_weekend_and_cantonal_holiday():
    # Thursday 30 April 2026 14:00; 1 May (Friday) is a holiday in Zurich but not in Bern.
    claimed = local(2026, 4, 30, 14, 0)
    # 3 h Thursday + Monday 9 h + 4 h Tuesday = 16 h → Tuesday 12:00
    assert business("ZH").deadline(claimed, 16) == local(2026, 5, 5, 12, 0)
    # In Bern Friday counts: 3 h + 9 h + 4 h Monday → Monday 12:00
    assert business("BE").deadline(claimed, 16) == local(2026, 5, 4, 12, 0)


def test_friday_afternoon_48_business_hours_before_easter():
    # Thursday 2 April 2026 15:00; Good Friday and Easter Monday are holidays in Zurich.
    # 2 h Thu, Tue 7.4 … Mon 13.4: 9 h a day → 2 + 5·9 = 47 → 1 h into Tuesday 14 April.
    assert business().deadline(local(2026, 4, 2, 15, 0), 48) == local(2026, 4, 14, 9, 0)


def test_business_hours_are_real_hours_across_the_spring_dst_change():
    claimed = local(2026, 3, 27, 15, 0)  # Friday, CET (UTC+1); clocks go forward on Sunday
    due = business().deadline(claimed, 4)  # 2 h Friday + 2 h Monday
    assert due.astimezone(ZURICH) == local(2026, 3, 30, 10, 0)
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # CEST: UTC+2


def test_wall_clock_deadline_keeps_the_local_time_across_the_autumn_dst_change():
    calendar = Calendar(ZURICH)
    claimed = local(2026, 10, 23, 10, 0)  # Friday 10:00 CEST
    due = calendar.deadline(claimed, 48)
    assert due.astimezone(ZURICH).replace(tzinfo=None) == datetime(2026, 10, 25, 10, 0)
    assert due - claimed == timedelta(hours=49)  # the night had one hour more
    assert calendar.before(due, 24).astimezone(ZURICH).hour == 10  # Saturday 10:00 CEST
    assert calendar.before(due, 2).astimezone(ZURICH).hour == 8  # Sunday 08:00 CET


def test_a_wall_clock_time_skipped_by_dst_moves_forward():
    calendar = Calendar(ZURICH)
    # 29 March 2026 02:30 does not exist in Zurich; one hour after 01:30 is 03:30 CEST.
    moved = calendar.shift(local(2026, 3, 29, 1, 30), hours=1)
    assert moved.astimezone(ZURICH).hour == 3
    assert moved == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_reminder_offsets_count_business_hours_when_the_deadline_does():
    due = local(2026, 5, 5, 12, 0)  # Tuesday noon, Zurich, after the 1 May holiday
    calendar = business()
    assert calendar.before(due, 2) == local(2026, 5, 5, 10, 0)
    assert calendar.before(due, 8) == local(2026, 5, 4, 13, 0)
    assert calendar.before(due, 16) == local(2026, 4, 30, 14, 0)  # skips Friday 1 May


def test_next_open_and_business_day_extensions():
    calendar = business()
    assert calendar.next_open(local(2026, 5, 1, 10, 0)) == local(2026, 5, 4, 8, 0)  # holiday
    assert calendar.next_open(local(2026, 5, 4, 18, 0)) == local(2026, 5, 5, 8, 0)
    assert calendar.next_open(local(2026, 5, 4, 9, 30)) == local(2026, 5, 4, 9, 30)
    # Two working days after Thursday 30 April 15:00: Monday 4 May, Tuesday 5 May.
    assert calendar.add_days(local(2026, 4, 30, 15, 0), 2) == local(2026, 5, 5, 15, 0)
    assert Calendar(ZURICH).add_days(local(2026, 4, 30, 15, 0), 2) == local(2026, 5, 2, 15, 0)


def test_custom_week_and_hours():
    calendar = Calendar(
        ZURICH,
        work_days=frozenset(parse_work_days("tue-sat")),
        start=datetime.strptime("10:00", "%H:%M").time(),
        end=datetime.strptime("14:00", "%H:%M").time(),
        business=True,
    )
    # Monday is off: 8 h from Monday 09:00 = Tuesday 10-14 + Wednesday 10-14.
    assert calendar.deadline(local(2026, 6, 1, 9, 0), 8) == local(2026, 6, 3, 14, 0)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    hours=st.integers(min_value=0, max_value=200),
)
def test_business_hours_forward_then_back_is_identity_inside_working_time(start, hours):
    calendar = business()
    when = calendar.next_open(start.replace(tzinfo=ZURICH).astimezone(UTC))
    _, closes = calendar.window(when.astimezone(ZURICH).date())
    if when >= closes:  # exactly at closing time: equal to the next opening in business time
        return
    due = calendar.deadline(when, hours)
    assert due >= when
    assert calendar.before(due, hours) == when or hours == 0


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", [0, 1, 2, 3, 4]),
        ("Mon,Wed, fri", [0, 2, 4]),
        ("1-5", [0, 1, 2, 3, 4]),
        ("sat-mon", [0, 5, 6]),
        ("tuesday", [1]),
    ],
)
def test_parse_work_days(text, days):
    assert parse_work_days(text) == days


def test_policy_parsers_refuse_nonsense_with_a_clear_message():
    with pytest.raises(InvalidInput, match="not a weekday"):
        parse_work_days("mon-xyz")
    with pytest.raises(InvalidInput, match="end before they start"):
        parse_work_hours("17:00-08:00")
    with pytest.raises(InvalidInput, match="not a time of day"):
        parse_work_hours("8-25:00")
    with pytest.raises(InvalidInput, match="not a subdivision of CH"):
        parse_holidays("CH-QQ")
    with pytest.raises(InvalidInput, match="not a country"):
        parse_holidays("XX")
    with pytest.raises(InvalidInput, match="between 1 and 720"):
        parse_hours_list("24,0")
    assert format_work_days([0, 1, 2, 3, 4]) == "mon-fri"
    assert format_work_days([0, 2, 3]) == "mon,wed-thu"
    assert parse_work_hours("8:00-17:30") == ("08:00", "17:30")
    assert parse_holidays("ch-zh") == ("CH", "ZH")
    assert parse_holidays("none") == ("", "")
    assert parse_hours_list("2, 24h,2") == [24, 2]
    assert parse_hours_list("none") == []
