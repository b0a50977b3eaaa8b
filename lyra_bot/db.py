"""Opening the store (SQLite or PostgreSQL), applying migrations, and store-specific SQL.

SQLite is opened through ``lyra_bot.sqlite_engine`` so that every transaction starts with
``BEGIN IMMEDIATE``: a second process then waits for the write lock (busy timeout) instead of
failing later with "database is locked" when its read transaction tries to write.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection, get_connections

from lyra_bot.config import Settings, get_settings

log = logging.getLogger(__name__)

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
            "secure_delete": "ON",  # erased customer data must not linger in free space
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


@contextlib.asynccontextmanager
async def transaction(name: str = "default") -> AsyncIterator[BaseDBAsyncClient]:
    """Tortoise's ``in_transaction`` that always leaves the task's connection context as it
    found it, and never keeps a connection it could not begin a transaction on.

    Tortoise (1.1.9) points a context variable at the transaction's connection on entry and
    resets it only after handing the connection back to the pool. When that hand-back raises
    (the server terminated the connection) the reset is skipped, and when ``BEGIN`` fails the
    exit never runs at all: every later query of the task then goes to a dead or foreign
    connection ("connection has been released back to the pool", "another operation is in
    progress"), and a long-lived loop never recovers. Every transaction in Lyra goes
    through here.
    """
    handler = get_connections()
    before = handler._get_storage()  # the mapping in force before (replaced, never mutated)
    context = handler.get(name)._in_transaction()
    try:
        try:
            connection = await context.__aenter__()
        except BaseException:
            await _abandon(context)
            raise
        try:
            yield connection
        except BaseException as exc:
            await context.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            await context.__aexit__(None, None, None)
        except Exception as exc:
            if not _finalized(context):
                raise
            # Committed; only handing the (dead) connection back failed: the pool replaces it.
            log.warning("transaction committed; its connection could not be released: %s", exc)
    finally:
        handler._set_storage(before)


def _finalized(context: TransactionContext) -> bool:
    """True once the transaction committed (or rolled back)."""
    client = getattr(context, "client", None) or getattr(context, "connection", None)
    return bool(getattr(client, "_finalized", False))


async def _abandon(context: TransactionContext) -> None:
    """Give back what a transaction that failed to begin had taken (its pooled connection,
    or SQLite's transaction lock): tortoise's ``__aexit__`` does not run for it."""
    if not hasattr(context, "token"):  # failed before it took anything
        return
    lock = getattr(context, "_trxlock", None)
    if lock is not None and lock.locked():
        lock.release()
        return
    client = getattr(context, "client", None)
    pool = getattr(getattr(client, "_parent", None), "_pool", None)
    if pool is not None and getattr(client, "_connection", None) is not None:
        try:
            await pool.release(client._connection)
        except Exception as exc:  # the connection is dead; the pool replaces it
            log.debug("releasing a connection that failed to begin: %s", exc)


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
    from tortoise.migrations.api import migrate as migrate_api

    async with TortoiseContext():
        await migrate_api(config=config, progress=progress)


async def pending_model_changes(config: dict[str, Any] | None = None) -> list[str]:
    """Names of migrations the models would need beyond the committed ones (empty = in sync)."""
    config = config or _settings_config()
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        detector = MigrationAutodetector(ctx.apps, config["apps"])
        writers = await detector.changes()
        return [f"{w.app_label}.{w.name}" for w in writers]


async def pending_migrations() -> list[str]:
    """Migrations not yet applied to the open store (empty when the schema is current).

    Every CLI command asks this: when each migration module of the package is recorded as
    applied the answer is empty without importing Tortoise's migration machinery and every
    migration (bench/cli.py); otherwise Tortoise plans, as ``db upgrade`` will."""
    if await _all_recorded():
        return []
    from tortoise.migrations.executor import MigrationExecutor

    steps = await MigrationExecutor(get_connection("default"), APPS).plan()
    return [f"{step.migration.app_label}.{step.migration.name}" for step in steps]


MIGRATIONS_TABLE = "tortoise_migrations"  # tortoise.migrations.recorder's default (1.1.9)


async def _all_recorded() -> bool:
    """True when the migrations table lists every module of ``MIGRATIONS_MODULE``."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec(MIGRATIONS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return False
    names = {info.name for info in pkgutil.iter_modules(spec.submodule_search_locations)}
    try:
        _, rows = await get_connection("default").execute_query(
            f'SELECT "name" FROM "{MIGRATIONS_TABLE}" WHERE "app" = \'{APP}\''
        )
    except Exception:  # no table yet: a new database, let Tortoise plan
        return False
    return names <= {row["name"] for row in rows}


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def ids_mentioning(
    model: Any, column: str, needles: list[str], tenant_id: int | None = None
) -> list[Any]:
    """Primary keys of ``model`` rows whose ``column`` (text, or JSON read as text) contains
    one of ``needles``, case-blind; only the tenant's rows (and rows of no tenant) when the
    table has a tenant.

    Erasure finds the customer's address in free text and JSON this way: no ORM lookup
    reads a JSON column as text on both stores."""
    if not needles:
        return []
    meta = model._meta
    connection = meta.db  # inside a transaction: the transaction's connection
    sqlite = connection.capabilities.dialect == "sqlite"
    source = meta.fields_map[column].source_field or column
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return "?" if sqlite else f"${len(params)}"

    scope = ""  # first: "?" parameters are numbered by their place in the text
    if tenant_id is not None and "tenant_id" in meta.fields_db_projection.values():
        scope = f'("tenant_id" = {param(tenant_id)} OR "tenant_id" IS NULL) AND '
    text = f'"{source}"' if sqlite else f'CAST("{source}" AS TEXT)'
    op = "LIKE" if sqlite else "ILIKE"
    where = (
        scope
        + "("
        + " OR ".join(f"{text} {op} {param(_like(n))} ESCAPE '\\'" for n in needles)
        + ")"
    )
    sql = f'SELECT "{meta.db_pk_column}" AS pk FROM "{meta.db_table}" WHERE {where}'
    return [row["pk"] for row in await connection.execute_query_dict(sql, params)]


async def release_erased_pages() -> None:
    """After an erasure commits, on SQLite: copy the write-ahead log into the database file
    and truncate it, so erased values survive neither in old log frames nor (with
    ``secure_delete``, which zeroes freed cells and pages) in the file's free space."""
    connection = get_connection("default")
    if connection.capabilities.dialect == "sqlite":
        await connection.execute_query("PRAGMA wal_checkpoint(TRUNCATE)")
