"""Idempotency keys are kept for LYRA_INBOUND_KEY_DAYS, then forgotten by a scheduler job."""

from __future__ import annotations

from lyra_bot import commands as c
from lyra_bot.models import InboundKey
from tests.world import build_world


async def test_old_keys_are_forgotten_recent_ones_still_stop_redeliveries(services, clock):
    world = await build_world(services.bus)
    days = services.settings.inbound_key_days
    for n in range(5):  # five mails answered with the pool, long ago
        await world.ok(c.ListPool(), "mia@alpine.example", key=f"email:<old-{n}@mail>")
    clock.advance(days=days - 2)
    recent = await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example", key="email:<new@mail>")

    clock.advance(days=3)  # the old keys are now past the window, the recent one is not
    result = await services.scheduler.run_job("prune-inbound-keys")
    assert result.ok and result.count == 5
    keys = set(await InboundKey.all().values_list("key", flat=True))
    assert "email:<new@mail>" in keys and not any(k.startswith("email:<old-") for k in keys)

    again = await world.do(c.ClaimLead("L-1001"), "mia@alpine.example", key="email:<new@mail>")
    assert again.data["duplicate"] is True and again.data["claim_id"] == recent.data["claim_id"]
    assert (await services.scheduler.run_job("prune-inbound-keys")).count == 0


async def test_pruning_goes_in_batches_until_done(services, clock):
    world = await build_world(services.bus)
    for n in range(7):
        await world.ok(c.ListPool(), "tom@lakeside.example", key=f"slack:req-{n}")
    clock.advance(days=services.settings.inbound_key_days + 1)
    first = await services.bus.dispatch(c.PruneInboundKeys(batch=3), c.Actor.system())
    assert first.data == {"count": 3, "more": True}
    assert await InboundKey.filter(key__startswith="slack:req-").count() == 4
    owner_try = await services.bus.dispatch(c.PruneInboundKeys(), world.owner)
    assert not owner_try.ok  # housekeeping is the scheduler's, not an owner's command
    assert (await services.scheduler.run_job("prune-inbound-keys")).count == 4
    assert await InboundKey.filter(key__startswith="slack:req-").count() == 0
