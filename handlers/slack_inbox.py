"""The Slack adapter's durable inbox: requests acked before they were handled are kept in
``slack_inbox`` until handled, and taken over when the process that acked them died.

Infrastructure, not Lyra's state: no audit events. Times are the caller's wall clock (Slack
retries and crashes happen in real time, not in the business clock's).
"""

from __future__ import annotations

import uuid

from lyra_bot.handlers.common import require
from tortoise.expressions import F

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import (
    Actor,
    DeleteSlackRequests,
    Role,
    StoreSlackRequests,
    TakeSlackRequests,
)
from lyra_bot.db import dialect
from lyra_bot.models import SlackInbox


@handles(StoreSlackRequests)
async def store_slack_requests(cmd: StoreSlackRequests, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    await SlackInbox.bulk_create(
        [
            SlackInbox(
                id=uuid.UUID(str(row["id"])),
                body=row["body"],
                query=row.get("query", ""),
                headers=row.get("headers") or {},
                received_at=row["received_at"],
                holder=row["holder"],
                taken_at=row["received_at"],
                attempts=1,
            )
            for row in cmd.requests
        ]
    )
    return Reply(True, "slack_requests_stored", {"stored": len(cmd.requests)})


@handles(TakeSlackRequests)
async def take_slack_requests(cmd: TakeSlackRequests, actor: Actor, uow: UnitOfWork) -> Reply:
    """On PostgreSQL the rows are taken with ``FOR UPDATE SKIP LOCKED``: two instances never
    take the same row at once."""
    require(actor, Role.SYSTEM)
    due = SlackInbox.filter(taken_at__lte=cmd.stale_before)
    if cmd.exclude:
        due = due.exclude(id__in=[uuid.UUID(i) for i in cmd.exclude])
    due = due.order_by("id").limit(cmd.limit)
    if dialect() != "sqlite":
        due = due.select_for_update(skip_locked=True)
    rows = await due
    taken, dropped = [], []
    for row in rows:
        attempts = row.attempts + 1
        if attempts > cmd.max_attempts:
            dropped.append({"id": str(row.id), "attempts": attempts})
        else:
            taken.append(
                {
                    "id": str(row.id),
                    "body": row.body,
                    "query": row.query,
                    "headers": row.headers,
                    "attempts": attempts,
                }
            )
    if taken:
        await SlackInbox.filter(id__in=[uuid.UUID(r["id"]) for r in taken]).update(
            holder=cmd.holder, taken_at=cmd.now, attempts=F("attempts") + 1
        )
    if dropped:
        await SlackInbox.filter(id__in=[uuid.UUID(r["id"]) for r in dropped]).delete()
    return Reply(True, "slack_requests_taken", {"taken": taken, "dropped": dropped})


@handles(DeleteSlackRequests)
async def delete_slack_requests(cmd: DeleteSlackRequests, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    await SlackInbox.filter(id__in=[uuid.UUID(i) for i in cmd.ids]).delete()
    return Reply(True, "slack_requests_deleted", {"deleted": len(cmd.ids)})
