"""Shared plumbing for the benchmarks: a throwaway database on either store."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg

from lyra_bot.db import tortoise_config, upgrade

PG_ADMIN_URL = os.environ.get(
    "LYRA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


@contextlib.asynccontextmanager
async def throwaway_database(kind: str) -> AsyncIterator[str]:
    """A fresh, migrated database URL (SQLite file or PostgreSQL database), removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lyra-bench-") as folder:
            url = f"sqlite://{Path(folder) / 'bench.db'}"
            await upgrade(tortoise_config(url))
            yield url
        return
    name = f"lyra_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlunparse(urlparse(PG_ADMIN_URL)._replace(path=f"/{name}"))
    try:
        await upgrade(tortoise_config(url))
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
