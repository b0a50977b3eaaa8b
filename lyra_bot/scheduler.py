"""The scheduler: sweeps on a timer, inside ``lyra-bot run``.

Each job is a sweep command (``ExpireOverdue``, ``SendReminders`` …) dispatched through the
bus as the system actor: it finds what is due in the database and handles it, so running it
twice, or late, is harmless. There are no per-lead timers. The ``job_run`` table records each
job's last run, result and next run, shared by every instance: at start-up every job whose
next run has passed (the service was down) runs at once, then APScheduler runs each job at
its interval. On PostgreSQL the bus holds an advisory lock per sweep, so two instances never
run the same sweep at once; on SQLite one instance is assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from tortoise.exceptions import IntegrityError

from lyra_bot.bus import Bus
from lyra_bot.clock import Clock
from lyra_bot.commands import (
    Actor,
    CustomerContactCheck,
    ExpireOverdue,
    PruneInboundKeys,
    PurgeExpiredPersonalData,
    SendOwnerReports,
    SendReminders,
    SendScheduledDigests,
    StaleLeadAlert,
    Sweep,
)
from lyra_bot.logs import correlation
from lyra_bot.models import JobRun

log = logging.getLogger(__name__)

MAX_BATCHES = 10_000
"""A sweep that keeps saying ``more`` this often in one run is stopped (a bug, not work)."""


@dataclass(frozen=True)
class Job:
    name: str
    command: Callable[[], Sweep]
    every: timedelta
    description: str


JOBS: tuple[Job, ...] = (
    Job(
        "expire-overdue",
        ExpireOverdue,
        timedelta(minutes=1),
        "Lapse claims past their deadline; the leads return to the pool.",
    ),
    Job(
        "send-reminders",
        SendReminders,
        timedelta(minutes=1),
        "Remind partners before their deadline (tenant's offsets).",
    ),
    Job(
        "send-digests",
        SendScheduledDigests,
        timedelta(minutes=5),
        "Send digests (mail, Slack channels) at the tenant's digest time on working days.",
    ),
    Job(
        "customer-contact-check",
        CustomerContactCheck,
        timedelta(minutes=5),
        "Ask customers whether the partner has contacted them.",
    ),
    Job(
        "stale-lead-alert",
        StaleLeadAlert,
        timedelta(hours=1),
        "Tell owners about leads nobody claimed for days.",
    ),
    Job(
        "purge-personal-data",
        PurgeExpiredPersonalData,
        timedelta(hours=6),
        "Erase customer data of leads closed longer ago than the tenant's retention.",
    ),
    Job(
        "prune-inbound-keys",
        PruneInboundKeys,
        timedelta(hours=6),
        "Forget idempotency keys of inbound messages older than LYRA_INBOUND_KEY_DAYS.",
    ),
    Job(
        "owner-report",
        SendOwnerReports,
        timedelta(minutes=5),
        "Send each owner last week's report at the tenant's report day and time.",
    ),
)


@dataclass
class JobResult:
    name: str
    ok: bool
    message: str
    count: int = 0
    batches: int = 0
    busy: bool = False


class UnknownJob(LookupError):
    pass


class Scheduler:
    """Runs the jobs: ``run_job`` (one now), ``run_due`` (all whose time has come), and
    ``start``/``shutdown`` around APScheduler for ``lyra-bot run``."""

    def __init__(self, bus: Bus, clock: Clock, jobs: tuple[Job, ...] = JOBS) -> None:
        self.bus = bus
        self.clock = clock
        self.jobs = {job.name: job for job in jobs}
        self._aps: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._rows_ready = False

    def job(self, name: str) -> Job:
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(self.jobs)
            raise UnknownJob(f"There is no job '{name}'. Jobs: {known}.") from None

    async def run_job(self, name: str) -> JobResult:
        """Run one job now, batch after batch until it has nothing more, and record it."""
        with correlation(prefix=f"job-{name}-"):
            return await self._run_job(name)

    async def _run_job(self, name: str) -> JobResult:
        job = self.job(name)
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._ensure_rows()
            started = self.clock.now()
            await JobRun.filter(name=name).update(last_started_at=started)
            result = await self._sweep(job)
            await JobRun.filter(name=name).update(
                last_run_at=self.clock.now(),
                last_ok=result.ok,
                last_result=result.message[:2000],
                next_run_at=started + job.every,
            )
            return result
        finally:
            if task is not None:
                self._running.discard(task)

    async def _sweep(self, job: Job) -> JobResult:
        count, batches = 0, 0
        try:
            while True:
                reply = await self.bus.dispatch(job.command(), Actor.system())
                batches += 1
                if reply.code == "busy":
                    message = "skipped: another instance is running it."
                    if count:
                        message = f"{count} handled; another instance is running the rest."
                    return JobResult(job.name, True, message, count, batches, busy=True)
                if not reply.ok:
                    return JobResult(job.name, False, reply.message, count, batches)
                count += int(reply.data.get("count", 0))
                if not reply.data.get("more") or batches >= MAX_BATCHES:
                    break
        except Exception as exc:  # a bug or the database gone: log it, keep the scheduler alive
            log.exception("job %s failed", job.name)
            return JobResult(job.name, False, f"{type(exc).__name__}: {exc}", count, batches)
        message = reply.message if batches == 1 else f"{count} handled in {batches} batches."
        return JobResult(job.name, True, message, count, batches)

    async def run_due(self) -> list[JobResult]:
        """Run every job whose next run has come (all of them on a fresh database)."""
        await self._ensure_rows()
        now = self.clock.now()
        due = dict(await JobRun.filter(name__in=list(self.jobs)).values_list("name", "next_run_at"))
        results = []
        for name in self.jobs:
            next_run = due.get(name)
            if next_run is None or next_run <= now:
                results.append(await self.run_job(name))
        return results

    async def status(self) -> list[dict[str, Any]]:
        """Each job with its interval, last run and result, next run (``lyra-bot jobs list``)."""
        rows = {row.name: row for row in await JobRun.filter(name__in=list(self.jobs))}
        out = []
        for job in self.jobs.values():
            row = rows.get(job.name)
            out.append(
                {
                    "name": job.name,
                    "every": _interval(job.every),
                    "description": job.description,
                    "last_run": row.last_run_at if row else None,
                    "last_ok": row.last_ok if row else None,
                    "last_result": row.last_result if row else "",
                    "next_run": (row.next_run_at if row else None) or "at start-up",
                }
            )
        return out

    async def start(self) -> None:
        """Catch up on every job missed while the service was down, then run on intervals."""
        await self.run_due()
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        real_now = datetime.now(UTC)
        tick = self.bus.settings.scheduler_tick_seconds
        for job in self.jobs.values():
            every = job.every
            if tick > 0:
                every = min(every, timedelta(seconds=tick))
            self._aps.add_job(
                self.run_job,
                IntervalTrigger(seconds=every.total_seconds(), timezone=UTC),
                args=[job.name],
                id=job.name,
                name=job.name,
                next_run_time=real_now + every,
            )
        self._aps.start()
        log.info("scheduler started: %s", ", ".join(self.jobs))

    async def shutdown(self) -> None:
        """Stop timing new runs and wait for the ones in progress."""
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None
        current = asyncio.current_task()
        running = [t for t in self._running if t is not current]
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._aps is not None and self._aps.running

    def next_runs(self) -> dict[str, datetime | None]:
        """When APScheduler will next run each job (real time), for health checks."""
        if self._aps is None:
            return {}
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}

    async def _ensure_rows(self) -> None:
        if self._rows_ready:
            return
        existing = set(await JobRun.filter(name__in=list(self.jobs)).values_list("name", flat=True))
        for name in self.jobs:
            if name not in existing:
                with contextlib.suppress(IntegrityError):  # another instance was quicker
                    await JobRun.create(name=name)
        self._rows_ready = True


def _interval(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
