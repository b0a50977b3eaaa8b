"""Keeping the store's own bookkeeping bounded."""

from __future__ import annotations

from datetime import timedelta

from lyra_bot.handlers.common import require

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, PruneInboundKeys, Role
from lyra_bot.models import InboundKey


@handles(PruneInboundKeys)
async def prune_inbound_keys(cmd: PruneInboundKeys, actor: Actor, uow: UnitOfWork) -> Reply:
    """Delete the oldest idempotency keys past ``LYRA_INBOUND_KEY_DAYS``, ``batch`` at a time."""
    require(actor, Role.SYSTEM)
    cutoff = uow.now - timedelta(days=uow.settings.inbound_key_days)
    ids = (
        await InboundKey.filter(created_at__lt=cutoff)
        .order_by("created_at")
        .limit(cmd.batch)
        .values_list("id", flat=True)
    )
    if ids:
        await InboundKey.filter(id__in=ids).delete()
    return Reply(
        True,
        "pruned",
        {"count": len(ids), "more": len(ids) == cmd.batch},
    )
