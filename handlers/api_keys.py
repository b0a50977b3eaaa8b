"""The owner's keys for the intake API: made, listed and revoked; the key itself is shown once."""

from __future__ import annotations

from lyra_bot.handlers.common import require, tenant_of

from lyra_bot import api_keys
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, CreateApiKey, ListApiKeys, RevokeApiKey, Role
from lyra_bot.domain import InvalidInput, InvalidTransition, NotFound
from lyra_bot.models import ApiKey


@handles(CreateApiKey)
async def create_api_key(cmd: CreateApiKey, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    name = " ".join(cmd.name.split())
    if len(name) > 100:
        raise InvalidInput("key_name_too_long")
    prefix, key, digest = api_keys.new_key()
    row = await ApiKey.create(
        tenant_id=tenant.id, name=name, prefix=prefix, key_hash=digest, created_at=uow.now
    )
    uow.audit("api_key.created", tenant.id, key_id=row.id, name=name, prefix=prefix)
    return Reply(
        True,
        "api_key_created",
        {"id": row.id, "name": name, "prefix": prefix, "key": key, "tenant": tenant.slug},
    )


@handles(RevokeApiKey)
async def revoke_api_key(cmd: RevokeApiKey, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    row = await ApiKey.get_or_none(id=cmd.key_id, tenant_id=tenant.id)
    if row is None:
        raise NotFound("no_api_key", tenant=tenant.slug, id=cmd.key_id)
    changed = await ApiKey.filter(id=row.id, revoked_at=None).update(revoked_at=uow.now)
    if changed != 1:
        raise InvalidTransition("key_already_revoked", id=row.id)
    uow.audit("api_key.revoked", tenant.id, key_id=row.id, name=row.name, prefix=row.prefix)
    return Reply(True, "api_key_revoked", {"id": row.id})


@handles(ListApiKeys)
async def list_api_keys(cmd: ListApiKeys, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    rows = await ApiKey.filter(tenant_id=tenant.id).order_by("id")
    items = [
        {
            "id": row.id,
            "name": row.name,
            "prefix": f"{api_keys.PREFIX}_{row.prefix}_…",
            "created_at": row.created_at,
            "last_used_at": row.last_used_at,
            "revoked_at": row.revoked_at,
        }
        for row in rows
    ]
    return Reply(True, "api_keys", {"keys": items, "count": len(items), "tenant": tenant.slug})
