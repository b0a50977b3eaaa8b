"""The reliability policy: K lapses in 30 days pause a partner from claiming for D days; the
partner and the owner are told; a paused partner still sees the pool and hears why it may not
claim."""

from __future__ import annotations

from datetime import timedelta

from lyra_bot import commands as c
from lyra_bot.models import AuditEvent, OutboxMessage, Partner
from tests.world import build_world

TOM = "tom@lakeside.example"  # lakeside: Firewall in CH-ZH


async def lapse_one(world, services, clock) -> str:
    """Tom claims a fresh Firewall lead in Zurich and lets it lapse."""
    email = f"c{len(world.refs)}@cust.example"
    world.refs.append(email)
    added = await world.ok(c.AddLead("Firewall", "CH-ZH", email=email), world.owner)
    ref = added.data["lead"]["ref"]
    await world.ok(c.ClaimLead(ref), TOM)
    clock.advance(hours=48)
    result = await services.scheduler.run_job("expire-overdue")
    assert result.count == 1
    return ref


async def test_k_lapses_in_30_days_pause_the_partner_who_still_sees_the_pool(services, clock):
    world = await build_world(services.bus, lapse_limit=2, lapse_pause_days=14)
    await lapse_one(world, services, clock)
    lakeside = await Partner.get(slug="lakeside")
    assert lakeside.paused_until is None
    await lapse_one(world, services, clock)

    lakeside = await Partner.get(slug="lakeside")
    assert lakeside.paused_at == clock.now()
    assert lakeside.paused_until == clock.now() + timedelta(days=14)
    [event] = await AuditEvent.filter(kind="partner.paused")
    assert (event.partner_id, event.data["lapses"], event.data["limit"]) == (lakeside.id, 2, 2)
    [to_partner] = await OutboxMessage.filter(kind="paused.partner")
    [to_owner] = await OutboxMessage.filter(kind="paused.owner")
    assert to_partner.recipient == TOM and to_owner.recipient == "owner@acme.example"
    assert "Lakeside" in to_owner.payload["subject"]
    assert "2 claims of Lakeside lapsed" in to_partner.payload["text"]

    pool = await world.ok(c.ListPool(), TOM)
    assert pool.data["total"] >= 1  # L-1001 is still in its pool
    refused = await world.do(c.ClaimLead("L-1001"), TOM)
    assert refused.code == "partner_paused"
    assert "may not claim leads until" in refused.message and "see the pool" in refused.message

    clock.advance(days=14)
    await world.ok(c.ClaimLead("L-1001"), TOM)


async def test_lapses_before_a_pause_do_not_count_again(services, clock):
    world = await build_world(services.bus, lapse_limit=2, lapse_pause_days=1)
    await lapse_one(world, services, clock)
    await lapse_one(world, services, clock)
    clock.advance(days=1)  # the pause is over; the two lapses are still within 30 days
    await lapse_one(world, services, clock)
    assert await AuditEvent.filter(kind="partner.paused").count() == 1
    await lapse_one(world, services, clock)
    assert await AuditEvent.filter(kind="partner.paused").count() == 2


async def test_old_lapses_and_tenants_without_the_policy_never_pause(services, clock):
    world = await build_world(services.bus, lapse_limit=2)
    await lapse_one(world, services, clock)
    clock.advance(days=31)
    await lapse_one(world, services, clock)
    assert (await Partner.get(slug="lakeside")).paused_until is None

    await world.ok(c.UpdateTenant(lapse_limit=0), world.owner)
    for _ in range(3):
        await lapse_one(world, services, clock)
    assert (await Partner.get(slug="lakeside")).paused_until is None
    assert await AuditEvent.filter(kind="partner.paused").count() == 0
