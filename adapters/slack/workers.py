"""The few workers that handle Slack requests after their ack.

A request acked at once (a click, a slash command, an event) is queued here; ``WORKERS`` of
them are worked on at a time, each after a quiet moment, so a burst of clicks is acked at the
pace of HTTP first instead of waiting behind their transactions.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lyra_bot.logs import correlation
from lyra_bot.logs import current as current_correlation

log = logging.getLogger(__name__)

WORKERS = 4  # requests worked on at once, after their ack
QUIET = 0.025  # seconds: work waits until no request came in for this long …
MAX_DEFER = 0.25  # … but never longer than this

Work = Callable[[], Awaitable[Any]]


class Workers:
    """A queue of work and the tasks that drain it (started on first use, in the loop)."""

    def __init__(self, count: int = WORKERS) -> None:
        self.count = count
        self._queue: asyncio.Queue[Work] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending = 0  # queued or being handled
        self._last_request = 0.0

    def touch(self) -> None:
        """A request came in: queued work waits for a quiet moment after it."""
        self._last_request = asyncio.get_running_loop().time()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.count)]

    def spawn(self, work: Work) -> None:
        """Queue ``work``, under the correlation id of the request."""
        self.start()
        self._pending += 1
        cid = current_correlation()

        async def bound() -> Any:
            with correlation(cid, prefix="slack-"):
                return await work()

        self._queue.put_nowait(bound)

    @property
    def idle(self) -> bool:
        return self._pending == 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def drain(self) -> None:
        """Until every piece of work queued so far is done."""
        await self._queue.join()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            work = await self._queue.get()
            try:
                # A debounce: sleep until QUIET after the latest request (at most MAX_DEFER).
                latest = loop.time() + MAX_DEFER
                while (pause := min(self._last_request + QUIET, latest) - loop.time()) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(pause)
                # Each request in a task (and context) of its own: a transaction whose
                # connection the database cut dies with it instead of staying this worker's.
                await asyncio.create_task(work(), context=contextvars.copy_context())
            except Exception:
                log.exception("handling a Slack request failed")
            finally:
                self._pending -= 1
                self._queue.task_done()
