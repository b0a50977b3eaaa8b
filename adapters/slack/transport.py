"""The outbox's Slack transport: executes queued Web API calls with ``AsyncWebClient``.

A Slack outbox row has ``channel="slack"``, ``recipient`` = the Slack channel (or user) id,
and ``payload = {"method": "<method>", "args": {...}}`` (see ``lyra_bot.outbox.slack``).

Methods:

- any Web API method (``chat.postMessage``, ``chat.update``, ``views.publish`` …) is called
  with ``args`` as its JSON body.
- ``chat.postEphemeral``: when Slack cannot show it in that channel (the bot is not a member,
  the channel is a DM between people, the user left), the answer goes to the user's DM with
  the bot instead, which again only that user sees.
- ``lyra.post_message`` ``{"message": <SlackMessage id>}``: renders the recorded message
  from the database *now*, posts it with ``chat.postMessage`` and stores its ``ts``, so
  every later change of its leads can update it (not posted at all when none of its leads
  can be claimed any more).
- ``lyra.update_message`` ``{"message": <SlackMessage id>}``: renders the message again from
  the database *now* and sends ``chat.update``; skipped when Slack already shows exactly
  that, or when a later update of the same message is queued (it will show the latest
  state). A message or channel gone from Slack is marked gone and not retried.

- ``lyra.say`` ``{"say": {"kind", "locale", "context"}, "channel": …, "user": … or null}``:
  what to tell whom, turned into Block Kit *now* by ``adapters.slack.render`` in the
  reader's language; to ``user`` only (ephemeral in ``channel``, else their DM) when a user
  is given, else posted in ``channel`` (a user id there is their DM).
- ``lyra.claims_answer`` ``{"user": ..., "channel": ... or null, "partner": <id>,
  "lyra_user": <id>}``: a partner user's open claims with their customers (``ListMine``),
  rendered *now* and shown to that user only (ephemeral, else DM), so the outbox never
  stores several customers in one row.

What the transport reads of the store (``SlackMessageView``) and records in it
(``RecordSlackDelivery``, ``DeactivateSlackChannel`` when a channel is lost) goes through
the bus as commands.

Order: a row waits (the worker retries it later) while an earlier row to the same
recipient is still pending, so messages to one channel arrive in the order they were
written. A 429 is retried in place after ``Retry-After`` (slack_sdk's rate-limit handler);
errors Slack will repeat (unknown channel, bad blocks …) raise ``PermanentError``; network
and server errors are left to the worker's backoff.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import aiohttp
from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.messages import render_claims, render_message
from lyra_bot.adapters.slack.render import render
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from lyra_bot.bus import Bus
from lyra_bot.commands import (
    Actor,
    DeactivateSlackChannel,
    ListMine,
    RecordSlackDelivery,
    Role,
    SlackMessageView,
    TenantProfile,
)
from lyra_bot.config import Settings
from lyra_bot.outbox import PermanentError, Waiting, pending_after, pending_before
from lyra_bot.render import Renderer

if TYPE_CHECKING:  # the row the outbox worker hands a transport (read, never queried here)
    from lyra_bot.outbox import OutboxMessage

log = logging.getLogger(__name__)

# Errors that the same call will get again: retrying cannot help.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_arg_name",
        "user_not_found",
        "user_not_in_channel",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "missing_scope",
        "restricted_action",
        "method_not_supported_for_channel_type",
        "unknown_method",
        "not_allowed_token_type",
    }
)
NO_EPHEMERAL_HERE = frozenset(
    {"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived"}
)
MESSAGE_GONE = frozenset(
    {
        "message_not_found",
        "channel_not_found",
        "not_in_channel",
        "cant_update_message",
        "edit_window_closed",
        "is_archived",
    }
)
CHANNEL_LOST = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
SYSTEM = Actor(Role.SYSTEM, "slack", None)
PENDING, POSTED = "pending", "posted"


class NotYet(Waiting):
    """This row must wait for an earlier one; the worker retries it later."""


def web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """A Web API client on ``LYRA_SLACK_API_URL`` that waits out 429s and retries resets."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=15,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


class MalformedAnswer(Exception):
    """Slack (or something in between) answered with what is not a JSON object."""


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code; never raises, whatever the failed answer held (slack_sdk passes
    the raw aiohttp response when the body was not JSON)."""
    response = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return f"http_{status}" if status else "invalid_response"


async def web_answer(call: Awaitable[Any]) -> dict[str, Any]:
    """The JSON object of one Web API answer, read defensively: an answer that is not one
    (text, HTML from a proxy, a JSON list) raises ``MalformedAnswer`` instead of the
    ``AttributeError`` slack_sdk's own check runs into; Slack's errors stay ``SlackApiError``."""
    try:
        response = await call
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedAnswer(str(exc)) from exc
    data = getattr(response, "data", None)
    if not isinstance(data, dict):
        raise MalformedAnswer(f"not a JSON object: {type(data).__name__}")
    return data


class SlackTransport:
    channel = "slack"

    def __init__(self, settings: Settings, bus: Bus) -> None:
        """``bus``: what the transport reads and records of digest messages goes through it."""
        self.settings = settings
        self.bus = bus
        self.renderer: Renderer = bus.renderer
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        # Rows delivered in the worker's current batch are marked sent only when the batch
        # ends: they must not count as "earlier and still pending" for the rows after them.
        self._delivered: deque[int] = deque(maxlen=max(1, settings.outbox_batch))

    @property
    def client(self) -> AsyncWebClient:
        """Created on first use, inside the running event loop, with one shared session."""
        if self._client is None:
            self._session = aiohttp.ClientSession()
            self._client = web_client(self.settings, self._session)
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._client = None, None

    async def send(self, row: OutboxMessage) -> None:
        await self._wait_for_earlier(row)
        await self._send(row)
        self._delivered.append(row.id)

    async def _send(self, row: OutboxMessage) -> None:
        method = row.payload["method"]
        args: dict[str, Any] = row.payload.get("args") or {}
        final = row.attempts + 1 >= self.settings.outbox_max_attempts
        if method == "lyra.post_message":
            await self._post_message(int(args["message"]), final)
        elif method == "lyra.update_message":
            await self._update_message(int(args["message"]), row)
        elif method == "lyra.claims_answer":
            content = await self._claims(row.tenant_id or 0, args)
            if args.get("channel"):
                await self._ephemeral({"channel": args["channel"], "user": args["user"], **content})
            else:
                await self._call("chat.postMessage", {"channel": args["user"], **content})
        elif method == "lyra.say":
            said = args["say"]
            content = render(said["kind"], said.get("locale"), said["context"], self.renderer)
            if args.get("user") and args.get("channel"):
                await self._ephemeral({"channel": args["channel"], "user": args["user"], **content})
            else:
                target = args.get("channel") or args["user"]
                await self._call("chat.postMessage", {"channel": target, **content})
        elif method == "chat.postEphemeral":
            await self._ephemeral(args)
        else:
            await self._call(method, args)

    async def _wait_for_earlier(self, row: OutboxMessage) -> None:
        if await pending_before(self.channel, row.recipient, row.id, tuple(self._delivered)):
            raise NotYet(f"waiting for an earlier message to {row.recipient}")

    async def _claims(self, tenant_id: int, args: dict[str, Any]) -> dict[str, Any]:
        """``ListMine`` as the partner user who asked (rows queued before the user was kept
        in ``lyra_user`` list the partner's claims all the same)."""
        partner = int(args["partner"])
        actor = Actor.partner_user(tenant_id, partner, int(args.get("lyra_user") or 0), "slack")
        mine = await self.bus.dispatch(ListMine(), actor)
        profile = await self.bus.dispatch(TenantProfile(), actor)
        if not (mine.ok and profile.ok):
            raise PermanentError(f"lyra.claims_answer: {mine.message or profile.message}")
        tenant = profile.data["tenant"]
        locale = args.get("locale") or tenant.get("locale")
        return render_claims(mine, tenant["timezone"], locale)

    async def _view(self, message_id: int) -> dict[str, Any] | None:
        """The recorded message as it should look now (None: deleted)."""
        reply = await self.bus.dispatch(SlackMessageView(message_id), SYSTEM)
        return reply.data if reply.data.get("message") else None

    async def _record(self, message_id: int, outcome: str, **details: Any) -> None:
        await self.bus.dispatch(RecordSlackDelivery(message_id, outcome, **details), SYSTEM)

    async def _call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await web_answer(self.client.api_call(method, json=args))
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in PERMANENT:
                raise PermanentError(f"{method}: {error}") from exc
            raise

    async def _ephemeral(self, args: dict[str, Any]) -> None:
        try:
            await self._call("chat.postEphemeral", args)
        except PermanentError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, SlackApiError) and slack_error(cause) in NO_EPHEMERAL_HERE):
                raise
            log.info("ephemeral not possible in %s (%s); sending a DM", args.get("channel"), cause)
            dm = {k: v for k, v in args.items() if k in ("text", "blocks")}
            await self._call("chat.postMessage", {"channel": args["user"], **dm})

    async def _post_message(self, message_id: int, final: bool) -> None:
        view = await self._view(message_id)
        if view is None or view["message"]["status"] != PENDING:
            return  # deleted, or already posted by an earlier attempt
        message = view["message"]
        content = render_message(view)
        if not _offers_claims(content):
            # Everything in it was taken before it could be posted: nothing to show. Its
            # leads are free for a later digest should they come back to the pool.
            await self._record(message_id, "gone")
            return
        try:
            data = await self._call(
                "chat.postMessage",
                {
                    "channel": message["channel_id"],
                    **content,
                    "unfurl_links": False,
                    "unfurl_media": False,
                },
            )
        except Exception as exc:
            if isinstance(exc, PermanentError) or final:
                await self._post_failed(message, exc)
            raise
        await self._record(
            message_id,
            "posted",
            ts=data.get("ts"),
            team_id=(data.get("message") or {}).get("team"),
            content_hash=blocks.content_hash(content),
        )

    async def _post_failed(self, message: dict[str, Any], exc: Exception) -> None:
        await self._record(message["id"], "failed")
        cause = exc.__cause__
        if isinstance(cause, SlackApiError) and slack_error(cause) in CHANNEL_LOST:
            # Lyra cannot post there any more: stop digests until an owner links it again.
            channel, error = message["channel_id"], slack_error(cause)
            await self.bus.dispatch(DeactivateSlackChannel(channel, error), SYSTEM)
            log.warning("Slack channel %s unlinked: %s", channel, error)

    async def _update_message(self, message_id: int, row: OutboxMessage) -> None:
        view = await self._view(message_id)
        if view is None or view["message"]["status"] not in (PENDING, POSTED):
            return
        prefix = f"slack:update:{message_id}:"
        if await pending_after(self.channel, prefix, row.id):
            return  # a later update of this message follows and will show the latest state
        message = view["message"]
        if message["status"] == PENDING or not message["ts"]:
            raise NotYet(f"Slack message {message_id} is not posted yet")
        content = render_message(view)
        digest = blocks.content_hash(content)
        if digest == message["content_hash"]:
            return
        try:
            await self._call(
                "chat.update", {"channel": message["channel_id"], "ts": message["ts"], **content}
            )
        except PermanentError as exc:
            cause = exc.__cause__
            if isinstance(cause, SlackApiError) and slack_error(cause) in MESSAGE_GONE:
                log.info("Slack message %s is gone (%s)", message_id, slack_error(cause))
                await self._record(message_id, "gone")
                return
            raise
        await self._record(message_id, "updated", content_hash=digest)


def _offers_claims(content: dict[str, Any]) -> bool:
    return any(
        (block.get("accessory") or {}).get("action_id") == blocks.CLAIM
        for block in content.get("blocks") or []
    )
