"""Owner numbers, computed from audit events and rows (never from logs).

For now: this week's numbers (``/lyra report`` in Slack). The full owner report builds here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from handlers.common import require, tenant_of
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, Role, WeekNumbers
from lyra_bot.domain import Outcome
from lyra_bot.models import AuditEvent, Feedback, Tenant

WEEK_EVENTS: dict[str, tuple[str, ...]] = {
    "added": ("lead.added", "lead.held"),
    "claimed": ("lead.claimed",),
    "feedback": ("feedback.given",),
    "lapsed": ("lead.lapsed",),
    "released": ("lead.released",),
}


def week_start(now: datetime, timezone: str) -> datetime:
    """Monday 00:00 of ``now``'s week in the tenant's time zone, as UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    monday = (local - timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return monday.astimezone(UTC)


async def week_numbers(tenant: Tenant, now: datetime) -> dict[str, Any]:
    """Counts of this week's events: added, claimed, feedback, won, lapsed, released."""
    since = week_start(now, tenant.timezone)
    kinds = [kind for group in WEEK_EVENTS.values() for kind in group]
    counts = dict(
        await AuditEvent.filter(tenant_id=tenant.id, kind__in=kinds, at__gte=since, at__lte=now)
        .annotate(n=Count("id"))
        .group_by("kind")
        .values_list("kind", "n")
    )
    numbers: dict[str, Any] = {
        name: sum(counts.get(kind, 0) for kind in group) for name, group in WEEK_EVENTS.items()
    }
    numbers["won"] = await Feedback.filter(
        tenant_id=tenant.id, outcome=Outcome.WON.value, created_at__gte=since, created_at__lte=now
    ).count()
    return {"since": since, **numbers}


@handles(WeekNumbers)
async def week(cmd: WeekNumbers, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    numbers = await week_numbers(tenant, uow.now)
    return Reply(
        True,
        "week",
        "This week: {added} added, {claimed} claimed, {feedback} feedback, {won} won, "
        "{lapsed} lapsed, {released} given back.".format(**numbers),
        numbers,
    )
