"""The lease that keeps IMAP polling to one instance: taken, renewed, refused, taken over."""

from __future__ import annotations

import asyncio

from lyra_bot.lease import Lease
from lyra_bot.models import Lease as LeaseRow


async def test_one_holder_at_a_time_and_takeover_after_expiry(store):
    a, b = Lease("imap-poller", "a", 0.6), Lease("imap-poller", "b", 0.6)
    assert await a.acquire() is True
    assert await b.acquire() is False
    assert await a.acquire() is True  # renewal by the holder
    await asyncio.sleep(0.3)
    assert await a.acquire() is True  # renewed before expiry: b still waits
    await asyncio.sleep(0.4)
    assert await b.acquire() is False
    await asyncio.sleep(0.4)  # a stopped renewing (it "died")
    assert await b.acquire() is True
    assert await a.acquire() is False and not a.held
    assert (await LeaseRow.get(name="imap-poller")).holder == "b"


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
