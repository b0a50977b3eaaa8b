"""What a partner may see: the pool (teasers only) and its own claims (full data)."""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from handlers.common import lead_by_ref, partner_of, require, tenant_of
from lyra_bot.bus import Reply, handles
from lyra_bot.commands import Actor, ListMine, ListPool, Role, SimilarLeads
from lyra_bot.domain import WILDCARD, ClaimState, LeadStatus, full_view, teaser
from lyra_bot.models import Claim, Lead, LeadHide, Partner


def entitlement_filter(partner: Partner) -> Q:
    """SQL form of ``domain.is_entitled``: product in the list, region under a prefix."""
    products = [p for p in partner.products if p != WILDCARD]
    product_q = (
        Q() if WILDCARD in partner.products else _any(Q(product__iexact=p) for p in products)
    )
    regions = [r.upper() for r in partner.regions]
    if WILDCARD in regions:
        return product_q
    region_q = _any(Q(region=r) | Q(region__startswith=f"{r}-") for r in regions)
    return product_q & region_q


def _any(qs) -> Q:
    combined: Q | None = None
    for q in qs:
        combined = q if combined is None else combined | q
    return combined if combined is not None else Q(id=-1)


def pool_query(tenant_id: int, partner: Partner | None, now: datetime) -> QuerySet[Lead]:
    """Open leads the partner is entitled to and not hidden from, oldest first.

    Without a partner: the whole pool of the tenant (the owner's view).
    """
    query = Lead.filter(tenant_id=tenant_id, status=LeadStatus.OPEN)
    if partner is not None:
        hidden = Subquery(LeadHide.filter(partner_id=partner.id, until__gt=now).values("lead_id"))
        query = query.filter(entitlement_filter(partner)).exclude(id__in=hidden)
    return query.order_by("opened_at", "id")


@handles(ListPool)
async def list_pool(cmd: ListPool, actor: Actor, uow) -> Reply:
    require(actor, Role.PARTNER, Role.OWNER)
    tenant = await tenant_of(actor)
    partner: Partner | None = None
    if actor.role == Role.PARTNER:
        partner = await partner_of(actor)
    elif cmd.partner_id is not None:
        partner = await Partner.get(id=cmd.partner_id, tenant_id=tenant.id)
    query = pool_query(tenant.id, partner, uow.now)
    total = await query.count()
    leads = await (query.limit(cmd.limit) if cmd.limit else query)
    teasers = [teaser(lead) for lead in leads]
    return Reply(True, "pool", f"{total} lead(s) in the pool.", {"leads": teasers, "total": total})


@handles(SimilarLeads)
async def similar_leads(cmd: SimilarLeads, actor: Actor, uow) -> Reply:
    require(actor, Role.PARTNER)
    tenant = await tenant_of(actor)
    partner = await partner_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    query = (
        pool_query(tenant.id, partner, uow.now)
        .filter(Q(product__iexact=lead.product) | Q(region=lead.region))
        .exclude(id=lead.id)
    )
    leads = [teaser(other) for other in await query.limit(max(0, min(cmd.limit, 10)))]
    return Reply(True, "similar", f"{len(leads)} similar lead(s).", {"leads": leads})


@handles(ListMine)
async def list_mine(cmd: ListMine, actor: Actor, uow) -> Reply:
    require(actor, Role.PARTNER)
    claims = (
        await Claim.filter(
            tenant_id=actor.tenant_id, partner_id=actor.partner_id, state=ClaimState.ACTIVE
        )
        .select_related("lead")
        .order_by("due_at")
    )
    items = [{**full_view(c.lead), "due_at": c.due_at, "claimed_at": c.claimed_at} for c in claims]
    return Reply(True, "mine", f"You hold {len(items)} lead(s).", {"claims": items})
