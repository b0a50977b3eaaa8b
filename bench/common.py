"""Shared plumbing for the benchmarks: a throwaway database on either store."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
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


# --- CPU time: this process and the PostgreSQL backends serving it ------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from ``/proc/<pid>/stat``; 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def database_name(url: str) -> str | None:
    """The PostgreSQL database of ``url``; None for SQLite (no server process to measure)."""
    parsed = urlparse(url)
    return parsed.path.lstrip("/") if parsed.scheme.startswith("postgres") else None


async def backend_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds of every server backend connected to ``database``, by process id.

    Wall-clock figures are noisy on a shared machine; CPU time is what a process used,
    whoever else runs. The backends must live on this machine (``/proc``)."""
    if database is None:
        return {}
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    return {row["pid"]: process_cpu(row["pid"]) for row in pids}


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()``: this process's (every thread,
    the SQLite driver's included) and the PostgreSQL backends' serving ``database``.

    A backend that connected in between counts from its start; one that left in between is
    lost, so keep the pool open across a measurement."""

    def __init__(self, database: str | None = None) -> None:
        self.database = database
        self.app = self.pg = 0.0
        self._app0 = 0.0
        self._pg0: dict[int, float] = {}

    async def start(self) -> CpuMeter:
        self._pg0 = await backend_cpu(self.database)
        self._app0 = time.process_time()
        return self

    async def stop(self) -> CpuMeter:
        self.app = time.process_time() - self._app0
        after = await backend_cpu(self.database)
        self.pg = sum(cpu - self._pg0.get(pid, 0.0) for pid, cpu in after.items())
        return self
