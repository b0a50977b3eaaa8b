"""Owner reports: every metric of a known history, exactly, for weeks and a custom range, with
week boundaries in the tenant's time zone, on both stores; no tenant sees another's data."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from lyra_bot import commands as c
from lyra_bot.domain import InvalidInput
from lyra_bot.models import Tenant
from lyra_bot.reports import exports
from lyra_bot.reports.periods import choose_period, parse_week
from lyra_bot.reports.report import build_report
from tests.report_history import at, build_history

ZURICH = ZoneInfo("Europe/Zurich")
NO_OUTCOMES = {"won": 0, "lost": 0, "contacted": 0, "no_contact": 0, "not_qualified": 0,
               "duplicate": 0}  # fmt: skip


async def report_json(tenant_id: int, now: datetime, **choice: str) -> dict:
    tenant = await Tenant.get(id=tenant_id)
    period = choose_period(ZoneInfo(tenant.timezone), now, **choice)
    return exports.to_json(await build_report(tenant, period, now))


async def test_week_45_every_metric_exactly(services, clock):
    world = await build_history(services, clock)
    clock.set(at(16, 9))
    data = await report_json(world.tenant_id, clock.now(), week="2026-W45")

    assert data["schema"] == "lyra.report/1"
    assert data["period"] == {
        "kind": "week",
        "label": "2026-W45",
        "first_day": "2026-11-02",
        "last_day": "2026-11-08",
        "start": "2026-11-01T23:00:00+00:00",  # Monday 00:00 in Zurich
        "end": "2026-11-08T23:00:00+00:00",
        "until": "2026-11-08T23:00:00+00:00",
        "partial": False,
    }
    assert data["previous_period"]["label"] == "2026-W44"
    t = data["totals"]
    assert t["added"] == 6  # five on Monday, L-1006 late on Sunday local time
    assert t["withdrawn"] == 1
    assert t["offered"] == 6
    assert t["claims"] == 5
    assert t["median_hours_to_claim"] == 2.0  # waits 1, 2, 2, 3 and 21.5 hours
    assert (t["feedback_on_time"], t["feedback_late"]) == (2, 1)
    assert t["median_hours_to_feedback"] == 48.5  # 24, 48.5 and 94 hours
    assert (t["lapses"], t["releases"]) == (1, 1)
    assert t["outcomes"] == {**NO_OUTCOMES, "won": 2, "lost": 1}
    assert t["won"] == 2
    assert t["revenue"] == {"CHF": "12000.00", "EUR": "5000.00"}
    assert t["final_outcomes"] == 3
    assert t["conversion"] == 0.6667
    assert (t["checks_answered"], t["checks_confirmed"], t["not_contacted"]) == (3, 2, 1)
    assert t["contact_rate"] == 0.6667
    assert (t["extensions_asked"], t["extensions_granted"]) == (1, 1)
    assert t["open_end"] == 2  # L-1005 (never claimed) and L-1006
    assert t["age_bands"] == {"<1d": 1, "1-3d": 0, "3-7d": 1, "7-14d": 0, "14d+": 0}
    assert t["never_claimed_stale"] == 1  # L-1005: 6 days 14 hours, stale after 5
    # (2 on time + ½ late + ½ released) / 5 ended = 60, minus 10 for one "not contacted"
    assert t["reliability"] == 50
    assert data["pool"] == {
        "open": 2,
        "age_bands": t["age_bands"],
        "stale_days": 5,
        "never_claimed_stale": 1,
    }

    partners = {p["slug"]: p for p in data["partners"]}
    assert [p["slug"] for p in data["partners"]] == ["alpine", "romandie", "lakeside"]
    alpine = partners["alpine"]
    assert alpine["claims"] == 3
    assert (alpine["feedback_on_time"], alpine["feedback_late"], alpine["lapses"]) == (1, 1, 1)
    assert alpine["releases"] == 0
    assert alpine["median_hours_to_feedback"] == 36.25
    assert alpine["outcomes"] == {**NO_OUTCOMES, "won": 1, "lost": 1}
    assert (alpine["won"], alpine["revenue"], alpine["conversion"]) == (1, {"CHF": "12000.00"}, 0.5)
    assert (alpine["contact_rate"], alpine["not_contacted"]) == (1.0, 0)
    assert alpine["reliability"] == 50
    assert alpine["pauses"] == []
    romandie = partners["romandie"]
    assert (romandie["claims"], romandie["feedback_on_time"], romandie["won"]) == (1, 1, 1)
    assert romandie["revenue"] == {"EUR": "5000.00"}
    assert (romandie["conversion"], romandie["contact_rate"]) == (1.0, 0.0)
    assert (romandie["not_contacted"], romandie["checks_answered"]) == (1, 1)
    assert (romandie["extensions_asked"], romandie["extensions_granted"]) == (1, 1)
    assert romandie["reliability"] == 90
    lakeside = partners["lakeside"]
    assert (lakeside["claims"], lakeside["releases"], lakeside["reliability"]) == (1, 1, 50)
    assert lakeside["median_hours_to_claim"] == 21.5
    assert lakeside["conversion"] is None and lakeside["contact_rate"] is None
    assert data["idle_partners"] == []

    products = {p["product"]: p for p in data["products"]}
    assert (products["Firewall"]["added"], products["Firewall"]["claims"]) == (5, 4)
    assert (products["VPN"]["added"], products["VPN"]["claims"]) == (1, 1)
    regions = {r["region"]: r for r in data["regions"]}
    assert sorted(regions) == ["CH-BE", "CH-GE", "CH-ZH", "DE-BY"]
    assert (regions["CH-ZH"]["added"], regions["CH-ZH"]["claims"]) == (3, 3)
    assert (regions["DE-BY"]["offered"], regions["DE-BY"]["claims"]) == (1, 0)  # no partner
    assert regions["CH-ZH"]["withdrawn"] == 1 and regions["CH-ZH"]["lapses"] == 1
    assert regions["CH-BE"]["won"] == 1 and regions["CH-BE"]["lapses"] == 0

    head = data["headline"]
    assert head["claims"] == {"value": 5, "previous": 0, "change": 5}
    assert head["revenue_EUR"] == {"value": "5000.00", "previous": "0", "change": "5000.00"}
    assert head["reliability"] == {"value": 50, "previous": None, "change": None}
    weeks = data["weeks"]
    assert [w["week"] for w in weeks][-2:] == ["2026-W44", "2026-W45"]
    assert len(weeks) == 8
    assert (weeks[-1]["claims"], weeks[-1]["lapses"]) == (5, 1)
    assert sum(w["claims"] for w in weeks) == 5


async def test_week_46_with_week_over_week_change_and_a_pause(services, clock):
    world = await build_history(services, clock)
    clock.set(at(16, 9))
    data = await report_json(world.tenant_id, clock.now(), week="2026-W46")
    t = data["totals"]
    assert t["added"] == 1  # L-1007: Sunday 23:30 UTC is Monday 00:30 in Zurich
    assert t["claims"] == 2
    assert t["median_hours_to_claim"] == 9.0  # 9.5 and 8.5 hours
    assert (t["extensions_asked"], t["extensions_granted"]) == (2, 1)
    assert (t["lapses"], t["feedback_on_time"], t["feedback_late"]) == (1, 1, 0)
    assert t["outcomes"] == {**NO_OUTCOMES, "contacted": 1, "won": 1}
    assert (t["final_outcomes"], t["conversion"]) == (1, 1.0)
    assert t["revenue"] == {"CHF": "3000.00"}
    assert t["checks_answered"] == 0 and t["contact_rate"] is None
    assert t["open_end"] == 2  # L-1005 and L-1006 (back after its lapse)
    assert t["age_bands"] == {"<1d": 0, "1-3d": 0, "3-7d": 0, "7-14d": 2, "14d+": 0}
    assert t["never_claimed_stale"] == 1
    assert t["offered"] == 3  # L-1005 and L-1006 open at the start (L-1006 again later), L-1007
    assert t["reliability"] == 50
    head = data["headline"]
    assert head["added"] == {"value": 1, "previous": 6, "change": -5}
    assert head["claims"] == {"value": 2, "previous": 5, "change": -3}
    assert head["conversion"] == {"value": 1.0, "previous": 0.6667, "change": 0.3333}
    assert head["open_end"] == {"value": 2, "previous": 2, "change": 0}
    assert head["revenue_CHF"] == {
        "value": "3000.00",
        "previous": "12000.00",
        "change": "-9000.00",
    }
    assert head["revenue_EUR"]["change"] == "-5000.00"

    alpine = data["partners"][0]
    assert alpine["slug"] == "alpine"
    assert alpine["pauses"] == [
        {"start": "2026-11-11T09:00:00+00:00", "until": "2026-11-18T09:00:00+00:00"}
    ]
    assert data["idle_partners"] == ["lakeside", "romandie"]
    assert [w["claims"] for w in data["weeks"][-2:]] == [5, 2]
    assert [w["lapses"] for w in data["weeks"][-2:]] == [1, 1]


async def test_custom_range_and_the_week_so_far(services, clock):
    world = await build_history(services, clock)
    clock.set(at(16, 9))
    both = await report_json(world.tenant_id, clock.now(), first="2026-11-02", last="2026-11-15")
    assert both["period"]["kind"] == "range"
    assert both["period"]["label"] == "2026-11-02..2026-11-15"
    assert both["previous_period"]["label"] == "2026-10-19..2026-11-01"
    t = both["totals"]
    assert (t["added"], t["claims"], t["lapses"], t["releases"]) == (7, 7, 2, 1)
    assert t["revenue"] == {"CHF": "15000.00", "EUR": "5000.00"}
    assert (t["won"], t["final_outcomes"], t["conversion"]) == (3, 4, 0.75)
    assert (t["extensions_asked"], t["extensions_granted"]) == (3, 2)
    assert t["open_end"] == 2

    # Mid-week: counting stops now; the week is marked partial.
    clock.set(at(11, 9, 30))
    so_far = await report_json(world.tenant_id, clock.now())
    assert so_far["period"]["label"] == "2026-W46"
    assert so_far["period"]["partial"] is True
    assert so_far["period"]["until"].startswith("2026-11-11T09:30:00.000001")
    assert so_far["totals"]["lapses"] == 1 and so_far["totals"]["feedback_on_time"] == 0


async def test_week_boundaries_follow_the_tenant_time_zone(services, clock):
    world = await build_history(services, clock, second_week=False)
    clock.set(at(16, 9))
    zurich = await report_json(world.tenant_id, clock.now(), week="2026-W45")
    assert zurich["totals"]["added"] == 6
    await world.ok(c.UpdateTenant(timezone="UTC"), world.owner)
    utc = await report_json(world.tenant_id, clock.now(), week="2026-W45")
    assert utc["period"]["start"] == "2026-11-02T00:00:00+00:00"
    assert utc["totals"]["added"] == 7  # L-1007 (Sunday 23:30 UTC) is still W45 in UTC
    await world.ok(c.UpdateTenant(timezone="Pacific/Auckland"), world.owner)
    auckland = await report_json(world.tenant_id, clock.now(), week="2026-W45")
    # Monday 00:00 in Auckland (NZDT, +13) is Sunday 11:00 UTC: the Monday 09:00 UTC leads
    # are still W45 there, and L-1006/L-1007 (Monday morning in Auckland) are W46.
    assert auckland["period"]["start"] == "2026-11-01T11:00:00+00:00"
    assert auckland["totals"]["added"] == 5


async def test_reports_never_include_another_tenants_data(services, clock):
    world = await build_history(services, clock)
    gus = "gus@gamma.example"
    clock.set(at(10, 9))
    globex = world.other_owner
    assert globex is not None
    await world.ok(c.ClaimLead(world.other_refs[0]), gus)
    await world.ok(c.GiveFeedback(world.other_refs[0], "won", "999", "USD"), gus)
    clock.set(at(16, 9))
    acme = await report_json(world.tenant_id, clock.now(), week="2026-W46")
    other = await report_json(world.other_tenant_id, clock.now(), week="2026-W46")
    assert "USD" not in str(acme) and "gamma" not in str(acme)
    assert [p["slug"] for p in other["partners"]] == ["gamma"]
    assert other["totals"]["claims"] == 1 and other["totals"]["revenue"] == {"USD": "999.00"}
    assert other["totals"]["lapses"] == 0 and other["totals"]["extensions_asked"] == 0
    assert "alpine" not in str(other) and "CHF" not in str(other["totals"])
    assert other["totals"]["open_end"] == 0


def test_periods_parse_and_refuse_clearly():
    now = datetime(2026, 11, 4, 12, tzinfo=UTC)
    assert parse_week("2026W48", ZURICH, now).first.isoformat() == "2026-11-23"
    assert parse_week("last", ZURICH, now).label == "2026-W44"
    week53 = parse_week("2026-W53", ZURICH, now)  # 2026 has 53 ISO weeks
    assert week53.first.isoformat() == "2026-12-28"
    for bad in ("2026-W54", "48", "next week"):
        with pytest.raises(InvalidInput):
            parse_week(bad, ZURICH, now)
    with pytest.raises(InvalidInput, match="not both"):
        choose_period(ZURICH, now, week="2026-W45", first="2026-11-01")
    with pytest.raises(InvalidInput, match="before it starts"):
        choose_period(ZURICH, now, first="2026-11-05", last="2026-11-01")
    with pytest.raises(InvalidInput, match="not started"):
        choose_period(ZURICH, now, week="2026-W50")
    # The week of the spring DST change is an hour short in Zurich.
    spring = parse_week("2026-W13", ZURICH, now)
    assert (spring.end - spring.start).total_seconds() == 167 * 3600


async def test_show_report_is_for_the_owner_only(services, clock):
    world = await build_history(services, clock)
    clock.set(at(16, 9))
    reply = await world.ok(c.ShowReport(week="last"), world.owner)
    assert reply.code == "report"
    assert reply.message == "Acme, Week 46, 9–15 Nov 2026: claims 2, won 1, lapses 1, open 2."
    assert reply.data["period"]["label"] == "2026-W46"
    assert reply.data["headline"]["claims"] == {"value": 2, "previous": 5, "change": -3}
    assert reply.data["view"]["summary"]["revenue"] == "CHF\xa03'000.00"  # en_CH
    refused = await world.do(c.ShowReport(), "mia@alpine.example")
    assert not refused.ok and refused.code == "forbidden"
    bad = await world.do(c.ShowReport(week="W46"), world.owner)
    assert not bad.ok and bad.code == "invalid_input" and "2026-W48" in bad.message
