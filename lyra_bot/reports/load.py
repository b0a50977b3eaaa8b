"""Loading a report's facts: a fixed number of queries, whatever the number of partners.

Each query selects by the tenant and a time index (claims, leads, feedback, checks,
extensions, pause events) and returns only the rows of the report's window, or the leads
that may have been in the pool during it; nothing is loaded per partner or per lead.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise import connections
from tortoise.expressions import Q, Subquery
from tortoise.queryset import ValuesListQuery

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


DT, DEC, JSON, RAW = "dt", "dec", "json", ""
_CLAIM_KINDS = (RAW, RAW, RAW, RAW, DT, DT, DT, RAW, RAW)
_LEAD_KINDS = (RAW, RAW, RAW, DT, DT, RAW, DT)


async def fetch(query: ValuesListQuery[Any], kinds: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of ``query``, each value typed by ``kinds`` (datetime, decimal, JSON, as is).

    Read raw, not through Tortoise's per-value conversion: on SQLite that parses every stored
    timestamp with the pure-Python ``iso8601`` package (about 20 µs each), on PostgreSQL it
    re-localises every datetime asyncpg already built; either way it dominated the report.
    Here SQLite's text is parsed with ``datetime.fromisoformat`` (C) and asyncpg's values are
    kept. The statement and its parameters are the query's own, as Tortoise builds them.
    """
    query.sql()  # builds ``query.query``
    sql, params = query.query.get_parameterized_sql()
    _, raw = await connections.get("default").execute_query(sql, params)
    return [tuple(_typed(v, k) for v, k in zip(row, kinds, strict=True)) for row in raw]


def _typed(value: Any, kind: str) -> Any:
    if value is None or kind == RAW:
        return value
    if kind == DT:
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if kind == DEC:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    return json.loads(value) if isinstance(value, str | bytes) else value


async def load_facts(
    tenant_id: int, since: datetime, until: datetime, claims_since: datetime
) -> Facts:
    """The facts of ``[since, until)``, and when claims were made and lapsed from
    ``claims_since`` on (the chart's earlier weeks)."""
    facts = Facts()
    ended = await fetch(
        Claim.filter(tenant_id=tenant_id, ended_at__gte=since, claimed_at__lt=until).values_list(
            *_CLAIM_FIELDS
        ),
        _CLAIM_KINDS,
    )
    active = await fetch(
        Claim.filter(
            tenant_id=tenant_id, state=ClaimState.ACTIVE, claimed_at__lt=until
        ).values_list(*_CLAIM_FIELDS),
        _CLAIM_KINDS,
    )
    facts.claims = [ClaimFact(*row) for row in [*ended, *active]]
    # Earlier weeks of the chart: only when claims were made and when they lapsed.
    if claims_since < since:
        made = Claim.filter(tenant_id=tenant_id, claimed_at__gte=claims_since, claimed_at__lt=since)
        lapsed = Claim.filter(
            tenant_id=tenant_id,
            state=ClaimState.EXPIRED,
            ended_at__gte=claims_since,
            ended_at__lt=since,
        )
        facts.trend_claimed = [r[0] for r in await fetch(made.values_list("claimed_at"), (DT,))]
        facts.trend_lapsed = [r[0] for r in await fetch(lapsed.values_list("ended_at"), (DT,))]

    added_or_withdrawn = Lead.filter(tenant_id=tenant_id).filter(
        Q(created_at__gte=since, created_at__lt=until)
        | Q(status=LeadStatus.WITHDRAWN, closed_at__gte=since, closed_at__lt=until)
    )
    facts.leads = [
        LeadFact(*row)
        for row in await fetch(added_or_withdrawn.values_list(*_LEAD_FIELDS), _LEAD_KINDS)
    ]

    # Leads that may have sat in the pool at some moment of the window: entered it before
    # the end, and still live or closed after the start.
    candidates = Lead.filter(tenant_id=tenant_id, pooled_at__lt=until).filter(
        Q(status__in=(LeadStatus.OPEN, LeadStatus.CLAIMED)) | Q(closed_at__gte=since)
    )
    facts.pool = [
        LeadFact(*row) for row in await fetch(candidates.values_list(*_LEAD_FIELDS), _LEAD_KINDS)
    ]
    history: defaultdict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    of_candidates = Claim.filter(tenant_id=tenant_id, lead_id__in=Subquery(candidates.values("id")))
    for lead_id, claimed_at, ended_at in await fetch(
        of_candidates.values_list("lead_id", "claimed_at", "ended_at"), (RAW, DT, DT)
    ):
        history[lead_id].append((claimed_at, ended_at))
    facts.lead_claims = dict(history)

    feedback = Feedback.filter(tenant_id=tenant_id, created_at__gte=since, created_at__lt=until)
    facts.feedback = [
        FeedbackFact(*row)
        for row in await fetch(
            feedback.values_list(
                "claim_id",
                "partner_id",
                "outcome",
                "amount",
                "currency",
                "created_at",
                "lead__product",
                "lead__region",
            ),
            (RAW, RAW, RAW, DEC, RAW, DT, RAW, RAW),
        )
    ]
    checks = ContactCheck.filter(
        tenant_id=tenant_id, answered_at__gte=since, answered_at__lt=until
    ).values_list("partner_id", "answer", "answered_at", "lead__product", "lead__region")
    facts.checks = [CheckFact(*row) for row in await fetch(checks, (RAW, RAW, DT, RAW, RAW))]
    extensions = Extension.filter(tenant_id=tenant_id).filter(
        Q(requested_at__gte=since, requested_at__lt=until)
        | Q(decided_at__gte=since, decided_at__lt=until)
    )
    facts.extensions = [
        ExtensionFact(*row)
        for row in await fetch(
            extensions.values_list(
                "partner_id",
                "status",
                "requested_at",
                "decided_at",
                "lead__product",
                "lead__region",
            ),
            (RAW, RAW, DT, DT, RAW, RAW),
        )
    ]
    facts.pauses = []
    pauses = AuditEvent.filter(
        tenant_id=tenant_id,
        kind="partner.paused",
        at__gte=since - LONGEST_PAUSE,
        at__lt=until,
    ).values_list("partner_id", "at", "data")
    for partner_id, at, data in await fetch(pauses, (RAW, DT, JSON)):
        until_text = (data or {}).get("until")
        if partner_id is None or not until_text:
            continue
        pause_end = datetime.fromisoformat(until_text)
        if pause_end > since:
            facts.pauses.append(PauseFact(partner_id, at, pause_end))
    return facts
