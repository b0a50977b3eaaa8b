"""Feedback: the partner reports what came of the contact; that frees its slot."""

from __future__ import annotations

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import lead_by_ref, partner_context

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, GiveFeedback
from lyra_bot.domain import (
    ClaimState,
    InvalidInput,
    LeadStatus,
    NotYourLead,
    Outcome,
    parse_amount,
    parse_currency,
    parse_outcome,
)
from lyra_bot.i18n import pick_locale
from lyra_bot.models import Claim, Feedback, Lead


@handles(GiveFeedback)
async def give_feedback(cmd: GiveFeedback, actor: Actor, uow: UnitOfWork) -> Reply:
    tenant, partner, user = await partner_context(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)

    outcome = parse_outcome(cmd.outcome)
    money = parse_amount(cmd.amount, pick_locale(user.locale, partner.locale, tenant.locale))
    amount = money.value if money is not None else None
    said = money.currency if money is not None else None
    if said and cmd.currency and parse_currency(cmd.currency, tenant.currency) != said:
        raise InvalidInput("currency_mismatch", field="currency", said=said, currency=cmd.currency)
    currency = parse_currency(cmd.currency or said, tenant.currency) if amount is not None else None
    reason, note = cmd.reason.strip(), cmd.note.strip()
    if outcome == Outcome.WON and amount is None:
        raise InvalidInput(
            "missing_amount",
            field="amount",
            ref=lead.ref,
            currency=tenant.currency,
        )
    if outcome == Outcome.LOST and not reason:
        raise InvalidInput("missing_reason", field="reason", ref=lead.ref)

    claim = await Claim.filter(
        lead_id=lead.id, partner_id=partner.id, state=ClaimState.ACTIVE
    ).first()
    update = claim is None
    if claim is not None:
        closed = await Claim.filter(id=claim.id, state=ClaimState.ACTIVE).update(
            state=ClaimState.CLOSED, ended_at=uow.now
        )
        if closed != 1:
            raise NotYourLead("claim_just_ended", ref=lead.ref)
        await Lead.filter(id=lead.id, status=LeadStatus.CLAIMED).update(
            status=LeadStatus.CLOSED, closed_at=uow.now
        )
        lead.status = LeadStatus.CLOSED
    else:
        claim = await _contacted_claim(lead, partner.id)
        if outcome == Outcome.CONTACTED:
            raise InvalidInput("already_contacted", ref=lead.ref)

    feedback = await Feedback.create(
        tenant_id=tenant.id,
        claim_id=claim.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        outcome=outcome.value,
        amount=amount,
        currency=currency,
        reason=reason,
        note=note,
        channel=actor.channel,
        on_time=uow.now <= claim.due_at,
        created_at=uow.now,
    )
    uow.audit(
        "feedback.updated" if update else "feedback.given",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        user_id=user.id,
        claim_id=claim.id,
        outcome=outcome.value,
        amount=amount,
        currency=currency,
        on_time=feedback.on_time,
    )
    notify.feedback_given(uow, tenant, lead, claim, partner, user, feedback, update=update)
    return Reply(
        True,
        "feedback",
        {
            **({"phrase": "feedback_updated"} if update else {}),
            "ref": lead.ref,
            "outcome": outcome.value,
            "amount": amount,
            "currency": currency,
        },
    )


async def _contacted_claim(lead: Lead, partner_id: int) -> Claim:
    """The partner's closed claim whose last word was ``contacted`` (it may still say won/lost)."""
    claim = (
        await Claim.filter(lead_id=lead.id, partner_id=partner_id, state=ClaimState.CLOSED)
        .order_by("-claimed_at")
        .first()
    )
    last = await Feedback.filter(claim_id=claim.id).order_by("-id").first() if claim else None
    if claim is None or last is None or last.outcome != Outcome.CONTACTED:
        raise NotYourLead(ref=lead.ref)
    return claim
