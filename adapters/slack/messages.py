"""Slack content rendered from the database as it should look right now: recorded digest
messages, and answers that show several customers (nothing of them is stored in the outbox).

Each lead is shown from the point of view of the partner whose channel it is in: claimable
(with its button), held by that partner (who, until when, a feedback button), taken by
someone else, or withdrawn. The message never says which other partner holds a lead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.handlers.notify import local_time

from lyra_bot.domain import ClaimState, LeadStatus, full_view, is_entitled, teaser
from lyra_bot.models import Claim, LeadHide, Partner, SlackMessage, SlackMessageLead, Tenant


async def render_message(message: SlackMessage, now: datetime) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` of a digest message, from the current rows."""
    links = (
        await SlackMessageLead.filter(message_id=message.id)
        .order_by("position", "id")
        .select_related("lead")
    )
    leads = [link.lead for link in links]
    ids = [lead.id for lead in leads]
    tenant = await Tenant.get(id=message.tenant_id)
    partner = await Partner.get_or_none(id=message.partner_id) if message.partner_id else None
    claims = {
        c.lead_id: c
        for c in await Claim.filter(
            lead_id__in=ids, state__in=[ClaimState.ACTIVE, ClaimState.CLOSED]
        )
        .select_related("user")
        .order_by("claimed_at")
    }
    hidden: set[int] = set()
    if partner is not None:
        hidden = set(
            await LeadHide.filter(
                lead_id__in=ids, partner_id=partner.id, until__gt=now
            ).values_list("lead_id", flat=True)
        )
    items = []
    for lead in leads:
        note, button = _state(lead, claims.get(lead.id), partner, lead.id in hidden, tenant)
        items.append((teaser(lead), note, button))
    return blocks.digest(message.title, items)


def _state(
    lead: Any, claim: Claim | None, partner: Partner | None, hidden: bool, tenant: Tenant
) -> tuple[str, blocks.Block | None]:
    ours = partner is not None and claim is not None and claim.partner_id == partner.id
    if lead.status == LeadStatus.OPEN:
        if hidden:
            return ":hourglass: _Back in the pool for other partners for now._", None
        if partner is not None and not (
            partner.active
            and is_entitled(partner.products, partner.regions, lead.product, lead.region)
        ):
            return "_No longer in your products or regions._", None
        return "", blocks.claim_button(lead.ref)
    if lead.status == LeadStatus.CLAIMED and ours and claim is not None:
        who = blocks.esc(claim.user.name or claim.user.email)
        due = blocks.slack_date(claim.due_at, local_time(tenant, claim.due_at))
        return (
            f":white_check_mark: *Claimed by {who}* · feedback due {due}",
            blocks.feedback_button(lead.ref),
        )
    if lead.status == LeadStatus.CLOSED and ours and claim is not None:
        who = blocks.esc(claim.user.name or claim.user.email)
        return f":white_check_mark: _Claimed by {who} · feedback given._", None
    if lead.status == LeadStatus.WITHDRAWN:
        return ":no_entry_sign: _Withdrawn by the owner._", None
    if lead.status == LeadStatus.HELD:
        return "_Not available right now._", None
    return ":lock: _Taken._", None


async def render_claims(tenant_id: int, partner_id: int) -> dict[str, Any]:
    """A partner's open claims with their customers and deadlines (what ``ListMine`` lists),
    for an answer to one of its users, rendered when it is delivered."""
    tenant = await Tenant.get(id=tenant_id)
    claims = (
        await Claim.filter(tenant_id=tenant_id, partner_id=partner_id, state=ClaimState.ACTIVE)
        .select_related("lead")
        .order_by("due_at")
    )
    items = [{**full_view(c.lead), "due_at": c.due_at} for c in claims]
    due = {c.lead.ref: local_time(tenant, c.due_at) for c in claims}
    return blocks.mine_answer(f"You hold {len(items)} lead(s).", items, due)
