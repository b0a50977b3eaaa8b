"""Lyra's Slack front door, put together: ``SlackApp.handle`` is the route of
``/slack/events``, a bolt ``AsyncApp`` routes what comes in to Lyra's listeners.

The roles live in their own modules:

- ``endpoint``: signature check, the ack at once (``lyra_slack_ack_seconds``);
- ``inbox``: acked requests stored until handled, taken over after a crash;
- ``workers``: the few tasks that handle acked requests;
- ``listeners``: which click, command or event does what;
- ``answers``: commands through the bus and the answer to the person who acted;
- ``modals``: feedback and more-time modals; ``home``: App Home;
- ``identity``, ``blocks``, ``messages``, ``transport``: who is clicking, Block Kit,
  posted messages rendered from the store, the outbox's Web API calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from lyra_bot.adapters.slack.answers import Answers, Where, request_key
from lyra_bot.adapters.slack.endpoint import Endpoint, request_kind
from lyra_bot.adapters.slack.home import Home
from lyra_bot.adapters.slack.identity import installation_guard
from lyra_bot.adapters.slack.inbox import MAX_ATTEMPTS, DurableInbox, GroupCommit
from lyra_bot.adapters.slack.listeners import Listeners, report_command
from lyra_bot.adapters.slack.modals import Modals, validate_feedback
from lyra_bot.adapters.slack.transport import web_client
from lyra_bot.adapters.slack.workers import Workers
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from lyra_bot.bus import Bus
from lyra_bot.clock import Clock
from lyra_bot.config import Settings
from lyra_bot.lease import instance_id

__all__ = [
    "MAX_ATTEMPTS",
    "GroupCommit",
    "SlackApp",
    "Where",
    "report_command",
    "request_key",
    "request_kind",
    "validate_feedback",
]

log = logging.getLogger(__name__)


class SlackApp:
    """The bolt app with Lyra's listeners, behind the endpoint, the inbox and the workers."""

    def __init__(self, bus: Bus, settings: Settings, clock: Clock) -> None:
        secret = settings.slack_signing_secret
        if secret is None or not secret.get_secret_value().strip():
            raise ValueError("LYRA_SLACK_SIGNING_SECRET must be set when LYRA_SLACK_BOT_TOKEN is.")
        self.bus, self.settings, self.clock = bus, settings, clock
        self.client = web_client(settings)
        self.bolt = AsyncApp(
            name="lyra",
            client=self.client,
            signing_secret=secret.get_secret_value(),
            # ``handle`` has acked already where that is possible; the rest acks in listeners.
            process_before_response=True,
            logger=logging.getLogger("lyra.slack.bolt"),
        )
        self.verifier = SignatureVerifier(secret.get_secret_value())
        self._session: aiohttp.ClientSession | None = None
        self.holder = settings.instance_id or instance_id()
        self.workers = Workers()
        # ``_spawn`` and ``_dispatch`` are looked up at each call (tests replace them).
        self.inbox = DurableInbox(
            settings,
            self.verifier,
            bus,
            self.holder,
            spawn=lambda work: self._spawn(work),
            dispatch=lambda body, query, headers: self._dispatch(body, query, headers),
        )
        self.endpoint = Endpoint(
            self.bolt, self.verifier, bus.metrics, self._accept, self.workers.touch
        )
        answers = Answers(bus, settings, clock, self.client)
        self.bolt.use(installation_guard(answers.installed))  # before every listener
        home = Home(answers)
        modals = Modals(answers, home, spawn=lambda work: self._spawn(work))
        Listeners(answers, modals, home).register(self.bolt)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp route of ``/slack/events``."""
        return await self.endpoint.handle(request)

    async def recover(self, older_than: float | None = None) -> int:
        """Take over stored requests nobody finished (see ``DurableInbox.recover``)."""
        return await self.inbox.recover(older_than)

    async def _accept(self, body: str, query: str, headers: Mapping[str, str]) -> None:
        """A request acked empty: stored, then queued for bolt."""
        row_id = await self.inbox.store(body, query, headers)
        self._spawn(lambda: self.inbox.dispatch_stored(row_id, body, query, headers))

    def _spawn(self, work: Callable[[], Awaitable[Any]]) -> None:
        self.workers.spawn(work)

    async def _dispatch(self, body: str, query: str, headers: Any) -> int:
        return await self.endpoint.dispatch(body, query, headers)

    async def start(self) -> None:
        """One HTTP session for every Web API call (created inside the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        self.workers.start()
        self.inbox.start()

    async def drain(self) -> None:
        """Wait until every request acked so far has been handled (and its row deleted)."""
        await self.workers.drain()
        await self.inbox.idle()

    @property
    def idle(self) -> bool:
        return self.workers.idle

    async def close(self) -> None:
        await self.inbox.stop()
        try:
            await asyncio.wait_for(self.drain(), timeout=10)
        except TimeoutError:
            log.warning("%d Slack request(s) not handled at shutdown", self.workers.backlog)
        await self.workers.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None
