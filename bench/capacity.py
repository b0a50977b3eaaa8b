"""Capacity model: CPU time per operation, split into Lyra and PostgreSQL, and what N
instances on one PostgreSQL of C cores carry. The last line printed is one JSON object.

    python bench/capacity.py [--claims 600] [--concurrency 16] [--pg-cores 8]

Wall-clock throughput on a shared machine says little; CPU time does: what a process used,
whoever else runs. Measured per operation, in milliseconds of CPU:

- ``app``: the ``lyra-bot run`` processes (``/proc/<pid>/stat``, every thread), including
  delivering what the operation queued (mail to files, Slack to a fake Web API);
- ``pg``: the PostgreSQL backends serving the benchmark's database (``/proc`` of each
  backend found in ``pg_stat_activity``; the server's shared WAL writer and checkpointer
  are not attributable to one database and not counted);
- ``gen``: this process, the load generator (plus the fake Slack process), which a
  production deployment does not run but which shares this machine's cores.

Operations: a Slack Claim click, a claim by reply mail, a lead through the intake API (each
sent to real service processes), a digest per recipient and an expiry per claim (sweeps,
dispatched here on the bus, delivery included).

Projection for N instances (each on its own core: an instance is one asyncio process) on
one PostgreSQL with C cores::

    claims/s(N) = u * min(N * (1000 - idle_app) / app_ms, (C * 1000 - N * idle_pg) / pg_ms)

``u`` (utilization) is measured in the calibration run: the claims/s reached divided by what
the CPU accounting allows there, so it carries what the accounting misses (idle polling,
lock waits, scheduling). Validation on this machine: every process shares its cores, and
other work may take some of them, so the cores available to Lyra are measured in each run
as the CPU our processes got per second (instances + backends + generator). There::

    claims/s here(N) = u * min(N * (1000 - idle_app) / app_ms,
                               (cores_here * 1000 - N * (idle_app + idle_pg)) / (app + pg + gen))

``idle_app`` and ``idle_pg`` are CPU-ms per second an idle instance costs (its scheduler,
outbox worker and Slack recovery polling the database), measured before the calibration
and taken off the per-operation figures.

``projection_error_1`` and ``_2`` compare that with the claims/s measured with one and two
instances (separate runs from the calibration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench.common import (  # noqa: E402
    backend_cpu,
    database_name,
    process_cpu,
    throwaway_database,
)
from lyra_bot import commands as c  # noqa: E402
from lyra_bot.app import bootstrap  # noqa: E402
from lyra_bot.bus import Bus, Reply  # noqa: E402
from lyra_bot.db import close_db, init_db  # noqa: E402
from lyra_bot.domain import ClaimState, LeadStatus  # noqa: E402
from lyra_bot.models import Claim, Lead, User  # noqa: E402
from tests.fleet import (  # noqa: E402
    FleetWorld,
    Instance,
    build_fleet_world,
    click,
    lyra_env,
    reply_mail,
    settings_of,
    slack_send,
    webhook_send,
)
from tests.slack_fake import SECRET, TOKEN, SlackSender  # noqa: E402

INSTANCES = (1, 2, 4, 8)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds used in one window, by party, and the window's wall-clock seconds."""

    app: float = 0.0
    pg: float = 0.0
    gen: float = 0.0
    wall: float = 0.0

    @property
    def cores(self) -> float:
        """Cores our processes got, on average, in the window."""
        return (self.app + self.pg + self.gen) / self.wall if self.wall else 0.0


class Meter:
    """CPU of the service processes, of the database's backends, and of this process (with
    any helper processes, e.g. the fake Slack), between ``start`` and ``stop``."""

    def __init__(
        self, database: str, apps: list[int], helpers: list[int], exclude: set[int]
    ) -> None:
        self.database, self.apps, self.helpers, self.exclude = database, apps, helpers, exclude

    async def _sample(self) -> tuple[float, dict[int, float], float, float]:
        pg = {
            pid: v
            for pid, v in (await backend_cpu(self.database)).items()
            if pid not in self.exclude
        }
        app = sum(process_cpu(pid) for pid in self.apps)
        gen = time.process_time() + sum(process_cpu(pid) for pid in self.helpers)
        return app, pg, gen, time.perf_counter()

    async def start(self) -> None:
        self._start = await self._sample()

    async def stop(self) -> Cpu:
        app, pg, gen, wall = await self._sample()
        app0, pg0, gen0, wall0 = self._start
        return Cpu(
            app=app - app0,
            pg=sum(v - pg0.get(pid, 0.0) for pid, v in pg.items()),
            gen=gen - gen0,
            wall=wall - wall0,
        )


class Store:
    """One connection of our own to count what was done (its backend is not Lyra's)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> Store:
        self.conn = await asyncpg.connect(self.url)
        self.pid = int(await self.conn.fetchval("SELECT pg_backend_pid()"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def count(self, sql: str) -> int:
        return int(await self.conn.fetchval(sql))

    async def settled(self, claims: int, leads: int, limit: float = 120) -> None:
        """Until ``claims`` claims and ``leads`` leads exist and nothing waits for delivery."""
        deadline = time.monotonic() + limit
        while True:
            done = (
                await self.count("SELECT count(*) FROM claim") >= claims
                and await self.count("SELECT count(*) FROM lead") >= leads
                and not await self.count(
                    "SELECT count(*) FROM outbox_message WHERE status = 'pending'"
                )
            )
            if done:
                return
            if time.monotonic() > deadline:
                have = await self.count("SELECT count(*) FROM claim")
                leads_now = await self.count("SELECT count(*) FROM lead")
                raise TimeoutError(
                    f"not settled: {have} of {claims} claims, {leads_now} of {leads} leads, "
                    + str(
                        await self.conn.fetch(
                            "SELECT status, channel, kind, last_error "
                            "FROM outbox_message WHERE status = 'pending' LIMIT 3"
                        )
                    )
                )
            await asyncio.sleep(0.02)


# --- traffic ----------------------------------------------------------------------------


@dataclass
class Traffic:
    world: FleetWorld
    env: dict[str, str]
    api_key: str
    next_lead: int = 0
    sent: int = 0
    sender: SlackSender = field(default_factory=lambda: SlackSender(""))  # unique trigger ids

    def request(self, op: str, n: int) -> Callable[[aiohttp.ClientSession, str], Awaitable[int]]:
        """The ``n``-th request of operation ``op`` (``slack``, ``mail`` or ``intake``)."""
        if op == "intake":
            lead = {"product": "Firewall", "region": "CH-BE", "company": f"Intake {n}"}
            headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": f"cap-{n}"}

            async def post(session: aiohttp.ClientSession, base: str) -> int:
                async with session.post(
                    base + "/api/v1/leads", json=lead, headers=headers
                ) as answer:
                    await answer.read()
                    return 200 if answer.status in (200, 201) else answer.status

            return post
        lead_index, self.next_lead = self.next_lead, self.next_lead + 1
        partners = len(self.world.emails)
        user, ref = lead_index % partners, self.world.refs[lead_index]
        if op == "mail":
            _, raw = reply_mail(settings_of(self.env), self.world, user, f"Claim {ref}")
            return webhook_send(raw)
        return slack_send(click(self.sender, self.world, user, ref, f"C0P{user:05d}"))


async def drive(traffic: Traffic, ops: list[str], bases: list[str], concurrency: int) -> int:
    """Send every operation in ``ops`` (in order) with ``concurrency`` clients; errors."""
    queue = list(enumerate(ops))
    queue.reverse()
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            n, op = queue.pop()
            status = await traffic.request(op, n + traffic.sent)(session, bases[n % len(bases)])
            errors += status != 200

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    traffic.sent += len(ops)
    return errors


@dataclass
class Phase:
    """A fresh database, a world in it, ``instances`` service processes."""

    url: str
    env: dict[str, str]
    running: list[Instance]
    traffic: Traffic
    store: Store
    helpers: list[int]

    @property
    def bases(self) -> list[str]:
        return [i.base for i in self.running]

    def meter(self) -> Meter:
        return Meter(
            database_name(self.url) or "",
            [i.proc.pid for i in self.running if i.proc],
            self.helpers,
            {self.store.pid},
        )

    async def idle(self, seconds: float) -> Cpu:
        """What the instances use doing nothing (scheduler, outbox and Slack polling)."""
        meter = self.meter()
        await meter.start()
        await asyncio.sleep(seconds)
        return await meter.stop()

    async def measure(self, ops: list[str], concurrency: int) -> tuple[Cpu, int]:
        """Send ``ops`` and wait until their claims/leads committed and all was delivered."""
        claims = await self.store.count("SELECT count(*) FROM claim")
        leads = await self.store.count("SELECT count(*) FROM lead")
        meter = self.meter()
        await meter.start()
        errors = await drive(self.traffic, ops, self.bases, concurrency)
        log(f"sent {len(ops)}, errors {errors}")
        await self.store.settled(
            claims + sum(op != "intake" for op in ops), leads + ops.count("intake")
        )
        return await meter.stop(), errors


async def start_phase(
    args: argparse.Namespace, url: str, workdir: Path, instances: int, slack_url: str
) -> tuple[Phase, list[Instance]]:
    env = lyra_env(
        url,
        workdir,
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_url,
        log_level="WARNING",
        claims_per_minute=1_000_000,  # scripted users: counted, never refused
        partner_claims_per_minute=1_000_000,
        api_rate_per_minute=1_000_000,
    )
    settings = settings_of(env)
    await init_db(settings)
    try:
        world = await build_fleet_world(settings, args.partners, args.leads)
        created = await Bus(settings).dispatch(
            c.CreateApiKey("capacity"), c.Actor.owner(world.tenant_id)
        )
    finally:
        await close_db()
    running = [Instance(f"i{n}", env, workdir).start() for n in range(instances)]
    for instance in running:
        await instance.ready(60)
    traffic = Traffic(world, env, created.data["key"])
    return Phase(url, env, running, traffic, Store(url), []), running


# --- the sweeps, dispatched here ----------------------------------------------------------


async def sweeps(
    args: argparse.Namespace, url: str, workdir: Path, slack_url: str
) -> dict[str, Any]:
    """CPU of a digest run (per recipient) and an expiry sweep (per claim), delivery included.

    Run in this process on the bus, as the scheduler of one instance runs them; the meter
    counts this process as ``app`` here."""
    env = lyra_env(
        url,
        workdir,
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_url,
        log_level="WARNING",
    )
    settings = settings_of(env)
    await init_db(settings)
    try:
        world = await build_fleet_world(settings, args.digest_recipients, args.expiries)
        services = bootstrap(settings)
        database = database_name(url) or ""

        async def measured(cmd: c.Command, actor: c.Actor) -> tuple[Cpu, list[Reply]]:
            pg0 = await backend_cpu(database)
            app0, wall0 = time.process_time(), time.perf_counter()
            replies = [await services.bus.dispatch(cmd, actor)]
            while replies[-1].data.get("more"):
                replies.append(await services.bus.dispatch(cmd, actor))
            while await services.worker.run_once():
                pass
            app, wall = time.process_time() - app0, time.perf_counter() - wall0
            pg1 = await backend_cpu(database)
            pg = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
            return Cpu(app=app, pg=pg, wall=wall), replies

        await services.worker.run_once()  # the set-up's own mails, not measured
        digest_cpu, replies = await measured(c.SendDigests(world.tenant_id), c.Actor.system())
        recipients = sum(r.data.get("queued", 0) for r in replies)
        # Every lead claimed and overdue, then one sweep returns them all.
        now = datetime.now(UTC)
        users = dict(await User.filter(tenant_id=world.tenant_id).values_list("partner_id", "id"))
        partner_ids = list(users)
        leads = await Lead.filter(tenant_id=world.tenant_id).order_by("id").values_list("id")
        rng = random.Random(19)
        claims = []
        for (lead_id,) in leads:
            partner = rng.choice(partner_ids)
            claims.append(
                Claim(
                    tenant_id=world.tenant_id,
                    lead_id=lead_id,
                    partner_id=partner,
                    user_id=users[partner],
                    channel="bench",
                    claimed_at=now - timedelta(days=4),
                    due_at=now - timedelta(days=1),
                    state=ClaimState.ACTIVE,
                )
            )
        await Claim.bulk_create(claims, batch_size=1000)
        await Lead.filter(tenant_id=world.tenant_id).update(status=LeadStatus.CLAIMED)
        expiry_cpu, replies = await measured(c.ExpireOverdue(), c.Actor.system())
        expired = sum(r.data.get("expired", 0) for r in replies)
        await services.worker.close()
    finally:
        await close_db()
    return {
        "digest": digest_cpu,
        "recipients": recipients,
        "expiry": expiry_cpu,
        "expired": expired,
    }


# --- the run ------------------------------------------------------------------------------


@dataclass
class Idle:
    """CPU-ms per second one idle instance costs: itself, its backends; and the generator."""

    app: float = 0.0
    pg: float = 0.0
    gen: float = 0.0

    @classmethod
    def of(cls, cpu: Cpu, instances: int = 1) -> Idle:
        per_s = 1000 / cpu.wall
        return cls(cpu.app * per_s / instances, cpu.pg * per_s / instances, cpu.gen * per_s)


def per_op(cpu: Cpu, n: int, idle: Idle, instances: int = 1) -> dict[str, float]:
    """CPU-ms per operation, the instances' idle cost over the window taken off."""
    return {
        "app_ms": round((cpu.app * 1000 - idle.app * instances * cpu.wall) / n, 3),
        "pg_ms": round((cpu.pg * 1000 - idle.pg * instances * cpu.wall) / n, 3),
        "gen_ms": round((cpu.gen * 1000 - idle.gen * cpu.wall) / n, 3),
    }


def bound(
    instances: int, cores: float, idle: Idle, app: float, pg: float, gen: float = 0.0
) -> float:
    """Claims/s the CPU allows: ``instances`` one-core processes and ``cores`` in all for
    everything (instances, backends, generator), each instance's idle cost taken first."""
    per_instance = instances * (1000 - idle.app) / app
    shared = (cores * 1000 - instances * (idle.app + idle.pg) - idle.gen) / (app + pg + gen)
    return min(per_instance, shared)


def bound_db(instances: int, pg_cores: int, idle: Idle, app: float, pg: float) -> float:
    """Claims/s of ``instances`` one-core instances on a database of ``pg_cores`` cores."""
    return min(instances * (1000 - idle.app) / app, (pg_cores * 1000 - instances * idle.pg) / pg)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.slack_fake", "--port", "0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out: dict[str, Any] = {"pg_cores": args.pg_cores}
    try:
        slack_url = (await fake.stdout.readline()).decode().strip()  # type: ignore[union-attr]
        n = args.claims
        # 1. Calibration: each operation alone through one instance.
        ops: dict[str, dict[str, float]] = {}
        async with throwaway_database("postgres") as url:
            with tempfile.TemporaryDirectory(prefix="lyra-capacity-") as folder:
                phase, running = await start_phase(args, url, Path(folder), 1, slack_url)
                phase.helpers = [fake.pid]
                try:
                    async with phase.store:
                        # Not measured: start-up (imports, templates, each pooled connection's
                        # prepared statements) and the sweeps' first catch-up.
                        warm = ["slack", "mail", "intake"] * (args.warmup // 3)
                        await phase.measure(warm, args.concurrency)
                        idle = Idle.of(await phase.idle(args.idle))
                        log(f"idle: {idle}")
                        mix = ["slack", "mail"] * (n // 2)
                        for op, batch in (
                            ("slack_claim", ["slack"] * n),
                            ("mail_claim", ["mail"] * n),
                            ("intake", ["intake"] * n),
                            ("claim_mix", mix),
                        ):
                            cpu, errors = await phase.measure(batch, args.concurrency)
                            ops[op] = per_op(cpu, len(batch), idle) | {
                                "per_s": round(len(batch) / cpu.wall, 1),
                                "cores": round(cpu.cores, 2),
                                "errors": errors,
                            }
                            log(f"{op}: {ops[op]}")
                finally:
                    for instance in running:
                        instance.stop()
        async with throwaway_database("postgres") as url:
            with tempfile.TemporaryDirectory(prefix="lyra-capacity-") as folder:
                swept = await sweeps(args, url, Path(folder), slack_url)
        for op, cpu, count in (
            ("digest_per_recipient", swept["digest"], swept["recipients"]),
            ("expiry_per_claim", swept["expiry"], swept["expired"]),
        ):
            ops[op] = per_op(cpu, max(1, count), Idle()) | {"n": count}
        log(f"sweeps: {ops['digest_per_recipient']} {ops['expiry_per_claim']}")

        # A claim: half by Slack, half by mail, as in the calibration's mixed run.
        cal = ops["claim_mix"]
        app, pg, gen = cal["app_ms"], cal["pg_ms"], cal["gen_ms"]
        u = round(cal["per_s"] / bound(1, cal["cores"], idle, app, pg, gen), 3)

        # 2. Validation: the same mix, fresh databases, one and then two instances.
        measured: dict[int, dict[str, float]] = {}
        for instances in (1, 2):
            async with throwaway_database("postgres") as url:
                with tempfile.TemporaryDirectory(prefix="lyra-capacity-") as folder:
                    phase, running = await start_phase(
                        args, url, Path(folder), instances, slack_url
                    )
                    phase.helpers = [fake.pid]
                    try:
                        async with phase.store:
                            warm = ["slack", "mail", "intake"] * (args.warmup // 3)
                            await phase.measure(warm, args.concurrency * instances)
                            cpu, errors = await phase.measure(
                                ["slack", "mail"] * (n // 2), args.concurrency * instances
                            )
                    finally:
                        for instance in running:
                            instance.stop()
            per_s = n // 2 * 2 / cpu.wall
            projected = u * bound(instances, cpu.cores, idle, app, pg, gen)
            measured[instances] = {
                "measured_claims_per_s": round(per_s, 1),
                "projected_claims_per_s": round(projected, 1),
                "cores_here": round(cpu.cores, 2),
                "errors": errors,
                **per_op(cpu, n // 2 * 2, idle, instances),
            }
            out[f"projection_error_{instances}"] = round(abs(per_s - projected) / per_s, 3)
            log(f"{instances} instance(s): {measured[instances]}")
    finally:
        fake.terminate()
        await fake.wait()

    return {
        "app_cpu_ms_per_claim": app,
        "pg_cpu_ms_per_claim": pg,
        "gen_cpu_ms_per_claim": gen,
        "utilization": u,
        "projected_claims_per_s": {
            str(k): round(u * min(k * 1000 / app, args.pg_cores * 1000 / pg), 1) for k in INSTANCES
        },
        "projection_error_1": out["projection_error_1"],
        "projection_error_2": out["projection_error_2"],
        "pg_cores": args.pg_cores,
        "instances_pg_saturates": round(
            args.pg_cores * 1000 / (pg * (1000 - idle.app) / app + idle.pg), 1
        ),
        "operations_cpu_ms": ops,
        "validation": {str(k): v for k, v in measured.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--claims", type=int, default=600, help="claims per measured run")
    parser.add_argument("--warmup", type=int, default=240, help="operations before measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="clients per instance")
    parser.add_argument("--partners", type=int, default=40)
    parser.add_argument("--leads", type=int, default=5000, help="open leads to claim")
    parser.add_argument("--digest-recipients", type=int, default=400)
    parser.add_argument("--expiries", type=int, default=2000)
    parser.add_argument("--pg-cores", type=int, default=8, help="cores of the projected database")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle measured")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
