"""What a running Lyra process shares, in a module of its own.

Adapters are handed a ``Services`` (they use its settings, clock and bus); only
``lyra_bot.app``, the composition root, builds one and knows which adapters, transports and
workers exist. Keeping the type here is what lets adapters name it without importing the
root that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from lyra_bot.bus import Bus
from lyra_bot.clock import Clock
from lyra_bot.config import Settings
from lyra_bot.outbox import OutboxWorker
from lyra_bot.scheduler import Scheduler


class MailIn(Protocol):
    """Takes one inbound mail (its raw bytes) through the email adapter."""

    async def process(self, raw: bytes, source: str = "imap", size: int | None = None) -> Any: ...


@dataclass
class Services:
    """Everything a running Lyra process shares."""

    settings: Settings
    clock: Clock
    bus: Bus
    worker: OutboxWorker
    scheduler: Scheduler
    mail: MailIn
    imap_poller: Callable[[], Any] = lambda: None
    """The IMAP poller when ``LYRA_IMAP_HOST`` is set (it polls while it holds the lease)."""
    background: list[Any] = field(default_factory=list)


SERVICES = web.AppKey("services", Services)
