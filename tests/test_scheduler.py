"""The scheduler: sweeps on business time, once each, catching up after downtime, and safe with
two instances on PostgreSQL. Time is a FrozenClock moved by the tests; nothing sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from lyra_bot.adapters.slack.render import render
from tortoise.transactions import in_transaction

from lyra_bot import commands as c
from lyra_bot.app import bootstrap, serve
from lyra_bot.commands import Actor
from lyra_bot.db import close_db, init_db, try_advisory_xact_lock
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import Claim, JobRun, Lead, OutboxMessage, User
from lyra_bot.outbox import OutboxWorker
from lyra_bot.scheduler import JOBS, Scheduler
from tests.conftest import make_settings
from tests.smtp_sink import Sink, SmtpTransport, free_port, smtp_server
from tests.world import add_partner, build_world

ZURICH = ZoneInfo("Europe/Zurich")


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    with smtp_server() as sink:
        yield sink


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZURICH).astimezone(UTC)


async def claim_of(world, ref: str) -> Claim:
    return await Claim.filter(lead__ref=ref, tenant_id=world.tenant_id).order_by("-id").first()


async def test_claim_lapses_exactly_at_its_business_deadline_across_weekend_and_holiday(
    services, clock
):
    world = await build_world(
        services.bus,
        deadline_business_hours=True,
        claim_deadline_hours=16,
        holidays="CH-ZH",
        reminder_hours="none",
    )
    clock.set(local(2026, 4, 30, 14, 0))  # Thursday; Friday 1 May is a holiday in Zurich
    reply = await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    assert "by May 5, 2026, 12:00\u202fPM." in reply.message  # 10:00 UTC, local (CEST) time
    claim = await claim_of(world, "L-1001")
    assert claim.due_at == local(2026, 5, 5, 12, 0)

    for moment in (local(2026, 5, 1, 12, 0), local(2026, 5, 4, 17, 0), local(2026, 5, 5, 11, 59)):
        clock.set(moment)
        result = await services.scheduler.run_job("expire-overdue")
        assert result.ok and result.count == 0
    assert (await Claim.get(id=claim.id)).state == ClaimState.ACTIVE

    clock.set(local(2026, 5, 5, 12, 0))
    result = await services.scheduler.run_job("expire-overdue")
    assert result.ok and result.count == 1
    assert (await Claim.get(id=claim.id)).state == ClaimState.EXPIRED
    assert (await Lead.get(id=claim.lead_id)).status == LeadStatus.OPEN
    again = await services.scheduler.run_job("expire-overdue")
    assert again.count == 0
    assert await OutboxMessage.filter(kind="lapse.partner").count() == 1
    assert await OutboxMessage.filter(kind="lapse.owner").count() == 1


async def test_reminders_fire_once_each_at_the_right_local_times_across_a_dst_change(
    services, clock
):
    world = await build_world(services.bus)  # 48 wall-clock hours, reminders 24 h and 2 h
    await User.filter(email="mia@alpine.example").update(slack_user_id="U0MIA")
    clock.set(local(2026, 10, 23, 10, 0))  # Friday 10:00 CEST; clocks go back on Sunday 03:00
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim = await claim_of(world, "L-1001")
    assert claim.due_at == local(2026, 10, 25, 10, 0)  # Sunday 10:00 CET, 49 real hours later

    expected = [local(2026, 10, 24, 10, 0), local(2026, 10, 25, 8, 0)]
    moments = {claim.claimed_at + timedelta(minutes=30 * i) for i in range(100)}
    moments |= {t - timedelta(minutes=1) for t in expected} | set(expected)
    for moment in sorted(m for m in moments if m < claim.due_at):
        clock.set(moment)
        await services.scheduler.run_job("send-reminders")
        sent = await OutboxMessage.filter(kind="reminder.partner").order_by("id")
        assert [r.created_at for r in sent] == [t for t in expected if t <= moment]

    mails = await OutboxMessage.filter(kind="reminder.partner").order_by("id")
    assert [m.created_at.astimezone(ZURICH).strftime("%a %H:%M %Z") for m in mails] == [
        "Sat 10:00 CEST",
        "Sun 08:00 CET",
    ]
    for mail in mails:
        assert "Sun, 25 Oct 2026, 10:00" in mail.payload["text"]  # local time, after the change
        assert mail.payload["to"] == "mia@alpine.example"
        claim_mail = await OutboxMessage.get(kind="claim.partner", lead_id=claim.lead_id)
        assert mail.payload["headers"]["References"] == claim_mail.payload["headers"]["References"]
    assert "24 hour" in mails[0].payload["text"] and "2 hour" in mails[1].payload["text"]
    slack = await OutboxMessage.filter(kind="reminder.slack").order_by("id")
    assert [s.recipient for s in slack] == ["U0MIA", "U0MIA"]
    args = slack[0].payload["args"]
    assert slack[0].channel == "slack" and slack[0].payload["method"] == "lyra.say"
    assert args["channel"] == "U0MIA" and args["say"]["kind"] == "reminder"
    said = render(args["say"]["kind"], args["say"]["locale"], args["say"]["context"])
    assert "Feedback on L-1001 is due" in said["blocks"][0]["text"]["text"]
    assert "in about 24 hours" in said["text"]
    assert (await Claim.get(id=claim.id)).next_remind_at is None


async def test_after_downtime_only_the_nearest_missed_reminder_is_sent(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim = await claim_of(world, "L-1001")
    clock.set(claim.due_at - timedelta(hours=1))  # down through both reminder times
    await services.scheduler.run_job("send-reminders")
    await services.scheduler.run_job("send-reminders")
    [mail] = await OutboxMessage.filter(kind="reminder.partner")
    assert "1 hour" in mail.payload["text"]


async def test_a_claim_shorter_than_an_offset_gets_only_the_reminders_that_fit(services, clock):
    world = await build_world(services.bus, claim_deadline_hours=10)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    for _ in range(10):
        clock.set(clock.now() + timedelta(hours=1))
        await services.scheduler.run_job("send-reminders")
    assert await OutboxMessage.filter(kind="reminder.partner").count() == 1  # the 2 h one


async def test_feedback_stops_reminders(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await world.ok(c.GiveFeedback("L-1001", "contacted"), "mia@alpine.example")
    clock.advance(hours=47)
    await services.scheduler.run_job("send-reminders")
    assert await OutboxMessage.filter(kind="reminder.partner").count() == 0


async def test_service_down_over_a_deadline_expires_the_claim_at_start_up_once(
    services, clock, instant
):
    clock.set(instant.at)
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim = await claim_of(world, "L-1001")
    clock.set(claim.due_at + timedelta(hours=3))  # nothing ran while "down"

    await services.scheduler.start()
    try:
        assert services.scheduler.running
        assert (await Claim.get(id=claim.id)).state == ClaimState.EXPIRED
        rows = {r.name: r for r in await JobRun.all()}
        assert set(rows) == {job.name for job in JOBS}
        assert rows["expire-overdue"].last_ok is True
        assert rows["expire-overdue"].last_result.startswith("1 claim lapsed: L-1001")
        assert rows["expire-overdue"].next_run_at == clock.now() + timedelta(minutes=1)
        assert set(services.scheduler.next_runs()) == {job.name for job in JOBS}
    finally:
        await services.scheduler.shutdown()
    assert not services.scheduler.running

    # A restart a moment later: nothing is due yet, and a forced run finds nothing to do.
    clock.advance(seconds=20)
    restarted = Scheduler(services.bus, clock)
    assert await restarted.run_due() == []
    assert (await restarted.run_job("expire-overdue")).count == 0
    assert await OutboxMessage.filter(kind="lapse.partner").count() == 1
    assert await OutboxMessage.filter(kind="reminder.partner").count() == 0  # deadline passed


async def test_a_failing_job_is_recorded_and_does_not_stop_the_others(services, clock):
    def broken() -> c.Sweep:
        raise RuntimeError("boom")

    from lyra_bot.scheduler import Job

    scheduler = Scheduler(
        services.bus, clock, (Job("broken", broken, timedelta(minutes=1), "fails"), *JOBS)
    )
    results = await scheduler.run_due()
    assert [r.ok for r in results] == [False] + [True] * len(JOBS)
    row = await JobRun.get(name="broken")
    assert row.last_ok is False and "RuntimeError: boom" in row.last_result


@pytest.mark.pg_only
async def test_a_sweep_whose_lock_is_held_elsewhere_does_nothing(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(hours=49)
    holder_has_lock, release = asyncio.Event(), asyncio.Event()

    async def other_instance() -> None:
        async with in_transaction("default") as connection:
            assert await try_advisory_xact_lock(connection, "lyra.sweep.ExpireOverdue")
            holder_has_lock.set()
            await release.wait()

    holder = asyncio.create_task(other_instance())
    await holder_has_lock.wait()
    reply = await services.bus.dispatch(c.ExpireOverdue(), Actor.system())
    assert reply.ok and reply.code == "busy"
    result = await services.scheduler.run_job("expire-overdue")
    assert result.busy and result.message.startswith("skipped")
    assert (await claim_of(world, "L-1001")).state == ClaimState.ACTIVE
    release.set()
    await holder
    assert (await services.scheduler.run_job("expire-overdue")).count == 1


@pytest.mark.pg_only
async def test_two_instances_running_every_sweep_concurrently_send_each_mail_once(
    store, clock, smtp_sink
):
    instances = []
    for _ in range(2):
        services = bootstrap(store, clock)
        services.worker = OutboxWorker(
            store, [SmtpTransport(store, smtp_sink)], clock, services.bus.renderer
        )
        instances.append(services)
    bus = instances[0].bus
    world = await build_world(bus, cap_open_claims=5, contact_check_days=1)
    owner = world.owner
    more = await add_partner(bus, owner, "north", ("*",), ("CH",), ("nina@north.example",))
    world.actors.update(more)
    for i in range(4):
        await world.ok(c.AddLead("VPN", "CH-BE", email=f"c{i}@cust.example"), owner)
    claims = [
        ("L-1001", "mia@alpine.example"),
        ("L-1002", "max@alpine.example"),
        ("L-1004", "eve@romandie.example"),
        ("L-1006", "nina@north.example"),
        ("L-1007", "nina@north.example"),
        ("L-1008", "mia@alpine.example"),
    ]
    for ref, who in claims:
        await world.ok(c.ClaimLead(ref), who)
        clock.advance(minutes=7)

    start, busy = clock.now(), 0
    for step in range(0, 52 * 2):
        clock.set(start + timedelta(minutes=30 * step))
        results = await asyncio.gather(
            *(s.scheduler.run_job(name) for s in instances for name in s.scheduler.jobs)
        )
        busy += sum(r.busy for r in results)
        await asyncio.gather(*(s.worker.run_once() for s in instances))

    # What crossed SMTP, mapped back to the outbox rows by Message-ID.
    ids = [str(m["Message-ID"]) for m in smtp_sink.messages]
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    rows = {r.message_id: r for r in await OutboxMessage.filter(channel="email")}
    assert set(ids) == set(rows), "every queued mail was delivered, nothing else"
    kinds = Counter(rows[i].kind for i in ids)
    assert kinds["reminder.partner"] == 2 * len(claims)
    assert kinds["lapse.partner"] == len(claims)
    assert kinds["contact_check.customer"] == len(claims)
    per_claim = Counter(
        rows[i].dedupe_key.split(":")[1] for i in ids if rows[i].kind == "reminder.partner"
    )
    assert sorted(per_claim.values()) == [2] * len(claims)
    assert await OutboxMessage.filter(attempts__gt=1).count() == 0
    assert busy > 0, "the two instances never contended for a sweep"


async def test_lyra_run_starts_the_scheduler_catches_up_and_serves_links(
    database_url, tmp_path, instant_clock
):
    clock = instant_clock
    port = free_port()
    settings = make_settings(database_url, tmp_path, http_port=port)
    await init_db(settings)
    from lyra_bot.bus import Bus

    world = await build_world(Bus(settings, clock))
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(hours=50)  # the service was down over the deadline
    await close_db()

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, clock=clock, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        claim = await claim_of(world, "L-1001")
        assert claim.state == ClaimState.EXPIRED
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{port}/check/not-a-token/yes") as resp:
                assert resp.status == 400
                assert "not valid" in await resp.text()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def test_jobs_list_and_run_from_the_command_line(tmp_path: Path):
    env = {
        **os.environ,
        "LYRA_DATABASE_URL": f"sqlite://{tmp_path / 'cli.db'}",
        "LYRA_OUTBOX_DIR": str(tmp_path / "out"),
    }
    cli = [str(Path(sys.executable).parent / "lyra-bot")]

    def lyra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )

    assert lyra("db", "upgrade").returncode == 0
    ran = lyra("jobs", "run", "expire-overdue")
    assert ran.returncode == 0, ran.stderr
    assert "expire-overdue: No claims are overdue." in ran.stdout
    listed = lyra("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = {j["name"]: j for j in json.loads(listed.stdout)["jobs"]}
    assert set(jobs) == {job.name for job in JOBS}
    assert jobs["expire-overdue"]["last_ok"] is True
    assert jobs["send-reminders"]["next_run"] == "at start-up"
    wrong = lyra("jobs", "run", "nope")
    assert wrong.returncode == 1 and "There is no job 'nope'" in wrong.stderr
