"""The bus: one transaction per command, and a second delivery of the same key changes nothing."""

from __future__ import annotations

import asyncio

from lyra_bot import commands as c
from lyra_bot.models import AuditEvent, Claim, InboundKey, OutboxMessage
from tests.world import build_world


async def _counts():
    return (
        await Claim.all().count(),
        await OutboxMessage.all().count(),
        await AuditEvent.all().count(),
    )


async def test_same_key_twice_returns_first_reply_and_changes_nothing(bus):
    world = await build_world(bus)
    first = await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example", key="email:<abc@mail>")
    before = await _counts()
    second = await world.do(c.ClaimLead("L-1001"), "mia@alpine.example", key="email:<abc@mail>")
    assert second.ok and second.code == "claimed" and second.data["duplicate"] is True
    assert second.data["lead"]["ref"] == first.data["lead"]["ref"]
    # the stored copy keeps no customer data (a re-delivery is not answered with it again)
    assert "email" not in second.data["lead"] and "anna" not in str(await InboundKey.all().values())
    assert await _counts() == before


async def test_refusals_are_remembered_too(bus):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    refused = await world.do(c.ClaimLead("L-1001"), "tom@lakeside.example", key="slack:A1")
    assert refused.code == "lead_taken"
    await world.ok(c.ReleaseClaim("L-1001"), "mia@alpine.example")
    # The lead is free now, but a re-delivery of the refused click must not claim it.
    replay = await world.do(c.ClaimLead("L-1001"), "tom@lakeside.example", key="slack:A1")
    assert replay.code == "lead_taken" and replay.data["duplicate"] is True
    assert (
        await Claim.filter(partner_id=world.actors["tom@lakeside.example"].partner_id).count() == 0
    )
    assert await InboundKey.filter(key="slack:A1").count() == 1


async def test_concurrent_deliveries_of_one_key_act_once(bus):
    world = await build_world(bus)
    replies = await asyncio.gather(
        *(
            world.do(c.ClaimLead("L-1001"), "mia@alpine.example", key="email:<same@x>")
            for _ in range(8)
        )
    )
    assert all(r.code == "claimed" for r in replies)
    assert sum(not r.data.get("duplicate") for r in replies) == 1
    assert await Claim.all().count() == 1
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1


async def test_failed_handler_rolls_back_every_write(bus):
    world = await build_world(bus, cap_open_claims=1)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    before = await _counts()
    reply = await world.do(c.ClaimLead("L-1002"), "mia@alpine.example")
    assert reply.code == "over_cap"
    assert await _counts() == before


async def test_query_commands_do_not_record_keys(bus):
    world = await build_world(bus)
    await world.ok(c.ListPool(), "mia@alpine.example")
    assert await InboundKey.all().count() == 0


def test_every_command_type_resolves_to_its_handler_module() -> None:
    """The bus imports only the module of the command it dispatches: the map must name, for
    every command with a handler, the module that registers it (else a lazily built bus
    would import every module, or miss one registered under another name)."""
    import inspect

    from lyra_bot.handlers import HANDLER_MODULES, register_all

    from lyra_bot import bus as bus_module
    from lyra_bot import commands

    register_all()
    handled = {t.__name__: f.__module__.rsplit(".", 1)[1] for t, f in bus_module._HANDLERS.items()}
    assert handled == HANDLER_MODULES
    command_types = {
        name
        for name, obj in inspect.getmembers(commands, inspect.isclass)
        if issubclass(obj, commands.Command) and obj.__module__ == commands.__name__
    }
    unhandled = command_types - set(handled)
    assert unhandled <= {"Command", "Sweep"}, unhandled
