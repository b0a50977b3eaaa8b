"""Who is who, for the owner's admin: one partner, the users, one user (read only)."""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers.common import require, tenant_of
from lyra_bot.handlers.pool import pool_query
from tortoise.functions import Count

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, ListUsers, Role, ShowPartner, ShowUser
from lyra_bot.domain import ClaimState, NotFound
from lyra_bot.models import Claim, Partner, User


def _user_row(user: User, partner: str) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "partner": partner,
        "locale": user.locale,
        "active": user.active,
        "digest": user.digest_enabled,
        "slack": user.slack_user_id or "",
        "created_at": user.created_at,
    }


async def _partner(tenant_id: int, slug: str) -> Partner:
    partner = await Partner.get_or_none(tenant_id=tenant_id, slug=slug.strip().lower())
    if partner is None:
        raise NotFound("no_partner", slug=slug)
    return partner


@handles(ShowPartner)
async def show_partner(cmd: ShowPartner, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    partner = await _partner(tenant.id, cmd.slug)
    users = await User.filter(partner_id=partner.id).order_by("email")
    claims = (
        await Claim.filter(partner_id=partner.id)
        .annotate(n=Count("id"))
        .group_by("state")
        .values_list("state", "n")
    )
    by_state = {str(getattr(state, "value", state)): n for state, n in claims}
    data = {
        "slug": partner.slug,
        "name": partner.name,
        "products": partner.products,
        "regions": partner.regions,
        "locale": partner.locale,
        "active": partner.active,
        "paused_until": partner.paused_until,
        "created_at": partner.created_at,
        "active_claims": by_state.get(ClaimState.ACTIVE.value, 0),
        "claims": by_state,
        "pool": await pool_query(tenant.id, partner, uow.now).count(),
        "users": [_user_row(u, partner.slug) for u in users],
    }
    return Reply(True, "partner", {"partner": data, "name": partner.name, "slug": partner.slug})


@handles(ListUsers)
async def list_users(cmd: ListUsers, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    query = User.filter(tenant_id=tenant.id)
    if cmd.partner_slug:
        query = query.filter(partner_id=(await _partner(tenant.id, cmd.partner_slug)).id)
    users = await query.select_related("partner").order_by("email")
    rows = [_user_row(u, u.partner.slug if u.partner else "(owner)") for u in users]
    return Reply(True, "users", {"users": rows, "count": len(rows)})


@handles(ShowUser)
async def show_user(cmd: ShowUser, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    user = (
        await User.filter(tenant_id=tenant.id, email=cmd.email.strip().lower())
        .select_related("partner")
        .first()
    )
    if user is None:
        raise NotFound("no_such_user", email=cmd.email)
    row = _user_row(user, user.partner.slug if user.partner else "(owner)")
    row["slack_team"] = user.slack_team_id or ""
    if user.partner_id is not None:
        row["active_claims"] = await Claim.filter(
            partner_id=user.partner_id, user_id=user.id, state=ClaimState.ACTIVE
        ).count()
    return Reply(True, "user", {"user": row, "email": user.email, "who": row["partner"]})
