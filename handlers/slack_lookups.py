"""What the Slack adapter needs to know from the store, as query commands.

The adapter holds no query of its own: where a click happened, who a Slack user is, what a
form about a lead shows, and how a recorded digest message should look now all come from
here, through the bus.
"""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers.common import lead_by_ref, require, tenant_of

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import (
    Actor,
    FindSlackUser,
    LeadForm,
    LocateSlackRequest,
    Role,
    SlackMessageView,
    TenantProfile,
)
from lyra_bot.domain import ClaimState, LeadStatus, NotFound, is_entitled, teaser
from lyra_bot.models import (
    Claim,
    LeadHide,
    Partner,
    SlackChannel,
    SlackMessage,
    SlackMessageLead,
    Tenant,
    User,
)


def profile(tenant: Tenant) -> dict[str, Any]:
    """The tenant as a channel presents it (no policy an adapter does not need)."""
    return {
        "id": tenant.id,
        "name": tenant.name,
        "locale": tenant.locale,
        "timezone": tenant.timezone,
        "currency": tenant.currency,
        "extension_max_days": tenant.extension_max_days,
        "extension_auto_days": tenant.extension_auto_days,
    }


@handles(LocateSlackRequest)
async def locate_slack_request(cmd: LocateSlackRequest, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    data: dict[str, Any] = {"channel_tenant": None, "owner_tenant": None, "message": None}
    if cmd.channel_id:
        link = await SlackChannel.filter(channel_id=cmd.channel_id, active=True).first()
        data["channel_tenant"] = link.tenant_id if link else None
        owner_of = await Tenant.filter(slack_owner_channel=cmd.channel_id).first()
        data["owner_tenant"] = owner_of.id if owner_of else None
        if cmd.message_ts:
            message = await SlackMessage.filter(
                channel_id=cmd.channel_id, ts=cmd.message_ts
            ).first()
            if message is not None:
                data["message"] = {
                    "id": message.id,
                    "channel_id": message.channel_id,
                    "tenant_id": message.tenant_id,
                }
    return Reply(True, "slack_location", data)


@handles(FindSlackUser)
async def find_slack_user(cmd: FindSlackUser, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    users = await User.filter(
        slack_user_id=cmd.slack_user_id, slack_team_id__in=list(cmd.team_ids), active=True
    ).order_by("id")
    email = cmd.email.strip().lower()
    linkable = bool(email) and await User.exists(
        email=email, active=True, slack_user_id__isnull=True
    )
    rows = [
        {"id": u.id, "tenant_id": u.tenant_id, "partner_id": u.partner_id, "email": u.email}
        for u in users
    ]
    return Reply(True, "slack_users", {"users": rows, "linkable": linkable})


@handles(LeadForm)
async def lead_form(cmd: LeadForm, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.PARTNER, Role.OWNER)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    return Reply(
        True,
        "lead_form",
        {"lead": {**teaser(lead), "id": lead.id}, "tenant": profile(tenant)},
    )


@handles(TenantProfile)
async def tenant_profile(cmd: TenantProfile, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.PARTNER, Role.OWNER, Role.SYSTEM)
    tenant = await Tenant.get_or_none(id=actor.tenant_id) if actor.tenant_id else None
    if tenant is None:
        raise NotFound("no_tenant_found")
    return Reply(True, "tenant_profile", {"tenant": profile(tenant)})


@handles(SlackMessageView)
async def slack_message_view(cmd: SlackMessageView, actor: Actor, uow: UnitOfWork) -> Reply:
    """Each lead of the message from the point of view of the partner whose channel it is
    in: ``open`` (claimable), ``hidden`` (back in the pool for others for now),
    ``not_entitled``, ``ours`` (held by that partner: who, until when), ``ours_closed``,
    ``withdrawn``, ``held`` or ``taken``. Never which other partner holds a lead."""
    require(actor, Role.SYSTEM)
    message = await SlackMessage.get_or_none(id=cmd.message_id)
    if message is None:
        return Reply(True, "slack_message", {"message": None})
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
                lead_id__in=ids, partner_id=partner.id, until__gt=uow.now
            ).values_list("lead_id", flat=True)
        )
    items = [
        {"lead": teaser(lead), **_state(lead, claims.get(lead.id), partner, lead.id in hidden)}
        for lead in leads
    ]
    view = {
        "id": message.id,
        "status": str(message.status),
        "channel_id": message.channel_id,
        "ts": message.ts,
        "team_id": message.team_id,
        "title": message.title,
        "content_hash": message.content_hash,
    }
    said = {"name": partner.name, "locale": partner.locale} if partner else None
    return Reply(
        True,
        "slack_message",
        {"message": view, "items": items, "tenant": profile(tenant), "partner": said},
    )


def _state(lead: Any, claim: Claim | None, partner: Partner | None, hidden: bool) -> dict:
    ours = partner is not None and claim is not None and claim.partner_id == partner.id
    if lead.status == LeadStatus.OPEN:
        if hidden:
            return {"state": "hidden"}
        if partner is not None and not (
            partner.active
            and is_entitled(partner.products, partner.regions, lead.product, lead.region)
        ):
            return {"state": "not_entitled"}
        return {"state": "open"}
    if lead.status in (LeadStatus.CLAIMED, LeadStatus.CLOSED) and ours and claim is not None:
        who = claim.user.name or claim.user.email
        if lead.status == LeadStatus.CLAIMED:
            return {"state": "ours", "who": who, "due_at": claim.due_at}
        return {"state": "ours_closed", "who": who}
    if lead.status == LeadStatus.WITHDRAWN:
        return {"state": "withdrawn"}
    if lead.status == LeadStatus.HELD:
        return {"state": "held"}
    return {"state": "taken"}
