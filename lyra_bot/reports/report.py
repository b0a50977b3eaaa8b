"""One owner report: a tenant, a period, its numbers, the previous period's, the trend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from lyra_bot.domain import ClaimState
from lyra_bot.models import Partner, Tenant
from lyra_bot.reports.load import load_facts
from lyra_bot.reports.metrics import Metrics, PauseFact, attention_key, compute
from lyra_bot.reports.periods import Period, weeks_ending

TREND_WEEKS = 8
"""The chart shows claims and lapses of this many weeks, ending with the report's week."""


@dataclass
class PartnerCard:
    """One scorecard row."""

    id: int
    slug: str
    name: str
    active: bool
    metrics: Metrics
    pauses: list[PauseFact] = field(default_factory=list)


@dataclass
class WeekPoint:
    label: str
    start: datetime
    claims: int = 0
    lapses: int = 0


@dataclass
class Report:
    tenant: Tenant
    period: Period
    previous: Period
    until: datetime  # where counting stopped: the period's end, or now for the current one
    generated_at: datetime
    totals: Metrics
    before: Metrics  # the previous period's totals (week-over-week)
    partners: list[PartnerCard]  # sorted by what needs attention
    products: dict[str, Metrics]
    regions: dict[str, Metrics]
    idle: list[PartnerCard]  # active partners that claimed nothing in the period
    weeks: list[WeekPoint]
    stale_days: int

    @property
    def partial(self) -> bool:
        return self.until < self.period.end

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tenant.timezone)


async def build_report(tenant: Tenant, period: Period, now: datetime) -> Report:
    """Compute the tenant's report for ``period`` (counting up to ``now`` at most)."""
    zone = ZoneInfo(tenant.timezone)
    # Events at this very instant count: the end is just after now.
    until = min(period.end, now + timedelta(microseconds=1))
    previous = period.previous(zone)
    last_day = (until - timedelta(microseconds=1)).astimezone(zone).date()
    weeks = weeks_ending(last_day, TREND_WEEKS, zone)
    facts = await load_facts(tenant.id, previous.start, until, min(weeks[0].start, previous.start))
    stale = timedelta(days=tenant.stale_lead_days) if tenant.stale_lead_days else None
    now_slices = compute(facts, period.start, until, stale)
    before = compute(facts, previous.start, previous.end, stale, detail=False).total

    partners = (
        await Partner.filter(tenant_id=tenant.id)
        .order_by("id")
        .values_list("id", "slug", "name", "active")
    )
    pauses: dict[int, list[PauseFact]] = {}
    for pause in facts.pauses:
        if pause.start < until and pause.until > period.start:
            pauses.setdefault(pause.partner_id, []).append(pause)
    cards = []
    for partner_id, slug, name, active in partners:
        metrics = now_slices.partner.get(partner_id) or Metrics()
        if not active and metrics == Metrics():
            continue
        paused = sorted(pauses.get(partner_id, []), key=lambda p: p.start)
        cards.append(PartnerCard(partner_id, slug, name, active, metrics, paused))
    cards.sort(key=lambda card: attention_key(card.metrics, card.slug))

    points = [WeekPoint(week.label, week.start) for week in weeks]
    claimed = [*facts.trend_claimed, *(c.claimed_at for c in facts.claims)]
    lapsed = [*facts.trend_lapsed]
    lapsed += [c.ended_at for c in facts.claims if c.state == ClaimState.EXPIRED and c.ended_at]
    for point, week in zip(points, weeks, strict=True):
        end = min(week.end, until)
        point.claims = sum(1 for when in claimed if week.start <= when < end)
        point.lapses = sum(1 for when in lapsed if week.start <= when < end)

    return Report(
        tenant=tenant,
        period=period,
        previous=previous,
        until=until,
        generated_at=now,
        totals=now_slices.total,
        before=before,
        partners=cards,
        products={k: m for k, m in sorted(now_slices.product.items()) if m != Metrics()},
        regions={k: m for k, m in sorted(now_slices.region.items()) if m != Metrics()},
        idle=[card for card in cards if card.active and card.metrics.claims == 0],
        weeks=points,
        stale_days=tenant.stale_lead_days,
    )
