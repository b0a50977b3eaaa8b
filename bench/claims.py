"""Contended claims through the bus vs a raw-SQL baseline doing the same work.

    python bench/claims.py --db sqlite|postgres [--leads 400 --partners 80 --concurrency 32]

Seeds N leads and P partners, then C concurrent tasks claim with contention: every lead is
tried by ``--contention`` different partners, so most attempts lose the race. The ORM path is
``Bus.dispatch(ClaimLead)``. The baseline, in the same run on the same store and settings,
does per attempt what the handler does in hand-written SQL on the raw driver (aiosqlite /
asyncpg): the same reads (lead; actor, partner and tenant; cooldown; cap), the conditional
update, the claim row, the audit row and the three outbox mails, rendered by the same
templates. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tortoise.transactions import in_transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lyra_bot.handlers import notify

from bench.common import CpuMeter, database_name, throwaway_database
from lyra_bot import commands as c
from lyra_bot.bus import Bus, UnitOfWork
from lyra_bot.commands import Actor
from lyra_bot.config import Settings
from lyra_bot.db import close_db, init_db
from lyra_bot.domain import is_entitled
from lyra_bot.models import Claim, Lead, Partner, Tenant, User
from lyra_bot.render import Renderer

Work = list[tuple[str, Actor]]


async def seed(leads: int, partners: int) -> tuple[int, list[Actor], list[str]]:
    """A tenant, partners with one user each (entitled to everything in CH), open leads."""
    now = datetime.now(UTC)
    tenant = await Tenant.create(
        slug="bench",
        name="Bench",
        owner_email="owner@bench.example",
        cap_open_claims=10_000,
        claim_deadline_hours=72,
        locale="en",
    )
    await Partner.bulk_create(
        [
            Partner(
                tenant_id=tenant.id,
                slug=f"p{i}",
                name=f"Partner {i}",
                products=["*"],
                regions=["CH"],
            )
            for i in range(partners)
        ]
    )
    await User.bulk_create(
        [
            User(tenant_id=tenant.id, partner_id=p.id, email=f"u{p.id}@bench.example", name="User")
            for p in await Partner.filter(tenant_id=tenant.id).order_by("id")
        ]
    )
    await Lead.bulk_create(
        [
            Lead(
                tenant_id=tenant.id,
                ref=f"L-{1000 + i}",
                product="Firewall",
                region="CH-ZH",
                industry="Retail",
                size="10-50",
                need="Needs a firewall",
                company=f"Customer {i} AG",
                contact_name=f"Contact {i}",
                email=f"c{i}@customer.example",
                phone=f"+41 44 555 {i:04d}",
                address="Street 1",
                created_at=now,
                opened_at=now,
            )
            for i in range(leads)
        ]
    )
    users = await User.filter(tenant_id=tenant.id).order_by("id")
    actors = [Actor.partner_user(tenant.id, u.partner_id or 0, u.id, "bench") for u in users]
    return tenant.id, actors, [f"L-{1000 + i}" for i in range(leads)]


def contended(refs: list[str], actors: list[Actor], contention: int, seed: int = 7) -> Work:
    """Each lead tried by ``contention`` distinct partners, shuffled so the tries overlap."""
    rng = random.Random(seed)
    work = [(ref, actor) for ref in refs for actor in rng.sample(actors, contention)]
    rng.shuffle(work)
    return work


async def run(work: Work, concurrency: int, one: Callable[[str, Actor], Awaitable[Any]]) -> float:
    """Seconds for ``concurrency`` tasks to get through ``work``."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await one(*queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def measured(
    url: str, work: Work, concurrency: int, one: Callable[[str, Actor], Awaitable[Any]]
) -> tuple[float, float]:
    """(attempts per second, CPU ms per attempt: this process + the PostgreSQL backends)."""
    meter = await CpuMeter(database_name(url)).start()
    seconds = await run(work, concurrency, one)
    await meter.stop()
    return len(work) / seconds, (meter.app + meter.pg) / len(work) * 1000


async def outcome(tenant_id: int) -> tuple[int, int]:
    """(claims, leads claimed more than once)."""
    lead_ids = await Claim.filter(tenant_id=tenant_id).values_list("lead_id", flat=True)
    return len(lead_ids), len(lead_ids) - len(set(lead_ids))


# --- the raw-SQL baseline ---------------------------------------------------------------

TENANT_COLUMNS = ", ".join(f"t.{c} AS t__{c}" for c in Tenant._meta.db_fields)
"""Every tenant column, as the ORM path's ``select_related`` reads them (and notify uses them)."""
CONTEXT_SQL = (
    f"SELECT {TENANT_COLUMNS},"
    " u.id AS user_id, u.email, u.name AS user_name, u.locale AS user_locale, u.active,"
    " p.id AS partner_id, p.name AS partner_name, p.locale AS partner_locale, p.products,"
    " p.regions, p.active AS partner_active, t.id AS tenant_id, t.name AS tenant_name,"
    " t.owner_email, t.timezone, t.locale, t.cap_open_claims, t.claim_deadline_hours,"
    " t.mail_customers FROM lyra_user u JOIN partner p ON p.id = u.partner_id"
    " JOIN tenant t ON t.id = u.tenant_id WHERE u.id = {0} AND u.tenant_id = {1}"
    " AND u.partner_id = {2}"
)
INSERT_CLAIM = (
    "INSERT INTO claim (tenant_id, lead_id, partner_id, user_id, state, channel, claimed_at,"
    " due_at) VALUES ({0}, {1}, {2}, {3}, 'active', 'bench', {4}, {5})"
)
INSERT_AUDIT = (
    "INSERT INTO audit_event (tenant_id, kind, lead_id, partner_id, user_id, claim_id, channel,"
    " data, at) VALUES ({0}, 'lead.claimed', {1}, {2}, {3}, {4}, 'bench', {5}, {6})"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox_message (tenant_id, lead_id, channel, kind, recipient, payload,"
    " dedupe_key, message_id, status, attempts, next_attempt_at, last_error, created_at)"
    " VALUES ({0}, {1}, 'email', {2}, {3}, {4}, {5}, {6}, 'pending', 0, {7}, '', {7})"
)


def render_mails(
    settings: Settings,
    renderer: Renderer,
    ctx: dict,
    lead: dict,
    claim_id: int,
    due: datetime,
    now: datetime,
) -> list[tuple]:
    """The three claim mails, rendered exactly as the handler renders them."""
    columns = {k[3:]: v for k, v in ctx.items() if k.startswith("t__")}
    tenant = SimpleNamespace(**{**columns, "mail_customers": bool(columns["mail_customers"])})
    partner = SimpleNamespace(name=ctx["partner_name"], locale=ctx["partner_locale"])
    user = SimpleNamespace(
        id=ctx["user_id"], name=ctx["user_name"], email=ctx["email"], locale=ctx["user_locale"]
    )
    uow = UnitOfWork(Actor.system(), now, settings, renderer)
    notify.claimed(
        uow,
        tenant,
        SimpleNamespace(**lead),
        SimpleNamespace(id=claim_id, due_at=due),
        partner,
        user,
    )
    return [
        (m.kind, m.recipient, json.dumps(m.payload), m.dedupe_key, m.message_id) for m in uow.outbox
    ]


class RawSql:
    """The handler's reads and writes as hand-written SQL on the same connection layer.

    Same store, pool and transaction handling as the ORM path (``in_transaction``: ``BEGIN
    IMMEDIATE`` on SQLite, a pooled transaction on PostgreSQL), so the difference between
    the two paths is what the ORM and the bus add: query building, model objects, hooks.
    """

    def __init__(self, settings: Settings, kind: str) -> None:
        self.settings, self.kind = settings, kind
        self.renderer = Renderer(settings.templates_dir)
        self.p = (lambda n: "?") if kind == "sqlite" else (lambda n: f"${n}")

    def sql(self, template: str, count: int) -> str:
        return template.format(*(self.p(i + 1) for i in range(count)))

    async def one(self, conn: Any, template: str, *args: Any) -> dict | None:
        rows = await conn.execute_query_dict(self.sql(template, len(args)), list(args))
        return rows[0] if rows else None

    def stamp(self, when: datetime) -> Any:
        return when.isoformat() if self.kind == "sqlite" else when

    async def claim(self, ref: str, actor: Actor) -> None:
        now = datetime.now(UTC)
        async with in_transaction("default") as conn:
            lead = await self.one(
                conn, "SELECT * FROM lead WHERE tenant_id={0} AND ref={1}", actor.tenant_id, ref
            )
            assert lead is not None
            if lead["status"] != "open":
                await self.one(
                    conn,
                    "SELECT 1 FROM claim WHERE lead_id={0} AND partner_id={1}"
                    " AND state='active' LIMIT 1",
                    lead["id"],
                    actor.partner_id,
                )
                raise _Refused
            if self.kind == "postgres":
                await self.one(
                    conn, "SELECT id FROM partner WHERE id={0} FOR UPDATE", actor.partner_id
                )
            ctx = await self.one(
                conn, CONTEXT_SQL, actor.user_id, actor.tenant_id, actor.partner_id
            )
            assert ctx is not None
            products, regions = ctx["products"], ctx["regions"]
            if isinstance(products, str):
                products, regions = json.loads(products), json.loads(regions)
            assert is_entitled(products, regions, lead["product"], lead["region"])
            await self.one(
                conn,
                "SELECT until FROM lead_hide WHERE lead_id={0} AND"
                " partner_id={1} AND until>{2} LIMIT 1",
                lead["id"],
                actor.partner_id,
                self.stamp(now),
            )
            await self.one(
                conn,
                "SELECT COUNT(*) AS n FROM claim WHERE partner_id={0} AND state='active'",
                actor.partner_id,
            )
            won, _ = await conn.execute_query(
                self.sql("UPDATE lead SET status='claimed' WHERE id={0} AND status='open'", 1),
                [lead["id"]],
            )
            if won != 1:
                raise _Refused
            due = now + timedelta(hours=ctx["claim_deadline_hours"])
            returning = " RETURNING id" if self.kind == "postgres" else ""
            row = (
                await conn.execute_insert(
                    self.sql(INSERT_CLAIM, 6) + returning,
                    [
                        actor.tenant_id,
                        lead["id"],
                        actor.partner_id,
                        actor.user_id,
                        self.stamp(now),
                        self.stamp(due),
                    ],
                )
                if self.kind == "sqlite"
                else await self.one(
                    conn,
                    INSERT_CLAIM + returning,
                    actor.tenant_id,
                    lead["id"],
                    actor.partner_id,
                    actor.user_id,
                    now,
                    due,
                )
            )
            claim_id = row if isinstance(row, int) else row["id"]
            await conn.execute_query(
                self.sql(INSERT_AUDIT, 7),
                [
                    actor.tenant_id,
                    lead["id"],
                    actor.partner_id,
                    actor.user_id,
                    claim_id,
                    json.dumps({"due_at": due.isoformat()}),
                    self.stamp(now),
                ],
            )
            mails = render_mails(self.settings, self.renderer, ctx, lead, claim_id, due, now)
            await conn.execute_many(
                self.sql(INSERT_OUTBOX, 8),
                [
                    [actor.tenant_id, lead["id"], *m, self.stamp(now)]
                    + ([self.stamp(now)] if self.kind == "sqlite" else [])
                    for m in mails
                ],
            )

    async def attempt(self, ref: str, actor: Actor) -> None:
        with contextlib.suppress(_Refused):
            await self.claim(ref, actor)


BENCH_CLAIMS_PER_MINUTE = 10**6
"""Scripted users claim far faster than people: the limiter is counted but never refuses."""


class _Refused(Exception):
    """Rolls the baseline's transaction back, as a refused claim does in the handler."""


# --- the runs ---------------------------------------------------------------------------


async def orm_run(kind: str, args: argparse.Namespace) -> tuple[float, int, int, float]:
    async with throwaway_database(kind) as url:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            db_pool_max=args.pool,
            claims_per_minute=BENCH_CLAIMS_PER_MINUTE,
            partner_claims_per_minute=BENCH_CLAIMS_PER_MINUTE,
        )
        await init_db(settings)
        try:
            tenant_id, actors, refs = await seed(args.leads, args.partners)
            bus = Bus(settings)

            async def one(ref: str, actor: Actor) -> None:
                reply = await bus.dispatch(c.ClaimLead(ref), actor)
                assert reply.ok or reply.code in {"lead_taken", "already_yours"}, reply.message

            work = contended(refs, actors, args.contention)
            rate, cpu = await measured(url, work, args.concurrency, one)
            return (rate, *await outcome(tenant_id), cpu)
        finally:
            await close_db()


async def raw_run(kind: str, args: argparse.Namespace) -> tuple[float, int, int, float]:
    async with throwaway_database(kind) as url:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            db_pool_max=args.pool,
            claims_per_minute=BENCH_CLAIMS_PER_MINUTE,
            partner_claims_per_minute=BENCH_CLAIMS_PER_MINUTE,
        )
        await init_db(settings)
        try:
            tenant_id, actors, refs = await seed(args.leads, args.partners)
            raw = RawSql(settings, kind)
            work = contended(refs, actors, args.contention)
            rate, cpu = await measured(url, work, args.concurrency, raw.attempt)
            return (rate, *await outcome(tenant_id), cpu)
        finally:
            await close_db()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--leads", type=int, default=400)
    parser.add_argument("--partners", type=int, default=80)
    parser.add_argument("--contention", type=int, default=4, help="partners trying each lead")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=10, help="PostgreSQL connections")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each path")
    args = parser.parse_args()

    await raw_run(args.db, args)  # warm-up: imports, template cache, OS page cache
    raw_rates, orm_rates, raw_cpu, orm_cpu, doubles = [], [], [], [], 0
    for _ in range(args.rounds):  # alternate, so machine noise hits both paths alike
        rate, claims, double, cpu = await raw_run(args.db, args)
        raw_rates.append(rate)
        raw_cpu.append(cpu)
        doubles += double
        assert claims == args.leads, claims
        rate, claims, double, cpu = await orm_run(args.db, args)
        orm_rates.append(rate)
        orm_cpu.append(cpu)
        doubles += double
        assert claims == args.leads, claims
    orm_per_s, raw_per_s = max(orm_rates), max(raw_rates)
    print(
        json.dumps(
            {
                "db": args.db,
                "attempts": args.leads * args.contention,
                "concurrency": args.concurrency,
                "orm_per_s": round(orm_per_s, 1),
                "raw_per_s": round(raw_per_s, 1),
                "ratio": round(orm_per_s / raw_per_s, 3),
                "double_claims": doubles,
                # CPU per attempt (this process + PostgreSQL backends): steadier than
                # throughput on a busy machine; cpu_ratio = raw CPU / ORM CPU.
                "orm_cpu_ms": round(min(orm_cpu), 4),
                "raw_cpu_ms": round(min(raw_cpu), 4),
                "cpu_ratio": round(min(raw_cpu) / min(orm_cpu), 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
