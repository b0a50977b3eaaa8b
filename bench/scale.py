"""Scale benchmark: a digest run and an expiry sweep, each small and 10x larger.

    python bench/scale.py --db sqlite|postgres [--scale 1.0]

- Digest run: for every partner user, the partner's new leads since the last digest and one
  rendered mail (not sent), for 1,000 partners x 10,000 open leads and for 10,000 partners x
  100,000 open leads, entitlements varied. ``SendDigests`` (the email channel) is not merged
  yet, so this measures what it needs: every partner's pool from ``handlers.pool.PoolIndex``
  (two queries for the whole run) and a digest rendered from teasers.
- Expiry sweep: the scheduler's ``expire-overdue`` job over 10,000 and 100,000 due claims
  (claims lapse, leads return to the pool, mails are rendered and queued).

Reports seconds (and this process's CPU seconds: ``*_cpu_s``, ``*_cpu_ratio``), SQL
statements (``statements_*`` are the digest run's, which must not grow with the number of
partners; ``sweep_statements_*`` the sweep's, which grow with its batches) and the process's
peak memory. The large run is compared with the small one measured in the same process
(ratios). Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import resource
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from jinja2 import ChoiceLoader, FileSystemLoader
from tortoise import connections

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lyra_bot.handlers.pool import PoolIndex  # noqa: E402

from lyra_bot.app import bootstrap  # noqa: E402
from lyra_bot.clock import FrozenClock  # noqa: E402
from lyra_bot.config import Settings  # noqa: E402
from lyra_bot.db import close_db, init_db, tortoise_config, upgrade  # noqa: E402
from lyra_bot.domain import ClaimState, LeadStatus, teaser  # noqa: E402
from lyra_bot.models import Claim, Lead, Partner, Tenant, User  # noqa: E402
from lyra_bot.render import Renderer  # noqa: E402

PRODUCTS = ["Firewall", "VPN", "Switch", "WLAN", "Backup", "Cloud", "Voice", "Storage"]
CANTONS = [
    "AG", "AI", "AR", "BE", "BL", "BS", "FR", "GE", "GL", "GR", "JU", "LU", "NE",
    "NW", "OW", "SG", "SH", "SO", "SZ", "TG", "TI", "UR", "VD", "VS", "ZG", "ZH",
]  # fmt: skip
REGIONS = [f"CH-{c}" for c in CANTONS] + ["DE-BY", "DE-BW", "AT-9"]
DIGEST_LIMIT = 20
CHUNK = 2000
NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class StatementCounter(logging.Handler):
    """Counts the statements Tortoise sends (it logs each one on ``tortoise.db_client``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextlib.contextmanager
def counting() -> Iterator[StatementCounter]:
    counter = StatementCounter()
    db_log = logging.getLogger("tortoise.db_client")
    level, propagate = db_log.level, db_log.propagate
    db_log.setLevel(logging.DEBUG)
    db_log.propagate = False
    db_log.addHandler(counter)
    try:
        yield counter
    finally:
        db_log.removeHandler(counter)
        db_log.setLevel(level)
        db_log.propagate = propagate


# --- seeding ------------------------------------------------------------------------------


async def seed_tenant(slug: str) -> Tenant:
    return await Tenant.create(
        slug=slug, name=slug.title(), owner_email=f"owner@{slug}.example", locale="en"
    )


def entitlements(rng: random.Random) -> tuple[list[str], list[str]]:
    roll = rng.random()
    products = ["*"] if roll < 0.05 else rng.sample(PRODUCTS, rng.randint(1, 3))
    roll = rng.random()
    if roll < 0.02:
        regions = ["*"]
    elif roll < 0.12:
        regions = ["CH"]
    else:
        regions = rng.sample(REGIONS, rng.randint(1, 3))
    return products, regions


async def seed_partners(tenant: Tenant, count: int, rng: random.Random) -> list[int]:
    """``count`` partners with varied entitlements and one user each; returns partner ids."""
    partners = []
    for i in range(count):
        products, regions = entitlements(rng)
        partners.append(
            Partner(
                tenant_id=tenant.id, slug=f"p{i}", name=f"Partner {i}", products=products,
                regions=regions,
            )
        )  # fmt: skip
    for start in range(0, count, CHUNK):
        await Partner.bulk_create(partners[start : start + CHUNK])
    ids = list(
        await Partner.filter(tenant_id=tenant.id).order_by("id").values_list("id", flat=True)
    )
    users = [
        User(tenant_id=tenant.id, partner_id=pid, email=f"u{i}@p{i}.example", name=f"User {i}")
        for i, pid in enumerate(ids)
    ]
    for start in range(0, count, CHUNK):
        await User.bulk_create(users[start : start + CHUNK])
    return ids


async def seed_leads(
    tenant: Tenant, count: int, rng: random.Random, status: LeadStatus
) -> list[int]:
    leads = []
    for i in range(count):
        opened = NOW - timedelta(minutes=rng.randint(0, 3 * 24 * 60))
        leads.append(
            Lead(
                tenant_id=tenant.id,
                ref=f"L-{i + 1}",
                product=rng.choice(PRODUCTS),
                region=rng.choice(REGIONS),
                industry=rng.choice(["Retail", "Health", "Industry", "Finance"]),
                size=rng.choice(["1-9", "10-49", "50-249"]),
                need=f"Needs help with project {i}",
                company=f"Customer {i} AG",
                contact_name=f"Contact {i}",
                email=f"c{i}@customer.example",
                status=status,
                created_at=opened,
                opened_at=opened,
            )
        )
    for start in range(0, count, CHUNK):
        await Lead.bulk_create(leads[start : start + CHUNK])
    return list(await Lead.filter(tenant_id=tenant.id).order_by("id").values_list("id", flat=True))


async def seed_due_claims(slug: str, count: int, rng: random.Random) -> None:
    """``count`` active claims already past their deadline, spread over count/100 partners."""
    tenant = await seed_tenant(slug)
    partner_ids = await seed_partners(tenant, max(1, count // 100), rng)
    users = dict(await User.filter(tenant_id=tenant.id).values_list("partner_id", "id"))
    lead_ids = await seed_leads(tenant, count, rng, LeadStatus.CLAIMED)
    claims = []
    for lead_id in lead_ids:
        partner_id = rng.choice(partner_ids)
        claimed = NOW - timedelta(hours=72, minutes=rng.randint(1, 600))
        claims.append(
            Claim(
                tenant_id=tenant.id,
                lead_id=lead_id,
                partner_id=partner_id,
                user_id=users[partner_id],
                channel="bench",
                claimed_at=claimed,
                due_at=claimed + timedelta(hours=48),
                state=ClaimState.ACTIVE,
            )
        )
    for start in range(0, count, CHUNK):
        await Claim.bulk_create(claims[start : start + CHUNK])


async def analyze() -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would in a live
    database (without them PostgreSQL plans scans of whole tables for tiny lookups)."""
    await connections.get("default").execute_script("ANALYZE")


# --- the two measured runs ----------------------------------------------------------------


def digest_renderer(settings: Settings) -> Renderer:
    renderer = Renderer(settings.templates_dir)
    renderer.env.loader = ChoiceLoader(
        [FileSystemLoader(str(ROOT / "bench" / "templates")), renderer.env.loader]
    )
    return renderer


async def digest_run(tenant: Tenant, renderer: Renderer) -> dict[str, Any]:
    """Every partner user's digest of leads opened in the last day, rendered, not sent."""
    since = NOW - timedelta(days=1)
    with counting() as counter:
        started, cpu = time.perf_counter(), time.process_time()
        partners = await Partner.filter(tenant_id=tenant.id, active=True).order_by("id")
        users: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for partner_id, name, email in await User.filter(
            tenant_id=tenant.id, active=True, digest_enabled=True, partner_id__isnull=False
        ).values_list("partner_id", "name", "email"):
            users[partner_id].append((name, email))
        index = await PoolIndex.load(tenant.id, NOW)
        rendered = leads_listed = 0
        for partner in partners:
            pool = index.pool(partner, since=since, limit=DIGEST_LIMIT)
            if not pool.total:
                continue
            teasers = [teaser(lead) for lead in pool.leads]
            for name, _email in users[partner.id]:
                renderer.mail(
                    "bench_digest",
                    "en",
                    {
                        "tenant": {"name": tenant.name},
                        "partner": {"name": partner.name},
                        "user": {"name": name},
                        "leads": teasers,
                        "total": pool.total,
                    },
                )
                rendered += 1
                leads_listed += pool.total
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "statements": counter.count,
        "digests": rendered,
        "avg_new_leads": leads_listed / max(1, rendered),
    }


async def sweep_run(settings: Settings, expected: int) -> dict[str, Any]:
    services = bootstrap(settings, FrozenClock(NOW))
    with counting() as counter:
        started, cpu = time.perf_counter(), time.process_time()
        result = await services.scheduler.run_job("expire-overdue")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not result.ok or result.count != expected:
        raise SystemExit(f"sweep expired {result.count} of {expected}: {result.message}")
    return {"seconds": seconds, "cpu": cpu, "statements": counter.count, "batches": result.batches}


# --- the store ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(kind: str, workdir: Path):
    if kind == "sqlite":
        yield f"sqlite://{workdir / 'bench.db'}"
        return
    name = f"lyra_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main(kind: str, scale: float) -> dict[str, Any]:
    sizes = {
        "digest_small": (int(1_000 * scale), int(10_000 * scale)),
        "digest_large": (int(10_000 * scale), int(100_000 * scale)),
        "sweep_small": int(10_000 * scale),
        "sweep_large": int(100_000 * scale),
    }
    rng = random.Random(20261102)
    with tempfile.TemporaryDirectory() as tmp:
        async with database(kind, Path(tmp)) as url:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=url,
                outbox_dir=Path(tmp) / "outbox",
                secret_key="bench",  # type: ignore[arg-type]
            )
            await upgrade(tortoise_config(url))
            await init_db(settings)
            try:
                renderer = digest_renderer(settings)
                out: dict[str, Any] = {"db": kind}
                for label in ("digest_small", "digest_large"):
                    partners, leads = sizes[label]
                    say(f"seeding {label}: {partners} partners, {leads} open leads")
                    tenant = await seed_tenant(label.replace("_", "-"))
                    await seed_partners(tenant, partners, rng)
                    await seed_leads(tenant, leads, rng, LeadStatus.OPEN)
                    await analyze()
                    run = await digest_run(tenant, renderer)
                    say(f"{label}: {run}")
                    out[f"{label}_s"] = round(run["seconds"], 3)
                    out[f"{label}_cpu_s"] = round(run["cpu"], 3)
                    out[f"statements_{label.split('_')[1]}"] = run["statements"]
                    out[f"{label}_rendered"] = run["digests"]
                for label in ("sweep_small", "sweep_large"):
                    say(f"seeding {label}: {sizes[label]} due claims")
                    await seed_due_claims(label.replace("_", "-"), sizes[label], rng)
                    await analyze()
                    run = await sweep_run(settings, sizes[label])
                    say(f"{label}: {run}")
                    out[f"{label}_s"] = round(run["seconds"], 3)
                    out[f"{label}_cpu_s"] = round(run["cpu"], 3)
                    out[f"sweep_statements_{label.split('_')[1]}"] = run["statements"]
            finally:
                await close_db()
    out["digest_ratio"] = round(out["digest_large_s"] / out["digest_small_s"], 2)
    out["sweep_ratio"] = round(out["sweep_large_s"] / out["sweep_small_s"], 2)
    # CPU time of this process (the SQLite driver's thread included): on a shared machine
    # the wall-clock ratios move with the neighbours' load, these much less.
    out["digest_cpu_ratio"] = round(out["digest_large_cpu_s"] / out["digest_small_cpu_s"], 2)
    out["sweep_cpu_ratio"] = round(out["sweep_large_cpu_s"] / out["sweep_small_cpu_s"], 2)
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["scale"] = scale
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every size (0.01 for a smoke run)"
    )
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="PostgreSQL admin URL")
    args = parser.parse_args()
    PG_ADMIN_URL = args.pg_url
    result = asyncio.run(main(args.db, args.scale))
    keys = [
        "digest_small_s",
        "digest_large_s",
        "digest_ratio",
        "sweep_small_s",
        "sweep_large_s",
        "sweep_ratio",
        "statements_small",
        "statements_large",
        "peak_mb",
    ]
    ordered = {k: result[k] for k in keys} | {k: v for k, v in result.items() if k not in keys}
    print(json.dumps(ordered))
