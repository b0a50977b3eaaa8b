"""Rate limits: requests per API key, claims per partner user (moving one-minute windows).

Built on the ``limits`` library. The default storage is the process's memory, so each
``lyra-bot run`` instance counts on its own; point ``LYRA_RATE_LIMIT_STORAGE`` at a shared
store (``async+redis://…``) to count across instances.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from lyra_bot.config import Settings


class RateLimits:
    """One per process (held by the Bus); ``0`` in a setting turns that limit off."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = _per_minute(settings.api_rate_per_minute)
        self.claims = _per_minute(settings.claims_per_minute)
        self._limiter: MovingWindowRateLimiter | None = None

    @property
    def limiter(self) -> MovingWindowRateLimiter:
        if self._limiter is None:  # built lazily: the async storage wants a running loop
            storage = storage_from_string(self.settings.rate_limit_storage)
            self._limiter = MovingWindowRateLimiter(storage)  # type: ignore[arg-type]
        return self._limiter

    async def hit(self, item: RateLimitItem | None, *ids: str) -> int | None:
        """Count one event; None when allowed, else whole seconds until the next is."""
        if item is None:
            return None
        if await self.limiter.hit(item, *ids):
            return None
        stats = await self.limiter.get_window_stats(item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _per_minute(amount: int) -> RateLimitItem | None:
    return RateLimitItemPerMinute(amount) if amount > 0 else None
