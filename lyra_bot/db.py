"""Opening the store (SQLite or PostgreSQL), applying migrations, and store-specific SQL.

SQLite is opened through ``lyra_bot.sqlite_engine`` so that every transaction starts with
``BEGIN IMMEDIATE``: a second process then waits for the write lock (busy timeout) instead of
failing later with "database is locked" when its read transaction tries to write.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlparse

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection
from tortoise.migrations.api import migrate as migrate_api
from tortoise.migrations.autodetector import MigrationAutodetector

from lyra_bot.config import Settings, get_settings

APP = "models"
MODEL_MODULES = ["lyra_bot.models"]
MIGRATIONS_MODULE = "lyra_bot.migrations"
SQLITE_BUSY_TIMEOUT_MS = 15000
SQLITE_CACHE_KIB = 65536
"""Page cache per SQLite connection (64 MiB; SQLite's default is 2 MiB). A sweep touches the
indexes of claims, leads, outbox and audit rows at scattered places: with the default cache
those pages are read again and again once the tables outgrow it, so a 10x larger sweep cost
well over 10x (``bench/scale.py``)."""


def connection_config(url: str, pool_max: int = 10) -> dict[str, Any]:
    """Turn ``LYRA_DATABASE_URL`` into a Tortoise connection entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        credentials: dict[str, Any] = {
            "file_path": path,
            "journal_mode": "WAL",
            "synchronous": "FULL",
            "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            "foreign_keys": "ON",
            "cache_size": -SQLITE_CACHE_KIB,  # negative: KiB, not pages
        }
        for key, values in parse_qs(parsed.query).items():
            credentials[key] = values[-1]
        return {"engine": "lyra_bot.sqlite_engine", "credentials": credentials}
    if parsed.scheme in {"postgres", "postgresql", "asyncpg"}:
        config = expand_db_url("postgres://" + url.split("://", 1)[1])
        config["credentials"].setdefault("maxsize", pool_max)
        config["credentials"].setdefault("minsize", 1)
        return config
    raise ValueError(f"Unsupported LYRA_DATABASE_URL scheme {parsed.scheme!r} (sqlite or postgres)")


APPS = {
    APP: {"models": MODEL_MODULES, "migrations": MIGRATIONS_MODULE, "default_connection": "default"}
}


def tortoise_config(url: str, pool_max: int = 10) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(url, pool_max)},
        "apps": APPS,
        "use_tz": True,
        "timezone": "UTC",
    }


def _settings_config() -> dict[str, Any]:
    settings = get_settings()
    return tortoise_config(settings.database_url, settings.db_pool_max)


def __getattr__(name: str) -> Any:
    """``TORTOISE_ORM`` for Tortoise's own CLI (``tortoise makemigrations``), built on access."""
    if name == "TORTOISE_ORM":
        return _settings_config()
    raise AttributeError(name)


def is_postgres(url: str | None = None) -> bool:
    return urlparse(url or get_settings().database_url).scheme in {
        "postgres",
        "postgresql",
        "asyncpg",
    }


async def ping() -> None:
    """One round trip to the open database (``/readyz``); raises when it is not open or away."""
    if not Tortoise._inited:
        raise RuntimeError("the database is not open")
    await get_connection("default").execute_query("SELECT 1")


def dialect() -> str:
    """``sqlite`` or ``postgres`` for the open default connection."""
    return "sqlite" if get_connection("default").capabilities.dialect == "sqlite" else "postgres"


async def try_advisory_xact_lock(connection: Any, name: str) -> bool:
    """Take a PostgreSQL advisory lock named ``name`` until the transaction ends, if free.

    Released by commit or rollback, so a crashed instance never leaves it held. On SQLite
    (one instance; writes already serialized by BEGIN IMMEDIATE) it always succeeds.
    """
    if connection.capabilities.dialect == "sqlite":
        return True
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    rows = await connection.execute_query_dict(
        "SELECT pg_try_advisory_xact_lock($1) AS locked", [key]
    )
    return bool(rows[0]["locked"])


async def init_db(settings: Settings | None = None, *, migrate: bool = False) -> None:
    """Open the store for this process (visible to every task, e.g. aiohttp handlers)."""
    settings = settings or get_settings()
    config = tortoise_config(settings.database_url, settings.db_pool_max)
    if migrate:
        await upgrade(config)
    if Tortoise._inited:
        await close_db()
    # Tortoise caches each model's SQL per connection *name*; a process that opens another
    # store under the same name (tests, the demo) must not reuse the other dialect's SQL.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def close_db() -> None:
    if Tortoise._inited:
        await Tortoise.close_connections()


async def upgrade(config: dict[str, Any] | None = None, progress: Any = None) -> None:
    """Apply every pending migration (``lyra-bot db upgrade``)."""
    config = config or _settings_config()
    from tortoise.context import TortoiseContext

    async with TortoiseContext():
        await migrate_api(config=config, progress=progress)


async def pending_model_changes(config: dict[str, Any] | None = None) -> list[str]:
    """Names of migrations the models would need beyond the committed ones (empty = in sync)."""
    config = config or _settings_config()
    from tortoise.context import TortoiseContext

    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        detector = MigrationAutodetector(ctx.apps, config["apps"])
        writers = await detector.changes()
        return [f"{w.app_label}.{w.name}" for w in writers]


async def pending_migrations() -> list[str]:
    """Migrations not yet applied to the open store (empty when the schema is current)."""
    from tortoise.migrations.executor import MigrationExecutor

    steps = await MigrationExecutor(get_connection("default"), APPS).plan()
    return [f"{step.migration.app_label}.{step.migration.name}" for step in steps]
