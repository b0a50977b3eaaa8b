"""Lapses, releases and withdrawals: the lead's way back to the pool (or out of it)."""

from __future__ import annotations

from lyra_bot import commands as c
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import AuditEvent, Claim, Lead, OutboxMessage
from tests.world import build_world


async def _state(world, ref):
    return (await Lead.get(tenant_id=world.tenant_id, ref=ref)).status


async def test_expire_overdue_returns_leads_and_tells_partner_and_owner(bus, clock):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(hours=1)
    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
    await world.ok(c.ClaimLead("L-1004"), "eve@romandie.example")

    clock.advance(hours=47, seconds=30)  # L-1001 is due, L-1002 and L-1004 not yet
    reply = await world.ok(c.ExpireOverdue(), c.Actor.system())
    assert reply.data["refs"] == ["L-1001"]
    assert await _state(world, "L-1001") == LeadStatus.OPEN
    assert await _state(world, "L-1002") == LeadStatus.CLAIMED

    clock.advance(hours=1)
    reply = await world.ok(c.ExpireOverdue(), c.Actor.system())
    assert sorted(reply.data["refs"]) == ["L-1002", "L-1004"]
    assert await Claim.filter(state=ClaimState.EXPIRED).count() == 3
    assert await AuditEvent.filter(kind="lead.lapsed").count() == 3
    lapse_mails = await OutboxMessage.filter(kind="lapse.partner").values_list(
        "recipient", flat=True
    )
    assert sorted(lapse_mails) == [
        "eve@romandie.example",
        "mia@alpine.example",
        "mia@alpine.example",
    ]
    owner_summaries = await OutboxMessage.filter(kind="lapse.owner").order_by("id")
    assert len(owner_summaries) == 2  # one per sweep
    assert (
        "L-1002" in owner_summaries[1].payload["text"]
        and "L-1004" in owner_summaries[1].payload["text"]
    )

    again = await world.ok(c.ExpireOverdue(), c.Actor.system())
    assert again.data["expired"] == 0
    assert await OutboxMessage.filter(kind__startswith="lapse.").count() == 5


async def test_lapsed_lead_is_hidden_from_its_partner_for_the_cooldown(bus, clock):
    world = await build_world(bus, lapse_cooldown_hours=24)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(hours=49)
    await world.ok(c.ExpireOverdue(), world.owner)

    pool = (await world.ok(c.ListPool(), "max@alpine.example")).data["leads"]
    assert "L-1001" not in [lead["ref"] for lead in pool]
    refused = await world.do(c.ClaimLead("L-1001"), "max@alpine.example")
    assert refused.code == "not_entitled" and "others get a turn" in refused.message
    assert "L-1001" in [
        lead["ref"] for lead in (await world.ok(c.ListPool(), "tom@lakeside.example")).data["leads"]
    ]

    clock.advance(hours=24, seconds=1)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")


async def test_sweep_works_in_batches_and_per_tenant(bus, clock):
    world = await build_world(bus, cap_open_claims=5)
    for ref in ("L-1001", "L-1002", "L-1003", "L-1004"):
        await world.ok(
            c.ClaimLead(ref), "mia@alpine.example" if ref != "L-1004" else "eve@romandie.example"
        )
    await world.ok(c.ClaimLead(world.other_refs[0]), "gus@gamma.example")
    clock.advance(days=3)

    first = await world.ok(c.ExpireOverdue(batch=3), world.owner)
    assert first.data["expired"] == 3 and first.data["more"] is True
    second = await world.ok(c.ExpireOverdue(batch=3), world.owner)
    assert second.data["expired"] == 1 and second.data["more"] is False
    # The owner's sweep never touched the other tenant's claim; the system sweep does.
    assert await Claim.filter(tenant_id=world.other_tenant_id, state=ClaimState.ACTIVE).count() == 1
    assert (await world.ok(c.ExpireOverdue(), c.Actor.system())).data["expired"] == 1


async def test_release_returns_lead_and_frees_slot(bus):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    reply = await world.ok(c.ReleaseClaim("L-1001", "no capacity"), "max@alpine.example")
    assert reply.code == "released"
    assert await _state(world, "L-1001") == LeadStatus.OPEN
    assert (
        await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    ).state == ClaimState.RELEASED
    mail = await OutboxMessage.get(kind="release.owner")
    assert "no capacity" in mail.payload["text"]
    await world.ok(c.ClaimLead("L-1001"), "tom@lakeside.example")
    assert (await world.do(c.ReleaseClaim("L-1001"), "mia@alpine.example")).code == "not_your_lead"


async def test_withdraw_open_claimed_and_closed_leads(bus):
    world = await build_world(bus)
    assert (
        await world.ok(c.WithdrawLead("L-1002", "sold directly"), world.owner)
    ).code == "lead_withdrawn"
    assert await _state(world, "L-1002") == LeadStatus.WITHDRAWN
    assert (await world.do(c.ClaimLead("L-1002"), "mia@alpine.example")).code == "lead_taken"

    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await world.ok(c.WithdrawLead("L-1001", "customer asked us to stop"), world.owner)
    claim = await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    assert claim.state == ClaimState.WITHDRAWN
    stop = await OutboxMessage.get(kind="withdraw.partner")
    assert (
        stop.recipient == "mia@alpine.example"
        and "customer asked us to stop" in stop.payload["text"]
    )
    # the slot is free again
    await world.ok(c.ClaimLead("L-1003"), "mia@alpine.example")
    await world.ok(c.GiveFeedback("L-1003", "duplicate"), "mia@alpine.example")
    refused = await world.do(c.WithdrawLead("L-1003"), world.owner)
    assert refused.code == "invalid_transition"
    assert (await world.do(c.WithdrawLead("L-1001"), "mia@alpine.example")).code == "forbidden"


async def test_every_transition_is_audited(bus, clock):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await world.ok(c.ReleaseClaim("L-1001"), "mia@alpine.example")
    await world.ok(c.ClaimLead("L-1001"), "tom@lakeside.example")
    clock.advance(hours=49)
    await world.ok(c.ExpireOverdue(), world.owner)
    await world.ok(c.ClaimLead("L-1003"), "mia@alpine.example")
    await world.ok(c.GiveFeedback("L-1003", "lost", reason="budget"), "mia@alpine.example")
    await world.ok(c.WithdrawLead("L-1002"), world.owner)
    lead_ids = dict(await Lead.filter(tenant_id=world.tenant_id).values_list("ref", "id"))
    kinds = (
        await AuditEvent.filter(lead_id=lead_ids["L-1001"])
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["lead.added", "lead.claimed", "lead.released", "lead.claimed", "lead.lapsed"]
    kinds = (
        await AuditEvent.filter(lead_id=lead_ids["L-1003"])
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["lead.added", "lead.claimed", "feedback.given"]
    assert await AuditEvent.filter(lead_id=lead_ids["L-1002"], kind="lead.withdrawn").count() == 1
