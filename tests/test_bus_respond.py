"""The bus's ``respond``: an answer queued in the command's own transaction, once per key."""

from __future__ import annotations

import pytest

from lyra_bot import commands as c
from lyra_bot.bus import Reply, UnitOfWork
from lyra_bot.models import Claim, InboundKey, OutboxMessage
from lyra_bot.outbox import slack
from tests.world import build_world


def answering(codes: list[str]):
    async def respond(reply: Reply, uow: UnitOfWork) -> None:
        codes.append(reply.code)
        slack(
            uow,
            tenant_id=uow.actor.tenant_id,
            kind="test.answer",
            recipient="U1",
            method="chat.postMessage",
            args={"channel": "U1", "text": reply.message},
            dedupe_key=f"answer:{len(codes)}:{reply.code}",
        )

    return respond


async def test_answer_commits_with_the_change_and_is_not_repeated(bus):
    world = await build_world(bus)
    codes: list[str] = []
    mia = world.actors["mia@alpine.example"]

    first = await bus.dispatch(c.ClaimLead("L-1001"), mia, "k1", respond=answering(codes))
    again = await bus.dispatch(c.ClaimLead("L-1001"), mia, "k1", respond=answering(codes))

    assert first.code == "claimed" and again.data["duplicate"] is True
    assert codes == ["claimed"]
    [row] = await OutboxMessage.filter(kind="test.answer")
    assert row.payload["args"]["text"].startswith("You have claimed L-1001")


async def test_a_refusal_is_answered_once_and_remembered(bus):
    world = await build_world(bus)
    codes: list[str] = []
    tom = world.actors["tom@lakeside.example"]

    reply = await bus.dispatch(c.ClaimLead("L-1002"), tom, "k2", respond=answering(codes))
    again = await bus.dispatch(c.ClaimLead("L-1002"), tom, "k2", respond=answering(codes))
    unkeyed = await bus.dispatch(c.ClaimLead("L-1002"), tom, respond=answering(codes))

    assert reply.code == again.code == unkeyed.code == "not_entitled"
    assert codes == ["not_entitled", "not_entitled"]  # the keyed one once, the unkeyed one
    assert await OutboxMessage.filter(kind="test.answer").count() == 2
    assert (await InboundKey.get(key="k2")).reply["code"] == "not_entitled"


async def test_queries_with_respond_are_answered_too(bus):
    world = await build_world(bus)
    codes: list[str] = []
    await bus.dispatch(c.ListPool(), world.actors["mia@alpine.example"], respond=answering(codes))
    assert codes == ["pool"] and await OutboxMessage.filter(kind="test.answer").count() == 1


async def test_a_failing_answer_undoes_the_change(bus):
    world = await build_world(bus)

    async def broken(reply: Reply, uow: UnitOfWork) -> None:
        raise RuntimeError("renderer bug")

    with pytest.raises(RuntimeError):
        await bus.dispatch(c.ClaimLead("L-1001"), world.actors["mia@alpine.example"], "k3", broken)
    assert await Claim.all().count() == 0
    assert not await InboundKey.exists(key="k3")
