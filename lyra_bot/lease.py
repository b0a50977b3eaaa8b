"""Leases: one instance at a time runs a job that must not run twice at once (the IMAP poller).

A lease is a row (name, holder, expires_at). Its holder renews it every third of its time to
live; when the holder dies it stops renewing, the row expires, and the next instance that asks
takes it over. On PostgreSQL the take-or-renew is one ``INSERT … ON CONFLICT … WHERE`` against
the database's clock, so instances on hosts with skewed clocks agree on expiry. On SQLite
(one instance assumed) the same rule runs in a ``BEGIN IMMEDIATE`` transaction.

A lease is an efficiency guard, not the safety net: an instance that stalls past its lease may
still finish a mail another instance then reads too; the bus's idempotency keys make that
second reading a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from lyra_bot.models import Lease as LeaseRow

log = logging.getLogger(__name__)

_PG_TAKE = """
INSERT INTO lease (name, holder, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
 WHERE lease.holder = EXCLUDED.holder OR lease.expires_at < clock_timestamp()
RETURNING holder
"""


def instance_id() -> str:
    """A name for this process that no other process (here or on another host) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    """The lease ``name`` as seen by ``holder``; ``ttl`` seconds long, renewed every ttl/3."""

    def __init__(self, name: str, holder: str, ttl: float) -> None:
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.held = False
        self._renewed = 0.0  # monotonic time of the last successful take or renewal

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    async def acquire(self) -> bool:
        """Take the lease if free or expired, renew it if ours; True when this instance holds it."""
        connection = get_connection("default")
        if connection.capabilities.dialect == "sqlite":
            held = await self._take_sqlite()
        else:
            rows = await connection.execute_query_dict(
                _PG_TAKE, [self.name, self.holder, float(self.ttl)]
            )
            held = bool(rows)
        if held != self.held:
            log.info("lease %s %s by %s", self.name, "taken" if held else "lost", self.holder)
        self.held = held
        if held:
            self._renewed = time.monotonic()
        return held

    async def keep(self) -> bool:
        """Renew when a renewal is due (cheap to call often); True while the lease is ours."""
        if self.held and time.monotonic() - self._renewed < self.renew_every:
            return True
        return await self.acquire()

    async def release(self) -> None:
        """Give the lease up (clean shutdown), so another instance need not wait for expiry."""
        if self.held:
            await LeaseRow.filter(name=self.name, holder=self.holder).delete()
            self.held = False
            log.info("lease %s released by %s", self.name, self.holder)

    async def _take_sqlite(self) -> bool:
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.ttl)
        async with in_transaction("default"):
            row = await LeaseRow.get_or_none(name=self.name)
            if row is None:
                await LeaseRow.create(name=self.name, holder=self.holder, expires_at=until)
                return True
            if row.holder != self.holder and row.expires_at >= now:
                return False
            row.holder, row.expires_at = self.holder, until
            await row.save(update_fields=["holder", "expires_at"])
            return True
