"""Slack digests: each linked channel gets the teasers of its partner's pool it has not seen.

A digest message is recorded when it is queued (which leads it shows, in which channel) and
rendered from the database when the outbox delivers it (``lyra.post_message``).
``queue_message_updates`` then keeps every posted message in step with its leads, whatever
changed them (Slack, email, CLI, the scheduler): it runs in the bus's ``before_commit``, so
the update is queued in the same transaction as the change.
"""

from __future__ import annotations

import json

from lyra_bot.handlers.common import require
from lyra_bot.handlers.pool import pool_query
from tortoise.expressions import Subquery

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, PostSlackDigests, Role
from lyra_bot.domain import InvalidInput
from lyra_bot.models import SlackChannel, SlackMessage, SlackMessageLead, SlackMessageStatus
from lyra_bot.outbox import slack, slack_update

LEADS_PER_MESSAGE = 49  # plus one header block: Block Kit allows 50 blocks per message
LIVE = (SlackMessageStatus.PENDING, SlackMessageStatus.POSTED)
CHUNK = 500


@handles(PostSlackDigests)
async def post_slack_digests(cmd: PostSlackDigests, actor: Actor, uow: UnitOfWork) -> Reply:
    """Sweep: safe to run twice (a lead already shown in a channel is not posted there again)."""
    require(actor, Role.SYSTEM, Role.OWNER)
    limit = cmd.max_leads if cmd.max_leads is not None else uow.settings.slack_digest_max_leads
    if limit < 1:
        raise InvalidInput("digest_room")
    links = SlackChannel.filter(active=True, partner__active=True).select_related("partner")
    if actor.tenant_id is not None:
        links = links.filter(tenant_id=actor.tenant_id)
    channels = messages = leads_posted = 0
    for link in await links.order_by("id"):
        parts, count = await queue_channel_digest(uow, link, limit)
        if parts:
            channels += 1
            messages += parts
            leads_posted += count
    return Reply(
        True,
        "slack_digests",
        {"channels": channels, "messages": messages, "leads": leads_posted},
    )


async def queue_channel_digest(uow: UnitOfWork, link: SlackChannel, limit: int) -> tuple[int, int]:
    """Queue one channel's digest: the leads of its partner's pool not shown there yet (at
    most ``limit``), in messages of up to 49 leads. Returns (messages, leads)."""
    shown = Subquery(
        SlackMessageLead.filter(
            message__channel_id=link.channel_id, message__status__in=LIVE
        ).values("lead_id")
    )
    leads = (
        await pool_query(link.tenant_id, link.partner, uow.now).exclude(id__in=shown).limit(limit)
    )
    if not leads:
        return 0, 0
    parts = [leads[i : i + LEADS_PER_MESSAGE] for i in range(0, len(leads), LEADS_PER_MESSAGE)]
    for number, part in enumerate(parts, 1):
        # What the header says; the Slack renderer words it in the reader's language.
        title = json.dumps({"leads": len(leads), "part": number, "parts": len(parts)})
        message = await SlackMessage.create(
            tenant_id=link.tenant_id,
            partner_id=link.partner_id,
            kind="digest",
            team_id=link.team_id,
            channel_id=link.channel_id,
            title=title,
            created_at=uow.now,
        )
        await SlackMessageLead.bulk_create(
            [
                SlackMessageLead(message_id=message.id, lead_id=lead.id, position=i)
                for i, lead in enumerate(part)
            ]
        )
        slack(
            uow,
            tenant_id=link.tenant_id,
            kind="slack.digest",
            recipient=link.channel_id,
            method="lyra.post_message",
            args={"message": message.id},
            dedupe_key=f"slack:post:{message.id}",
        )
    uow.audit(
        "slack.digest",
        link.tenant_id,
        partner_id=link.partner_id,
        channel=link.channel_id,
        leads=len(leads),
        messages=len(parts),
    )
    return len(parts), len(leads)


queue_update = slack_update  # one posted message re-rendered when delivered


async def queue_message_updates(uow: UnitOfWork) -> None:
    """``before_commit`` hook: every live message showing a lead that changed gets an update."""
    if not uow.changed_leads:
        return
    ids = sorted(uow.changed_leads)
    found: set[tuple[int, str, int]] = set()
    for start in range(0, len(ids), CHUNK):
        found.update(
            await SlackMessageLead.filter(
                lead_id__in=ids[start : start + CHUNK], message__status__in=LIVE
            ).values_list("message_id", "message__channel_id", "message__tenant_id")
        )
    for message_id, channel_id, tenant_id in sorted(found):
        queue_update(uow, message_id, channel_id, tenant_id)
