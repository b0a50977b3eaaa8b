"""Rate limits: requests per API key, claims per partner user (moving one-minute windows).

Built on the ``limits`` library. The default storage is the process's memory, so each
``lyra-bot run`` instance counts on its own; point ``LYRA_RATE_LIMIT_STORAGE`` at a shared
store (``async+redis://…``) to count across instances.

In memory the windows are counted here (``_Windows``): a moving window is a queue of hit
times per key, a few operations that never block. The library's memory storages start a
timer thread to expire keys (the synchronous one a new thread every 10 ms while hits come
in, the asyncio one a worker thread per expiry pass), which cost more than the rest of a
claim's rate check and competed with the database driver's thread for the GIL.
"""

from __future__ import annotations

import math
import time
from collections import deque
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lyra_bot.config import Settings

if TYPE_CHECKING:
    from limits import RateLimitItem


class RateLimits:
    """One per process (held by the Bus); ``0`` in a setting turns that limit off."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._limiter: Any = None

    @cached_property
    def api(self) -> RateLimitItem | None:
        """Requests a minute per intake API key."""
        return _per_minute(self.settings.api_rate_per_minute)

    @cached_property
    def claims(self) -> RateLimitItem | None:
        """Claims a minute per partner user."""
        return _per_minute(self.settings.claims_per_minute)

    @cached_property
    def partner_claims(self) -> RateLimitItem | None:
        """Claims a minute per partner, all its users together."""
        return _per_minute(self.settings.partner_claims_per_minute)

    @property
    def limiter(self) -> Any:
        """The library's moving-window limiter on a shared store, or ``_Windows`` in memory."""
        if self._limiter is None:  # built lazily: the async storage wants a running loop
            uri = self.settings.rate_limit_storage
            if uri.removeprefix("async+").startswith("memory://"):
                self._limiter = _Windows()
            else:
                from limits.aio import strategies as aio_strategies
                from limits.storage import storage_from_string

                storage = storage_from_string(uri)
                self._limiter = aio_strategies.MovingWindowRateLimiter(storage)  # type: ignore[arg-type]
        return self._limiter

    async def hit(self, item: RateLimitItem | None, *ids: str) -> int | None:
        """Count one event; None when allowed, else whole seconds until the next is."""
        if item is None:
            return None
        limiter = self.limiter
        if isinstance(limiter, _Windows):
            wait = limiter.hit(item, *ids)
            return None if wait is None else max(1, math.ceil(wait))
        if await limiter.hit(item, *ids):
            return None
        stats = await limiter.get_window_stats(item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))


class _Windows:
    """Moving windows in this process's memory: per key, the times of the hits in the window.

    A key's queue holds at most ``item.amount`` times; keys idle for a whole window are
    dropped on a pass made at most once a minute, inline (no timer thread).
    """

    PRUNE_EVERY = 60.0

    def __init__(self) -> None:
        self._hits: dict[str, tuple[deque[float], float]] = {}
        self._next_prune = time.monotonic() + self.PRUNE_EVERY

    def hit(self, item: RateLimitItem, *ids: str) -> float | None:
        """Count one hit: None when allowed, else seconds until the window lets one in."""
        now = time.monotonic()
        key = item.key_for(*ids)
        entry = self._hits.get(key)
        if entry is None:
            entry = self._hits[key] = (deque(), float(item.get_expiry()))
        hits, window = entry
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= item.amount:
            return hits[0] + window - now
        hits.append(now)
        if now >= self._next_prune:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        self._next_prune = now + self.PRUNE_EVERY
        idle = [
            k for k, (hits, window) in self._hits.items() if not hits or hits[-1] <= now - window
        ]
        for key in idle:
            del self._hits[key]


def _per_minute(amount: int) -> RateLimitItem | None:
    if amount <= 0:
        return None
    # imported here: `limits` is 50 modules, and most processes never count a request
    from limits import RateLimitItemPerMinute

    return RateLimitItemPerMinute(amount)
