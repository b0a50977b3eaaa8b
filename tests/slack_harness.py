"""Lyra with Slack on, over real HTTP: the aiohttp server with the bolt app, a fake Slack
Web API, signed requests, and a known world whose users have Slack accounts.

Import the ``slack`` fixture into a test module to use it (it runs on SQLite and PostgreSQL
like every ``store`` test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lyra_bot.adapters.slack.app import SlackApp

from lyra_bot import commands as c
from lyra_bot.app import SLACK, Services, bootstrap, build_web_app
from lyra_bot.clock import FrozenClock
from lyra_bot.db import close_db, init_db
from lyra_bot.models import SlackMessage
from tests.conftest import make_settings
from tests.slack_fake import SECRET, TOKEN, FakeSlack, SlackSender
from tests.world import World, build_world

# Slack ids of the world's people (tests/world.py) and of the channels linked to partners.
SLACK_USERS = {
    "mia@alpine.example": "U0MIA",
    "max@alpine.example": "U0MAX",
    "tom@lakeside.example": "U0TOM",
    "eve@romandie.example": "U0EVE",
}
ALPINE_CHANNEL, LAKESIDE_CHANNEL = "C0ALPINE", "C0LAKESIDE"


@dataclass
class Slack:
    fake: FakeSlack
    sender: SlackSender
    session: aiohttp.ClientSession
    services: Services
    app: SlackApp
    world: World | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def settle(self) -> None:
        """Until Lyra has nothing left to do: acked requests handled, due outbox delivered."""
        for _ in range(50):
            await self.app.drain()
            delivered = await self.services.worker.run_once()
            if not delivered and self.app.idle:
                return
        raise AssertionError("Lyra did not settle")

    async def send(self, body: str, **kwargs: Any) -> tuple[int, str]:
        return await self.sender.post(self.session, body, **kwargs)

    async def click(self, user: str, action: str, ref: str, **kwargs: Any) -> tuple[int, str]:
        kwargs.setdefault("channel", ALPINE_CHANNEL)
        return await self.send(self.sender.action_body(user, action, ref, **kwargs))

    async def command(self, user: str, text: str, channel: str = ALPINE_CHANNEL) -> int:
        status, _ = await self.send(self.sender.command_body(user, text, channel))
        return status

    async def digests(self) -> list[SlackMessage]:
        """Post digests for every linked channel and deliver them."""
        reply = await self.services.bus.dispatch(c.PostSlackDigests(), c.Actor.system())
        assert reply.ok, reply.message
        await self.settle()
        return await SlackMessage.all().order_by("id")

    def ephemerals_to(self, user: str) -> list[dict[str, Any]]:
        return [a for a in self.fake.of("chat.postEphemeral") if a["user"] == user]


async def link_world(world: World, bus: Any) -> None:
    """Slack accounts for the world's partner users, an owner user, and two linked channels."""
    for email, slack_user in SLACK_USERS.items():
        reply = await bus.dispatch(c.LinkSlackUser(email, "T0LYRA", slack_user), world.owner)
        assert reply.ok, reply.message
    reply = await bus.dispatch(c.AddUser("boss@acme.example", "Boss"), world.owner)
    assert reply.ok, reply.message
    await bus.dispatch(c.LinkSlackUser("boss@acme.example", "T0LYRA", "U0BOSS"), world.owner)
    for partner, channel in (("alpine", ALPINE_CHANNEL), ("lakeside", LAKESIDE_CHANNEL)):
        reply = await bus.dispatch(c.LinkSlackChannel(partner, channel), world.owner)
        assert reply.ok, reply.message


@pytest.fixture
async def slack(database_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Slack]:
    fake = FakeSlack()
    await fake.start()
    settings = make_settings(
        database_url,
        tmp_path,
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=fake.url,
    )
    await init_db(settings)
    services = bootstrap(settings, clock)
    app = build_web_app(services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = aiohttp.ClientSession()
    harness = Slack(
        fake,
        SlackSender(f"http://127.0.0.1:{port}/slack/events"),
        session,
        services,
        app[SLACK],
    )
    try:
        harness.world = await build_world(services.bus)
        await link_world(harness.world, services.bus)
        yield harness
    finally:
        await session.close()
        await runner.cleanup()
        await services.worker.close()
        await close_db()
        await fake.stop()
