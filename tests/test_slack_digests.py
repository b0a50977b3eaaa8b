"""Slack digests: teasers with Claim buttons, split at Block Kit's limit, recorded, and kept in
step with every change of their leads, whichever channel caused it."""

from __future__ import annotations

import json
from typing import Any

from lyra_bot import commands as c
from lyra_bot.domain import OutboxStatus
from lyra_bot.models import (
    AuditEvent,
    OutboxMessage,
    SlackMessage,
    SlackMessageLead,
    SlackMessageStatus,
)
from tests.slack_harness import ALPINE_CHANNEL, LAKESIDE_CHANNEL, slack  # noqa: F401

PRIVATE = ("Huber", "Anna", "anna@huber.example", "555 01 01", "Street 1", "private note")


def lead_block(message: dict[str, Any], ref: str) -> dict[str, Any]:
    [block] = [b for b in message["blocks"] if b.get("block_id") == f"lead:{ref}"]
    return block


def button(block: dict[str, Any]) -> tuple[str, str] | None:
    accessory = block.get("accessory")
    return (accessory["action_id"], accessory["value"]) if accessory else None


async def test_digest_shows_teasers_with_a_claim_button_per_lead(slack):  # noqa: F811
    messages = await slack.digests()

    posted = {m["channel"]: m for m in slack.fake.of("chat.postMessage")}
    assert set(posted) == {ALPINE_CHANNEL, LAKESIDE_CHANNEL}
    alpine = posted[ALPINE_CHANNEL]
    refs = [b["block_id"] for b in alpine["blocks"] if b["type"] == "section"]
    assert refs == ["lead:L-1001", "lead:L-1002", "lead:L-1003", "lead:L-1004"]  # CH only
    for ref in ("L-1001", "L-1002", "L-1003", "L-1004"):
        assert button(lead_block(alpine, ref)) == ("lyra.claim", ref)
    assert "L-1001 Firewall CH-ZH" in alpine["text"]  # the notification fallback
    lakeside = posted[LAKESIDE_CHANNEL]  # Firewall in CH-ZH only
    assert [b.get("block_id") for b in lakeside["blocks"][1:]] == ["lead:L-1001"]
    everything = json.dumps(slack.fake.of("chat.postMessage"))
    assert not any(secret in everything for secret in PRIVATE)

    assert {(m.channel_id, m.status) for m in messages} == {
        (ALPINE_CHANNEL, SlackMessageStatus.POSTED),
        (LAKESIDE_CHANNEL, SlackMessageStatus.POSTED),
    }
    [alpine_row] = [m for m in messages if m.channel_id == ALPINE_CHANNEL]
    assert alpine_row.ts and alpine_row.team_id == "T0LYRA"
    shown = await SlackMessageLead.filter(message_id=alpine_row.id).order_by("position")
    assert len(shown) == 4

    # A second run posts nothing: every lead has been shown in its channel.
    again = await slack.services.bus.dispatch(c.PostSlackDigests(), c.Actor.system())
    assert again.data["messages"] == 0
    await slack.settle()
    assert len(slack.fake.of("chat.postMessage")) == 2


async def test_big_digest_is_split_at_fifty_blocks_and_new_leads_follow_later(slack):  # noqa: F811
    world = slack.world
    csv = "product,region,need,email\n" + "".join(
        f"VPN,CH-BE,need {i},c{i}@x.example\n" for i in range(120)
    )
    await world.ok(c.ImportLeads(csv), world.owner)

    await slack.digests()

    alpine = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == ALPINE_CHANNEL]
    assert [len(m["blocks"]) for m in alpine] == [50, 50, 27]  # header + 49, 49, 26 leads
    assert all(len(m["blocks"]) <= 50 for m in alpine)
    assert alpine[0]["blocks"][0]["text"]["text"] == "124 new leads for Alpine (1/3)"
    await world.ok(c.AddLead("VPN", "CH-ZH", need="fresh"), world.owner)
    await slack.digests()
    alpine = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == ALPINE_CHANNEL]
    assert len(alpine) == 4 and "fresh" in json.dumps(alpine[-1]["blocks"])


async def test_claim_by_email_updates_every_message_showing_the_lead(slack):  # noqa: F811
    world = slack.world
    messages = {m.channel_id: m for m in await slack.digests()}
    tom = world.actors["tom@lakeside.example"]
    email_actor = c.Actor.partner_user(tom.tenant_id, tom.partner_id, tom.user_id, "email")

    await world.ok(c.ClaimLead("L-1001"), email_actor, key="<reply-1@mail.example>")
    await slack.settle()

    updates = {u["channel"]: u for u in slack.fake.of("chat.update")}
    assert set(updates) == {ALPINE_CHANNEL, LAKESIDE_CHANNEL}
    alpine = slack.fake.message(ALPINE_CHANNEL, messages[ALPINE_CHANNEL].ts)
    taken = lead_block(alpine, "L-1001")
    assert button(taken) is None and "Taken" in taken["text"]["text"]
    assert "Lakeside" not in json.dumps(alpine)  # who took it is not the other team's business
    assert button(lead_block(alpine, "L-1002")) == ("lyra.claim", "L-1002")
    ours = lead_block(slack.fake.message(LAKESIDE_CHANNEL, messages[LAKESIDE_CHANNEL].ts), "L-1001")
    assert "Claimed by Tom" in ours["text"]["text"]
    assert button(ours) == ("lyra.feedback", "L-1001")
    assert not any(secret in json.dumps(slack.fake.of("chat.update")) for secret in PRIVATE)


async def test_lapsed_lead_gets_its_button_back_and_withdrawn_loses_it(slack, clock):  # noqa: F811
    world = slack.world
    messages = {m.channel_id: m for m in await slack.digests()}
    await world.ok(c.ClaimLead("L-1001"), "tom@lakeside.example")
    await slack.settle()

    clock.advance(hours=49)  # past the 48 h deadline
    await world.ok(c.ExpireOverdue(), c.Actor.system())
    await slack.settle()
    alpine = slack.fake.message(ALPINE_CHANNEL, messages[ALPINE_CHANNEL].ts)
    assert button(lead_block(alpine, "L-1001")) == ("lyra.claim", "L-1001")
    lakeside = slack.fake.message(LAKESIDE_CHANNEL, messages[LAKESIDE_CHANNEL].ts)
    block = lead_block(lakeside, "L-1001")  # the partner that let it lapse waits its turn
    assert button(block) is None and "other partners" in block["text"]["text"]

    await world.ok(c.WithdrawLead("L-1001", "customer bought elsewhere"), world.owner)
    await slack.settle()
    for channel in (ALPINE_CHANNEL, LAKESIDE_CHANNEL):
        block = lead_block(slack.fake.message(channel, messages[channel].ts), "L-1001")
        assert button(block) is None and "Withdrawn" in block["text"]["text"]


async def test_change_before_the_digest_is_delivered_is_shown(slack, clock):  # noqa: F811
    world = slack.world
    await slack.services.bus.dispatch(c.PostSlackDigests(), c.Actor.system())
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")  # queued, not posted yet

    await slack.settle()

    [alpine] = slack.fake.of("chat.postMessage")  # Lakeside's only lead is gone: no digest
    assert alpine["channel"] == ALPINE_CHANNEL
    assert button(lead_block(alpine, "L-1001")) == ("lyra.feedback", "L-1001")
    assert slack.fake.of("chat.update") == []  # rendered at delivery: nothing left to update
    lakeside = await SlackMessage.get(channel_id=LAKESIDE_CHANNEL)
    assert lakeside.status == SlackMessageStatus.GONE and lakeside.ts is None

    clock.advance(hours=49)
    await world.ok(c.ExpireOverdue(), c.Actor.system())
    await slack.digests()  # back in the pool: Lakeside's next digest offers it
    assert [m["channel"] for m in slack.fake.of("chat.postMessage")][1:] == [LAKESIDE_CHANNEL]


async def test_deleted_message_or_channel_is_tolerated(slack):  # noqa: F811
    world = slack.world
    messages = {m.channel_id: m for m in await slack.digests()}
    del slack.fake.messages[(ALPINE_CHANNEL, messages[ALPINE_CHANNEL].ts)]
    slack.fake.channels_gone.add(LAKESIDE_CHANNEL)

    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await slack.settle()

    statuses = dict(await SlackMessage.all().values_list("channel_id", "status"))
    assert statuses == {ALPINE_CHANNEL: "gone", LAKESIDE_CHANNEL: "gone"}
    updates = await OutboxMessage.filter(kind="slack.update").values_list("status", flat=True)
    assert updates and set(updates) == {OutboxStatus.SENT}
    await world.ok(c.ReleaseClaim("L-1001"), "mia@alpine.example")
    await slack.settle()
    assert await OutboxMessage.filter(kind="slack.update").count() == len(updates)


async def test_digest_to_a_channel_lyra_cannot_post_in_unlinks_it(slack):  # noqa: F811
    slack.fake.fail_next("chat.postMessage", "not_in_channel")
    await slack.digests()
    dead = await OutboxMessage.get(kind="slack.digest", status=OutboxStatus.DEAD)
    assert "not_in_channel" in dead.last_error
    alert = await OutboxMessage.get(kind="outbox.dead")
    assert alert.recipient == "owner@acme.example"
    assert dead.recipient == ALPINE_CHANNEL  # the first one posted
    # DeactivateSlackChannel: the owner can read in the audit trail why digests stopped.
    [event] = await AuditEvent.filter(kind="slack.channel_deactivated")
    assert (event.tenant_id, event.channel) == (slack.world.tenant_id, "slack")
    assert event.data == {"channel": ALPINE_CHANNEL, "reason": "not_in_channel"}

    await slack.world.ok(c.AddLead("Firewall", "CH-ZH"), slack.world.owner)
    await slack.digests()
    channels = [m["channel"] for m in slack.fake.of("chat.postMessage")]
    assert channels == [ALPINE_CHANNEL, LAKESIDE_CHANNEL, LAKESIDE_CHANNEL]  # alpine unlinked
