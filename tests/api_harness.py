"""The intake API over real HTTP: Lyra's aiohttp app on a loopback port, the test world
(tests/world.py), and an API key for each of its two tenants.

A plugin of tests/conftest.py: any test may take the ``api`` fixture (it runs on SQLite and
PostgreSQL like every ``store`` test); a module may override ``api_settings``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lyra_bot import commands as c
from lyra_bot.app import Services, bootstrap, build_web_app
from lyra_bot.clock import FrozenClock
from lyra_bot.config import Settings
from lyra_bot.db import close_db, init_db
from tests.conftest import make_settings
from tests.world import World, build_world


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    services: Services
    world: World
    key: str  # acme's
    other_key: str  # globex's
    key_id: int

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = "acme",
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], Any]:
        """``(status, headers, body)``; ``key`` is ``acme``, ``globex``, a raw key or None."""
        headers = dict(headers or {})
        token = {"acme": self.key, "globex": self.other_key}.get(key or "", key)
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=headers
        ) as response:
            try:
                body = await response.json()
            except aiohttp.ContentTypeError:
                body = await response.text()
            return response.status, dict(response.headers), body

    async def add(self, **fields: Any) -> dict[str, Any]:
        status, _, body = await self.call(
            "POST", "/api/v1/leads", json={"product": "Firewall", "region": "CH-ZH", **fields}
        )
        assert status == 201, body
        return body


async def api_key(services: Services, tenant_id: int, name: str = "") -> tuple[int, str]:
    reply = await services.bus.dispatch(c.CreateApiKey(name), c.Actor.owner(tenant_id))
    assert reply.ok, reply.message
    return reply.data["id"], reply.data["key"]


@pytest.fixture
def api_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def api(api_settings: Settings, clock: FrozenClock) -> AsyncIterator[Api]:
    await init_db(api_settings)
    services = bootstrap(api_settings, clock)
    runner = web.AppRunner(build_web_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = aiohttp.ClientSession()
    try:
        world = await build_world(services.bus)
        key_id, key = await api_key(services, world.tenant_id, "web form")
        _, other = await api_key(services, world.other_tenant_id)
        yield Api(f"http://127.0.0.1:{port}", session, services, world, key, other, key_id)
    finally:
        await session.close()
        await runner.cleanup()
        await services.worker.close()
        await close_db()
