"""``POST /slack/events``: verify the signature, then ack at once what needs no answer.

Signature and timestamp are checked first (401, nothing else happens). Button clicks, slash
commands and events are answered with an empty 200 straight away (a Claim button is acked
within milliseconds; Slack gives up after 3 s) and handed to ``accept``, which stores and
queues them for bolt. Requests whose ack carries an answer (modal submissions, the URL
check …) go through bolt before the response.

A signed request whose body bolt cannot read (not JSON, a payload that is no JSON object)
is acknowledged with an empty 200, logged once and dropped: it is never stored, so it is
never tried again, and bolt never raises over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from lyra_bot.metrics import Metrics

log = logging.getLogger(__name__)

Accept = Callable[[str, str, Mapping[str, str]], Awaitable[None]]
"""Takes a verified request that was acked empty (body, query string, headers)."""

# Request types whose ack carries an answer. They are named in the raw body, literally
# even when form-encoded.
_ANSWERED_IN_ACK = (
    "view_submission",
    "block_suggestion",
    "dialog_submission",
    "dialog_suggestion",
    "url_verification",
    "interactive_message",
)


class Endpoint:
    """The aiohttp route of ``/slack/events`` in front of a bolt app."""

    def __init__(
        self,
        bolt: AsyncApp,
        verifier: SignatureVerifier,
        metrics: Metrics,
        accept: Accept,
        touch: Callable[[], None],
    ) -> None:
        self.bolt, self.verifier, self.metrics = bolt, verifier, metrics
        self._accept, self._touch = accept, touch

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one request; the time to the answer is observed in
        ``lyra_slack_ack_seconds`` by kind of request."""
        started = time.perf_counter()
        kind, response = await self._handle(request)
        kind = "rejected" if response.status == 401 else kind
        self.metrics.slack_ack.labels(kind).observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: web.Request) -> tuple[str, web.Response]:
        self._touch()
        body = await request.text()
        kind = request_kind(body)
        query, headers = request.query_string, request.headers
        if "ssl_check" in body:  # Slack's certificate check: bolt answers it, unsigned or not
            return kind, await self.dispatch_now(body, query, headers)
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or not self.verifier.is_valid(body, timestamp, signature):
            return kind, web.json_response({"error": "invalid request"}, status=401)
        if bolt_request(body, query, headers) is None:
            log.warning(
                "signed Slack request with an unreadable body (%d bytes) dropped", len(body)
            )
            return "malformed", web.Response(status=200)
        if _empty_ack(body):
            await self._accept(body, query, headers)
            return kind, web.Response(status=200)
        return kind, await self.dispatch_now(body, query, headers)

    async def dispatch_now(self, body: str, query: str, headers: Any) -> web.Response:
        """Bolt handles the request and its answer is the HTTP response."""
        request = bolt_request(body, query, headers)
        if request is None:
            return web.Response(status=200)
        return await to_aiohttp_response(await self.bolt.async_dispatch(request))

    async def dispatch(self, body: str, query: str, headers: Any) -> int:
        """Bolt handles a request already acked; returns its status (5xx: Lyra failed)."""
        request = bolt_request(body, query, headers)
        if request is None:  # stored before bodies were checked at the door: drop it
            log.warning("stored Slack request with an unreadable body dropped")
            return 200
        response = await self.bolt.async_dispatch(request)
        if response.status >= 400:
            log.warning("Slack request not handled: %s %s", response.status, response.body)
        else:
            log.debug("Slack request handled: %s", response.status)
        return response.status


def bolt_request(body: str, query: str, headers: Any) -> AsyncBoltRequest | None:
    """The request as bolt reads it, or None when its body cannot be read: bolt parses
    the body (and looks into it) while building the request, outside any error handling."""
    try:
        request = AsyncBoltRequest(body=body, query=query, headers=headers)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, BoltError):
        return None
    return request if isinstance(request.body, dict) else None


def request_kind(body: str) -> str:
    """The ``kind`` label of a request, from its raw body (no parsing on the ack path)."""
    if body.startswith("payload="):
        return "interactive"
    if body.lstrip().startswith("{"):
        return "event"
    if "command=" in body:
        return "command"
    return "other"


def _empty_ack(body: str) -> bool:
    """Whether Slack expects nothing but 200 to this request (clicks, commands, events).

    Judged from the raw body without parsing it: a request that mentions one of the types
    answered in the ack anywhere (even in text a user typed) goes through bolt first, which
    costs a little time and never gives a wrong answer.
    """
    text = body.lower().replace("%5f", "_")
    return not any(kind in text for kind in _ANSWERED_IN_ACK)
