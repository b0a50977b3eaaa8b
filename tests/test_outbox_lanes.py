"""The outbox delivers each channel in its own lane: a stuck mail server holds back no
Slack answer, and each channel's messages keep their order."""

from __future__ import annotations

import asyncio

from lyra_bot.bus import UnitOfWork
from lyra_bot.commands import Actor
from lyra_bot.models import OutboxMessage
from lyra_bot.outbox import OutboxWorker, slack
from lyra_bot.render import Renderer


class Recording:
    """A transport that records what it delivers; while ``gate`` is closed it hangs, like a
    mail server that does not answer."""

    def __init__(self, channel: str, expect: int, gate: asyncio.Event | None = None) -> None:
        self.channel, self.expect, self.gate = channel, expect, gate
        self.sent: list[str] = []
        self.done = asyncio.Event()

    async def send(self, message: OutboxMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message.dedupe_key)
        if len(self.sent) == self.expect:
            self.done.set()

    async def close(self) -> None:
        return None


async def test_a_stuck_channel_does_not_hold_back_another(store, clock):
    uow = UnitOfWork(Actor.system(), clock.now(), store, Renderer(store.templates_dir))
    for n in range(2):
        await OutboxMessage.create(
            channel="email",
            kind="k",
            recipient="a@b.example",
            payload={},
            dedupe_key=f"e{n}",
            message_id=f"<e{n}@lyra.test>",
            next_attempt_at=clock.now(),
            created_at=clock.now(),
        )
    for n in range(3):
        slack(
            uow, tenant_id=None, kind="k", recipient="C1", method="m", args={}, dedupe_key=f"s{n}"
        )
    await uow.flush()
    stuck = asyncio.Event()
    email, chat = Recording("email", 2, stuck), Recording("slack", 3)
    stop = asyncio.Event()
    running = asyncio.create_task(OutboxWorker(store, [email, chat], clock).run_forever(stop))

    await asyncio.wait_for(chat.done.wait(), 10)
    assert chat.sent == ["s0", "s1", "s2"] and email.sent == []
    stuck.set()
    await asyncio.wait_for(email.done.wait(), 10)
    stop.set()
    await running
    assert email.sent == ["e0", "e1"]
