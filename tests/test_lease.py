"""The lease that keeps IMAP polling to one instance: taken, renewed, refused, taken over.

Time is the injected clock, moved by the test at each of the shared instants (one of them a
DST change): a lease's expiry is an instant, not a local time, so none of them matters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from lyra_bot.clock import FrozenClock
from lyra_bot.lease import Lease
from lyra_bot.models import Lease as LeaseRow


async def test_one_holder_at_a_time_and_takeover_after_expiry(store, instant_clock: FrozenClock):
    clock = instant_clock
    a, b = Lease("imap-poller", "a", 0.6, clock), Lease("imap-poller", "b", 0.6, clock)
    assert await a.acquire() is True
    assert await b.acquire() is False
    assert await a.acquire() is True  # renewal by the holder
    clock.advance(seconds=0.3)
    assert await a.acquire() is True  # renewed before expiry: b still waits
    assert await a.keep() is True
    clock.advance(seconds=0.4)
    assert await b.acquire() is False  # 0.4 s after the renewal, 0.2 s still to go
    clock.advance(seconds=0.19)
    assert await b.acquire() is False
    clock.advance(seconds=0.02)  # a stopped renewing (it "died") and its lease ran out
    assert await b.acquire() is True
    assert await a.acquire() is False and not a.held
    assert (await LeaseRow.get(name="imap-poller")).holder == "b"


async def test_keep_renews_only_when_a_third_of_the_lease_has_passed(
    store, instant_clock: FrozenClock
):
    clock = instant_clock
    a, b = Lease("imap-poller", "a", 30, clock), Lease("imap-poller", "b", 30, clock)
    assert await a.keep()
    first = (await LeaseRow.get(name="imap-poller")).expires_at
    clock.advance(seconds=9)
    assert await a.keep()  # not yet due: the row is not touched
    assert (await LeaseRow.get(name="imap-poller")).expires_at == first
    clock.advance(seconds=2)
    assert await a.keep()  # 11 s > 10 s: renewed for another 30 s
    assert (await LeaseRow.get(name="imap-poller")).expires_at == first + timedelta(seconds=11)
    clock.advance(seconds=29)
    assert not await b.acquire()  # a renewed 29 s ago: still a's


async def test_without_a_clock_expiry_follows_the_database_clock(store):
    a, b = Lease("imap-poller", "a", 60), Lease("imap-poller", "b", 60)
    assert await a.acquire()
    assert not await b.acquire()
    await LeaseRow.filter(name="imap-poller").update(
        expires_at=(await LeaseRow.get(name="imap-poller")).expires_at - timedelta(seconds=61)
    )
    assert await b.acquire()  # a's lease has run out by the database's (or system's) clock


async def test_release_hands_over_at_once(store):
    a, b = Lease("imap-poller", "a", 60), Lease("imap-poller", "b", 60)
    assert await a.acquire()
    assert not await b.acquire()
    await a.release()
    assert await b.acquire()
    await a.release()  # not the holder: changes nothing
    assert (await LeaseRow.get(name="imap-poller")).holder == "b"


async def test_racing_instances_get_one_winner(store):
    leases = [Lease("imap-poller", f"i{n}", 30) for n in range(8)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert sum(results) == 1
