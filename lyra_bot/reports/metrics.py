"""The report's arithmetic, pure: facts in (rows already loaded), numbers out.

Every count is of something that happened inside a period ``[start, until)``; pool state
("open", age bands, never claimed) is taken at ``until`` from the rows' timestamps, so a past
week reads the same today as it did on its last day. ``docs/reports.md`` defines each metric
and the reliability score in words.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from lyra_bot.domain import FINAL_OUTCOMES, ClaimState, ExtensionStatus, LeadStatus, Outcome

HOUR = timedelta(hours=1)

AGE_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    ("7-14d", timedelta(days=14)),
    ("14d+", None),
)
"""Open leads by time since they first entered the pool; each band is below its bound."""

# Reliability score weights (docs/reports.md): what each claim that ended earns.
SCORE_ON_TIME = 1.0
SCORE_LATE = 0.5
SCORE_RELEASED = 0.5
SCORE_LAPSED = 0.0
SCORE_NOT_CONTACTED_PENALTY = 10


# --- facts: the rows a report is computed from -------------------------------------------


@dataclass(frozen=True)
class ClaimFact:
    id: int
    lead_id: int
    partner_id: int
    state: str
    claimed_at: datetime
    due_at: datetime
    ended_at: datetime | None
    product: str
    region: str


@dataclass(frozen=True)
class LeadFact:
    id: int
    product: str
    region: str
    created_at: datetime
    pooled_at: datetime | None
    status: str
    closed_at: datetime | None


@dataclass(frozen=True)
class FeedbackFact:
    claim_id: int
    partner_id: int
    outcome: str
    amount: Decimal | None
    currency: str | None
    created_at: datetime
    product: str
    region: str


@dataclass(frozen=True)
class CheckFact:
    partner_id: int
    answer: str
    answered_at: datetime
    product: str
    region: str


@dataclass(frozen=True)
class ExtensionFact:
    partner_id: int
    status: str
    requested_at: datetime
    decided_at: datetime | None
    product: str
    region: str


@dataclass(frozen=True)
class PauseFact:
    partner_id: int
    start: datetime
    until: datetime


@dataclass
class Facts:
    """Everything loaded for one report (``lyra_bot.reports.load``)."""

    claims: list[ClaimFact] = field(default_factory=list)  # ended in the window, or active
    trend_claimed: list[datetime] = field(default_factory=list)  # claims of earlier weeks
    trend_lapsed: list[datetime] = field(default_factory=list)  # lapses of earlier weeks
    leads: list[LeadFact] = field(default_factory=list)  # added or withdrawn in the window
    pool: list[LeadFact] = field(default_factory=list)  # possibly open inside the window
    lead_claims: dict[int, list[tuple[datetime, datetime | None]]] = field(
        default_factory=dict
    )  # every claim (claimed_at, ended_at) of the ``pool`` leads
    feedback: list[FeedbackFact] = field(default_factory=list)
    checks: list[CheckFact] = field(default_factory=list)
    extensions: list[ExtensionFact] = field(default_factory=list)
    pauses: list[PauseFact] = field(default_factory=list)


# --- the numbers ---------------------------------------------------------------------------


@dataclass
class Metrics:
    """The numbers of one slice (tenant, partner, product or region) in one period."""

    added: int = 0
    withdrawn: int = 0
    offered: int = 0
    claims: int = 0
    feedback_on_time: int = 0
    feedback_late: int = 0
    lapses: int = 0
    releases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    won: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    final_outcomes: int = 0
    checks_confirmed: int = 0
    not_contacted: int = 0
    extensions_asked: int = 0
    extensions_granted: int = 0
    open_end: int = 0
    never_claimed_stale: int = 0
    age_bands: Counter[str] = field(default_factory=Counter)
    hours_to_claim: list[float] = field(default_factory=list, repr=False)
    hours_to_feedback: list[float] = field(default_factory=list, repr=False)

    @property
    def feedback(self) -> int:
        return self.feedback_on_time + self.feedback_late

    @property
    def checks_answered(self) -> int:
        return self.checks_confirmed + self.not_contacted

    @property
    def median_hours_to_claim(self) -> float | None:
        return _median(self.hours_to_claim)

    @property
    def median_hours_to_feedback(self) -> float | None:
        return _median(self.hours_to_feedback)

    @property
    def conversion(self) -> float | None:
        """Won ÷ claims whose final outcome was reported in the period."""
        return _ratio(self.won, self.final_outcomes)

    @property
    def contact_rate(self) -> float | None:
        """Customers who confirmed the partner called ÷ customers who answered."""
        return _ratio(self.checks_confirmed, self.checks_answered)

    @property
    def on_time_rate(self) -> float | None:
        return _ratio(self.feedback_on_time, self.feedback)

    @property
    def reliability(self) -> int | None:
        return reliability_score(
            self.feedback_on_time,
            self.feedback_late,
            self.releases,
            self.lapses,
            self.not_contacted,
        )


def reliability_score(
    on_time: int, late: int, released: int, lapsed: int, not_contacted: int
) -> int | None:
    """0-100, or None when no claim ended in the period and no customer said "not contacted".

    ``100 × (on_time + ½·late + ½·released) ÷ (on_time + late + released + lapsed)``, minus
    10 points per customer who said the partner did not contact them, not below 0.
    """
    ended = on_time + late + released + lapsed
    if ended == 0 and not_contacted == 0:
        return None
    earned = (
        SCORE_ON_TIME * on_time
        + SCORE_LATE * late
        + SCORE_RELEASED * released
        + SCORE_LAPSED * lapsed
    )
    base = 100 * earned / ended if ended else 100.0
    return max(0, round(base - SCORE_NOT_CONTACTED_PENALTY * not_contacted))


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def attention_key(partner: Metrics, name: str) -> tuple[int, int, int, int, str]:
    """Scorecard order: most lapses first, then late feedback, then "not contacted"."""
    return (-partner.lapses, -partner.feedback_late, -partner.not_contacted, -partner.claims, name)


# --- slicing -------------------------------------------------------------------------------


@dataclass
class Slices:
    """The tenant total and, optionally, one Metrics per partner, product and region."""

    detail: bool
    total: Metrics = field(default_factory=Metrics)
    partner: defaultdict[int, Metrics] = field(default_factory=lambda: defaultdict(Metrics))
    product: defaultdict[str, Metrics] = field(default_factory=lambda: defaultdict(Metrics))
    region: defaultdict[str, Metrics] = field(default_factory=lambda: defaultdict(Metrics))

    def of(self, product: str, region: str, partner_id: int | None = None) -> Iterator[Metrics]:
        yield self.total
        if self.detail:
            yield self.product[product]
            yield self.region[region]
            if partner_id is not None:
                yield self.partner[partner_id]


def compute(facts: Facts, start: datetime, until: datetime, stale: timedelta | None, *,
            detail: bool = True) -> Slices:  # fmt: skip
    """Every metric of ``[start, until)``; ``stale`` is the tenant's stale-lead threshold."""
    out = Slices(detail)

    def inside(when: datetime | None) -> bool:
        return when is not None and start <= when < until

    for lead in facts.leads:
        if inside(lead.created_at):
            for m in out.of(lead.product, lead.region):
                m.added += 1
        if lead.status == LeadStatus.WITHDRAWN and inside(lead.closed_at):
            for m in out.of(lead.product, lead.region):
                m.withdrawn += 1

    pooled = {lead.id: lead.pooled_at for lead in facts.pool}
    for claim in facts.claims:
        if inside(claim.claimed_at):
            waited = (claim.claimed_at - _entered_before(claim, facts, pooled)) / HOUR
            for m in out.of(claim.product, claim.region, claim.partner_id):
                m.claims += 1
                m.hours_to_claim.append(waited)
        if not inside(claim.ended_at):
            continue
        assert claim.ended_at is not None
        for m in out.of(claim.product, claim.region, claim.partner_id):
            if claim.state == ClaimState.CLOSED:
                if claim.ended_at <= claim.due_at:
                    m.feedback_on_time += 1
                else:
                    m.feedback_late += 1
                m.hours_to_feedback.append((claim.ended_at - claim.claimed_at) / HOUR)
            elif claim.state == ClaimState.EXPIRED:
                m.lapses += 1
            elif claim.state == ClaimState.RELEASED:
                m.releases += 1

    for fb in facts.feedback:
        if not inside(fb.created_at):
            continue
        for m in out.of(fb.product, fb.region, fb.partner_id):
            m.outcomes[fb.outcome] += 1
            if fb.outcome in FINAL_OUTCOMES:
                m.final_outcomes += 1
            if fb.outcome == Outcome.WON:
                m.won += 1
                if fb.amount is not None and fb.currency:
                    m.revenue[fb.currency] = m.revenue.get(fb.currency, Decimal(0)) + fb.amount

    for check in facts.checks:
        if inside(check.answered_at):
            for m in out.of(check.product, check.region, check.partner_id):
                if check.answer == "yes":
                    m.checks_confirmed += 1
                else:
                    m.not_contacted += 1

    for ext in facts.extensions:
        for m in out.of(ext.product, ext.region, ext.partner_id):
            if inside(ext.requested_at):
                m.extensions_asked += 1
            if ext.status == ExtensionStatus.APPROVED and inside(ext.decided_at):
                m.extensions_granted += 1

    _pool_state(facts, start, until, stale, out)
    return out


def _entered_before(claim: ClaimFact, facts: Facts, pooled: dict[int, datetime | None]) -> datetime:
    """When the lead last entered the pool before this claim: its first time in the pool,
    or the end of an earlier claim (a lapse or a release put it back)."""
    history = facts.lead_claims.get(claim.lead_id, ())
    ends = [end for _, end in history if end is not None and end <= claim.claimed_at]
    if ends:
        return max(ends)
    return pooled.get(claim.lead_id) or claim.claimed_at


def open_at(lead: LeadFact, claims: Iterable[tuple[datetime, datetime | None]], when: datetime,
            ) -> bool:  # fmt: skip
    """Whether ``lead`` sat in the pool just before ``when``: it had entered it, was not
    closed or withdrawn, and no claim held it."""
    if lead.pooled_at is None or lead.pooled_at >= when:
        return False
    if lead.closed_at is not None and lead.closed_at < when:
        return False
    return not any(begun < when and (end is None or end >= when) for begun, end in claims)


def _pool_state(
    facts: Facts, start: datetime, until: datetime, stale: timedelta | None, out: Slices
) -> None:
    returned = {
        c.lead_id
        for c in facts.claims
        if c.state in (ClaimState.EXPIRED, ClaimState.RELEASED)
        and c.ended_at is not None
        and start <= c.ended_at < until
    }
    for lead in facts.pool:
        claims = facts.lead_claims.get(lead.id, [])
        entered = lead.pooled_at is not None and start <= lead.pooled_at < until
        if open_at(lead, claims, start) or entered or lead.id in returned:
            for m in out.of(lead.product, lead.region):
                m.offered += 1
        if not open_at(lead, claims, until):
            continue
        assert lead.pooled_at is not None
        age = until - lead.pooled_at
        band = next(name for name, bound in AGE_BANDS if bound is None or age < bound)
        never = not any(begun < until for begun, _ in claims)
        for m in out.of(lead.product, lead.region):
            m.open_end += 1
            m.age_bands[band] += 1
            if never and stale is not None and age >= stale:
                m.never_claimed_stale += 1
