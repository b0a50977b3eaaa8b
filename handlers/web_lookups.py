"""What the web adapters (HTTP API, customer pages) need to know from the store."""

from __future__ import annotations

from datetime import timedelta

from lyra_bot.handlers.common import require

from lyra_bot import api_keys
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, AuthenticateApiKey, Role, ShowOptOut
from lyra_bot.domain import Forbidden, InvalidInput, customer_language
from lyra_bot.models import ApiKey, Lead, Tenant

LAST_USED_EVERY = timedelta(minutes=1)


@handles(AuthenticateApiKey)
async def authenticate_api_key(cmd: AuthenticateApiKey, actor: Actor, uow: UnitOfWork) -> Reply:
    """The key's id and tenant; one refusal for every failure (unknown, revoked, wrong)."""
    require(actor, Role.SYSTEM)
    token = cmd.token.strip()
    prefix = api_keys.prefix_of(token)
    row = await ApiKey.get_or_none(prefix=prefix) if prefix else None
    if row is None or row.revoked_at is not None or not api_keys.matches(token, row.key_hash):
        raise Forbidden("api_key_needed")
    if row.last_used_at is None or uow.now - row.last_used_at > LAST_USED_EVERY:
        await ApiKey.filter(id=row.id).update(last_used_at=uow.now)
    return Reply(True, "api_key", {"key_id": row.id, "tenant_id": row.tenant_id})


@handles(ShowOptOut)
async def show_opt_out(cmd: ShowOptOut, actor: Actor, uow: UnitOfWork) -> Reply:
    """The customer's own lead, as much as the opt-out page shows: no contact data."""
    require(actor, Role.CUSTOMER)
    tenant = await Tenant.get_or_none(id=actor.tenant_id)
    lead = await Lead.get_or_none(id=actor.lead_id, tenant_id=actor.tenant_id)
    if tenant is None or lead is None:
        raise InvalidInput("link_invalid")
    return Reply(
        True,
        "opt_out_page",
        {
            "tenant_name": tenant.name,
            "tenant_locale": tenant.locale,
            "locale": customer_language(lead.locale, lead.region, tenant.locale),
            "product": lead.product,
            "opted_out": lead.opted_out_at is not None,
        },
    )
