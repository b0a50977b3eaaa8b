"""Lookups every handler starts with: who is asking, in which tenant, about which lead.

Each lookup is scoped by the actor's tenant, so a reference from another tenant is simply
unknown here.
"""

from __future__ import annotations

from lyra_bot.commands import Actor, Role
from lyra_bot.db import dialect
from lyra_bot.domain import Forbidden, UnknownLead, normalize_ref
from lyra_bot.models import Lead, Partner, Tenant, User
from lyra_bot.prepared import Prepared

_LOCK_PARTNER = Prepared(lambda p: Partner.filter(id=p.id).select_for_update().only("id"))
_PARTNER_USER = Prepared(
    lambda p: (
        User.filter(id=p.id, tenant_id=p.tenant_id, partner_id=p.partner_id)
        .select_related("partner", "tenant")
        .limit(1)
    )
)
_LEAD = Prepared(lambda p: Lead.filter(tenant_id=p.tenant_id, ref=p.ref).limit(1))


def require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        raise Forbidden("role_required", roles=[str(r) for r in roles])
    if actor.role != Role.SYSTEM and actor.tenant_id is None:
        raise Forbidden("no_tenant")
    if actor.role == Role.PARTNER and (actor.partner_id is None or actor.user_id is None):
        raise Forbidden("partner_user_needed")


async def tenant_of(actor: Actor) -> Tenant:
    if actor.tenant_id is None:
        raise Forbidden("no_tenant")
    return await Tenant.get(id=actor.tenant_id)


async def partner_of(actor: Actor) -> Partner:
    partner = await Partner.filter(id=actor.partner_id, tenant_id=actor.tenant_id).first()
    if partner is None or not partner.active:
        raise Forbidden("inactive")
    return partner


async def partner_context(actor: Actor, *, lock: bool = False) -> tuple[Tenant, Partner, User]:
    """The acting partner user with its partner and tenant, in one query.

    With ``lock`` the partner row is locked on PostgreSQL, so two claims by users of one
    partner queue there and the second sees the first's claim when it checks the cap
    (SQLite's ``BEGIN IMMEDIATE`` already serialized them).
    """
    require(actor, Role.PARTNER)
    if lock and dialect() == "postgres":
        await _LOCK_PARTNER.rows(id=actor.partner_id)
    user = await _PARTNER_USER.first(
        id=actor.user_id, tenant_id=actor.tenant_id, partner_id=actor.partner_id
    )
    if user is None or not user.active or not user.partner.active:
        raise Forbidden("inactive")
    return user.tenant, user.partner, user


async def lead_by_ref(tenant: Tenant | int, raw_ref: str) -> Lead:
    """The tenant's lead with this reference (``l1042`` and ``1042`` mean ``L-1042``)."""
    ref = normalize_ref(raw_ref)
    tenant_id = tenant if isinstance(tenant, int) else tenant.id
    lead = await _LEAD.first(tenant_id=tenant_id, ref=ref)
    if lead is None:
        raise UnknownLead(ref=ref)
    return lead
