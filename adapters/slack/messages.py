"""Slack content rendered from the database as it should look right now: recorded digest
messages, and answers that show several customers (nothing of them is stored in the outbox).

Each lead is shown from the point of view of the partner whose channel it is in: claimable
(with its button), held by that partner (who, until when, a feedback button), taken by
someone else, or withdrawn. The message never says which other partner holds a lead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.render import digest_title

from lyra_bot.domain import ClaimState, LeadStatus, full_view, is_entitled, teaser
from lyra_bot.i18n import pick_locale
from lyra_bot.models import Claim, LeadHide, Partner, SlackMessage, SlackMessageLead, Tenant
from lyra_bot.phrases import say
from lyra_bot.phrases import tr as _


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
    locale = pick_locale(partner.locale if partner else None, tenant.locale)
    items = []
    for lead in leads:
        note, button = _state(lead, claims.get(lead.id), partner, lead.id in hidden, tenant, locale)
        items.append((teaser(lead), note, button))
    return blocks.digest(_title(message, partner, locale), items)


def _title(message: SlackMessage, partner: Partner | None, locale: str) -> str:
    """The header, from what the digest recorded (``{"leads", "part", "parts"}``)."""
    try:
        said = json.loads(message.title)
    except ValueError:
        return message.title  # a message recorded before titles were rendered here
    name = partner.name if partner else ""
    return digest_title(name, int(said["leads"]), int(said["part"]), int(said["parts"]), locale)


def _state(
    lead: Any,
    claim: Claim | None,
    partner: Partner | None,
    hidden: bool,
    tenant: Tenant,
    locale: str,
) -> tuple[str, blocks.Block | None]:
    ours = partner is not None and claim is not None and claim.partner_id == partner.id
    if lead.status == LeadStatus.OPEN:
        if hidden:
            return ":hourglass: _" + _(
                "Back in the pool for other partners for now.", locale
            ) + "_", None
        if partner is not None and not (
            partner.active
            and is_entitled(partner.products, partner.regions, lead.product, lead.region)
        ):
            return "_" + _("No longer in your products or regions.", locale) + "_", None
        return "", blocks.claim_button(lead.ref, locale)
    if lead.status == LeadStatus.CLAIMED and ours and claim is not None:
        who = blocks.esc(claim.user.name or claim.user.email)
        due = blocks.slack_date(claim.due_at, locale, tenant.timezone)
        note = _("*Claimed by %(who)s* · feedback due %(due)s", locale, who=who, due=due)
        return f":white_check_mark: {note}", blocks.feedback_button(lead.ref, locale)
    if lead.status == LeadStatus.CLOSED and ours and claim is not None:
        who = blocks.esc(claim.user.name or claim.user.email)
        note = _("Claimed by %(who)s · feedback given.", locale, who=who)
        return f":white_check_mark: _{note}_", None
    if lead.status == LeadStatus.WITHDRAWN:
        return ":no_entry_sign: _" + _("Withdrawn by the owner.", locale) + "_", None
    if lead.status == LeadStatus.HELD:
        return "_" + _("Not available right now.", locale) + "_", None
    return ":lock: _" + _("Taken.", locale) + "_", None


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
    locale = tenant.locale  # the answer's reader: see render_claims' callers
    text = say("mine", {"count": len(items)}, locale)
    return blocks.mine_answer(text, items, locale, tenant.timezone)
