"""More time on a claim: the partner asks, the tenant's policy or the owner decides.

Policy: the first request on a claim for at most ``extension_auto_days`` is approved at once;
any other request (longer, or a second one) waits for the owner. Requests longer than
``extension_max_days`` are refused. The partner is told either way; every step is audited.
"""

from __future__ import annotations

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import lead_by_ref, partner_context, require, tenant_of
from lyra_bot.handlers.reminders import next_reminder_at

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import calendar_of
from lyra_bot.commands import Actor, DecideExtension, RequestExtension, Role
from lyra_bot.db import dialect
from lyra_bot.domain import (
    ClaimState,
    ExtensionStatus,
    InvalidInput,
    InvalidTransition,
    NotYourLead,
)
from lyra_bot.models import Claim, Extension, Lead, Partner, Tenant, User


@handles(RequestExtension)
async def request_extension(cmd: RequestExtension, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.PARTNER)
    tenant, partner, user = await partner_context(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    if not 1 <= cmd.days <= tenant.extension_max_days:
        raise InvalidInput(
            "extension_days", ref=lead.ref, max=tenant.extension_max_days, field="days"
        )
    query = Claim.filter(lead_id=lead.id, partner_id=partner.id, state=ClaimState.ACTIVE)
    if dialect() == "postgres":
        query = query.select_for_update()  # two requests at once: the second sees the first
    claim = await query.first()
    if claim is None:
        raise NotYourLead(ref=lead.ref)
    if claim.due_at <= uow.now:
        raise InvalidTransition("deadline_passed", ref=lead.ref)
    if await Extension.exists(claim_id=claim.id, status=ExtensionStatus.PENDING):
        raise InvalidTransition("extension_waiting", ref=lead.ref, tenant=tenant.name)
    auto = cmd.days <= tenant.extension_auto_days and not await Extension.exists(
        claim_id=claim.id, auto=True
    )
    extension = await Extension.create(
        tenant_id=tenant.id,
        claim_id=claim.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        days=cmd.days,
        reason=cmd.reason.strip()[:500],
        channel=actor.channel,
        requested_at=uow.now,
        old_due_at=claim.due_at,
    )
    uow.audit(
        "extension.requested",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        claim_id=claim.id,
        days=cmd.days,
        reason=extension.reason,
    )
    if auto:
        await _approve(uow, tenant, lead, claim, partner, user, extension, auto=True)
        return Reply(
            True,
            "extension_approved",
            {
                "phrase": "extension_granted",
                "ref": lead.ref,
                "due_at": claim.due_at,
                "auto": True,
                "tz": tenant.timezone,
            },
        )
    owner_slack = await owner_slack_targets(tenant)
    notify.extension_requested(uow, tenant, lead, claim, partner, user, extension, owner_slack)
    return Reply(
        True,
        "extension_requested",
        {
            "ref": lead.ref,
            "due_at": claim.due_at,
            "auto": False,
            "days": cmd.days,
            "tenant": tenant.name,
            "tz": tenant.timezone,
        },
    )


@handles(DecideExtension)
async def decide_extension(cmd: DecideExtension, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    query = Extension.filter(
        tenant_id=tenant.id,
        lead_id=lead.id,
        status=ExtensionStatus.PENDING,
        claim__state=ClaimState.ACTIVE,
    )
    pending = await query.order_by("-id").first()
    if pending is None:
        raise InvalidTransition("no_extension_waiting", ref=lead.ref)
    decided = await Extension.filter(id=pending.id, status=ExtensionStatus.PENDING).update(
        status=ExtensionStatus.APPROVED if cmd.approve else ExtensionStatus.DECLINED,
        decided_at=uow.now,
        decided_by_id=actor.user_id,
    )
    if decided != 1:
        raise InvalidTransition("extension_just_decided", ref=lead.ref)
    claim = await Claim.get(id=pending.claim_id)
    partner = await Partner.get(id=pending.partner_id)
    user = await User.get(id=pending.user_id)
    if cmd.approve:
        await _approve(uow, tenant, lead, claim, partner, user, pending, auto=False, note=cmd.note)
    else:
        pending.status = ExtensionStatus.DECLINED
        uow.audit(
            "extension.declined",
            tenant.id,
            lead_id=lead.id,
            partner_id=partner.id,
            user_id=actor.user_id,
            claim_id=claim.id,
            days=pending.days,
            note=cmd.note,
        )
        notify.extension_decided(uow, tenant, lead, claim, partner, user, pending)
    return Reply(
        True,
        "extension_approved" if cmd.approve else "extension_declined",
        {
            "ref": lead.ref,
            "due_at": claim.due_at,
            "partner": partner.name,
            "tz": tenant.timezone,
        },
    )


async def owner_slack_targets(tenant: Tenant) -> list[str]:
    """Where the owner decides in Slack: the tenant's owner channel when linked, else the
    DMs of its staff users linked to Slack (users without a partner are the owner's)."""
    if tenant.slack_owner_channel:
        return [tenant.slack_owner_channel]
    return list(
        await User.filter(
            tenant_id=tenant.id,
            partner_id__isnull=True,
            active=True,
            slack_user_id__not_isnull=True,
        )
        .order_by("id")
        .values_list("slack_user_id", flat=True)
    )


async def _approve(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    extension: Extension,
    *,
    auto: bool,
    note: str = "",
) -> None:
    """Move the deadline by the extension's days (working days when the tenant counts
    business time), schedule the reminders again, tell the partner."""
    calendar = calendar_of(tenant)
    due_at = calendar.add_days(claim.due_at, extension.days)
    changed = await Claim.filter(id=claim.id, state=ClaimState.ACTIVE).update(
        due_at=due_at, next_remind_at=next_reminder_at(tenant, calendar, due_at, uow.now)
    )
    if changed != 1:
        raise InvalidTransition("claim_just_ended", ref=lead.ref)
    claim.due_at = due_at
    extension.status, extension.auto, extension.new_due_at = (
        ExtensionStatus.APPROVED,
        auto,
        due_at,
    )
    extension.decided_at = uow.now
    await extension.save(update_fields=["status", "auto", "new_due_at", "decided_at"])
    uow.audit(
        "extension.approved",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=None if auto else uow.actor.user_id,
        claim_id=claim.id,
        days=extension.days,
        auto=auto,
        old_due_at=extension.old_due_at,
        due_at=due_at,
        note=note,
    )
    uow.changed_leads.add(lead.id)
    notify.extension_decided(uow, tenant, lead, claim, partner, user, extension)
