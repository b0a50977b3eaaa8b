"""The reliability policy: a partner whose claims lapse too often is paused from claiming.

A tenant sets ``lapse_limit`` (K, 0 = off) and ``lapse_pause_days`` (D): K lapses within the
last 30 days pause the partner for D days. Lapses before the start of an earlier pause do not
count again, so a paused partner starts with a clean slate. A paused partner still sees the
pool; ``ClaimLead`` refuses with the reason. Checked by the expiry sweep right after claims
lapse, in the same transaction.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from lyra_bot.handlers import notify
from tortoise.functions import Count

from lyra_bot.bus import UnitOfWork
from lyra_bot.business_time import calendar_of
from lyra_bot.domain import LAPSE_WINDOW, ClaimState
from lyra_bot.models import Claim, Partner, Tenant, User


async def apply_lapse_policy(uow: UnitOfWork, lapsed: Iterable[Claim]) -> list[Partner]:
    """Pause the partners of ``lapsed`` claims that reached their tenant's limit."""
    tenants: dict[int, Tenant] = {}
    partner_ids: dict[int, set[int]] = defaultdict(set)
    for claim in lapsed:
        if claim.tenant.lapse_limit > 0:
            tenants[claim.tenant_id] = claim.tenant
            partner_ids[claim.tenant_id].add(claim.partner_id)
    paused: list[Partner] = []
    since = uow.now - LAPSE_WINDOW
    for tenant_id, ids in partner_ids.items():
        tenant = tenants[tenant_id]
        partners = await Partner.filter(id__in=sorted(ids), tenant_id=tenant_id)
        # Counted by the database: a long sweep pauses as it goes, and reading every lapse
        # of the window back for each batch made the sweep quadratic in its length.
        counts: Counter[int] = Counter(
            dict(
                await Claim.filter(
                    partner_id__in=sorted(ids), state=ClaimState.EXPIRED, ended_at__gte=since
                )
                .annotate(n=Count("id"))
                .group_by("partner_id")
                .values_list("partner_id", "n")
            )
        )
        for partner in partners:
            if partner.paused_until is not None and partner.paused_until > uow.now:
                continue
            start = partner.paused_at
            if start is not None and start >= since and counts[partner.id] >= tenant.lapse_limit:
                # an earlier pause began inside the window: only lapses after it count
                counts[partner.id] = await Claim.filter(
                    partner_id=partner.id, state=ClaimState.EXPIRED, ended_at__gt=start
                ).count()
            if counts[partner.id] < tenant.lapse_limit:
                continue
            until = calendar_of(tenant).shift(uow.now, days=tenant.lapse_pause_days)
            await Partner.filter(id=partner.id).update(paused_at=uow.now, paused_until=until)
            partner.paused_at, partner.paused_until = uow.now, until
            uow.audit(
                "partner.paused",
                tenant_id,
                partner_id=partner.id,
                lapses=counts[partner.id],
                limit=tenant.lapse_limit,
                until=until,
            )
            users = await User.filter(partner_id=partner.id, active=True).order_by("id")
            notify.partner_paused(uow, tenant, partner, users, counts[partner.id], until)
            paused.append(partner)
    return paused
