"""Linking Slack to Lyra: channels to partners, Slack users to Lyra users."""

from __future__ import annotations

import re

from lyra_bot.handlers.common import require, tenant_of

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, LinkSlackChannel, LinkSlackUser, Role, UnlinkSlackChannel
from lyra_bot.domain import InvalidInput, NotFound
from lyra_bot.models import Partner, SlackChannel, User

# Slack ids: a type letter, then upper-case letters and digits (at least one digit, so that a
# channel *name* like "general" is not taken for the id of a private channel).
CHANNEL_RE = re.compile(r"^[CG](?=[A-Z0-9]*[0-9])[A-Z0-9]{4,31}$")
_TEAM_RE = re.compile(r"^[TE](?=[A-Z0-9]*[0-9])[A-Z0-9]{4,31}$")
_USER_RE = re.compile(r"^[UW](?=[A-Z0-9]*[0-9])[A-Z0-9]{4,31}$")


def slack_id(value: str, pattern: re.Pattern[str], what: str) -> str:
    """An upper-cased Slack id, or a clear error (ids never contain anything but A-Z0-9)."""
    text = value.strip().upper()
    if not pattern.match(text):
        raise InvalidInput(f"bad_slack_{what}", value=value)
    return text


@handles(LinkSlackChannel)
async def link_slack_channel(cmd: LinkSlackChannel, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    channel = slack_id(cmd.channel_id, CHANNEL_RE, "channel")
    team = slack_id(cmd.team_id, _TEAM_RE, "team") if cmd.team_id else None
    partner = await Partner.get_or_none(tenant_id=tenant.id, slug=cmd.partner_slug.strip().lower())
    if partner is None:
        raise NotFound("no_partner", slug=cmd.partner_slug)
    link = await SlackChannel.get_or_none(channel_id=channel)
    if link is not None and link.active and link.tenant_id != tenant.id:
        raise InvalidInput("slack_channel_taken", channel=channel)
    if link is None:
        link = await SlackChannel.create(
            tenant_id=tenant.id,
            partner_id=partner.id,
            team_id=team,
            channel_id=channel,
            linked_at=uow.now,
        )
    else:
        await SlackChannel.filter(id=link.id).update(
            tenant_id=tenant.id,
            partner_id=partner.id,
            team_id=team or (link.team_id if link.tenant_id == tenant.id else None),
            active=True,
            linked_at=uow.now,
        )
    uow.audit("slack.channel_linked", tenant.id, partner_id=partner.id, channel=channel)
    return Reply(
        True,
        "slack_channel_linked",
        {"channel": channel, "partner": partner.slug},
    )


@handles(UnlinkSlackChannel)
async def unlink_slack_channel(cmd: UnlinkSlackChannel, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    channel = slack_id(cmd.channel_id, CHANNEL_RE, "channel")
    changed = await SlackChannel.filter(
        tenant_id=actor.tenant_id, channel_id=channel, active=True
    ).update(active=False)
    if not changed:
        raise NotFound("slack_channel_unknown", channel=channel)
    uow.audit("slack.channel_unlinked", actor.tenant_id or 0, channel=channel)
    return Reply(True, "slack_channel_unlinked", {"channel": channel})


@handles(LinkSlackUser)
async def link_slack_user(cmd: LinkSlackUser, actor: Actor, uow: UnitOfWork) -> Reply:
    """Owner: link (or re-link) one of its users. System: link every registered user with
    this email that has no Slack link yet (first contact through a verified Slack email)."""
    require(actor, Role.OWNER, Role.SYSTEM)
    team = slack_id(cmd.slack_team_id, _TEAM_RE, "team")
    user_id = slack_id(cmd.slack_user_id, _USER_RE, "user")
    email = cmd.email.strip().lower()
    query = User.filter(email=email, active=True)
    if actor.role == Role.OWNER:
        query = query.filter(tenant_id=actor.tenant_id)
    else:
        query = query.filter(slack_user_id__isnull=True)
        if actor.tenant_id is not None:
            query = query.filter(tenant_id=actor.tenant_id)
    users = await query
    if not users:
        raise NotFound("no_user", email=email)
    for user in users:
        taken = (
            await User.filter(tenant_id=user.tenant_id, slack_team_id=team, slack_user_id=user_id)
            .exclude(id=user.id)
            .exists()
        )
        if taken:
            raise InvalidInput("slack_user_taken", slack_user=user_id)
        await User.filter(id=user.id).update(slack_team_id=team, slack_user_id=user_id)
        uow.audit(
            "user.slack_linked",
            user.tenant_id,
            partner_id=user.partner_id,
            user_id=user.id,
            team=team,
            slack_user=user_id,
        )
    return Reply(
        True,
        "slack_user_linked",
        {"users": [u.id for u in users], "team": team, "slack_user": user_id, "email": email},
    )
