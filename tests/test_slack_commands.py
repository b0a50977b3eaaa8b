"""The feedback modal, ``/lyra`` and App Home, over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lyra_bot.adapters.slack.app import validate_feedback

from lyra_bot import commands as c
from lyra_bot.domain import ClaimState
from lyra_bot.models import Claim, Feedback, InboundKey
from tests.slack_harness import ALPINE_CHANNEL, slack  # noqa: F401


async def open_modal(slack, ref: str = "L-1001") -> dict:  # noqa: F811
    await slack.world.ok(c.ClaimLead(ref), "mia@alpine.example")
    status, _ = await slack.click("U0MIA", "lyra.feedback", ref)
    assert status == 200
    await slack.settle()
    return slack.fake.of("views.open")[-1]


async def submit(slack, metadata: str, **values: str) -> tuple[int, dict | str]:  # noqa: F811
    fields = {"outcome": "", "amount": "", "currency": "CHF", "reason": "", "note": ""}
    status, body = await slack.send(
        slack.sender.submission_body("U0MIA", metadata, {**fields, **values})
    )
    return status, json.loads(body) if body else ""


async def test_feedback_button_opens_a_modal_with_ids_only(slack):  # noqa: F811
    opened = await open_modal(slack)

    assert opened["trigger_id"]
    view = opened["view"]
    assert view["callback_id"] == "lyra.feedback" and view["type"] == "modal"
    assert [b.get("block_id") for b in view["blocks"][1:]] == [
        "outcome",
        "amount",
        "currency",
        "reason",
        "note",
    ]
    meta = json.loads(view["private_metadata"])
    assert set(meta) == {"t", "r", "c", "h"}
    assert meta["t"] == slack.world.tenant_id and meta["r"] == "L-1001"
    assert meta["c"] == ALPINE_CHANNEL
    assert "Huber" not in json.dumps(view)


async def test_modal_validation_errors_come_back_in_the_modal(slack):  # noqa: F811
    meta = (await open_modal(slack))["view"]["private_metadata"]

    cases = [
        ({}, {"outcome": "Please choose an outcome."}),
        ({"outcome": "won", "amount": "a lot"}, {"amount": "'a lot' is not an amount."}),
        ({"outcome": "won", "amount": "5", "currency": "francs"}, "currency"),
        ({"outcome": "won"}, "amount"),  # the handler's rule: won needs an amount
        ({"outcome": "lost"}, "reason"),  # lost needs a reason
    ]
    for values, expected in cases:
        status, body = await submit(slack, meta, **values)
        assert status == 200 and body["response_action"] == "errors", values
        if isinstance(expected, dict):
            assert body["errors"] == expected
        else:
            assert list(body["errors"]) == [expected], body
    await slack.settle()
    assert await Feedback.all().count() == 0
    assert slack.fake.of("chat.postEphemeral") == []

    status, body = await submit(slack, meta, outcome="won", amount="12'000", note="signed")
    assert (status, body) == (200, "")
    await slack.settle()
    feedback = await Feedback.get()
    assert (feedback.outcome, str(feedback.amount), feedback.currency, feedback.channel) == (
        "won",
        "12000.00",
        "CHF",
        "slack",
    )
    [thanks] = slack.fake.of("chat.postEphemeral")
    assert thanks["user"] == "U0MIA" and "recorded as won" in thanks["text"]
    assert await Claim.filter(state=ClaimState.CLOSED).count() == 1


async def test_modal_of_someone_who_does_not_hold_the_lead(slack):  # noqa: F811
    meta = (await open_modal(slack))["view"]["private_metadata"]
    body = slack.sender.submission_body("U0TOM", meta, {"outcome": "no_contact", "currency": "CHF"})
    status, raw = await slack.send(body)
    assert status == 200 and json.loads(raw)["errors"] == {"outcome": "You do not hold L-1001."}
    status, raw = await submit(slack, "not json", outcome="won", amount="1")
    assert status == 200 and "out of date" in raw["errors"]["outcome"]


def test_validate_feedback_uses_the_domain_rules():
    assert validate_feedback({"outcome": "gewonnen", "amount": "12'000"}) == {}  # as in mail
    assert validate_feedback({"outcome": "gewonnen", "amount": "1'0"}) == {
        "amount": "'1'0' is not an amount."
    }
    assert validate_feedback({"outcome": "perdu", "currency": "eur"}) == {}
    assert "outcome" in validate_feedback({"outcome": "maybe"})


async def test_slash_command_lists_and_claims_and_releases(slack):  # noqa: F811
    for text in ("leads", "claim l-1003", "mine", "release L-1003 not our customer", "help"):
        assert await slack.command("U0MIA", text) == 200
        await slack.settle()

    answers = [a for a in slack.fake.of("chat.postEphemeral")]
    assert all(a["user"] == "U0MIA" and a["channel"] == ALPINE_CHANNEL for a in answers)
    leads, claimed, mine, released, helped = answers
    assert leads["text"] == "4 leads in your pool."
    buttons = [
        b["accessory"]["value"] for b in leads["blocks"] if b.get("accessory", {}).get("value")
    ]
    assert buttons == ["L-1001", "L-1002", "L-1003", "L-1004"]
    assert "limmat.example" not in json.dumps(leads)  # teasers only
    assert "You have claimed L-1003" in claimed["text"]
    assert mine["text"] == "You hold 1 lead." and "sara@limmat.example" in json.dumps(mine)
    assert "<!date^" in json.dumps(mine)  # deadlines in each reader's own time zone
    assert released["text"] == "L-1003 is back in the pool. Thank you."
    assert "/lyra" in json.dumps(helped)
    claim = await Claim.get(lead__ref="L-1003", lead__tenant_id=slack.world.tenant_id)
    assert claim.state == ClaimState.RELEASED


async def test_slash_command_feedback_and_mistakes(slack):  # noqa: F811
    await slack.world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    for text in ("feedback L-1001", "feedback", "claim x-y-z", "frobnicate", "report"):
        await slack.command("U0MIA", text)
        await slack.settle()

    [opened] = slack.fake.of("views.open")
    assert json.loads(opened["view"]["private_metadata"])["c"] == ALPINE_CHANNEL
    answers = [a["text"] for a in slack.fake.of("chat.postEphemeral")]
    assert answers[0].startswith("Say which lead")
    assert answers[1] == "'x-y-z' is not a lead reference (like L-1042)."
    assert answers[2].startswith("I do not know 'frobnicate'")
    assert answers[3] == "Only the owner's staff can see the report."


async def test_report_for_owner_staff_in_slack(slack, clock):  # noqa: F811
    world = slack.world
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await world.ok(c.GiveFeedback("L-1001", "won", "5000"), "mia@alpine.example")
    clock.advance(days=7)
    await world.ok(c.ClaimLead("L-1003"), "mia@alpine.example")
    for text in ("report", "report last", "report 2026-11-02..2026-11-15", "report W99"):
        await slack.command("U0BOSS", text)
        await slack.settle()

    this, last, both, bad = slack.ephemerals_to("U0BOSS")
    assert this["text"] == "Weekly report · Acme · Week 46, 9–15 Nov 2026 (so far)"
    week = "\n".join(b["text"]["text"] for b in last["blocks"])
    assert last["text"] == "Weekly report · Acme · Week 45, 2–8 Nov 2026"
    for line in ("• Leads added: *5* (+5)", "• Claims: *1* (+1)", "• Won: *1* (+1)",
                 "• Revenue CHF: *CHF\xa05'000.00*", "• Alpine: Claims 1 · Lapses 0"):  # fmt: skip
        assert line in week, line
    assert "Claims: *2*" in json.dumps(both, ensure_ascii=False)
    assert both["text"].startswith("Report · Acme · 2–15 Nov 2026")
    assert bad["text"] == "'W99' is not a week like 2026-W48 (or this, last)."

    await slack.send(slack.sender.event_body("U0BOSS"), json_body=True)  # App Home
    await slack.settle()
    [home] = [p for p in slack.fake.of("views.publish") if p["user_id"] == "U0BOSS"]
    shown = json.dumps(home["view"], ensure_ascii=False)
    assert "Week 46, 9–15 Nov 2026 (so far)" in shown and "• Claims: *1* (±0)" in shown


async def test_the_owners_report_reaches_its_slack_channel(slack, clock):  # noqa: F811
    world = slack.world
    await world.ok(c.UpdateTenant(slack_owner_channel="C0OWNERS"), world.owner)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.set(datetime(2026, 11, 9, 7, 0, tzinfo=UTC))  # Monday 08:00 in Zurich
    result = await slack.services.scheduler.run_job("owner-report")
    assert "acme 2026-W45" in result.message
    await slack.settle()
    [posted] = [p for p in slack.fake.of("chat.postMessage") if p["channel"] == "C0OWNERS"]
    assert posted["text"] == "Weekly report · Acme · Week 45, 2–8 Nov 2026"
    assert "• Claims: *1* (+1)" in json.dumps(posted["blocks"], ensure_ascii=False)
    again = await slack.services.scheduler.run_job("owner-report")
    await slack.settle()
    assert again.count == 0
    assert len([p for p in slack.fake.of("chat.postMessage") if p["channel"] == "C0OWNERS"]) == 1


async def test_app_home_shows_open_claims_and_waiting_leads(slack):  # noqa: F811
    await slack.world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    body = slack.sender.event_body("U0MIA")

    status, _ = await slack.send(body, json_body=True)
    assert status == 200
    await slack.settle()
    retry, _ = await slack.send(body, json_body=True, retry=1)
    await slack.settle()

    assert retry == 200
    [published] = slack.fake.of("views.publish")  # the retry did nothing
    assert published["user_id"] == "U0MIA"
    view = json.dumps(published["view"])
    assert "*3* leads waiting in your pool" in view
    assert "L-1001" in view and "Huber Maschinen AG" in view and "lyra.feedback" in view
    assert await InboundKey.filter(key__startswith="slack:T0LYRA:Ev").count() == 1

    await slack.send(slack.sender.event_body("U0STRANGER"), json_body=True)
    await slack.settle()
    assert "does not know you" in json.dumps(slack.fake.of("views.publish")[-1]["view"])


async def test_feedback_from_app_home_refreshes_it(slack):  # noqa: F811
    await slack.world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await slack.click("U0MIA", "lyra.feedback", "L-1001", home=True)
    await slack.settle()
    meta = slack.fake.of("views.open")[-1]["view"]["private_metadata"]
    assert json.loads(meta)["c"] == "" and json.loads(meta)["h"] == 1

    status, _ = await submit(slack, meta, outcome="no_contact")
    assert status == 200
    await slack.settle()

    [published] = slack.fake.of("views.publish")
    assert "You hold no leads awaiting feedback" in json.dumps(published["view"])
    [thanks] = slack.fake.of("chat.postMessage")  # no channel on App Home: a DM
    assert thanks["channel"] == "U0MIA" and "recorded as could not reach them" in thanks["text"]
