"""Digests on a cadence: at the tenant's local digest time on working days (DST included),
only to recipients with something new, once a day, and once with two instances."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from lyra_bot import commands as c
from lyra_bot.app import bootstrap
from lyra_bot.models import OutboxMessage
from lyra_bot.outbox import OutboxWorker
from tests.smtp_sink import SmtpTransport, smtp_server
from tests.world import build_world

ZURICH = ZoneInfo("Europe/Zurich")
ACME = {"mia@alpine.example", "max@alpine.example", "tom@lakeside.example", "eve@romandie.example"}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZURICH).astimezone(UTC)


async def digests_at(when: datetime) -> set[str]:
    return set(
        await OutboxMessage.filter(kind="digest", created_at=when).values_list(
            "recipient", flat=True
        )
    )


async def run_at(services, clock, when: datetime) -> set[str]:
    clock.set(when)
    result = await services.scheduler.run_job("send-digests")
    assert result.ok, result.message
    return await digests_at(when)


async def test_digests_go_out_at_the_local_time_on_working_days_across_dst(services, clock):
    clock.set(local(2026, 3, 26, 12, 0))  # Thursday; clocks go forward Sunday 29 March
    world = await build_world(services.bus)
    await world.ok(c.UpdateTenant(digest_time="07:30"), world.owner)
    # globex works every day and keeps the default 07:00
    await world.ok(c.UpdateTenant(work_days="mon-sun"), world.other_owner)
    shown = await world.ok(c.ShowTenant(), world.owner)
    assert shown.data["policy"]["digest_time"] == "07:30"

    # Friday: 07:30 CET is 06:30 UTC; globex's 07:00 CET is 06:00 UTC.
    assert await run_at(services, clock, local(2026, 3, 27, 5, 59)) == set()
    assert await run_at(services, clock, local(2026, 3, 27, 7, 0)) == {"gus@gamma.example"}
    assert await run_at(services, clock, local(2026, 3, 27, 7, 29)) == set()
    assert await run_at(services, clock, local(2026, 3, 27, 7, 30)) == ACME
    assert local(2026, 3, 27, 7, 30).hour == 6

    # Weekend: acme sends nothing even with news; globex (working Sunday) does, on the
    # DST day at 07:00 CEST, which is 05:00 UTC, not 06:00.
    clock.set(local(2026, 3, 28, 8, 0))
    await world.ok(c.AddLead("VPN", "CH-LU", need="weekend news"), world.owner)
    await world.ok(c.AddLead("VPN", "CH-LU", need="weekend news"), world.other_owner)
    assert await run_at(services, clock, local(2026, 3, 28, 9, 0)) == {"gus@gamma.example"}
    clock.set(local(2026, 3, 28, 20, 0))
    await world.ok(c.AddLead("VPN", "CH-LU", need="sunday news"), world.other_owner)
    assert await run_at(services, clock, local(2026, 3, 29, 6, 59)) == set()
    sunday = local(2026, 3, 29, 7, 0)
    assert sunday.hour == 5 and await run_at(services, clock, sunday) == {"gus@gamma.example"}
    assert await run_at(services, clock, local(2026, 3, 29, 12, 0)) == set()

    # Monday after the change: 07:30 CEST = 05:30 UTC. Only alpine may claim the VPN lead
    # in CH-LU: nobody else has anything new.
    assert await run_at(services, clock, local(2026, 3, 30, 7, 29)) == set()
    monday = local(2026, 3, 30, 7, 30)
    assert monday.hour == 5
    assert await run_at(services, clock, monday) == {"mia@alpine.example", "max@alpine.example"}
    mia = await OutboxMessage.get(kind="digest", recipient="mia@alpine.example", created_at=monday)
    assert "weekend news" in mia.payload["text"]


async def test_no_digest_on_a_holiday_nothing_new_nothing_sent_and_stop_respected(services, clock):
    clock.set(local(2026, 5, 11, 12, 0))  # Monday
    world = await build_world(services.bus)
    assert await run_at(services, clock, local(2026, 5, 12, 7, 0)) >= ACME  # Tuesday
    # Nothing new on Wednesday: no digest for anyone, however often the sweep runs.
    for hour in (7, 8, 13, 23):
        assert await run_at(services, clock, local(2026, 5, 13, hour, 0)) == set()

    clock.set(local(2026, 5, 13, 23, 30))
    await world.ok(c.AddLead("Firewall", "CH-ZH", need="holiday news"), world.owner)
    await world.ok(c.SetDigests(False), "tom@lakeside.example")
    # Thursday 14 May is Ascension Day (CH): nothing, all day.
    for hour in (7, 12, 18):
        assert await run_at(services, clock, local(2026, 5, 14, hour, 0)) == set()
    # Friday: the lead is new for alpine and lakeside; tom said STOP.
    friday = await run_at(services, clock, local(2026, 5, 15, 7, 5))
    assert friday & ACME == {"mia@alpine.example", "max@alpine.example"}
    await world.ok(c.SetDigests(True), "tom@lakeside.example")
    assert await run_at(services, clock, local(2026, 5, 15, 9, 0)) == set()  # once a day


async def test_twice_the_same_day_sends_once_and_catches_up_after_downtime(services, clock):
    clock.set(local(2026, 11, 2, 12, 0))  # Monday
    world = await build_world(services.bus)
    # The service was down at 07:00 on Tuesday; it starts at 10:40 and runs every job due.
    clock.set(local(2026, 11, 3, 10, 40))
    await services.scheduler.run_due()
    await services.scheduler.run_due()
    await services.scheduler.run_job("send-digests")
    rows = await OutboxMessage.filter(kind="digest")
    assert Counter(r.recipient for r in rows) == {r: 1 for r in ACME | {"gus@gamma.example"}}
    # On-demand digests the same day do not send a second one either.
    again = await world.ok(c.SendDigests(None), c.Actor.system())
    assert again.data["queued"] == 0


async def test_linked_slack_channels_get_their_digest_at_the_time_once_and_only_news(
    services, clock
):
    clock.set(local(2026, 11, 2, 12, 0))
    world = await build_world(services.bus)
    await world.ok(c.LinkSlackChannel("alpine", "C0ALPINE", "T0ACME"), world.owner)
    await world.ok(c.LinkSlackChannel("lakeside", "C0LAKE", "T0ACME"), world.owner)

    async def posts() -> Counter[str]:
        rows = await OutboxMessage.filter(kind="slack.digest")
        return Counter(r.recipient for r in rows)

    assert await run_at(services, clock, local(2026, 11, 3, 6, 0)) == set()
    assert await posts() == Counter()
    await run_at(services, clock, local(2026, 11, 3, 7, 0))
    await run_at(services, clock, local(2026, 11, 3, 8, 0))
    assert await posts() == {"C0ALPINE": 1, "C0LAKE": 1}
    await run_at(services, clock, local(2026, 11, 4, 7, 0))  # nothing new on Wednesday
    assert await posts() == {"C0ALPINE": 1, "C0LAKE": 1}
    clock.set(local(2026, 11, 4, 9, 0))
    await world.ok(c.AddLead("VPN", "CH-BE"), world.owner)  # alpine's only
    await run_at(services, clock, local(2026, 11, 5, 7, 0))
    assert await posts() == {"C0ALPINE": 2, "C0LAKE": 1}


async def test_two_instances_running_the_digest_sweep_concurrently_send_each_digest_once(
    store, clock
):
    with smtp_server() as sink:
        instances = []
        for _ in range(2):
            services = bootstrap(store, clock)
            services.worker = OutboxWorker(
                store, [SmtpTransport(store, sink)], clock, services.bus.renderer
            )
            instances.append(services)
        clock.set(local(2026, 11, 2, 12, 0))
        world = await build_world(instances[0].bus)
        start = local(2026, 11, 3, 6, 50)
        for step in range(6 * 24 * 2):  # two days, every 10 minutes, both instances at once
            now = start + timedelta(minutes=10 * step)
            clock.set(now)
            if now == local(2026, 11, 4, 3, 0):
                await world.ok(c.AddLead("VPN", "CH-BE"), world.owner)  # alpine's only
            await asyncio.gather(*(s.scheduler.run_job("send-digests") for s in instances))
            await asyncio.gather(*(s.worker.run_once() for s in instances))
        for services in instances:
            await services.worker.close()

        ids = [str(m["Message-ID"]) for m in sink.messages]
        assert len(ids) == len(set(ids)), "a message was delivered twice"
        rows = {r.message_id: r for r in await OutboxMessage.filter(kind="digest")}
        assert set(ids) == set(rows)
        per_day = Counter(
            (r.recipient, r.created_at.astimezone(ZURICH).date().isoformat()) for r in rows.values()
        )
        assert set(per_day.values()) == {1}
        assert sorted(per_day) == sorted(
            [(r, "2026-11-03") for r in ACME | {"gus@gamma.example"}]
            + [(r, "2026-11-04") for r in ("mia@alpine.example", "max@alpine.example")]
        )


async def test_start_up_sends_todays_digests_only_when_due_at_each_instant(
    services, clock, instant
):
    """The catch-up at start-up (what ``lyra-bot run`` does first) at each shared instant,
    then the sweep five minutes later: digests exactly when a working day's digest time has
    come in Zurich, and once a day."""
    clock.set(instant.at - timedelta(days=1))  # the leads are news since yesterday
    await build_world(services.bus)
    everyone = ACME | {"gus@gamma.example"}  # globex works the same days at the same time

    async def digests() -> Counter[str]:
        return Counter(r.recipient for r in await OutboxMessage.filter(kind="digest"))

    clock.set(instant.at)
    await services.scheduler.run_due()
    assert await digests() == ({r: 1 for r in everyone} if instant.digests_due() else {})
    later = timedelta(minutes=5)
    clock.advance(minutes=5)
    await services.scheduler.run_due()  # its next interval, the same day
    assert await digests() == ({r: 1 for r in everyone} if instant.digests_due(later) else {})
