"""The durable inbox: a Slack request acked before it was handled is stored until it is.

A request acked with an empty 200 is first stored (``SlackInbox``, one short insert) and
deleted once bolt handled it: when the process dies in between, ``recover`` in another
instance, or in this one after a restart, takes the rows not finished in
``LYRA_SLACK_RECOVER_SECONDS`` and handles them then (signed again, since Slack's timestamp
may be stale by then). Handling one twice is harmless: every command carries the request's
idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from lyra_bot.adapters.slack.identity import SYSTEM
from slack_sdk.signature import SignatureVerifier

from lyra_bot.bus import Bus
from lyra_bot.commands import DeleteSlackRequests, StoreSlackRequests, TakeSlackRequests
from lyra_bot.config import Settings

log = logging.getLogger(__name__)

KEPT_HEADERS = ("Content-Type", "X-Slack-Retry-Num", "X-Slack-Retry-Reason")  # stored with a body
RECOVER_BATCH = 100  # stored requests taken over at once
MAX_ATTEMPTS = 5  # a stored request that failed this often is dropped (logged)
T = TypeVar("T")

Dispatch = Callable[[str, str, Any], Awaitable[int]]
"""Bolt handles one request (body, query string, headers); returns the HTTP status."""
Spawn = Callable[[Callable[[], Awaitable[Any]]], None]


class DurableInbox:
    """Stores verified requests, deletes them once handled, takes over the forgotten ones.

    ``spawn`` queues work for the workers, ``dispatch`` hands a request to bolt; both are
    called late, through the Slack app, so one can be replaced while the app runs.
    """

    def __init__(
        self,
        settings: Settings,
        verifier: SignatureVerifier,
        bus: Bus,
        holder: str,
        spawn: Spawn,
        dispatch: Dispatch,
    ) -> None:
        self.settings, self.verifier, self.bus = settings, verifier, bus
        self.metrics = bus.metrics
        self.holder = holder
        self._spawn, self._dispatch = spawn, dispatch
        self._inflight: set[uuid.UUID] = set()  # stored requests queued or handled here
        self._stores: GroupCommit[dict[str, Any]] = GroupCommit(self._store_rows)
        self._deletes: GroupCommit[uuid.UUID] = GroupCommit(self._delete_rows)
        self._recovery: asyncio.Task[None] | None = None

    async def store(self, body: str, query: str, headers: Mapping[str, str]) -> uuid.UUID:
        """Keep a verified request until it is handled: requests that arrive together are
        inserted in one short transaction (a burst of clicks waits for a few commits, not
        one each). An insert that fails answers 500, and Slack sends the request again."""
        now = datetime.now(UTC)
        kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
        row_id = uuid.uuid4()
        row = {
            "id": str(row_id),
            "body": body,
            "query": query,
            "headers": kept,
            "received_at": now,
            "holder": self.holder,
        }
        self._inflight.add(row_id)
        try:
            await self._stores.add(row)
        except BaseException:
            self._inflight.discard(row_id)
            raise
        return row_id

    async def dispatch_stored(self, row_id: uuid.UUID, body: str, query: str, headers: Any) -> None:
        """Bolt handles a stored request, then its row goes. A failure of Lyra's (a 5xx,
        the database away) leaves the row for ``recover`` to try again."""
        try:
            if await self._dispatch(body, query, headers) < 500:
                await self._deletes.add(row_id)
        finally:
            self._inflight.discard(row_id)

    async def recover(self, older_than: float | None = None) -> int:
        """Take over stored requests nobody finished within ``older_than`` seconds (default
        ``LYRA_SLACK_RECOVER_SECONDS``) and queue them; returns how many were queued.

        On PostgreSQL the rows are taken with ``FOR UPDATE SKIP LOCKED``, so two instances
        never take the same row at once. Handling one twice is harmless anyway: every command
        carries the request's idempotency key.
        """
        stale = self.settings.slack_recover_seconds if older_than is None else older_than
        now = datetime.now(UTC)
        take = TakeSlackRequests(
            holder=self.holder,
            now=now,
            stale_before=now - timedelta(seconds=stale),
            exclude=tuple(str(i) for i in self._inflight),
            limit=RECOVER_BATCH,
            max_attempts=MAX_ATTEMPTS,
        )
        reply = await self.bus.dispatch(take, SYSTEM)
        if not reply.ok:
            raise RuntimeError(f"taking over stored Slack requests: {reply.message}")
        for row in reply.data["dropped"]:
            log.error("Slack request %s dropped after %d attempts", row["id"], row["attempts"] - 1)
            self.metrics.slack_recovered.labels("dropped").inc()
        queued = 0
        for row in reply.data["taken"]:
            row_id = uuid.UUID(row["id"])
            self._inflight.add(row_id)
            headers = self._signed(row["body"], row["headers"])
            self._spawn(
                lambda row=row, row_id=row_id, headers=headers: self.dispatch_stored(  # type: ignore[misc]
                    row_id, row["body"], row["query"], headers
                )
            )
            queued += 1
        if queued:
            self.metrics.slack_recovered.labels("queued").inc(queued)
            log.info("%d stored Slack request(s) taken over by %s", queued, self.holder)
        return queued

    def _signed(self, body: str, kept: Mapping[str, str]) -> dict[str, str]:
        """Headers for bolt's own check of a stored request: signed again, now."""
        timestamp = str(int(time.time()))
        signature = self.verifier.generate_signature(timestamp=timestamp, body=body)
        return {
            **kept,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
        }

    async def _store_rows(self, rows: list[dict[str, Any]]) -> None:
        reply = await self.bus.dispatch(StoreSlackRequests(tuple(rows)), SYSTEM)
        if not reply.ok:
            raise RuntimeError(f"storing Slack requests: {reply.message}")

    async def _delete_rows(self, ids: list[uuid.UUID]) -> None:
        await self.bus.dispatch(DeleteSlackRequests(tuple(str(i) for i in ids)), SYSTEM)

    def start(self) -> None:
        """Look for stored requests to take over, from now on."""
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover_forever(), name="slack-recover")

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None

    async def idle(self) -> None:
        """Until the rows of requests handled so far are deleted."""
        await self._deletes.idle()

    async def _recover_forever(self) -> None:
        """Look for stored requests to take over at start and every few seconds."""
        every = max(0.5, min(5.0, self.settings.slack_recover_seconds / 3))
        while True:
            try:
                await self.recover()
            except Exception:
                log.exception("taking over stored Slack requests failed")
            await asyncio.sleep(every)


class GroupCommit(Generic[T]):
    """Items written together: ``add`` returns once its item is written, in one call of
    ``write`` with every item added while the previous call ran (a group commit)."""

    def __init__(self, write: Callable[[list[T]], Awaitable[Any]]) -> None:
        self._write = write
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def idle(self) -> None:
        """Until everything added so far is written (or failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
