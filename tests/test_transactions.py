"""``lyra_bot.db.transaction``: whatever happens to a transaction's connection, the task that
ran it goes on with a clean connection context (tortoise's own exit skips that when handing
the connection back raises, and never runs when BEGIN fails)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from tortoise.connection import get_connection

from lyra_bot.db import transaction
from lyra_bot.models import JobRun


@pytest.mark.pg_only
async def test_a_connection_that_cannot_be_handed_back_does_not_stick_to_the_task(
    store, monkeypatch
):
    await JobRun.all().count()  # the pool opens on first use
    store_client = get_connection("default")
    pool = store_client._pool
    release = type(pool).release
    failures = {"left": 1}

    async def release_then_fail(self, connection, *args, **kwargs):
        await release(self, connection, *args, **kwargs)
        if failures["left"]:
            failures["left"] -= 1
            raise asyncpg.InterfaceError("connection was closed in the middle of operation")

    monkeypatch.setattr(type(pool), "release", release_then_fail)
    async with transaction():
        await JobRun.create(name="committed")  # committed: the failed hand-back is logged
    assert failures["left"] == 0
    assert get_connection("default") is store_client  # not the finished transaction's
    async with transaction():  # the same task, a new transaction on a live connection
        await JobRun.create(name="next")
    assert set(await JobRun.all().values_list("name", flat=True)) >= {"committed", "next"}


async def test_a_transaction_that_cannot_begin_gives_back_what_it_took(store, monkeypatch):
    await JobRun.all().count()
    store_client = get_connection("default")
    context = store_client._in_transaction()
    wrapper = type(getattr(context, "client", None) or context.connection)
    begin = wrapper.begin
    failures = {"left": 12}  # more than the pool's connections

    async def begin_fails(self):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the server closed the connection")
        await begin(self)

    monkeypatch.setattr(wrapper, "begin", begin_fails)
    for _ in range(12):
        with pytest.raises(ConnectionError):
            async with transaction():
                pass
        assert get_connection("default") is store_client
    # Nothing was kept: neither pooled connections nor SQLite's transaction lock.
    async with asyncio.timeout(10):
        for n in range(3):
            async with transaction():
                await JobRun.create(name=f"after-{n}")
        await asyncio.gather(*(JobRun.create(name=f"other-{n}") for n in range(3)))
    assert await JobRun.filter(name__startswith="after-").count() == 3
