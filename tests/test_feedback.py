"""Feedback closes the claim, frees the slot and tells all three; contacted may be updated."""

from __future__ import annotations

from decimal import Decimal

from lyra_bot import commands as c
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import AuditEvent, Claim, Feedback, Lead, OutboxMessage


async def _claimed(bus, who="mia@alpine.example", ref="L-1001"):
    from tests.world import build_world

    world = await build_world(bus)
    await world.ok(c.ClaimLead(ref), who)
    return world


async def test_won_feedback_closes_claim_and_mails_all_three(bus):
    world = await _claimed(bus)
    reply = await world.ok(c.GiveFeedback("L-1001", "won", "12000.50", "eur"), "mia@alpine.example")

    assert reply.data == {
        "ref": "L-1001",
        "outcome": "won",
        "amount": "12000.50",
        "currency": "EUR",
    }
    claim = await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    assert claim.state == ClaimState.CLOSED
    assert (await claim.lead).status == LeadStatus.CLOSED
    feedback = await Feedback.get(claim_id=claim.id)
    assert (feedback.amount, feedback.currency, feedback.on_time) == (
        Decimal("12000.50"),
        "EUR",
        True,
    )
    kinds = await OutboxMessage.filter(kind__startswith="feedback.").values_list(
        "kind", "recipient"
    )
    assert sorted(kinds) == [
        ("feedback.customer", "anna@huber.example"),
        ("feedback.owner", "owner@acme.example"),
        ("feedback.partner", "mia@alpine.example"),
    ]
    owner_mail = await OutboxMessage.get(kind="feedback.owner")
    assert "€\xa012'000.50" in owner_mail.payload["text"]  # Babel, in the owner's locale
    assert await AuditEvent.filter(kind="feedback.given", lead_id=claim.lead_id).count() == 1


async def test_an_amount_in_any_channel_s_words_names_its_currency(bus):
    """The Slack modal, the CLI and the API pass the partner's text: "12.000,50 €" is EUR."""
    world = await _claimed(bus)
    won = c.GiveFeedback("L-1001", "won", "12.000,50 €", "CHF")
    refused = await world.do(won, "mia@alpine.example")
    assert not refused.ok and refused.data.get("field") == "currency"
    await world.ok(c.GiveFeedback("L-1001", "won", "12.000,50 €"), "mia@alpine.example")
    feedback = await Feedback.get()
    assert (feedback.amount, feedback.currency) == (Decimal("12000.50"), "EUR")


async def test_feedback_frees_the_slot(bus):
    world = await _claimed(bus)
    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
    assert (await world.do(c.ClaimLead("L-1003"), "mia@alpine.example")).code == "over_cap"
    await world.ok(c.GiveFeedback("L-1002", "not qualified"), "max@alpine.example")
    await world.ok(c.ClaimLead("L-1003"), "mia@alpine.example")


async def test_outcome_needs_its_details(bus):
    world = await _claimed(bus)
    for cmd, expected in (
        (c.GiveFeedback("L-1001", "won"), "amount"),
        (c.GiveFeedback("L-1001", "lost"), "why"),
        (c.GiveFeedback("L-1001", "maybe"), "not an outcome"),
        (c.GiveFeedback("L-1001", "won", "lots"), "not an amount"),
        (c.GiveFeedback("L-1001", "won", "-5"), "positive"),
        (c.GiveFeedback("L-1001", "won", "10", "euros"), "currency"),
    ):
        reply = await world.do(cmd, "mia@alpine.example")
        assert reply.code == "invalid_input" and expected in reply.message, (cmd, reply.message)
    assert await Feedback.all().count() == 0
    assert (
        await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    ).state == ClaimState.ACTIVE


async def test_only_the_claiming_partner_may_give_feedback(bus):
    world = await _claimed(bus)
    reply = await world.do(c.GiveFeedback("L-1001", "won", "1"), "tom@lakeside.example")
    assert reply.code == "not_your_lead"
    reply = await world.do(c.GiveFeedback("L-1002", "contacted"), "mia@alpine.example")
    assert reply.code == "not_your_lead"
    reply = await world.do(c.GiveFeedback("L-1001", "won", "1"), world.owner)
    assert reply.code == "forbidden"


async def test_contacted_can_later_become_won_and_is_reported(bus):
    world = await _claimed(bus)
    await world.ok(
        c.GiveFeedback("L-1001", "kontaktiert", note="Termin Dienstag"), "mia@alpine.example"
    )
    again = await world.do(c.GiveFeedback("L-1001", "contacted"), "mia@alpine.example")
    assert again.code == "invalid_input"

    reply = await world.ok(c.GiveFeedback("L-1001", "gagné", "8000"), "max@alpine.example")
    assert "updated" in reply.message
    outcomes = (
        await Feedback.filter(lead__ref="L-1001").order_by("id").values_list("outcome", flat=True)
    )
    assert outcomes == ["contacted", "won"]
    assert await AuditEvent.filter(kind="feedback.updated").count() == 1
    update_mails = await OutboxMessage.filter(kind__startswith="feedback.").count()
    assert update_mails == 3 + 2  # first feedback: all three; the update: owner and partner
    final = await world.do(
        c.GiveFeedback("L-1001", "lost", reason="changed mind"), "mia@alpine.example"
    )
    assert final.code == "not_your_lead"  # won is final


async def test_feedback_after_lapse_is_refused(bus, clock):
    world = await _claimed(bus)
    clock.advance(hours=49)
    await world.ok(c.ExpireOverdue(), world.owner)
    reply = await world.do(c.GiveFeedback("L-1001", "won", "5"), "mia@alpine.example")
    assert reply.code == "not_your_lead"
    assert await Feedback.all().count() == 0


async def test_late_feedback_before_the_sweep_counts_as_late(bus, clock):
    world = await _claimed(bus)
    clock.advance(hours=48, minutes=5)
    await world.ok(c.GiveFeedback("L-1001", "no contact"), "mia@alpine.example")
    assert (await Feedback.get()).on_time is False
    assert (await world.ok(c.ExpireOverdue(), world.owner)).data["expired"] == 0
    assert (await Lead.get(tenant_id=world.tenant_id, ref="L-1001")).status == LeadStatus.CLOSED
