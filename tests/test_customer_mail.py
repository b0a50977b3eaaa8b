"""Customer mails come from the owner, in the customer's language, and only when useful."""

from __future__ import annotations

import pytest
from lyra_bot.adapters.email.smtp import build_mime

from lyra_bot import commands as c
from lyra_bot.models import OutboxMessage
from tests.world import build_world

MIA = "mia@alpine.example"
VOICE = {
    "sender_name": "Acme Vertrieb",
    "customer_from": "vertrieb@acme.example",
    "imprint_company": "Acme Security AG",
    "imprint_address": "Seestrasse 1, 8002 Zürich",
    "privacy_url": "https://acme.example/datenschutz",
}


async def test_customer_mails_come_from_the_owner_with_its_imprint(bus):
    world = await build_world(bus)
    await world.ok(c.UpdateTenant(**VOICE, customer_reply_to="info@acme.example"), world.owner)
    await world.ok(c.ClaimLead("L-1001"), MIA)

    row = await OutboxMessage.get(kind="claim.customer")
    mime = build_mime(row, bus.settings)
    assert mime["From"] == "Acme Vertrieb <vertrieb@acme.example>"
    assert mime["Reply-To"] == "info@acme.example"
    for part in (row.payload["text"], row.payload["html"]):
        assert "Acme Security AG" in part and "Seestrasse 1, 8002 Zürich" in part
        assert "https://acme.example/datenschutz" in part
    # Partner and owner mails still come from Lyra.
    partner = build_mime(await OutboxMessage.get(kind="claim.partner"), bus.settings)
    assert "Acme Vertrieb" not in partner["From"]


async def test_without_options_the_customer_mail_comes_from_the_tenant_name(bus):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), MIA)
    mime = build_mime(await OutboxMessage.get(kind="claim.customer"), bus.settings)
    assert mime["From"].startswith("Acme <")
    assert "Lyra" not in mime["From"]


async def test_a_customer_in_zurich_reads_german_from_an_english_tenant(bus):
    world = await build_world(bus)  # tenant locale en; L-1001 is in CH-ZH, L-1004 in CH-GE
    await world.ok(c.ClaimLead("L-1001"), MIA)
    await world.ok(c.ClaimLead("L-1004"), MIA)
    zurich, geneva = [
        await OutboxMessage.get(kind="claim.customer", recipient=email)
        for email in ("anna@huber.example", "luc@lac.example")
    ]
    assert "Guten Tag Anna Huber" in zurich.payload["text"]
    assert "Bonjour Luc Favre" in geneva.payload["text"]
    assert "Hello" not in zurich.payload["text"] + geneva.payload["text"]


async def test_the_lead_s_own_language_wins(bus):
    world = await build_world(bus)
    reply = await world.ok(
        c.AddLead("Firewall", "CH-ZH", company="Rossi SA", email="r@rossi.example", locale="it"),
        world.owner,
    )
    await world.ok(c.ClaimLead(reply.data["lead"]["ref"]), MIA)
    row = await OutboxMessage.get(kind="claim.customer", recipient="r@rossi.example")
    assert row.payload["text"].startswith("Buongiorno,")


@pytest.mark.parametrize(
    ("policy", "outcome", "mailed"),
    [
        ("positive", "won", True),
        ("positive", "contacted", True),
        ("positive", "lost", False),
        ("positive", "not_qualified", False),
        ("positive", "duplicate", False),
        ("positive", "no_contact", False),
        ("all", "lost", True),
        ("all", "duplicate", True),
        ("none", "won", False),
    ],
)
async def test_after_feedback_the_customer_hears_only_what_makes_sense(
    bus, policy, outcome, mailed
):
    world = await build_world(bus)
    if policy != "positive":  # positive is the default
        await world.ok(c.UpdateTenant(customer_feedback_mails=policy), world.owner)
    await world.ok(c.ClaimLead("L-1001"), MIA)
    amount, reason = (
        ("12000", "") if outcome == "won" else (None, "price" if outcome == "lost" else "")
    )
    await world.ok(c.GiveFeedback("L-1001", outcome, amount, reason=reason), MIA)
    kinds = set(
        await OutboxMessage.filter(kind__startswith="feedback.").values_list("kind", flat=True)
    )
    assert ("feedback.customer" in kinds) is mailed
    assert {"feedback.owner", "feedback.partner"} <= kinds


async def test_tenant_options_are_checked_and_shown(bus):
    world = await build_world(bus)
    bad = await world.do(c.UpdateTenant(customer_feedback_mails="some"), world.owner)
    assert not bad.ok and "all, positive, none" in bad.message
    bad = await world.do(c.UpdateTenant(privacy_url="javascript:alert(1)"), world.owner)
    assert not bad.ok
    bad = await world.do(c.UpdateTenant(customer_from="not an address"), world.owner)
    assert not bad.ok
    await world.ok(c.UpdateTenant(**VOICE), world.owner)
    policy = (await world.ok(c.ShowTenant(), world.owner)).data["policy"]
    assert policy["sender_name"] == "Acme Vertrieb"
    assert policy["customer_feedback_mails"] == "positive"
    await world.ok(c.UpdateTenant(customer_from="none", privacy_url="none"), world.owner)
    policy = (await world.ok(c.ShowTenant(), world.owner)).data["policy"]
    assert (policy["customer_from"], policy["privacy_url"]) == ("none", "none")
