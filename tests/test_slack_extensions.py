"""Reminders in Slack with Give feedback / Ask for more time, the extension modal, and the
owner's Approve / Decline buttons, over real HTTP with signed requests."""

from __future__ import annotations

import json
from datetime import timedelta

from lyra_bot import commands as c
from lyra_bot.domain import ExtensionStatus
from lyra_bot.models import AuditEvent, Claim, Extension, OutboxMessage
from tests.slack_harness import slack  # noqa: F401

EXTEND = "lyra.extend"


def posted_with(slack, action_id: str) -> list[tuple[str, str, dict]]:  # noqa: F811
    """(channel, ts, message) of every message in the fake Slack with a button ``action_id``."""
    return [
        (channel, ts, message)
        for (channel, ts), message in sorted(slack.fake.messages.items())
        if action_id in json.dumps(message.get("blocks") or [])
    ]


async def claim_of(slack, ref: str = "L-1001") -> Claim:  # noqa: F811
    return (
        await Claim.filter(lead__ref=ref, tenant_id=slack.world.tenant_id).order_by("-id").first()
    )


async def reminded(slack, clock) -> tuple[str, str]:  # noqa: F811
    """Mia claims L-1001 and, 24 h before the deadline, gets the reminder DM."""
    await slack.world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(hours=24)
    result = await slack.services.scheduler.run_job("send-reminders")
    assert result.count == 1
    await slack.settle()
    [(channel, ts, message)] = posted_with(slack, EXTEND)
    assert channel == "U0MIA"
    buttons = message["blocks"][1]["elements"]
    assert [(b["action_id"], b["text"]["text"], b["value"]) for b in buttons] == [
        ("lyra.feedback", "Give feedback", "L-1001"),
        (EXTEND, "Ask for more time", "L-1001"),
    ]
    assert "Feedback on L-1001 is due" in message["text"]
    return channel, ts


async def ask(slack, user: str, meta: str, days: str, reason: str = "") -> tuple[int, dict | str]:  # noqa: F811
    body = slack.sender.submission_body(user, meta, {"days": days, "reason": reason}, EXTEND)
    status, raw = await slack.send(body)
    return status, json.loads(raw) if raw else ""


async def open_extension(slack, channel: str, ts: str) -> str:  # noqa: F811
    status, _ = await slack.click("U0MIA", EXTEND, "L-1001", channel=channel, message_ts=ts)
    assert status == 200
    await slack.settle()
    view = slack.fake.of("views.open")[-1]["view"]
    assert view["callback_id"] == EXTEND
    assert [b.get("block_id") for b in view["blocks"][1:]] == ["days", "reason"]
    assert "Huber" not in json.dumps(view)  # ids only, teaser text
    return view["private_metadata"]


async def test_reminder_dm_buttons_open_feedback_and_grant_more_time(slack, clock):  # noqa: F811
    channel, ts = await reminded(slack, clock)
    before = (await claim_of(slack)).due_at

    status, _ = await slack.click(
        "U0MIA", "lyra.feedback", "L-1001", channel=channel, message_ts=ts
    )
    assert status == 200
    await slack.settle()
    assert slack.fake.of("views.open")[-1]["view"]["callback_id"] == "lyra.feedback"

    meta = await open_extension(slack, channel, ts)
    for days, field_error in (("abc", "whole number"), ("0", "whole number"), ("30", "1 to 14")):
        status, body = await ask(slack, "U0MIA", meta, days)
        assert status == 200 and body["response_action"] == "errors"
        assert field_error in body["errors"]["days"], body
    status, body = await ask(slack, "U0TOM", meta, "1")  # not tom's claim
    assert body["errors"]["days"] == "You do not hold L-1001."
    assert await Extension.all().count() == 0

    status, body = await ask(slack, "U0MIA", meta, "1", "customer on holiday")
    assert (status, body) == (200, "")
    await slack.settle()
    claim = await claim_of(slack)
    assert claim.due_at == before + timedelta(days=1)
    [answer] = [e for e in slack.ephemerals_to("U0MIA") if "More time granted" in e["text"]]
    assert answer["channel"] == channel
    told = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == "U0MIA"]
    assert "1 more day on L-1001" in told[-1]["text"]
    assert await OutboxMessage.filter(kind="extension.partner").count() == 1  # and by mail
    assert not posted_with(slack, "lyra.extension.approve")  # the owner had nothing to decide


async def test_owner_approves_in_a_dm_and_the_partner_is_told(slack, clock):  # noqa: F811
    channel, ts = await reminded(slack, clock)
    before = (await claim_of(slack)).due_at
    meta = await open_extension(slack, channel, ts)
    status, body = await ask(slack, "U0MIA", meta, "5", "waiting for <!channel> budget")
    assert (status, body) == (200, "")
    await slack.settle()
    assert any("You asked Acme for 5 more days" in e["text"] for e in slack.ephemerals_to("U0MIA"))

    [(owner_channel, owner_ts, request)] = posted_with(slack, "lyra.extension.approve")
    assert owner_channel == "U0BOSS"  # the owner's staff user linked to Slack, by DM
    assert "Alpine asks for 5 more days on L-1001" in request["text"]
    assert "&lt;!channel&gt;" in request["text"] and "<!channel>" not in request["text"]
    assert await OutboxMessage.filter(kind="extension.owner").count() == 1  # mail as before

    # A partner user cannot decide, not even with the owner's message in hand.
    await slack.click(
        "U0MIA", "lyra.extension.approve", "L-1001", channel=owner_channel, message_ts=owner_ts
    )
    await slack.settle()
    assert "Only the owner's staff" in slack.ephemerals_to("U0MIA")[-1]["text"]
    assert (await Extension.get()).status == ExtensionStatus.PENDING

    status, _ = await slack.click(
        "U0BOSS", "lyra.extension.approve", "L-1001", channel=owner_channel, message_ts=owner_ts
    )
    assert status == 200
    await slack.settle()
    assert (await claim_of(slack)).due_at == before + timedelta(days=5)
    updated = slack.fake.message(owner_channel, owner_ts)
    assert updated["text"].startswith("Approved by <@U0BOSS>: Approved: L-1001 is now due")
    assert "lyra.extension" not in json.dumps(updated["blocks"])  # the buttons are gone
    told = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == "U0MIA"]
    assert "5 more days on L-1001, granted by Acme" in told[-1]["text"]
    partner_mails = await OutboxMessage.filter(kind="extension.partner")
    assert len(partner_mails) == 1 and "granted" in partner_mails[0].payload["text"]

    # Clicking again finds nothing to decide, and says so.
    await slack.click(
        "U0BOSS", "lyra.extension.decline", "L-1001", channel=owner_channel, message_ts=owner_ts
    )
    await slack.settle()
    assert "No extension request is waiting" in slack.ephemerals_to("U0BOSS")[-1]["text"]
    assert (await Extension.get()).status == ExtensionStatus.APPROVED


async def test_owner_channel_gets_the_request_and_a_decline_is_told(slack, clock):  # noqa: F811
    await slack.world.ok(c.UpdateTenant(slack_owner_channel="C0OWNER"), slack.world.owner)
    channel, ts = await reminded(slack, clock)
    before = (await claim_of(slack)).due_at
    meta = await open_extension(slack, channel, ts)
    assert (await ask(slack, "U0MIA", meta, "3"))[0] == 200
    await slack.settle()
    [(owner_channel, owner_ts, _)] = posted_with(slack, "lyra.extension.decline")
    assert owner_channel == "C0OWNER"

    await slack.click(
        "U0BOSS", "lyra.extension.decline", "L-1001", channel=owner_channel, message_ts=owner_ts
    )
    await slack.settle()
    assert (await claim_of(slack)).due_at == before
    assert "Declined by" in slack.fake.message(owner_channel, owner_ts)["text"]
    told = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == "U0MIA"]
    assert "Acme declined more time on L-1001" in told[-1]["text"]
    assert await OutboxMessage.filter(kind="extension.partner").count() == 1
    kinds = await AuditEvent.filter(kind__startswith="extension.").values_list("kind", "channel")
    assert kinds == [("extension.requested", "slack"), ("extension.declined", "slack")]
