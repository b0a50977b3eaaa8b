"""Reminders before a claim's deadline, at the tenant's offsets (default 24 h and 2 h).

Each active claim carries ``next_remind_at``, the instant its next reminder falls; the sweep
takes the claims whose instant has come, sends one reminder each, and moves the instant on to
the next offset (or clears it). So every offset fires once per deadline, a sweep run twice
finds nothing the second time, and after downtime only the latest missed reminder goes out.
An extension moves the deadline and schedules the reminders again.
"""

from __future__ import annotations

from datetime import datetime

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import require

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import Calendar, calendar_of
from lyra_bot.commands import Actor, Role, SendReminders
from lyra_bot.db import dialect
from lyra_bot.domain import ClaimState
from lyra_bot.models import Claim, Tenant


def reminder_times(calendar: Calendar, offsets: list[int], due_at: datetime) -> dict[int, datetime]:
    """Offset (hours) → when its reminder falls, counted like the deadline (wall-clock hours
    in the tenant's zone, or business hours)."""
    return {hours: calendar.before(due_at, hours) for hours in offsets}


def next_reminder_at(
    tenant: Tenant, calendar: Calendar, due_at: datetime, after: datetime
) -> datetime | None:
    """The first reminder still to come after ``after`` (a claim made 10 h before its
    deadline gets no 24 h reminder), or None."""
    times = reminder_times(calendar, tenant.reminder_hours, due_at)
    upcoming = [t for t in times.values() if after < t < due_at]
    return min(upcoming, default=None)


@handles(SendReminders)
async def send_reminders(cmd: SendReminders, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM, Role.OWNER)
    query = Claim.filter(state=ClaimState.ACTIVE, next_remind_at__lte=uow.now)
    if actor.tenant_id is not None:
        query = query.filter(tenant_id=actor.tenant_id)
    query = query.order_by("next_remind_at", "id").limit(cmd.batch)
    if dialect() == "postgres":
        # Lock what we remind about; a feedback racing us waits for our commit.
        query = query.select_for_update(skip_locked=True)
    ids = list(await query.values_list("id", flat=True))
    if not ids:
        return Reply(True, "reminded", {"count": 0, "more": False})

    claims = await Claim.filter(id__in=ids).prefetch_related("tenant", "lead", "partner", "user")
    calendars: dict[int, Calendar] = {}
    sent: list[str] = []
    for claim in claims:
        tenant = claim.tenant
        calendar = calendars.setdefault(tenant.id, calendar_of(tenant))
        times = reminder_times(calendar, tenant.reminder_hours, claim.due_at)
        due_now = [hours for hours, at in times.items() if at <= uow.now]
        if due_now and uow.now < claim.due_at:
            # After downtime several may be due: only the nearest to the deadline is useful.
            offset = min(due_now)
            notify.reminder(uow, tenant, claim.lead, claim, claim.partner, claim.user, offset)
            uow.audit(
                "reminder.sent",
                tenant.id,
                lead_id=claim.lead_id,
                partner_id=claim.partner_id,
                user_id=claim.user_id,
                claim_id=claim.id,
                hours=offset,
                due_at=claim.due_at,
            )
            sent.append(claim.lead.ref)
        claim.next_remind_at = next_reminder_at(tenant, calendar, claim.due_at, uow.now)
    await Claim.bulk_update(claims, fields=["next_remind_at"], batch_size=500)
    return Reply(
        True,
        "reminded",
        {"count": len(sent), "refs": sent, "more": len(ids) == cmd.batch},
    )
