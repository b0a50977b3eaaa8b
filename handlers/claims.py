"""Claiming a lead and giving it back.

What happens when a partner presses Claim, top to bottom: ``claim_lead``.
"""

from __future__ import annotations

from datetime import timedelta

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import lead_by_ref, partner_context, require
from lyra_bot.handlers.contact_checks import check_due_at
from lyra_bot.handlers.reminders import next_reminder_at

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import calendar_of
from lyra_bot.commands import Actor, ClaimLead, ReleaseClaim, Role
from lyra_bot.domain import (
    AlreadyYours,
    ClaimState,
    LeadStatus,
    LeadTaken,
    NotEntitled,
    NotYourLead,
    OverCap,
    PartnerPaused,
    RateLimited,
    full_view,
    is_entitled,
)
from lyra_bot.models import Claim, Lead, LeadHide
from lyra_bot.prepared import Prepared, insert

# The claim path's queries, built once (see lyra_bot.prepared).
_HOLDS = Prepared(
    lambda p: Claim.filter(
        lead_id=p.lead_id, partner_id=p.partner_id, state=ClaimState.ACTIVE
    ).exists()
)
_HIDDEN = Prepared(
    lambda p: (
        LeadHide.filter(lead_id=p.lead_id, partner_id=p.partner_id, until__gt=p.now)
        .only("until")
        .limit(1)
    )
)
_HELD = Prepared(lambda p: Claim.filter(partner_id=p.partner_id, state=ClaimState.ACTIVE).count())
_TAKE = Prepared(
    lambda p: Lead.filter(id=p.id, status=LeadStatus.OPEN).update(status=LeadStatus.CLAIMED)
)


@handles(ClaimLead)
async def claim_lead(cmd: ClaimLead, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.PARTNER)
    await _count_claim(cmd, actor, uow)
    lead = await lead_by_ref(actor.tenant_id, cmd.lead_ref)
    # Most refused claims are races for a lead that just went: answer those from the lead row.
    if lead.status != LeadStatus.OPEN:
        if lead.status == LeadStatus.CLAIMED and await _HOLDS.exists(
            lead_id=lead.id, partner_id=actor.partner_id
        ):
            raise AlreadyYours(ref=lead.ref)
        if lead.status in (LeadStatus.CLAIMED, LeadStatus.CLOSED):
            raise LeadTaken(ref=lead.ref)
        raise LeadTaken("lead_gone", ref=lead.ref)

    tenant, partner, user = await partner_context(actor, lock=True)
    if partner.paused_until is not None and partner.paused_until > uow.now:
        raise PartnerPaused(ref=lead.ref, until=partner.paused_until, tz=tenant.timezone)
    if not is_entitled(partner.products, partner.regions, lead.product, lead.region):
        raise NotEntitled(ref=lead.ref)
    hide = await _HIDDEN.first(lead_id=lead.id, partner_id=partner.id, now=uow.now)
    if hide is not None:
        raise NotEntitled("cooling_off", ref=lead.ref, until=hide.until, tz=tenant.timezone)
    held = await _HELD.scalar(partner_id=partner.id)
    if held >= tenant.cap_open_claims:
        raise OverCap(
            ref=lead.ref,
            held=held,
            cap=tenant.cap_open_claims,
        )

    # The claim itself: one conditional update. Exactly one concurrent caller changes the row.
    won = await _TAKE.update(id=lead.id)
    if won != 1:
        raise LeadTaken("lead_just_taken", ref=lead.ref)
    lead.status = LeadStatus.CLAIMED
    calendar = calendar_of(tenant)
    due_at = calendar.deadline(uow.now, tenant.claim_deadline_hours)
    claim = Claim(
        tenant_id=tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        channel=actor.channel,
        claimed_at=uow.now,
        due_at=due_at,
        next_remind_at=next_reminder_at(tenant, calendar, due_at, uow.now),
        check_due_at=check_due_at(tenant, calendar, lead, uow.now),
    )
    await insert(claim)
    uow.audit(
        "lead.claimed",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        claim_id=claim.id,
        due_at=claim.due_at,
    )
    notify.claimed(uow, tenant, lead, claim, partner, user)
    return Reply(
        True,
        "claimed",
        {
            "lead": full_view(lead),
            "due_at": claim.due_at,
            "claim_id": claim.id,
            "tz": tenant.timezone,
            "lead_id": lead.id,
        },
    )


async def _count_claim(cmd: ClaimLead, actor: Actor, uow: UnitOfWork) -> None:
    """Claims per minute per partner user and per partner, on every channel: a script
    cannot sweep the pool, nor can a partner by spreading a sweep over its many users.

    The refusal names no lead (it is about the claimer, not the lead): the mail channel
    sends one error answer per address, code and reference a day, so a mail with many
    refused claims gets one "too fast" answer, not one per line."""
    limits = uow.rate_limits
    if limits is None:
        return
    tenant = str(actor.tenant_id)
    wait = await limits.hit(limits.claims, "claims", tenant, str(actor.user_id))
    if wait is not None:
        limit = limits.claims.amount if limits.claims else 0
        raise RateLimited(
            ref=None,
            retry_after=wait,
            limit=limit,
            per="user",
        )
    wait = await limits.hit(limits.partner_claims, "partner-claims", tenant, str(actor.partner_id))
    if wait is not None:
        limit = limits.partner_claims.amount if limits.partner_claims else 0
        raise RateLimited(
            "partner_rate_limited",
            ref=None,
            retry_after=wait,
            limit=limit,
            per="partner",
        )


@handles(ReleaseClaim)
async def release_claim(cmd: ReleaseClaim, actor: Actor, uow: UnitOfWork) -> Reply:
    """The partner gives a lead back: it returns to the pool at once for everyone else."""
    tenant, partner, user = await partner_context(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    claim = await Claim.filter(
        lead_id=lead.id, partner_id=partner.id, state=ClaimState.ACTIVE
    ).first()
    if claim is None:
        raise NotYourLead(ref=lead.ref)
    ended = await Claim.filter(id=claim.id, state=ClaimState.ACTIVE).update(
        state=ClaimState.RELEASED, ended_at=uow.now
    )
    if ended != 1:
        raise NotYourLead("no_longer_yours", ref=lead.ref)
    await Lead.filter(id=lead.id, status=LeadStatus.CLAIMED).update(
        status=LeadStatus.OPEN, opened_at=uow.now
    )
    lead.status = LeadStatus.OPEN
    # Releasing and re-claiming would reset the deadline; others get a turn first.
    until = uow.now + timedelta(hours=tenant.lapse_cooldown_hours)
    await LeadHide.create(tenant_id=tenant.id, lead_id=lead.id, partner_id=partner.id, until=until)
    uow.audit(
        "lead.released",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        claim_id=claim.id,
        reason=cmd.reason,
    )
    notify.released(uow, tenant, lead, claim, partner, await claim.user, cmd.reason)
    return Reply(True, "released", {"ref": lead.ref})
