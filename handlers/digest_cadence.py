"""Digests on a cadence: each tenant's digests go out at its local ``digest_time`` on its
working days (``SendScheduledDigests``, the ``send-digests`` job).

A sweep like the others: every few minutes it looks for tenants whose digest time has come
today and who have not had today's run. That run queues, per partner user, the mail digest
when a lead opened since the user's last digest (STOP respected, once per local day by its
dedupe key) and, per linked Slack channel, the leads not shown there yet; then it records
``digests.scheduled`` for the tenant's local day, so later runs that day do nothing. A
service that was down at the digest time sends them when it comes back, the same day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lyra_bot.handlers.common import require
from lyra_bot.handlers.digests import queue_tenant_digests
from lyra_bot.handlers.slack_digests import queue_channel_digest

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import calendar_of, parse_clock
from lyra_bot.commands import Actor, Role, SendScheduledDigests
from lyra_bot.models import AuditEvent, SlackChannel, Tenant

DONE_EVENT = "digests.scheduled"


def digest_day(tenant: Tenant, now: datetime) -> date | None:
    """The tenant's local day whose digests are due by ``now``: today, when it is a working
    day (not a weekend, not a public holiday) and its digest time has passed; else None."""
    zone = ZoneInfo(tenant.timezone)
    local = now.astimezone(zone)
    today = local.date()
    if not calendar_of(tenant).is_working_day(today):
        return None
    if local < datetime.combine(today, parse_clock(tenant.digest_time), tzinfo=zone):
        return None
    return today


@handles(SendScheduledDigests)
async def send_scheduled_digests(cmd: SendScheduledDigests, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM, Role.OWNER)
    query = Tenant.all() if actor.tenant_id is None else Tenant.filter(id=actor.tenant_id)
    due: list[tuple[Tenant, str]] = []
    for tenant in await query.order_by("id"):
        day = digest_day(tenant, uow.now)
        if day is not None:
            due.append((tenant, day.isoformat()))
    done = await _done(
        [t.id for t, _ in due], uow.now - timedelta(days=2)
    )  # local days are at most a day off UTC
    todo = [(t, day) for t, day in due if (t.id, day) not in done]
    mails = channels = handled = 0
    for tenant, day in todo:
        if mails + channels >= cmd.batch:
            break
        queued, _ = await queue_tenant_digests(uow, tenant, only_new=True)
        posted = 0
        links = SlackChannel.filter(
            tenant_id=tenant.id, active=True, partner__active=True
        ).select_related("partner")
        for link in await links.order_by("id"):
            parts, _ = await queue_channel_digest(uow, link, uow.settings.slack_digest_max_leads)
            posted += parts > 0
        uow.audit(DONE_EVENT, tenant.id, day=day, mails=queued, channels=posted)
        mails += queued
        channels += posted
        handled += 1
    return Reply(
        True,
        "digests_scheduled",
        {
            "count": mails + channels,
            "tenants": handled,
            "mails": mails,
            "channels": channels,
            "more": handled < len(todo),
        },
    )


async def _done(tenant_ids: list[int], since: datetime) -> set[tuple[int, str]]:
    """(tenant, local day) pairs whose scheduled digests already went out (one query)."""
    if not tenant_ids:
        return set()
    rows = await AuditEvent.filter(
        tenant_id__in=tenant_ids, kind=DONE_EVENT, at__gte=since
    ).values_list("tenant_id", "data")
    return {(tenant_id, (data or {}).get("day", "")) for tenant_id, data in rows}
