"""Leases: one instance at a time runs a job that must not run twice at once (the IMAP poller).

A lease is a row (name, holder, expires_at). Its holder renews it every third of its time to
live; when the holder dies it stops renewing, the row expires, and the next instance that asks
takes it over. On PostgreSQL the take-or-renew is one ``INSERT … ON CONFLICT … WHERE`` against
the database's clock, so instances on hosts with skewed clocks agree on expiry. On SQLite
(one instance assumed) the same rule runs in a ``BEGIN IMMEDIATE`` transaction. Given a
``Clock``, a lease reads "now" from it instead (tests move time rather than sleep).

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

from lyra_bot.clock import Clock
from lyra_bot.db import transaction
from lyra_bot.models import Lease as LeaseRow

log = logging.getLogger(__name__)

_PG_TAKE = """
INSERT INTO lease (name, holder, expires_at)
VALUES ($1, $2, {now} + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
 WHERE lease.holder = EXCLUDED.holder OR lease.expires_at < {now}
RETURNING holder
"""
_PG_TAKE_NOW = _PG_TAKE.format(now="clock_timestamp()")
_PG_TAKE_AT = _PG_TAKE.format(now="$4::timestamptz")


def instance_id() -> str:
    """A name for this process that no other process (here or on another host) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    """The lease ``name`` as seen by ``holder``; ``ttl`` seconds long, renewed every ttl/3.

    Without a ``clock``, expiry follows the database's clock (PostgreSQL) or the system's
    (SQLite), and renewals the monotonic clock."""

    def __init__(self, name: str, holder: str, ttl: float, clock: Clock | None = None) -> None:
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.clock = clock
        self.held = False
        self._renewed = 0.0  # seconds (of _elapsed) at the last successful take or renewal

    def _elapsed(self) -> float:
        """Seconds on a clock that only goes forward (or on the injected clock)."""
        if self.clock is not None:
            return self.clock.now().timestamp()
        return time.monotonic()

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    async def acquire(self) -> bool:
        """Take the lease if free or expired, renew it if ours; True when this instance holds it."""
        connection = get_connection("default")
        if connection.capabilities.dialect == "sqlite":
            held = await self._take_sqlite()
        else:
            args: list[object] = [self.name, self.holder, float(self.ttl)]
            if self.clock is not None:
                args.append(self.clock.now())
            sql = _PG_TAKE_NOW if self.clock is None else _PG_TAKE_AT
            rows = await connection.execute_query_dict(sql, args)
            held = bool(rows)
        if held != self.held:
            log.info("lease %s %s by %s", self.name, "taken" if held else "lost", self.holder)
        self.held = held
        if held:
            self._renewed = self._elapsed()
        return held

    async def keep(self) -> bool:
        """Renew when a renewal is due (cheap to call often); True while the lease is ours."""
        if self.held and self._elapsed() - self._renewed < self.renew_every:
            return True
        return await self.acquire()

    async def release(self) -> None:
        """Give the lease up (clean shutdown), so another instance need not wait for expiry."""
        if self.held:
            await LeaseRow.filter(name=self.name, holder=self.holder).delete()
            self.held = False
            log.info("lease %s released by %s", self.name, self.holder)

    async def _take_sqlite(self) -> bool:
        now = self.clock.now() if self.clock is not None else datetime.now(UTC)
        until = now + timedelta(seconds=self.ttl)
        async with transaction():
            row = await LeaseRow.get_or_none(name=self.name)
            if row is None:
                await LeaseRow.create(name=self.name, holder=self.holder, expires_at=until)
                return True
            if row.holder != self.holder and row.expires_at >= now:
                return False
            row.holder, row.expires_at = self.holder, until
            await row.save(update_fields=["holder", "expires_at"])
            return True
