"""The committed migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

import uuid

from tortoise import Tortoise
from tortoise.connection import get_connection

from lyra_bot.db import (
    close_db,
    dialect,
    pending_migrations,
    pending_model_changes,
    tortoise_config,
)
from tests.conftest import _pg_admin, pg_url


async def _columns() -> set[tuple]:
    conn = get_connection("default")
    if dialect() == "sqlite":
        tables = [
            r["name"]
            for r in await conn.execute_query_dict(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "AND name != 'tortoise_migrations'"
            )
        ]
        out = set()
        for table in tables:
            for col in await conn.execute_query_dict(f'PRAGMA table_info("{table}")'):
                out.add((table, col["name"], col["type"].upper(), bool(col["notnull"])))
        return out
    rows = await conn.execute_query_dict(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name != 'tortoise_migrations'"
    )
    return {(r["table_name"], r["column_name"], r["data_type"], r["is_nullable"]) for r in rows}


async def test_models_need_no_new_migration(settings):
    assert await pending_model_changes(tortoise_config(settings.database_url)) == []


async def test_migrated_schema_equals_the_models_schema(store, tmp_path, database_url):
    assert await pending_migrations() == []
    migrated = await _columns()
    assert (
        "lead",
        "ref",
    ) in {c[:2] for c in migrated}
    await close_db()

    if database_url.startswith("sqlite"):
        fresh_url = f"sqlite://{tmp_path / 'fresh.db'}"
    else:
        name = f"lyra_fresh_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        fresh_url = pg_url(name)
    try:
        await Tortoise.init(config=tortoise_config(fresh_url))
        await Tortoise.generate_schemas()
        assert await _columns() == migrated
    finally:
        await Tortoise.close_connections()
        if not database_url.startswith("sqlite"):
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
