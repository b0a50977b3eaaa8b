"""A batch that fails part-way: what was delivered stays delivered (marked sent at once), and
an error while recording a failure never escapes the worker or re-sends anything."""

from __future__ import annotations

from collections import Counter

from lyra_bot.domain import OutboxStatus
from lyra_bot.models import OutboxMessage
from lyra_bot.outbox import OutboxWorker


class Flaky:
    """A transport that refuses the rows named in ``refuse`` and records every delivery."""

    channel = "email"

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.sent: Counter[str] = Counter()

    async def send(self, message: OutboxMessage) -> None:
        if message.dedupe_key in self.refuse:
            raise ConnectionError("421 try again later")
        self.sent[message.dedupe_key] += 1

    async def close(self) -> None:
        return None


async def queue(clock, keys: list[str]) -> None:
    for key in keys:
        await OutboxMessage.create(
            channel="email",
            kind="k",
            recipient="a@b.example",
            payload={},
            dedupe_key=key,
            message_id=f"<{key}@lyra.test>",
            next_attempt_at=clock.now(),
            created_at=clock.now(),
        )


async def test_rows_delivered_before_a_failure_whose_recording_fails_are_not_sent_again(
    store, clock
):
    await queue(clock, ["m1", "m2", "m3"])
    transport = Flaky(refuse={"m2"})
    worker = OutboxWorker(store, [transport], clock)

    async def database_away(row: OutboxMessage, exc: Exception) -> None:
        raise ConnectionError("connection was closed in the middle of operation")

    worker._failed = database_away  # type: ignore[method-assign]
    assert await worker.run_once() == 3  # nothing escapes the drain loop
    status = dict(await OutboxMessage.all().values_list("dedupe_key", "status"))
    assert status == {
        "m1": OutboxStatus.SENT,
        "m2": OutboxStatus.PENDING,
        "m3": OutboxStatus.SENT,
    }

    # The database answers again and the server takes m2; m2's lease runs out, it is taken
    # again: only m2 goes out, m1 and m3 are not delivered a second time.
    del worker._failed
    transport.refuse.clear()
    clock.advance(seconds=store.outbox_lease_seconds + 1)
    assert await worker.run_once() == 1
    assert transport.sent == {"m1": 1, "m2": 1, "m3": 1}
    assert not await OutboxMessage.filter(status=OutboxStatus.PENDING).exists()


async def test_a_row_is_recorded_sent_when_the_database_comes_back_within_its_lease(store, clock):
    await queue(clock, ["m1", "m2"])
    transport = Flaky(refuse=set())
    worker = OutboxWorker(store, [transport], clock)
    record, cut = worker._record_sent, {"left": 2}

    async def cut_twice(rows: list[OutboxMessage]) -> None:
        if cut["left"]:
            cut["left"] -= 1
            raise ConnectionError("terminating connection due to administrator command")
        await record(rows)

    worker._record_sent = cut_twice  # type: ignore[method-assign]
    assert await worker.run_once() == 2
    assert transport.sent == {"m1": 1, "m2": 1}
    assert await OutboxMessage.filter(status=OutboxStatus.SENT).count() == 2
    clock.advance(seconds=store.outbox_lease_seconds + 1)
    assert await worker.run_once() == 0
    assert transport.sent == {"m1": 1, "m2": 1}
