"""The outbox as an operator sees it: list, one message, dead letters sent again.

An owner sees and retries its own tenant's messages; the system actor (the CLI without
``--tenant``) sees every message, including those that belong to no tenant.
"""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers.common import require
from tortoise.queryset import QuerySet

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, ListOutbox, RetryOutbox, Role, ShowOutboxMessage
from lyra_bot.domain import InvalidInput, NotFound, OutboxStatus
from lyra_bot.models import OutboxMessage

LIST_FIELDS = (
    "id",
    "status",
    "channel",
    "kind",
    "recipient",
    "attempts",
    "created_at",
    "next_attempt_at",
    "sent_at",
    "last_error",
)


def _scope(actor: Actor) -> QuerySet[OutboxMessage]:
    require(actor, Role.OWNER, Role.SYSTEM)
    query = OutboxMessage.all()
    return query if actor.tenant_id is None else query.filter(tenant_id=actor.tenant_id)


def _status(text: str) -> OutboxStatus:
    try:
        return OutboxStatus(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            "bad_status", value=text, choices=[s.value for s in OutboxStatus]
        ) from None


@handles(ListOutbox)
async def list_outbox(cmd: ListOutbox, actor: Actor, uow: UnitOfWork) -> Reply:
    query = _scope(actor)
    if cmd.status:
        query = query.filter(status=_status(cmd.status))
    total = await query.count()
    rows = await query.order_by("-id").offset(cmd.offset).limit(cmd.limit).values(*LIST_FIELDS)
    for row in rows:
        row["status"] = str(getattr(row["status"], "value", row["status"]))
    data = {"messages": rows, "total": total, "offset": cmd.offset, "limit": cmd.limit}
    return Reply(True, "outbox", {**data, "count": len(rows)})


@handles(ShowOutboxMessage)
async def show_outbox_message(cmd: ShowOutboxMessage, actor: Actor, uow: UnitOfWork) -> Reply:
    row = await _scope(actor).filter(id=cmd.message_id).first()
    if row is None:
        raise NotFound("no_outbox_message", id=cmd.message_id)
    data: dict[str, Any] = {
        **{name: getattr(row, name) for name in LIST_FIELDS},
        "status": row.status.value,
        "tenant_id": row.tenant_id,
        "lead_id": row.lead_id,
        "dedupe_key": row.dedupe_key,
        "message_id": row.message_id,
        "correlation_id": row.correlation_id,
        "payload": row.payload,
    }
    return Reply(True, "outbox_message", {"message": data, "id": row.id, "state": row.status.value})


@handles(RetryOutbox)
async def retry_outbox(cmd: RetryOutbox, actor: Actor, uow: UnitOfWork) -> Reply:
    """Dead letters back to ``pending`` with fresh attempts; the worker sends them at once."""
    query = _scope(actor).filter(status=OutboxStatus.DEAD)
    if cmd.message_ids:
        wanted = set(cmd.message_ids)
        found = set(await query.filter(id__in=wanted).values_list("id", flat=True))
        if missing := sorted(wanted - found):
            raise InvalidInput("not_dead", refs=[str(m) for m in missing])
        query = query.filter(id__in=wanted)
    rows = await query.values_list("id", "tenant_id")
    if rows:
        await OutboxMessage.filter(id__in=[r[0] for r in rows]).update(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=uow.now,
            locked_until=None,
        )
        for message_id, tenant_id in rows:
            if tenant_id is not None:
                uow.audit("outbox.retried", tenant_id, message=message_id)
    ids = [r[0] for r in rows]
    return Reply(True, "outbox_retried", {"ids": ids, "count": len(ids)})
