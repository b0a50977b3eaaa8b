"""Acked Slack requests survive the process: stored before the ack, taken over after a crash.

A process killed after answering Slack's 200 and before handling the request is played by an
app whose workers never run (``_spawn`` does nothing); a fresh ``SlackApp`` on the same
database (another instance, or the service started again) then takes the stored request
over. A crash after the work committed but before the row was deleted is played by storing
the same request again: handling it twice changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from lyra_bot.adapters.slack.app import MAX_ATTEMPTS, SlackApp

from lyra_bot.models import Claim, Lead, SlackInbox
from tests.slack_harness import ALPINE_CHANNEL, Slack, slack  # noqa: F401

CUSTOMER_EMAIL = "anna@huber.example"
FORM = "application/x-www-form-urlencoded"


async def fresh_app(slack: Slack) -> SlackApp:  # noqa: F811
    """Another process's Slack app on the same database (not mounted: it only recovers)."""
    services = slack.services
    app = SlackApp(services.bus, services.settings, services.clock)
    await app.start()
    return app


async def settle(slack: Slack, app: SlackApp) -> None:  # noqa: F811
    await app.drain()
    await slack.settle()


async def replay(row: SlackInbox) -> None:
    """The same request stored again, as by a process killed before it deleted the row."""
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    await SlackInbox.create(
        body=row.body,
        query=row.query,
        headers=row.headers,
        received_at=long_ago,
        holder="dead-instance",
        taken_at=long_ago,
    )


async def test_click_acked_before_a_crash_is_handled_once_by_the_next_process(slack):  # noqa: F811
    await slack.digests()
    slack.app._spawn = lambda work: None  # type: ignore[method-assign]  # dies after the ack
    status, text = await slack.click("U0MIA", "lyra.claim", "L-1001")
    assert (status, text) == (200, "")
    [stored] = await SlackInbox.all()
    assert "lyra.claim" in stored.body and stored.holder == slack.app.holder
    lead = await Lead.get(ref="L-1001", tenant_id=slack.world.tenant_id)
    assert not await Claim.filter(lead_id=lead.id).exists()

    app = await fresh_app(slack)
    try:
        assert app.holder != slack.app.holder
        assert await app.recover() == 0  # not yet: its holder may still be working on it
        assert await app.recover(older_than=0) == 1
        recovered = app.bus.metrics.registry.get_sample_value
        assert recovered("lyra_slack_recovered_total", {"outcome": "queued"}) == 1
        await settle(slack, app)
        assert await Claim.filter(lead_id=lead.id).count() == 1
        [answer] = slack.ephemerals_to("U0MIA")
        assert answer["channel"] == ALPINE_CHANNEL and CUSTOMER_EMAIL in json.dumps(answer)
        assert await SlackInbox.all().count() == 0

        # Slack's own retry of the same click, and the row stored again (a crash after the
        # claim committed, before its row was deleted): neither claims or answers again.
        slack.app._spawn = SlackApp._spawn.__get__(slack.app)  # type: ignore[method-assign]
        sent, _ = await slack.send(stored.body, retry=1)
        assert sent == 200
        await replay(stored)
        assert await app.recover() == 1
        await settle(slack, app)
        assert await Claim.filter(lead_id=lead.id).count() == 1
        assert len(slack.ephemerals_to("U0MIA")) == 1
        assert await SlackInbox.all().count() == 0
    finally:
        await app.close()


async def test_answers_without_a_command_are_not_sent_twice_when_replayed(slack):  # noqa: F811
    bodies = [
        slack.sender.command_body("U0MIA", text, ALPINE_CHANNEL) for text in ("frobnicate", "help")
    ]
    for body in bodies:
        assert (await slack.send(body))[0] == 200
    await slack.settle()
    assert len(slack.ephemerals_to("U0MIA")) == 2

    # Both requests stored again, as if the process died before deleting their rows.
    for body in bodies:
        await replay(SlackInbox(body=body, query="", headers={"Content-Type": FORM}))
    assert await slack.app.recover() == 2
    await slack.settle()
    assert len(slack.ephemerals_to("U0MIA")) == 2
    assert await SlackInbox.all().count() == 0


async def test_a_request_bolt_failed_on_stays_stored_for_another_try(slack):  # noqa: F811
    await slack.digests()
    app = slack.app
    dispatch = app._dispatch

    async def broken(body: str, query: str, headers: object) -> int:
        return 500  # Lyra failed (the database away …): the row stays

    app._dispatch = broken  # type: ignore[method-assign]
    status, _ = await slack.click("U0MIA", "lyra.claim", "L-1001")
    assert status == 200
    await app.drain()
    [row] = await SlackInbox.all()
    assert row.attempts == 1

    app._dispatch = dispatch  # type: ignore[method-assign]
    assert await app.recover(older_than=0) == 1
    await slack.settle()
    assert await SlackInbox.all().count() == 0
    lead = await Lead.get(ref="L-1001", tenant_id=slack.world.tenant_id)
    assert await Claim.filter(lead_id=lead.id).count() == 1
    assert len(slack.ephemerals_to("U0MIA")) == 1


async def test_a_request_that_keeps_failing_is_dropped_and_counted(slack):  # noqa: F811
    await slack.digests()
    body = slack.sender.action_body("U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    await SlackInbox.create(
        body=body,
        query="",
        headers={"Content-Type": FORM},
        received_at=long_ago,
        holder="dead-instance",
        taken_at=long_ago,
        attempts=MAX_ATTEMPTS,  # taken and failed this often already
    )
    assert await slack.app.recover() == 0
    await slack.settle()
    assert await SlackInbox.all().count() == 0
    lead = await Lead.get(ref="L-1001", tenant_id=slack.world.tenant_id)
    assert not await Claim.filter(lead_id=lead.id).exists()
    value = slack.app.bus.metrics.registry.get_sample_value
    assert value("lyra_slack_recovered_total", {"outcome": "dropped"}) == 1
    assert value("lyra_slack_recovered_total", {"outcome": "queued"}) in (None, 0)
