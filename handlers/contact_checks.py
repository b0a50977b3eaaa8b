"""Customer contact checks: a few days after a claim, ask the customer whether the partner
called; a "no" goes to the owner at once and counts against the partner.

The question is asked once per claim (``ContactCheck`` is one-to-one with the claim) and
answered once (a conditional update); the links and the reply address carry a signed
token of kind ``k`` whose subject is the claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import require

from lyra_bot import tokens
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import Calendar
from lyra_bot.commands import (
    Actor,
    AnswerContactCheck,
    CustomerContactCheck,
    Role,
    ShowContactCheck,
)
from lyra_bot.db import dialect
from lyra_bot.domain import AlreadyAnswered, ClaimState, NotFound, parse_yes_no
from lyra_bot.models import Claim, ContactCheck, Lead, Tenant

CHECKED_STATES = (ClaimState.ACTIVE, ClaimState.CLOSED)
"""Claims whose customer we ask; a lapsed, released or withdrawn lead is not the partner's."""


def check_due_at(tenant: Tenant, calendar: Calendar, lead: Lead, claimed_at: datetime):
    """When to ask this claim's customer, or None: the tenant's days later, moved into
    working hours (nobody should get this mail at 3 a.m. or on a holiday)."""
    if not (tenant.mail_customers and tenant.contact_check_days > 0 and lead.email):
        return None
    return calendar.next_open(calendar.shift(claimed_at, days=tenant.contact_check_days))


def check_links(uow: UnitOfWork, tenant_id: int, claim: Claim) -> tuple[str, str, str]:
    """The yes link, the no link and the reply address of one claim's check (the links
    and the address carry different tokens: the links check no sender)."""
    link = tokens.issue(
        uow.settings, "k", tenant_id, claim.id, claim.lead_id, uow.now, purpose="check"
    )
    reply = tokens.issue(uow.settings, "k", tenant_id, claim.id, claim.lead_id, uow.now)
    base = uow.settings.public_url.rstrip("/")
    return (
        f"{base}/check/{link}/yes",
        f"{base}/check/{link}/no",
        tokens.reply_address(uow.settings, reply),
    )


@handles(CustomerContactCheck)
async def customer_contact_check(cmd: CustomerContactCheck, actor: Actor, uow: UnitOfWork) -> Reply:
    """Sweep: every claim whose check is due is asked about (or skipped) and then cleared."""
    require(actor, Role.SYSTEM, Role.OWNER)
    query = Claim.filter(check_due_at__lte=uow.now)
    if actor.tenant_id is not None:
        query = query.filter(tenant_id=actor.tenant_id)
    query = query.order_by("check_due_at", "id").limit(cmd.batch)
    if dialect() == "postgres":
        query = query.select_for_update(skip_locked=True)
    ids = list(await query.values_list("id", flat=True))
    if not ids:
        return Reply(True, "checked", {"count": 0, "more": False})

    claims = await Claim.filter(id__in=ids).prefetch_related("lead", "partner", "tenant")
    await Claim.filter(id__in=ids).update(check_due_at=None)
    asked = set(await ContactCheck.filter(claim_id__in=ids).values_list("claim_id", flat=True))
    checks: list[ContactCheck] = []
    for claim in claims:
        tenant, lead = claim.tenant, claim.lead
        eligible = (
            claim.state in CHECKED_STATES
            and tenant.mail_customers
            and tenant.contact_check_days > 0
            and lead.email
            and claim.id not in asked
        )
        if not eligible:
            continue
        checks.append(
            ContactCheck(
                tenant_id=tenant.id,
                claim_id=claim.id,
                lead_id=lead.id,
                partner_id=claim.partner_id,
                email=lead.email,
                asked_at=uow.now,
            )
        )
        yes_url, no_url, address = check_links(uow, tenant.id, claim)
        notify.contact_check(uow, tenant, lead, claim, claim.partner, yes_url, no_url, address)
        uow.audit(
            "contact_check.asked",
            tenant.id,
            lead_id=lead.id,
            partner_id=claim.partner_id,
            claim_id=claim.id,
        )
    await ContactCheck.bulk_create(checks, batch_size=500)
    return Reply(
        True,
        "checked",
        {"count": len(checks), "more": len(ids) == cmd.batch},
    )


async def _check_of(claim_id: int, actor: Actor) -> tuple[ContactCheck, dict[str, Any]]:
    """The customer's check and what its pages show (in the customer's language)."""
    require(actor, Role.CUSTOMER)
    check = (
        await ContactCheck.filter(claim_id=claim_id, tenant_id=actor.tenant_id)
        .select_related("tenant", "lead", "partner", "claim")
        .first()
    )
    if check is None:
        raise NotFound("not_asked")
    tenant, lead = check.tenant, check.lead
    page = {
        "locale": notify.customer_locale(tenant, lead),
        "tenant": tenant.name,
        "partner": check.partner.name,
        "product": lead.product,
        "tz": tenant.timezone,
    }
    return check, page


def _already(check: ContactCheck, page: dict[str, Any]) -> AlreadyAnswered:
    return AlreadyAnswered(**page, answer=check.answer, answered_at=check.answered_at)


@handles(ShowContactCheck)
async def show_contact_check(cmd: ShowContactCheck, actor: Actor, uow: UnitOfWork) -> Reply:
    """The question, for the page a link opens; the answer waits for the customer's POST."""
    check, page = await _check_of(cmd.claim_id, actor)
    if check.answered_at is not None:
        raise _already(check, page)
    return Reply(True, "contact_check_question", page)


@handles(AnswerContactCheck)
async def answer_contact_check(cmd: AnswerContactCheck, actor: Actor, uow: UnitOfWork) -> Reply:
    """The customer's answer, once. A "no" alerts the owner and is recorded against the
    partner; a later click on either link changes nothing."""
    require(actor, Role.CUSTOMER)
    contacted = parse_yes_no(cmd.answer)
    check, page = await _check_of(cmd.claim_id, actor)
    tenant, lead, partner, claim = check.tenant, check.lead, check.partner, check.claim
    answer = "yes" if contacted else "no"
    changed = await ContactCheck.filter(id=check.id, answered_at__isnull=True).update(
        answer=answer, answered_at=uow.now, channel=actor.channel
    )
    if changed != 1:
        first = await ContactCheck.get(id=check.id).select_related("tenant")
        raise _already(first, page)
    uow.audit(
        "contact_check.confirmed" if contacted else "contact_check.denied",
        tenant.id,
        lead_id=lead.id,
        partner_id=partner.id,
        claim_id=claim.id,
    )
    if not contacted:
        notify.contact_denied(uow, tenant, lead, claim, partner)
    return Reply(
        True,
        "contact_confirmed" if contacted else "contact_denied",
        {**page, "answer": answer},
    )
