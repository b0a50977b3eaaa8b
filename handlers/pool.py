"""What a partner may see: the pool (teasers only) and its own claims (full data)."""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from lyra_bot.handlers.common import lead_by_ref, partner_of, require, tenant_of
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from lyra_bot.bus import Reply, handles
from lyra_bot.commands import Actor, ListMine, ListPool, Role, SimilarLeads
from lyra_bot.domain import (
    TEASER_FIELDS,
    WILDCARD,
    ClaimState,
    LeadStatus,
    full_view,
    region_covers,
    teaser,
)
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
    return Reply(True, "pool", {"leads": teasers, "total": total})


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
    return Reply(True, "similar", {"leads": leads, "count": len(leads)})


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
    return Reply(True, "mine", {"claims": items, "count": len(items)})


# --- many partners at once (digests) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolLead:
    """The columns of an open lead that matching and ``teaser()`` need, nothing private."""

    id: int
    ref: str
    product: str
    region: str
    industry: str
    size: str
    need: str
    opened_at: datetime


@dataclass(frozen=True)
class PartnerPool:
    total: int  # leads in the partner's pool (since the given time)
    leads: list[PoolLead]  # the first ``limit`` of them, oldest first like ``pool_query``


class PoolIndex:
    """Every open lead of one tenant, bucketed by (product, region), for computing the pools of
    many partners at once: two queries for the whole run instead of one per partner.

    ``pool(partner)`` gives the same leads, in the same order, as ``pool_query`` (entitlements
    by ``domain.is_entitled``, leads the partner let lapse or released hidden until their time).
    """

    def __init__(self, leads: Iterable[PoolLead], hidden: dict[int, set[int]]) -> None:
        self._buckets: dict[str, dict[str, list[PoolLead]]] = defaultdict(lambda: defaultdict(list))
        self._by_id: dict[int, PoolLead] = {}
        for lead in leads:
            self._buckets[lead.product.casefold()][lead.region.upper()].append(lead)
            self._by_id[lead.id] = lead
        for regions in self._buckets.values():
            for bucket in regions.values():
                bucket.sort(key=_pool_order)
        self._regions = sorted({r for regions in self._buckets.values() for r in regions})
        self._covers: dict[str, list[str]] = {}
        self._hidden = hidden

    @classmethod
    async def load(cls, tenant_id: int, now: datetime) -> PoolIndex:
        rows = await Lead.filter(tenant_id=tenant_id, status=LeadStatus.OPEN).values_list(
            "id", *TEASER_FIELDS, "opened_at"
        )
        hidden: dict[int, set[int]] = defaultdict(set)
        for partner_id, lead_id in await LeadHide.filter(
            tenant_id=tenant_id, until__gt=now
        ).values_list("partner_id", "lead_id"):
            hidden[partner_id].add(lead_id)
        return cls((PoolLead(*row) for row in rows), hidden)

    def pool(
        self, partner: Partner, since: datetime | None = None, limit: int | None = None
    ) -> PartnerPool:
        """The partner's pool, optionally only leads opened after ``since``."""
        buckets = self._matching(partner)
        hidden = self._hidden.get(partner.id, set())
        # Where each bucket's fresh part starts; slices would copy every fresh lead.
        starts = [
            0 if since is None else bisect_right(b, since, key=lambda lead: lead.opened_at)
            for b in buckets
        ]
        total = sum(len(b) - start for b, start in zip(buckets, starts, strict=True))
        if hidden:
            keys = {id(b) for b in buckets}
            for lead_id in hidden:
                lead = self._by_id.get(lead_id)
                if lead is not None and (since is None or lead.opened_at > since):
                    bucket = self._buckets[lead.product.casefold()][lead.region.upper()]
                    total -= id(bucket) in keys
        fresh = [_from(b, start) for b, start in zip(buckets, starts, strict=True)]
        merged = (lead for lead in heapq.merge(*fresh, key=_pool_order) if lead.id not in hidden)
        leads = list(islice(merged, limit)) if limit is not None else list(merged)
        return PartnerPool(total, leads)

    def _matching(self, partner: Partner) -> list[list[PoolLead]]:
        products = (
            list(self._buckets)
            if WILDCARD in partner.products
            else [p.strip().casefold() for p in partner.products]
        )
        regions: set[str] = set()
        for entitled in partner.regions:
            if entitled not in self._covers:
                self._covers[entitled] = [r for r in self._regions if region_covers(entitled, r)]
            regions.update(self._covers[entitled])
        found = []
        for product in dict.fromkeys(products):
            by_region = self._buckets.get(product)
            if by_region:
                found += [by_region[r] for r in regions if r in by_region]
        return found


def _from(bucket: list[PoolLead], start: int) -> Iterator[PoolLead]:
    """``bucket[start:]`` lazily, without copying or stepping over the first ``start``."""
    return (bucket[i] for i in range(start, len(bucket)))


def _pool_order(lead: PoolLead) -> tuple[datetime, int]:
    return (lead.opened_at, lead.id)
