"""Leads leaving the normal path: withdrawn by the owner, or a claim lapsing at its deadline."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import lead_by_ref, require, tenant_of
from lyra_bot.handlers.reliability import apply_lapse_policy

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, ExpireOverdue, Role, WithdrawLead
from lyra_bot.db import dialect
from lyra_bot.domain import ClaimState, InvalidTransition, LeadStatus
from lyra_bot.models import Claim, Lead, LeadHide, Tenant

CHUNK = 500


LIVE = (LeadStatus.OPEN, LeadStatus.HELD, LeadStatus.CLAIMED)


@handles(WithdrawLead)
async def withdraw_lead(cmd: WithdrawLead, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER, Role.SYSTEM)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    await withdraw(uow, tenant, lead, cmd.reason)
    return Reply(True, "lead_withdrawn", {"ref": lead.ref})


async def withdraw(uow: UnitOfWork, tenant: Tenant, lead: Lead, reason: str) -> None:
    """Take a live lead out of play; the partner holding it is told to stop."""
    claim = None
    if lead.status == LeadStatus.CLAIMED:
        claim = (
            await Claim.filter(lead_id=lead.id, state=ClaimState.ACTIVE)
            .select_related("partner", "user")
            .first()
        )
        if claim is not None:
            await Claim.filter(id=claim.id, state=ClaimState.ACTIVE).update(
                state=ClaimState.WITHDRAWN, ended_at=uow.now
            )
    changed = await Lead.filter(id=lead.id, status__in=LIVE).update(
        status=LeadStatus.WITHDRAWN, closed_at=uow.now
    )
    if changed != 1:
        raise InvalidTransition("not_withdrawable", ref=lead.ref, status=str(lead.status))
    lead.status = LeadStatus.WITHDRAWN
    uow.audit(
        "lead.withdrawn",
        tenant.id,
        lead_id=lead.id,
        partner_id=claim and claim.partner_id,
        claim_id=claim and claim.id,
        reason=reason,
    )
    if claim is not None:
        notify.withdrawn_while_held(uow, tenant, lead, claim, claim.partner, claim.user, reason)


@handles(ExpireOverdue)
async def expire_overdue(cmd: ExpireOverdue, actor: Actor, uow: UnitOfWork) -> Reply:
    """Sweep: every claim past its deadline lapses, its lead returns to the pool, the partner
    is told and cannot re-claim it during the tenant's cooldown, and the owner gets one summary.

    Safe to run twice and after downtime: it only touches claims still active and overdue.
    """
    require(actor, Role.SYSTEM, Role.OWNER)
    query = Claim.filter(state=ClaimState.ACTIVE, due_at__lte=uow.now)
    if actor.tenant_id is not None:
        query = query.filter(tenant_id=actor.tenant_id)
    query = query.order_by("due_at", "id").limit(cmd.batch)
    if dialect() == "postgres":
        # Lock what we expire; a feedback racing us waits, then finds the claim ended.
        query = query.select_for_update(skip_locked=True)
    ids = [claim.id for claim in await query.only("id")]
    if not ids:
        return Reply(True, "expired", {"expired": 0, "count": 0, "more": False})

    claims: list[Claim] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        # Related rows by primary key (one query each), not one join: the join's plan
        # degrades to scanning every lead once the table is large.
        batch = await Claim.filter(id__in=chunk).prefetch_related(
            "lead", "partner", "user", "tenant"
        )
        await Claim.filter(id__in=chunk).update(state=ClaimState.EXPIRED, ended_at=uow.now)
        await Lead.filter(id__in=[c.lead_id for c in batch], status=LeadStatus.CLAIMED).update(
            status=LeadStatus.OPEN, opened_at=uow.now
        )
        claims += batch

    hides, per_tenant = [], defaultdict(list)
    for claim in claims:
        tenant, lead = claim.tenant, claim.lead
        lead.status = LeadStatus.OPEN
        until = uow.now + timedelta(hours=tenant.lapse_cooldown_hours)
        hides.append(
            LeadHide(tenant_id=tenant.id, lead_id=lead.id, partner_id=claim.partner_id, until=until)
        )
        uow.audit(
            "lead.lapsed",
            tenant.id,
            lead_id=lead.id,
            partner_id=claim.partner_id,
            user_id=claim.user_id,
            claim_id=claim.id,
            due_at=claim.due_at,
        )
        notify.lapsed(uow, tenant, lead, claim, claim.partner, claim.user, until)
        per_tenant[tenant.id].append((tenant, claim))
    await LeadHide.bulk_create(hides, batch_size=CHUNK)
    for items in per_tenant.values():
        tenant = items[0][0]
        rows = [
            {
                "ref": c.lead.ref,
                "product": c.lead.product,
                "region": c.lead.region,
                "partner": c.partner.name,
                "due": c.due_at,
            }
            for _, c in items
        ]
        notify.lapses_to_owner(uow, tenant, rows, f"lapses:{tenant.id}:{items[0][1].id}")
    paused = await apply_lapse_policy(uow, claims)
    refs = [c.lead.ref for c in claims]
    return Reply(
        True,
        "expired",
        {
            "expired": len(claims),
            "count": len(claims),
            "refs": refs,
            "paused": [p.slug for p in paused],
            "more": len(ids) == cmd.batch,
        },
    )
