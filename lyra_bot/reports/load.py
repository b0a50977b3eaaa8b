"""Loading a report's facts: a fixed number of queries, whatever the number of partners.

Each query selects by the tenant and a time index (claims, leads, feedback, checks,
extensions, pause events) and returns only the rows of the report's window, or the leads
that may have been in the pool during it; nothing is loaded per partner or per lead.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from tortoise.expressions import Q, Subquery

from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import AuditEvent, Claim, ContactCheck, Extension, Feedback, Lead
from lyra_bot.reports.metrics import (
    CheckFact,
    ClaimFact,
    ExtensionFact,
    Facts,
    FeedbackFact,
    LeadFact,
    PauseFact,
)

LONGEST_PAUSE = timedelta(days=366)
"""Pauses last at most a year (``lapse_pause_days`` ≤ 365): older ones cannot overlap."""

_CLAIM_FIELDS = (
    "id",
    "lead_id",
    "partner_id",
    "state",
    "claimed_at",
    "due_at",
    "ended_at",
    "lead__product",
    "lead__region",
)
_LEAD_FIELDS = ("id", "product", "region", "created_at", "pooled_at", "status", "closed_at")


async def load_facts(
    tenant_id: int, since: datetime, until: datetime, claims_since: datetime
) -> Facts:
    """The facts of ``[since, until)``; claims (for the weekly chart) from ``claims_since``."""
    facts = Facts()
    ended = await (
        Claim.filter(tenant_id=tenant_id, ended_at__gte=claims_since, claimed_at__lt=until)
        .values_list(*_CLAIM_FIELDS)
    )  # fmt: skip
    active = await Claim.filter(
        tenant_id=tenant_id, state=ClaimState.ACTIVE, claimed_at__lt=until
    ).values_list(*_CLAIM_FIELDS)
    facts.claims = [ClaimFact(*row) for row in [*ended, *active]]

    facts.leads = [
        LeadFact(*row)
        for row in await Lead.filter(tenant_id=tenant_id)
        .filter(
            Q(created_at__gte=since, created_at__lt=until)
            | Q(status=LeadStatus.WITHDRAWN, closed_at__gte=since, closed_at__lt=until)
        )
        .values_list(*_LEAD_FIELDS)
    ]

    # Leads that may have sat in the pool at some moment of the window: entered it before
    # the end, and still live or closed after the start.
    candidates = Lead.filter(tenant_id=tenant_id, pooled_at__lt=until).filter(
        Q(status__in=(LeadStatus.OPEN, LeadStatus.CLAIMED)) | Q(closed_at__gte=since)
    )
    facts.pool = [LeadFact(*row) for row in await candidates.values_list(*_LEAD_FIELDS)]
    history: defaultdict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for lead_id, claimed_at, ended_at in await Claim.filter(
        tenant_id=tenant_id, lead_id__in=Subquery(candidates.values("id"))
    ).values_list("lead_id", "claimed_at", "ended_at"):
        history[lead_id].append((claimed_at, ended_at))
    facts.lead_claims = dict(history)

    facts.feedback = [
        FeedbackFact(*row)
        for row in await Feedback.filter(
            tenant_id=tenant_id, created_at__gte=since, created_at__lt=until
        ).values_list(
            "claim_id",
            "partner_id",
            "outcome",
            "amount",
            "currency",
            "created_at",
            "lead__product",
            "lead__region",
        )
    ]
    facts.checks = [
        CheckFact(*row)
        for row in await ContactCheck.filter(
            tenant_id=tenant_id, answered_at__gte=since, answered_at__lt=until
        ).values_list("partner_id", "answer", "answered_at", "lead__product", "lead__region")
    ]
    facts.extensions = [
        ExtensionFact(*row)
        for row in await Extension.filter(tenant_id=tenant_id)
        .filter(
            Q(requested_at__gte=since, requested_at__lt=until)
            | Q(decided_at__gte=since, decided_at__lt=until)
        )
        .values_list(
            "partner_id", "status", "requested_at", "decided_at", "lead__product", "lead__region"
        )
    ]
    facts.pauses = []
    for partner_id, at, data in await AuditEvent.filter(
        tenant_id=tenant_id,
        kind="partner.paused",
        at__gte=since - LONGEST_PAUSE,
        at__lt=until,
    ).values_list("partner_id", "at", "data"):
        until_text = (data or {}).get("until")
        if partner_id is None or not until_text:
            continue
        pause_end = datetime.fromisoformat(until_text)
        if pause_end > since:
            facts.pauses.append(PauseFact(partner_id, at, pause_end))
    return facts
