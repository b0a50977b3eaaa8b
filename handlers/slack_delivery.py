"""What the Slack transport reports back: a digest message posted, updated or gone, and a
linked channel Lyra can no longer post to."""

from __future__ import annotations

from lyra_bot.handlers.common import require

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, DeactivateSlackChannel, RecordSlackDelivery, Role
from lyra_bot.domain import InvalidInput
from lyra_bot.models import SlackChannel, SlackMessage, SlackMessageStatus


@handles(RecordSlackDelivery)
async def record_slack_delivery(cmd: RecordSlackDelivery, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    rows = SlackMessage.filter(id=cmd.message_id)
    if cmd.outcome == "posted":
        message = await rows.first()
        if message is None:
            return Reply(True, "slack_delivery")
        await rows.update(
            ts=cmd.ts,
            team_id=cmd.team_id or message.team_id,
            status=SlackMessageStatus.POSTED,
            posted_at=uow.now,
            content_hash=cmd.content_hash or "",
        )
    elif cmd.outcome == "updated":
        await rows.update(content_hash=cmd.content_hash or "", updated_at=uow.now)
    elif cmd.outcome == "gone":
        await rows.update(status=SlackMessageStatus.GONE)
    elif cmd.outcome == "failed":
        await rows.update(status=SlackMessageStatus.FAILED)
    else:
        raise InvalidInput("bad_delivery_outcome", value=cmd.outcome)
    return Reply(True, "slack_delivery", {"outcome": cmd.outcome})


@handles(DeactivateSlackChannel)
async def deactivate_slack_channel(
    cmd: DeactivateSlackChannel, actor: Actor, uow: UnitOfWork
) -> Reply:
    """Digests stop until an owner links the channel again (``LinkSlackChannel``)."""
    require(actor, Role.SYSTEM)
    links = await SlackChannel.filter(channel_id=cmd.channel_id, active=True)
    if links:
        await SlackChannel.filter(id__in=[link.id for link in links]).update(active=False)
    for link in links:
        uow.audit(
            "slack.channel_deactivated",
            link.tenant_id,
            partner_id=link.partner_id,
            channel=cmd.channel_id,
            reason=cmd.reason,
        )
    return Reply(True, "slack_channel_deactivated", {"deactivated": len(links)})
