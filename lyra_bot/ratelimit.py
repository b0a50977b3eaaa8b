"""Rate limits: requests per API key, claims per partner user and per partner (moving
one-minute windows).

Built on the ``limits`` library. The default storage is the process's memory, so each
``lyra-bot run`` instance counts on its own; point ``LYRA_RATE_LIMIT_STORAGE`` at a shared
store (``async+redis://…``) to count across instances.

In memory the library's synchronous limiter is used: counting is a few dictionary
operations that never block, while its asyncio memory storage hands every key to a worker
thread on each expiry pass (measured: 5x the cost of a hit).
"""

from __future__ import annotations

import inspect
import math
import time
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
        """A moving-window limiter on the configured storage (sync in memory, else async)."""
        if self._limiter is None:  # built lazily: the async storage wants a running loop
            from limits import strategies
            from limits.aio import strategies as aio_strategies
            from limits.storage import storage_from_string

            uri = self.settings.rate_limit_storage
            if uri.removeprefix("async+").startswith("memory://"):
                storage = storage_from_string(uri.removeprefix("async+"))
                self._limiter = strategies.MovingWindowRateLimiter(storage)
            else:
                storage = storage_from_string(uri)
                self._limiter = aio_strategies.MovingWindowRateLimiter(storage)  # type: ignore[arg-type]
        return self._limiter

    async def _call(self, method: str, *args: Any) -> Any:
        result = getattr(self.limiter, method)(*args)
        return await result if inspect.isawaitable(result) else result

    async def hit(self, item: RateLimitItem | None, *ids: str) -> int | None:
        """Count one event; None when allowed, else whole seconds until the next is."""
        if item is None:
            return None
        if await self._call("hit", item, *ids):
            return None
        stats = await self._call("get_window_stats", item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _per_minute(amount: int) -> RateLimitItem | None:
    if amount <= 0:
        return None
    # imported here: `limits` is 50 modules, and most processes never count a request
    from limits import RateLimitItemPerMinute

    return RateLimitItemPerMinute(amount)
