"""Lookups every handler starts with: who is asking, in which tenant, about which lead.

Each lookup is scoped by the actor's tenant, so a reference from another tenant is simply
unknown here.
"""

from __future__ import annotations

from lyra_bot.commands import Actor, Role
from lyra_bot.domain import Forbidden, UnknownLead, normalize_ref
from lyra_bot.models import Lead, Partner, Tenant, User


def require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        names = " or ".join(str(r) for r in roles)
        raise Forbidden(f"Only a {names} may do this.")
    if actor.role != Role.SYSTEM and actor.tenant_id is None:
        raise Forbidden("No tenant given.")
    if actor.role == Role.PARTNER and (actor.partner_id is None or actor.user_id is None):
        raise Forbidden("A partner user is needed for this.")


async def tenant_of(actor: Actor) -> Tenant:
    if actor.tenant_id is None:
        raise Forbidden("No tenant given.")
    return await Tenant.get(id=actor.tenant_id)


async def partner_of(actor: Actor, *, lock: bool = False) -> Partner:
    """The actor's partner, row-locked on PostgreSQL when ``lock`` (serializes its claims)."""
    query = Partner.filter(id=actor.partner_id, tenant_id=actor.tenant_id)
    if lock:
        query = query.select_for_update()
    partner = await query.first()
    if partner is None or not partner.active:
        raise Forbidden("This partner account is not active.")
    return partner


async def user_of(actor: Actor) -> User:
    user = await User.get_or_none(id=actor.user_id, tenant_id=actor.tenant_id)
    if user is None or not user.active:
        raise Forbidden("This user is not active.")
    return user


async def lead_by_ref(tenant: Tenant, raw_ref: str) -> Lead:
    ref = normalize_ref(raw_ref, tenant.ref_prefix)
    lead = await Lead.get_or_none(tenant_id=tenant.id, ref=ref)
    if lead is None:
        raise UnknownLead(f"There is no lead {ref}.", ref=ref)
    return lead
