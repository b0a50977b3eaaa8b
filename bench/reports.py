"""Report benchmark: the weekly owner report of a tenant with a long, busy history.

    python bench/reports.py --db sqlite|postgres [--scale 1.0]

Seeds one tenant with 2,000 partners and a year of consistent history (leads, claims,
feedback, customer checks, extensions, pauses) whose audit trail holds 1,000,000 events,
then computes last week's report (``build_report``, the JSON document and the mail's
formatted context) and, separately, its chart. Then the same history is spread over 200
partners (every row's partner mapped onto the first 200, the others deactivated) and the
report is computed again: the baseline, measured in the same run.

Reports seconds (median of 3 runs), the peak of Python memory while computing (tracemalloc),
SQL statements for the report at 2,000 and at 200 partners (they must be equal: nothing is
queried per partner), and the ratio of the two timings. Progress goes to stderr; the last
line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tortoise import connections  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from bench.scale import analyze, counting, say  # noqa: E402
from lyra_bot.config import Settings  # noqa: E402
from lyra_bot.db import close_db, dialect, init_db  # noqa: E402
from lyra_bot.domain import ClaimState, ExtensionStatus, LeadStatus  # noqa: E402
from lyra_bot.models import (  # noqa: E402
    AuditEvent,
    Claim,
    ContactCheck,
    Extension,
    Feedback,
    Lead,
    Partner,
    Tenant,
    User,
)
from lyra_bot.reports import exports  # noqa: E402
from lyra_bot.reports.chart import render_png  # noqa: E402
from lyra_bot.reports.periods import parse_week  # noqa: E402
from lyra_bot.reports.report import build_report  # noqa: E402
from lyra_bot.reports.view import report_context  # noqa: E402

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)  # Monday 08:00 in Zurich: report week 44
WEEKS = 52
PRODUCTS = ["Firewall", "VPN", "Switch", "WLAN", "Backup", "Cloud", "Voice", "Storage"]
REGIONS = [f"CH-{c}" for c in ("ZH", "BE", "LU", "GE", "VD", "TI", "SG", "AG", "BS", "VS")]
CHUNK = 2_000
DEADLINE = timedelta(hours=48)
RUNS = 3


@dataclass
class Batch:
    """Rows of one chunk of leads, written together and then dropped (memory stays flat)."""

    leads: list[Lead] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    checks: list[ContactCheck] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    async def write(self) -> None:
        for model, rows in (
            (Lead, self.leads),
            (Claim, self.claims),
            (Feedback, self.feedback),
            (ContactCheck, self.checks),
            (Extension, self.extensions),
            (AuditEvent, self.events),
        ):
            if rows:
                await model.bulk_create(rows, batch_size=1000)


class History:
    """A year of plausible activity, every transition with its audit event."""

    def __init__(self, tenant: Tenant, partners: int, rng: random.Random) -> None:
        self.tenant, self.partners, self.rng = tenant, partners, rng
        self.lead_id = self.claim_id = self.ext_id = self.check_id = 0
        self.events = 0

    def event(self, batch: Batch, kind: str, at: datetime, **ids: Any) -> None:
        batch.events.append(AuditEvent(tenant_id=self.tenant.id, kind=kind, at=at, data={}, **ids))
        self.events += 1

    def lead(self, batch: Batch) -> None:
        rng = self.rng
        self.lead_id += 1
        lead_id = self.lead_id
        created = NOW - timedelta(minutes=rng.randint(0, WEEKS * 7 * 24 * 60))
        lead = Lead(
            id=lead_id, tenant_id=self.tenant.id, ref=f"L-{lead_id}",
            product=rng.choice(PRODUCTS), region=rng.choice(REGIONS), need="bench",
            status=LeadStatus.OPEN, created_at=created, opened_at=created, pooled_at=created,
        )  # fmt: skip
        batch.leads.append(lead)
        self.event(batch, "lead.added", created, lead_id=lead_id)
        if rng.random() < 0.03:
            withdrawn = created + timedelta(hours=rng.uniform(1, 120))
            if withdrawn < NOW:
                lead.status, lead.closed_at = LeadStatus.WITHDRAWN, withdrawn
                self.event(batch, "lead.withdrawn", withdrawn, lead_id=lead_id)
            return
        free_at = created
        for attempt in range(2):
            claimed = free_at + timedelta(hours=rng.uniform(0.5, 72))
            if claimed >= NOW:
                return
            ended = self.claim(batch, lead, claimed, final=attempt == 1)
            if ended is None or lead.status != LeadStatus.OPEN:
                return
            free_at = ended

    def claim(self, batch: Batch, lead: Lead, claimed: datetime, final: bool) -> datetime | None:
        rng = self.rng
        self.claim_id += 1
        partner_id = rng.randint(1, self.partners)
        due = claimed + DEADLINE
        ids = {"lead_id": lead.id, "partner_id": partner_id, "claim_id": self.claim_id}
        claim = Claim(
            id=self.claim_id, tenant_id=self.tenant.id, lead_id=lead.id, partner_id=partner_id,
            user_id=partner_id, channel="bench", claimed_at=claimed, due_at=due,
        )  # fmt: skip
        batch.claims.append(claim)
        self.event(batch, "lead.claimed", claimed, **ids)
        if rng.random() < 0.1:
            self.extension(batch, claim, claimed + timedelta(hours=rng.uniform(1, 40)))
        roll = rng.random()
        if final or roll < 0.7:
            ended = claimed + timedelta(hours=rng.uniform(1, 60))
            kind = "closed"
        elif roll < 0.9:
            ended, kind = claim.due_at + timedelta(minutes=rng.uniform(1, 60)), "expired"
        else:
            ended, kind = claimed + timedelta(hours=rng.uniform(1, 40)), "released"
        if ended >= NOW:
            claim.state = ClaimState.ACTIVE
            lead.status = LeadStatus.CLAIMED
            return None
        claim.ended_at = ended
        if kind == "closed":
            claim.state = ClaimState.CLOSED
            lead.status, lead.closed_at = LeadStatus.CLOSED, ended
            self.feedback(batch, claim, ended)
        else:
            claim.state = ClaimState.EXPIRED if kind == "expired" else ClaimState.RELEASED
            lead.opened_at = ended
            self.event(batch, "lead.lapsed" if kind == "expired" else "lead.released", ended, **ids)
        if rng.random() < 0.5 and kind == "closed":
            self.check(batch, claim, claimed + timedelta(days=1))
        return ended

    def feedback(self, batch: Batch, claim: Claim, at: datetime) -> None:
        rng = self.rng
        outcome = rng.choices(
            ["won", "lost", "contacted", "no_contact", "not_qualified"], [3, 3, 2, 1, 1]
        )[0]
        self.add_feedback(batch, claim, outcome, at, "feedback.given")
        if outcome == "contacted" and rng.random() < 0.5:
            later = at + timedelta(days=rng.uniform(1, 20))
            if later < NOW:
                self.add_feedback(batch, claim, "won", later, "feedback.updated")

    def add_feedback(self, batch: Batch, claim: Claim, outcome: str, at: datetime,
                     kind: str) -> None:  # fmt: skip
        won = outcome == "won"
        batch.feedback.append(
            Feedback(
                tenant_id=self.tenant.id, claim_id=claim.id, lead_id=claim.lead_id,
                partner_id=claim.partner_id, user_id=claim.partner_id, outcome=outcome,
                amount=Decimal(self.rng.randint(1, 500) * 100) if won else None,
                currency=(self.rng.choice(["CHF", "CHF", "CHF", "EUR"]) if won else None),
                reason="price" if outcome == "lost" else "", channel="bench",
                on_time=at <= claim.due_at, created_at=at,
            )
        )  # fmt: skip
        self.event(batch, kind, at, lead_id=claim.lead_id, partner_id=claim.partner_id,
                   claim_id=claim.id)  # fmt: skip

    def check(self, batch: Batch, claim: Claim, asked: datetime) -> None:
        rng = self.rng
        if asked >= NOW:
            return
        self.check_id += 1
        ids = {"lead_id": claim.lead_id, "partner_id": claim.partner_id, "claim_id": claim.id}
        check = ContactCheck(
            id=self.check_id, tenant_id=self.tenant.id, claim_id=claim.id, lead_id=claim.lead_id,
            partner_id=claim.partner_id, email="c@customer.example", asked_at=asked,
        )  # fmt: skip
        self.event(batch, "contact_check.asked", asked, **ids)
        answered = asked + timedelta(hours=rng.uniform(1, 48))
        if rng.random() < 0.8 and answered < NOW:
            yes = rng.random() < 0.85
            check.answer, check.answered_at, check.channel = (
                ("yes" if yes else "no"),
                answered,
                "web",
            )
            kind = "contact_check.confirmed" if yes else "contact_check.denied"
            self.event(batch, kind, answered, **ids)
        batch.checks.append(check)

    def extension(self, batch: Batch, claim: Claim, at: datetime) -> None:
        if at >= NOW:
            return
        self.ext_id += 1
        approved = self.rng.random() < 0.7
        ids = {"lead_id": claim.lead_id, "partner_id": claim.partner_id, "claim_id": claim.id}
        new_due = claim.due_at + timedelta(days=2) if approved else None
        batch.extensions.append(
            Extension(
                id=self.ext_id, tenant_id=self.tenant.id, claim_id=claim.id,
                lead_id=claim.lead_id, partner_id=claim.partner_id, user_id=claim.partner_id,
                days=2, channel="bench", requested_at=at, decided_at=at,
                status=ExtensionStatus.APPROVED if approved else ExtensionStatus.DECLINED,
                auto=approved, old_due_at=claim.due_at, new_due_at=new_due,
            )
        )  # fmt: skip
        self.event(batch, "extension.requested", at, **ids)
        self.event(batch, "extension.approved" if approved else "extension.declined", at, **ids)
        if new_due is not None:
            claim.due_at = new_due


async def seed(partners: int, events: int, rng: random.Random) -> Tenant:
    tenant = await Tenant.create(
        slug="bench", name="Bench AG", owner_email="owner@bench.example", locale="de"
    )
    await Partner.bulk_create(
        [
            Partner(id=i, tenant_id=tenant.id, slug=f"p{i}", name=f"Partner {i}",
                    products=["*"], regions=["CH"])
            for i in range(1, partners + 1)
        ],
        batch_size=1000,
    )  # fmt: skip
    await User.bulk_create(
        [
            User(id=i, tenant_id=tenant.id, partner_id=i, email=f"u{i}@p{i}.example")
            for i in range(1, partners + 1)
        ],
        batch_size=1000,
    )
    history = History(tenant, partners, rng)
    chunk = max(50, min(CHUNK, events // 40))
    while history.events < events:
        batch = Batch()
        for _ in range(chunk):
            history.lead(batch)
        await batch.write()
        say(f"  {history.events:,} events, {history.lead_id:,} leads")
    pauses = [
        AuditEvent(
            tenant_id=tenant.id, kind="partner.paused", partner_id=rng.randint(1, partners),
            at=NOW - timedelta(days=rng.uniform(0, 20)),
            data={"until": (NOW + timedelta(days=rng.uniform(-5, 10))).isoformat()},
        )
        for _ in range(max(1, partners // 100))
    ]  # fmt: skip
    await AuditEvent.bulk_create(pauses)
    if dialect() == "postgres":
        for table in ("tenant", "partner", "lyra_user", "lead", "claim", "extension",
                      "contact_check"):  # fmt: skip
            await connections.get("default").execute_script(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
    await analyze()
    return tenant


async def spread_over(tenant: Tenant, keep: int) -> None:
    """Give every row of partners beyond ``keep`` to one of the first ``keep`` partners."""
    conn = connections.get("default")
    for table in ("claim", "feedback", "contact_check", "extension", "audit_event"):
        await conn.execute_script(
            f"UPDATE {table} SET partner_id = ((partner_id - 1) % {keep}) + 1 "
            f"WHERE tenant_id = {tenant.id} AND partner_id > {keep}"
        )
    await Partner.filter(tenant_id=tenant.id, id__gt=keep).update(active=False)
    await analyze()


async def measure(tenant: Tenant) -> dict[str, Any]:
    """Median seconds, peak Python memory and statements of last week's report."""
    tenant = await Tenant.get(id=tenant.id)
    period = parse_week("last", ZoneInfo(tenant.timezone), NOW)
    times, statements = [], []
    report = None
    for _ in range(RUNS):
        with counting() as counter:
            started = time.perf_counter()
            report = await build_report(tenant, period, NOW)
            exports.to_json(report)
            report_context(report)
            times.append(time.perf_counter() - started)
        statements.append(counter.count)
    tracemalloc.start()  # a run of its own: tracing slows Python down several times
    report = await build_report(tenant, period, NOW)
    exports.to_json(report)
    report_context(report)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report is not None
    started = time.perf_counter()
    png = render_png(report)
    chart = time.perf_counter() - started
    return {
        "seconds": statistics.median(times),
        "peak_mb": peak / 2**20,
        "statements": max(statements),
        "chart_seconds": chart,
        "chart_bytes": len(png),
        "partners": len(report.partners),
        "claims": report.totals.claims,
    }


async def main(kind: str, scale: float) -> dict[str, Any]:
    partners, baseline_partners = max(2, int(2_000 * scale)), max(1, int(200 * scale))
    events = int(1_000_000 * scale)
    rng = random.Random(20261102)
    async with throwaway_database(kind) as url:
        settings = Settings(_env_file=None, database_url=url, secret_key="bench")  # type: ignore[arg-type, call-arg]
        await init_db(settings)
        try:
            say(f"seeding {partners} partners and {events:,} audit events on {kind}")
            started = time.perf_counter()
            tenant = await seed(partners, events, rng)
            total_events = await AuditEvent.filter(tenant_id=tenant.id).count()
            say(f"seeded {total_events:,} events in {time.perf_counter() - started:.0f} s")
            wide = await measure(tenant)
            say(f"{partners} partners: {wide}")
            await spread_over(tenant, baseline_partners)
            narrow = await measure(tenant)
            say(f"{baseline_partners} partners: {narrow}")
        finally:
            await close_db()
    return {
        "seconds": round(wide["seconds"], 3),
        "peak_mb": round(wide["peak_mb"], 1),
        "statements": wide["statements"],
        "statements_at_200_partners": narrow["statements"],
        "seconds_at_200_partners": round(narrow["seconds"], 3),
        "ratio_2000_vs_200": round(wide["seconds"] / narrow["seconds"], 2),
        "chart_seconds": round(wide["chart_seconds"], 3),
        "chart_bytes": wide["chart_bytes"],
        "partners": partners,
        "baseline_partners": baseline_partners,
        "audit_events": total_events,
        "claims_in_week": wide["claims"],
        "db": kind,
        "scale": scale,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--scale", type=float, default=1.0, help="0.01 for a smoke run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.db, args.scale))))
