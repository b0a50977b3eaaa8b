"""Fixtures: a fresh real database per test (SQLite file or PostgreSQL database), a frozen
clock, and Lyra's services wired as ``lyra-bot run`` wires them.

Every test that takes ``store`` (or anything built on it) runs twice: on SQLite and on
PostgreSQL. Migrations run once per session into a template; each test gets a copy.
PostgreSQL tests skip, with the reason, only when no server answers at
``LYRA_TEST_POSTGRES_URL`` (default ``postgres://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lyra_bot.app import Services, bootstrap, build_web_app
from lyra_bot.bus import Bus
from lyra_bot.clock import FrozenClock
from lyra_bot.config import Settings
from lyra_bot.db import close_db, init_db, tortoise_config, upgrade

pytest_plugins = ["tests.mailservers", "tests.api_harness", "tests.instants"]

PG_ADMIN_URL = os.environ.get(
    "LYRA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
STORES = ["sqlite", "postgres"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pg_only`` run on PostgreSQL alone (their SQLite variant is deselected);
    tests marked ``faults`` (real processes killed and servers restarted) run last, all on
    one xdist worker, one after another."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("database_url") == "sqlite"
        (drop if on_sqlite and item.get_closest_marker("pg_only") else keep).append(item)
        if item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.xdist_group("faults"))
    if drop:
        config.hook.pytest_deselected(items=drop)
    keep.sort(key=lambda item: item.get_closest_marker("faults") is not None)  # stable
    items[:] = keep


def pg_url(database: str) -> str:
    """The admin URL pointed at another database."""
    parts = urlparse(PG_ADMIN_URL)
    return urlunparse(parts._replace(path=f"/{database}"))


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(upgrade(tortoise_config(f"sqlite://{path}")))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated template database, or None (with the reason logged) when PG is absent."""
    reason = _pg_available()
    if reason:
        pytest.pg_skip_reason = reason  # type: ignore[attr-defined]
        yield None
        return
    name = f"lyra_tpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(upgrade(tortoise_config(pg_url(name))))
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=STORES)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    if request.param == "sqlite":
        path = tmp_path / "lyra.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite://{path}"
        return
    template = request.getfixturevalue("pg_template")
    if template is None:
        pytest.skip(getattr(pytest, "pg_skip_reason", "PostgreSQL not reachable"))
    name = f"lyra_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        outbox_dir=tmp_path / "outbox",
        secret_key="test-secret",  # type: ignore[arg-type]
        mail_from="Lyra <lyra@lyra.test>",
        inbound_address="leads@lyra.test",
        outbox_backoff_initial=1.0,
        **extra,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    """Monday 2 November 2026, 09:00 UTC (10:00 in Zurich)."""
    return FrozenClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Settings]:
    await init_db(settings)
    yield settings
    await close_db()


@pytest.fixture
async def services(store: Settings, clock: FrozenClock) -> AsyncIterator[Services]:
    services = bootstrap(store, clock)
    yield services
    await services.worker.close()


@pytest.fixture
async def http(services: Services) -> AsyncIterator[TestClient]:
    """A client of the service's web app (links in mails, pages, webhooks)."""
    client = TestClient(TestServer(build_web_app(services)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def bus(services: Services) -> Bus:
    return services.bus
