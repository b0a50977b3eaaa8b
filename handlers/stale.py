"""Stale leads: open leads nobody claimed for the tenant's number of days are reported to the
owner, once each time they sit unclaimed (a lead that lapsed back to the pool may be
reported again, counting from its return)."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import require
from tortoise.expressions import F, Q

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import calendar_of
from lyra_bot.commands import Actor, Role, StaleLeadAlert
from lyra_bot.domain import LeadStatus
from lyra_bot.models import Lead, Tenant


@handles(StaleLeadAlert)
async def stale_lead_alert(cmd: StaleLeadAlert, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM, Role.OWNER)
    tenants = Tenant.filter(stale_lead_days__gt=0)
    if actor.tenant_id is not None:
        tenants = tenants.filter(id=actor.tenant_id)
    per_tenant: dict[int, list[Lead]] = defaultdict(list)
    budget, more = cmd.batch, False
    for tenant in await tenants.order_by("id"):
        cutoff = calendar_of(tenant).shift(uow.now, days=-tenant.stale_lead_days)
        leads = (
            await Lead.filter(tenant_id=tenant.id, status=LeadStatus.OPEN, opened_at__lte=cutoff)
            .filter(Q(stale_reported_at__isnull=True) | Q(stale_reported_at__lt=F("opened_at")))
            .order_by("opened_at", "id")
            .limit(budget)
        )
        if not leads:
            continue
        await Lead.filter(id__in=[lead.id for lead in leads]).update(stale_reported_at=uow.now)
        per_tenant[tenant.id] = leads
        rows = [
            {
                "ref": lead.ref,
                "product": lead.product,
                "region": lead.region,
                "need": lead.need,
                "since": lead.opened_at,
            }
            for lead in leads
        ]
        digest = hashlib.sha256(
            ",".join(f"{lead.id}@{lead.opened_at.isoformat()}" for lead in leads).encode()
        ).hexdigest()[:24]
        notify.stale_leads(uow, tenant, rows, f"stale:{tenant.id}:{digest}")
        uow.audit("stale.reported", tenant.id, refs=[lead.ref for lead in leads])
        budget -= len(leads)
        if budget <= 0:
            more = True
            break
    count = sum(len(leads) for leads in per_tenant.values())
    return Reply(
        True,
        "stale_reported",
        {"count": count, "more": more, "owners": len(per_tenant)},
    )
