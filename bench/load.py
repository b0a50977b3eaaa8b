"""Mixed load against real ``lyra-bot run`` processes: one and two instances on PostgreSQL,
one on SQLite. The last line printed is one JSON object.

    python bench/load.py [--seconds 15] [--concurrency 16] [--stores postgres,sqlite]

Each phase gets a fresh database (a throwaway PostgreSQL database at
``LYRA_TEST_POSTGRES_URL``, or a SQLite file) with one tenant, partners whose users have Slack
ids, and open leads; a fake Slack Web API runs as its own process; mail goes to ``.eml`` files
(``LYRA_OUTBOX_DIR``). ``--concurrency`` clients then send, for ``--seconds``, each its next
request as soon as the last one was answered, spread over the phase's instances in turn:

- ``email``: a signed reply mail ``Claim L-…`` to ``POST /inbound/email`` (answered after the
  claim committed);
- ``slack``: a signed Claim click to ``POST /slack/events`` (acked at once, claimed after),
  each partner's user in its own channel (answers to one channel go out in order, one
  instance at a time);
- ``intake``: a new lead through ``POST /api/v1/leads`` with the tenant's API key. Where the
  intake API is absent (``adapters/api.py``, before that branch is merged) it is ``AddLead``
  dispatched on the bus by the load process itself (the CLI's path, without a process per
  lead): it then loads the database but no instance and is not counted as served work.

After the window the phase waits until every accepted claim has committed and the outbox is
empty. ``throughput`` is claims committed plus leads taken in through the API, per second
over the window plus that drain, i.e. work done, not acks. ``p99_ms`` is per path, as the
client saw it. ``scaling_ratio`` is the two-instance throughput divided by the one-instance
throughput on PostgreSQL, measured in the same run on the same machine (the load generator
shares it: on two cores expect little).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from lyra_bot import commands as c  # noqa: E402
from lyra_bot.bus import Bus  # noqa: E402
from lyra_bot.db import close_db, init_db  # noqa: E402
from lyra_bot.domain import OutboxStatus  # noqa: E402
from lyra_bot.models import Claim, JobRun, OutboxMessage  # noqa: E402
from lyra_bot.scheduler import JOBS  # noqa: E402
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

PATHS = ("email", "slack", "intake")
API = importlib.util.find_spec("lyra_bot.adapters.api") is not None  # the HTTP intake API is there
MIX = ("email", "slack", "email", "slack", "intake")  # each client cycles through this


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Load:
    """What the clients of one phase did."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))
    claims_sent: int = 0
    leads_in: int = 0  # through the intake API


async def run_clients(
    args: argparse.Namespace,
    world: FleetWorld,
    env: dict[str, str],
    bases: list[str],
    bus: Bus,
    seconds: float,
    first_lead: list[int],
) -> Load:
    settings = settings_of(env)
    load = Load()
    next_lead = first_lead[0]
    owner = c.Actor.owner(world.tenant_id)
    api_key = ""
    if API:
        created = await bus.dispatch(c.CreateApiKey("load"), owner)  # type: ignore[attr-defined]
        api_key = created.data["key"]
    sender = SlackSender("")
    deadline = time.monotonic() + seconds
    partners = len(world.emails)

    async def one(session: aiohttp.ClientSession, path: str, n: int) -> None:
        nonlocal next_lead
        base = bases[n % len(bases)]
        if path in ("email", "slack"):
            if next_lead >= len(world.refs):
                path = "intake"  # out of leads to claim
            else:
                lead, next_lead = next_lead, next_lead + 1
                user = lead % partners
                ref = world.refs[lead]
        began = time.perf_counter()
        if path == "email":
            _, raw = reply_mail(settings, world, user, f"Claim {ref}")
            began = time.perf_counter()
            status = await webhook_send(raw)(session, base)
        elif path == "slack":
            body = click(sender, world, user, ref, f"C0P{user:05d}")  # each partner's channel
            began = time.perf_counter()
            status = await slack_send(body)(session, base)
        elif api_key:
            lead = {"product": "Firewall", "region": "CH-BE", "company": f"Intake {n}"}
            headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": f"load-{n}"}
            began = time.perf_counter()
            async with session.post(base + "/api/v1/leads", json=lead, headers=headers) as answer:
                await answer.read()
                status = 200 if answer.status in (200, 201) else answer.status
            if status == 200:
                load.leads_in += 1
        else:
            reply = await bus.dispatch(
                c.AddLead("Firewall", "CH-BE", company=f"Intake {n}", email=f"i{n}@x.example"),
                owner,
            )
            status = 200 if reply.ok else 422
        load.latencies[path].append((time.perf_counter() - began) * 1000)
        if status != 200:
            load.errors[path] += 1
        elif path != "intake":
            load.claims_sent += 1

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        n = number
        while time.monotonic() < deadline:
            await one(session, MIX[n % len(MIX)], n)
            n += args.concurrency

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(i, session) for i in range(args.concurrency)))
    first_lead[0] = next_lead
    return load


async def settle(claims: int, limit: float = 60) -> float:
    """Seconds until ``claims`` claims exist and nothing is left to deliver."""
    start = time.monotonic()
    while True:
        done = await Claim.all().count() >= claims
        if done and not await OutboxMessage.filter(status=OutboxStatus.PENDING).exists():
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            pending = await OutboxMessage.filter(status=OutboxStatus.PENDING).values_list(
                "channel", "kind", "attempts", "last_error"
            )
            raise TimeoutError(
                f"not settled after {limit} s: {await Claim.all().count()} of {claims} claims, "
                f"{pending} messages pending"
            )
        await asyncio.sleep(0.05)


async def caught_up(limit: float = 60) -> None:
    """Until every scheduler job has run once (what each instance does first on start)."""
    start = time.monotonic()
    while await JobRun.filter(last_run_at__isnull=False).count() < len(JOBS):
        if time.monotonic() - start > limit:
            raise TimeoutError("the scheduler's catch-up did not finish")
        await asyncio.sleep(0.1)


async def phase(args: argparse.Namespace, store: str, instances: int, slack_url: str) -> dict:
    """One measured run: a fresh database, ``instances`` service processes, the load."""
    async with throwaway_database(store) as database_url:
        with tempfile.TemporaryDirectory(prefix="lyra-load-") as folder:
            workdir = Path(folder)
            env = lyra_env(
                database_url,
                workdir,
                slack_bot_token=TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=slack_url,
                log_level="WARNING",
                # Rate limits are not what is measured here (settings unknown before the
                # API branch are ignored).
                claims_per_minute=1_000_000,
                partner_claims_per_minute=1_000_000,
                api_rate_per_minute=1_000_000,
            )
            settings = settings_of(env)
            await init_db(settings)
            running: list[Instance] = []
            try:
                world = await build_fleet_world(settings, args.partners, args.leads)
                bus = Bus(settings)
                for n in range(instances):
                    running.append(Instance(f"i{n}", env, workdir).start())
                for instance in running:
                    await instance.ready(60)
                bases = [i.base for i in running]
                # Not measured: each instance's start-up catch-up of the sweeps, then a
                # short warm-up (connections, caches, Slack's auth.test).
                await caught_up()
                lead = [0]
                warm = await run_clients(args, world, env, bases, bus, args.warmup, lead)
                await settle(warm.claims_sent)
                before = await Claim.all().count()
                log(f"{store} × {instances}: loading for {args.seconds} s …")
                window = time.monotonic()
                load = await run_clients(args, world, env, bases, bus, args.seconds, lead)
                window = time.monotonic() - window
                drain = await settle(before + load.claims_sent)
                claims = await Claim.all().count() - before
            finally:
                for instance in running:
                    instance.stop()
                await close_db()
    elapsed = window + drain
    served = sum(len(load.latencies[p]) for p in (PATHS if API else ("email", "slack")))
    result = {
        "store": store,
        "instances": instances,
        "throughput": round((claims + load.leads_in) / elapsed, 1),
        "intake": "api" if API else "bus (no API yet)",
        "requests_per_s": round(served / window, 1),
        "claims": claims,
        "drain_s": round(drain, 2),
        "intake_per_s": round(len(load.latencies["intake"]) / window, 1),
        "errors": load.errors,
    }
    for path in PATHS:
        values = load.latencies[path]
        result[f"{path}_n"] = len(values)
        result[f"{path}_p50_ms"] = round(statistics.median(values), 1) if values else None
        result[f"{path}_p99_ms"] = round(percentile(values, 99), 1) if values else None
    log(json.dumps(result))
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.slack_fake", "--port", "0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        slack_url = (await fake.stdout.readline()).decode().strip()  # type: ignore[union-attr]
        stores = args.stores.split(",")
        out: dict[str, Any] = {"seconds": args.seconds, "concurrency": args.concurrency}
        if "postgres" in stores:
            one = await phase(args, "postgres", 1, slack_url)
            two = await phase(args, "postgres", 2, slack_url)
            out["postgres_1"], out["postgres_2"] = one, two
            out["scaling_ratio"] = round(two["throughput"] / one["throughput"], 2)
        if "sqlite" in stores:
            out["sqlite_1"] = await phase(args, "sqlite", 1, slack_url)
        return out
    finally:
        fake.terminate()
        await fake.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="load window per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured load first")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once")
    parser.add_argument("--partners", type=int, default=40)
    parser.add_argument("--leads", type=int, default=6000, help="open leads to claim")
    parser.add_argument("--stores", default="postgres,sqlite")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
