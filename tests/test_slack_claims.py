"""Claim buttons over real HTTP: ack at once, one winner, the customer only to the clicker,
every posted message updated, unknown people turned away, forged and retried requests."""

from __future__ import annotations

import asyncio
import json
import time

from lyra_bot import commands as c
from lyra_bot.domain import LeadStatus
from lyra_bot.models import Claim, Disclosure, InboundKey, Lead, OutboxMessage, User
from tests.slack_harness import ALPINE_CHANNEL, LAKESIDE_CHANNEL, slack  # noqa: F401
from tests.world import add_partner

CUSTOMER = ("Huber Maschinen AG", "Anna Huber", "anna@huber.example", "+41 44 555 01 01")


def texts(call: dict) -> str:
    return json.dumps(call, ensure_ascii=False)


async def digest_ts(slack, channel: str) -> str:  # noqa: F811
    messages = {m.channel_id: m for m in await slack.digests()}
    return messages[channel].ts


async def test_button_claim_gives_the_customer_to_the_clicker_only(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)

    started = time.perf_counter()
    status, body = await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)
    acked = time.perf_counter() - started
    assert status == 200 and body == "" and acked < 1.0
    await slack.settle()

    [answer] = slack.fake.of("chat.postEphemeral")
    assert answer["user"] == "U0MIA" and answer["channel"] == ALPINE_CHANNEL
    assert all(value in texts(answer) for value in CUSTOMER)
    assert "lyra.feedback" in texts(answer)
    others = [
        call
        for call in slack.fake.calls
        if not (call.method == "chat.postEphemeral" and call.args["user"] == "U0MIA")
    ]
    assert not any(value in texts(call.args) for call in others for value in CUSTOMER)
    lead = await Lead.get(ref="L-1001", tenant_id=slack.world.tenant_id)
    assert lead.status == LeadStatus.CLAIMED
    claim = await Claim.get(lead_id=lead.id)
    assert claim.channel == "slack"
    assert {u["channel"] for u in slack.fake.of("chat.update")} == {
        ALPINE_CHANNEL,
        LAKESIDE_CHANNEL,
    }
    # The privacy log knows who saw the customer in Slack (the mail is logged on its own).
    [shown] = await Disclosure.filter(lead_id=lead.id, channel="slack")
    assert (shown.recipient, shown.purpose) == ("mia@alpine.example", "slack ClaimLead")
    assert {"company", "email", "phone"} <= set(shown.fields_shown)


async def test_thirty_concurrent_clicks_by_different_partners_have_one_winner(slack):  # noqa: F811
    world = slack.world
    users = []
    for i in range(30):
        email = f"u{i}@p{i}.example"
        await add_partner(slack.services.bus, world.owner, f"p{i}", ("*",), ("CH",), (email,))
        slack_user = f"U0P{i:03d}"
        await world.ok(c.LinkSlackUser(email, "T0LYRA", slack_user), world.owner)
        users.append(slack_user)
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    bodies = [
        slack.sender.action_body(
            user, "lyra.claim", "L-1001", channel=ALPINE_CHANNEL, message_ts=ts
        )
        for user in users
    ]

    results = await asyncio.gather(*(slack.send(body) for body in bodies))
    assert [status for status, _ in results] == [200] * 30
    await slack.settle()

    ephemerals = slack.fake.of("chat.postEphemeral")
    similar = [a for a in ephemerals if a["text"].startswith("Similar leads")]
    answers = [a for a in ephemerals if a not in similar]
    assert sorted(a["user"] for a in answers) == sorted(users)  # each clicker, once
    winners = [a for a in answers if "anna@huber.example" in texts(a)]
    assert len(winners) == 1
    losers = [a for a in answers if a not in winners]
    assert len(losers) == 29 and all(" been taken by another partner." in a["text"] for a in losers)
    assert all("anna@huber.example" not in texts(a) for a in losers + similar)
    assert sorted(a["user"] for a in similar) == sorted(a["user"] for a in losers)
    assert all('"value": "L-1002"' in texts(a) for a in similar)  # other leads to claim
    lead = await Lead.get(ref="L-1001", tenant_id=world.tenant_id)
    [claim] = await Claim.filter(lead_id=lead.id)
    assert (await User.get(id=claim.user_id)).slack_user_id == winners[0]["user"]
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1
    alpine = slack.fake.message(ALPINE_CHANNEL, ts)
    assert "Taken" in json.dumps(alpine) and '"value": "L-1001"' not in json.dumps(alpine)


async def test_refusals_are_answered_clearly(slack):  # noqa: F811
    ts = await digest_ts(slack, LAKESIDE_CHANNEL)
    world = slack.world
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await slack.settle()
    await slack.click("U0TOM", "lyra.claim", "L-1001", channel=LAKESIDE_CHANNEL, message_ts=ts)
    await slack.click("U0TOM", "lyra.claim", "L-1002", channel=LAKESIDE_CHANNEL, message_ts=ts)
    await slack.click("U0MAX", "lyra.claim", "L-1001", channel=LAKESIDE_CHANNEL, message_ts=ts)
    await slack.settle()

    answers = {a["user"] + ":" + a["text"] for a in slack.fake.of("chat.postEphemeral")}
    assert "U0TOM:Sorry, L-1001 has already been taken by another partner." in answers
    assert "U0TOM:L-1002 is not in your products or regions." in answers
    assert "U0MAX:You already hold L-1001." in answers  # Max's partner holds it, whatever channel
    assert await Claim.all().count() == 1


async def test_unknown_user_is_told_and_nothing_else_happens(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    calls_before = len(slack.fake.calls)

    status, _ = await slack.click("U0NOBODY", "lyra.claim", "L-1001", message_ts=ts)
    assert status == 200
    await slack.settle()

    [answer] = slack.fake.of("chat.postEphemeral")
    assert answer["user"] == "U0NOBODY" and "does not know you" in answer["text"]
    methods = [call.method for call in slack.fake.calls[calls_before:]]
    assert sorted(methods) == ["auth.test", "chat.postEphemeral", "users.info"]
    assert await Claim.all().count() == 0


async def test_first_contact_links_a_verified_email_of_our_workspace(slack):  # noqa: F811
    world = slack.world
    await world.ok(c.AddUser("ina@alpine.example", "Ina", "alpine"), world.owner)
    slack.fake.add_user("U0INA", "Ina@Alpine.example")
    ts = await digest_ts(slack, ALPINE_CHANNEL)

    await slack.click("U0INA", "lyra.claim", "L-1002", message_ts=ts)
    await slack.settle()

    ina = await User.get(email="ina@alpine.example")
    assert (ina.slack_team_id, ina.slack_user_id) == ("T0LYRA", "U0INA")
    [answer] = slack.fake.of("chat.postEphemeral")
    assert "You have claimed L-1002" in answer["text"]
    await slack.click("U0INA", "lyra.claim", "L-1003", message_ts=ts)
    await slack.settle()
    assert len(slack.fake.of("users.info")) == 1  # stored: no second lookup


async def test_unconfirmed_and_other_organisations_emails_are_not_trusted(slack):  # noqa: F811
    world = slack.world
    for email in ("ina@alpine.example", "ole@alpine.example"):
        await world.ok(c.AddUser(email, "", "alpine"), world.owner)
    slack.fake.add_user("U0INA", "ina@alpine.example", is_email_confirmed=False)
    # Slack Connect: a person of another organisation in a shared channel.
    slack.fake.add_user("U0OLE", "ole@alpine.example", team="T0OTHER")
    ts = await digest_ts(slack, ALPINE_CHANNEL)

    await slack.click("U0INA", "lyra.claim", "L-1002", message_ts=ts)
    await slack.click("U0OLE", "lyra.claim", "L-1002", message_ts=ts, user_team="T0OTHER")
    await slack.settle()

    assert all("does not know you" in a["text"] for a in slack.fake.of("chat.postEphemeral"))
    assert await User.filter(slack_user_id__in=["U0INA", "U0OLE"]).count() == 0
    assert await Claim.all().count() == 0

    # An owner may link the other organisation's person explicitly.
    await world.ok(c.LinkSlackUser("ole@alpine.example", "T0OTHER", "U0OLE"), world.owner)
    await slack.click("U0OLE", "lyra.claim", "L-1002", message_ts=ts, user_team="T0OTHER")
    await slack.settle()
    assert "You have claimed L-1002" in slack.fake.of("chat.postEphemeral")[-1]["text"]


async def test_button_of_another_owners_message_does_not_claim_own_namesake(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)  # acme's message: L-1001 is acme's lead
    await slack.world.ok(
        c.LinkSlackUser("gus@gamma.example", "T0LYRA", "U0GUS"), slack.world.other_owner
    )

    await slack.click("U0GUS", "lyra.claim", "L-1001", message_ts=ts)  # globex has an L-1001 too
    await slack.settle()

    [answer] = slack.fake.of("chat.postEphemeral")
    assert answer["user"] == "U0GUS" and "owner you do not work with" in answer["text"]
    assert await Claim.all().count() == 0


async def test_forged_or_stale_requests_get_401_and_change_nothing(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    body = slack.sender.action_body(
        "U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL, message_ts=ts
    )
    tampered = body.replace("L-1001", "L-1002")

    bad_signature = await slack.send(tampered, headers=slack.sender.headers(body))
    stale = await slack.send(body, ts=int(time.time()) - 301)
    unsigned = await slack.sender.post(
        slack.session, body, headers={"X-Slack-Signature": "", "X-Slack-Request-Timestamp": ""}
    )
    await slack.settle()

    ssl_check = await slack.sender.post(
        slack.session, "ssl_check=1&token=legacy", headers={"X-Slack-Signature": "v0=bad"}
    )
    assert ssl_check[0] == 200  # Slack's certificate check is answered, and does nothing
    assert [bad_signature[0], stale[0], unsigned[0]] == [401, 401, 401]
    assert await Claim.all().count() == 0
    assert slack.fake.of("chat.postEphemeral") == []


async def test_retried_request_is_processed_once(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    body = slack.sender.action_body(
        "U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL, message_ts=ts
    )

    first = await slack.send(body)
    await slack.settle()
    retry = await slack.send(body, retry=1)
    await slack.settle()

    assert first[0] == retry[0] == 200
    assert await Claim.all().count() == 1
    assert len(slack.fake.of("chat.postEphemeral")) == 1
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1


async def test_rate_limited_answer_is_delivered_after_retry_after(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    slack.fake.rate_limit_next("chat.postEphemeral", retry_after=1)

    await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)
    await slack.settle()

    attempts = [call for call in slack.fake.calls if call.method == "chat.postEphemeral"]
    assert len(attempts) == 2
    assert attempts[1].at - attempts[0].at >= 1.0
    row = await OutboxMessage.get(kind="slack.answer")
    assert row.status == "sent" and row.attempts == 1


async def test_answer_goes_to_the_users_dm_where_no_ephemeral_is_possible(slack):  # noqa: F811
    slack.fake.fail_next("chat.postEphemeral", "not_in_channel")

    await slack.command("U0MIA", "claim L-1001", channel="C0ELSEWHERE")
    await slack.settle()

    [dm] = slack.fake.of("chat.postMessage")
    assert dm["channel"] == "U0MIA" and "anna@huber.example" in texts(dm)


async def test_messages_to_one_channel_keep_their_order(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    slack.fake.fail_next("chat.update", "internal_error")
    await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)  # update, then answer
    await slack.settle()

    def alpine() -> list[str]:
        return [
            call.method
            for call in slack.fake.calls
            if call.args.get("channel") == ALPINE_CHANNEL and call.method != "chat.postMessage"
        ]

    assert alpine() == ["chat.update"]  # the answer waits behind the update that failed
    assert [u["channel"] for u in slack.fake.of("chat.update")][1:] == [LAKESIDE_CHANNEL]

    slack.services.clock.advance(minutes=5)  # type: ignore[attr-defined]
    await slack.settle()
    assert alpine() == ["chat.update", "chat.update", "chat.postEphemeral"]
    assert await InboundKey.filter(key__startswith="slack:").count() == 1


async def test_erasing_the_customer_leaves_no_copy_in_slack_rows(slack):  # noqa: F811
    ts = await digest_ts(slack, ALPINE_CHANNEL)
    await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)
    await slack.command("U0MIA", "mine")
    await slack.settle()
    assert "anna@huber.example" in texts(slack.fake.of("chat.postEphemeral")[-1])  # rendered

    await slack.world.ok(c.EraseCustomerData("anna@huber.example"), slack.world.owner)

    rows = await OutboxMessage.filter(channel="slack").values_list("payload", flat=True)
    assert rows and not any(value in json.dumps(rows) for value in CUSTOMER)
