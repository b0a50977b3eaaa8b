"""Lyra's Slack front door: ``/slack/events`` acks at once, then a bolt ``AsyncApp`` acts.

``handle`` verifies the signature and answers clicks, slash commands and events with an
empty 200 straight away (a Claim button is acked within milliseconds; Slack gives up after
3 s); a few workers then pass them to bolt, whose listeners do the work. Only requests whose
ack carries an answer, like the feedback modal's submission (``response_action: errors``),
go through bolt before the response.

A request acked that way is first stored (``SlackInbox``, one short insert) and deleted once
bolt handled it: when the process dies in between, ``recover`` in another instance, or in
this one after a restart, takes the rows not finished in ``LYRA_SLACK_RECOVER_SECONDS`` and
handles them then (signed again, since Slack's timestamp may be stale by then).

Commands go through the bus with the request's idempotency key (``slack:<team>:<trigger
id>``, or the event id), and the answer is queued through the bus's ``respond`` in the same
transaction: a request Slack delivers again (``X-Slack-Retry-Num``) finds its key and does
nothing. Answers go to the clicking user only: ``chat.postEphemeral`` with their user id in
the channel clicked in, or their DM with the bot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aiohttp
from aiohttp import web
from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.identity import SYSTEM, Identity, SlackPerson, identify
from lyra_bot.adapters.slack.transport import slack_error, web_client
from lyra_bot.handlers.common import lead_by_ref
from lyra_bot.handlers.notify import local_time
from lyra_bot.handlers.reports import slack_summary
from lyra_bot.handlers.slack_digests import queue_update
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from lyra_bot.bus import Bus, Reply, UnitOfWork
from lyra_bot.clock import Clock
from lyra_bot.commands import (
    Actor,
    ClaimLead,
    Command,
    DecideExtension,
    GiveFeedback,
    ListMine,
    ListPool,
    ReleaseClaim,
    RequestExtension,
    Role,
    ShowReport,
    SimilarLeads,
)
from lyra_bot.config import Settings
from lyra_bot.domain import (
    DomainError,
    InvalidInput,
    parse_amount,
    parse_currency,
    parse_outcome,
    teaser,
)
from lyra_bot.lease import instance_id
from lyra_bot.logs import correlation
from lyra_bot.logs import current as current_correlation
from lyra_bot.models import InboundKey, Lead, SlackChannel, SlackInbox, SlackMessage, Tenant
from lyra_bot.outbox import slack

log = logging.getLogger(__name__)

POOL_LIMIT = 20
WORKERS = 4  # requests worked on at once, after their ack
QUIET = 0.025  # seconds: work waits until no request came in for this long …
MAX_DEFER = 0.25  # … but never longer than this
KEPT_HEADERS = ("Content-Type", "X-Slack-Retry-Num", "X-Slack-Retry-Reason")  # stored with a body
RECOVER_BATCH = 100  # stored requests taken over at once
MAX_ATTEMPTS = 5  # a stored request that failed this often is dropped (logged)
NOT_OFFERED = "This lead is offered by an owner you do not work with in Lyra."
OWNERS_ONLY = "Only the owner's staff can see the report."
OWNERS_DECIDE = "Only the owner's staff can decide on more time."
PARTNERS_ONLY = "Only partner users can do this."
T = TypeVar("T")


@dataclass(frozen=True)
class Where:
    """Where an answer for one user goes: ephemeral in a channel, else their DM with Lyra."""

    user: str
    channel: str | None = None

    def call(self, content: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(recipient, method, args) of the Web API call that shows ``content`` to the user."""
        if self.channel:
            args = {"channel": self.channel, "user": self.user, **content}
            return self.channel, "chat.postEphemeral", args
        return self.user, "chat.postMessage", {"channel": self.user, **content}


def request_key(body: Mapping[str, Any]) -> str:
    """The idempotency key of one Slack request: the same on every retry of it."""
    team = body.get("team")
    team_id = team.get("id") if isinstance(team, Mapping) else body.get("team_id")
    ident = body.get("trigger_id") or body.get("event_id")
    if not ident and body.get("actions"):
        user = (body.get("user") or {}).get("id")
        ident = f"{user}:{body['actions'][0].get('action_ts')}"
    return f"slack:{team_id}:{ident or uuid.uuid4().hex}"


def validate_feedback(values: Mapping[str, str]) -> dict[str, str]:
    """Field errors of a feedback modal, by block id (the rules that need no database)."""
    errors: dict[str, str] = {}
    checks = (
        ("outcome", lambda v: parse_outcome(v)),
        ("amount", lambda v: parse_amount(v)),
        ("currency", lambda v: parse_currency(v, "XXX")),
    )
    if not values.get("outcome"):
        errors["outcome"] = "Please choose an outcome."
    for block_id, check in checks:
        if values.get(block_id) and block_id not in errors:
            try:
                check(values[block_id])
            except InvalidInput as exc:
                errors[block_id] = blocks.clip(exc.message, 150)
    return errors


class SlackApp:
    """The bolt app and its listeners; ``handle`` is the aiohttp route of ``/slack/events``."""

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
        self._queue: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._pending = 0  # queued or being handled
        self._last_request = 0.0
        self.holder = settings.instance_id or instance_id()
        self._inflight: set[uuid.UUID] = set()  # stored requests queued or handled here
        self._stores = GroupCommit(SlackInbox.bulk_create)
        self._deletes = GroupCommit(_delete_rows)
        self._recovery: asyncio.Task[None] | None = None
        self._register()

    # --- lifecycle ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, then ack at once what needs no answer in the ack; bolt routes it after.

        Signature and timestamp are checked first (401, nothing else happens). Button
        clicks, slash commands and events are answered 200 right away and queued for bolt,
        so a burst of clicks is acked at the pace of HTTP, not of bolt's middleware and the
        store. Requests whose ack carries an answer (modal submissions, the URL check …) go
        through bolt before the response. The time to the answer is observed in
        ``lyra_slack_ack_seconds`` by kind of request.
        """
        started = time.perf_counter()
        kind, response = await self._handle(request)
        kind = "rejected" if response.status == 401 else kind
        self.bus.metrics.slack_ack.labels(kind).observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: web.Request) -> tuple[str, web.Response]:
        self._last_request = asyncio.get_running_loop().time()
        body = await request.text()
        kind = request_kind(body)
        query, headers = request.query_string, request.headers
        if "ssl_check" in body:  # Slack's certificate check: bolt answers it, unsigned or not
            return kind, await self._dispatch_now(body, query, headers)
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or not self.verifier.is_valid(body, timestamp, signature):
            return kind, web.json_response({"error": "invalid request"}, status=401)
        if _empty_ack(body):
            row_id = await self._store(body, query, headers)
            self._spawn(lambda: self._dispatch_stored(row_id, body, query, headers))
            return kind, web.Response(status=200)
        return kind, await self._dispatch_now(body, query, headers)

    async def _dispatch_now(self, body: str, query: str, headers: Any) -> web.Response:
        bolt_request = AsyncBoltRequest(body=body, query=query, headers=headers)
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

    async def _dispatch(self, body: str, query: str, headers: Any) -> int:
        response = await self.bolt.async_dispatch(
            AsyncBoltRequest(body=body, query=query, headers=headers)
        )
        if response.status >= 400:
            log.warning("Slack request not handled: %s %s", response.status, response.body)
        else:
            log.debug("Slack request handled: %s", response.status)
        return response.status

    # --- stored requests: acked, not handled yet ---------------------------------------

    async def _store(self, body: str, query: str, headers: Mapping[str, str]) -> uuid.UUID:
        """Keep a verified request until it is handled: requests that arrive together are
        inserted in one short transaction (a burst of clicks waits for a few commits, not
        one each). An insert that fails answers 500, and Slack sends the request again."""
        now = datetime.now(UTC)
        kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
        row = SlackInbox(
            id=uuid.uuid4(),
            body=body,
            query=query,
            headers=kept,
            received_at=now,
            holder=self.holder,
            taken_at=now,
            attempts=1,
        )
        self._inflight.add(row.id)
        try:
            await self._stores.add(row)
        except BaseException:
            self._inflight.discard(row.id)
            raise
        return row.id

    async def _dispatch_stored(
        self, row_id: uuid.UUID, body: str, query: str, headers: Any
    ) -> None:
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
        async with in_transaction("default") as conn:
            due = SlackInbox.filter(taken_at__lte=now - timedelta(seconds=stale))
            if self._inflight:
                due = due.exclude(id__in=list(self._inflight))
            due = due.order_by("id").limit(RECOVER_BATCH).using_db(conn)
            if conn.capabilities.dialect != "sqlite":
                due = due.select_for_update(skip_locked=True)
            rows = await due
            if rows:
                await (
                    SlackInbox.filter(id__in=[row.id for row in rows])
                    .using_db(conn)
                    .update(holder=self.holder, taken_at=now, attempts=F("attempts") + 1)
                )
        queued = 0
        for row in rows:
            if row.attempts >= MAX_ATTEMPTS:
                log.error("Slack request %s dropped after %d attempts", row.id, row.attempts)
                await SlackInbox.filter(id=row.id).delete()
                self.bus.metrics.slack_recovered.labels("dropped").inc()
                continue
            self._inflight.add(row.id)
            headers = self._signed(row.body, row.headers)
            self._spawn(
                lambda row=row, headers=headers: self._dispatch_stored(  # type: ignore[misc]
                    row.id, row.body, row.query, headers
                )
            )
            queued += 1
        if queued:
            self.bus.metrics.slack_recovered.labels("queued").inc(queued)
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

    async def _recover_forever(self) -> None:
        """Look for stored requests to take over at start and every few seconds."""
        every = max(0.5, min(5.0, self.settings.slack_recover_seconds / 3))
        while True:
            try:
                await self.recover()
            except Exception:
                log.exception("taking over stored Slack requests failed")
            await asyncio.sleep(every)

    async def start(self) -> None:
        """One HTTP session for every Web API call (created inside the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        self._start_workers()
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover_forever(), name="slack-recover")

    def _start_workers(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    async def drain(self) -> None:
        """Wait until every request acked so far has been handled (and its row deleted)."""
        await self._queue.join()
        await self._deletes.idle()

    @property
    def idle(self) -> bool:
        return self._pending == 0

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None
        try:
            await asyncio.wait_for(self.drain(), timeout=10)
        except TimeoutError:
            log.warning("%d Slack request(s) not handled at shutdown", self._queue.qsize())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    def _spawn(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Queue ``work`` for the workers, under the correlation id of the request."""
        self._start_workers()
        self._pending += 1
        cid = current_correlation()

        async def bound() -> Any:
            with correlation(cid, prefix="slack-"):
                return await work()

        self._queue.put_nowait(bound)

    async def _work(self) -> None:
        """A worker: a few requests are handled at a time, each after a quiet moment, so a
        burst of clicks is acked first instead of waiting behind their transactions."""
        loop = asyncio.get_running_loop()
        while True:
            work = await self._queue.get()
            try:
                # A debounce: sleep until QUIET after the latest request (at most MAX_DEFER).
                latest = loop.time() + MAX_DEFER
                while (pause := min(self._last_request + QUIET, latest) - loop.time()) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(pause)
                await work()
            except Exception:
                log.exception("handling a Slack request failed")
            finally:
                self._pending -= 1
                self._queue.task_done()

    def _register(self) -> None:
        bolt = self.bolt

        # Clicks, commands and events reach these after ``handle`` sent the HTTP answer: their
        # ack() only satisfies bolt (it is the answer when ``handle`` could not ack early).
        @bolt.action(blocks.CLAIM)
        async def claim_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_claim(body)

        @bolt.action(blocks.FEEDBACK)
        async def feedback_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_feedback_click(body)

        @bolt.command("/lyra")
        async def lyra_command(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_command(body)

        @bolt.view(blocks.FEEDBACK)
        async def feedback_submitted(ack: Any, body: dict[str, Any]) -> None:
            await self._on_feedback_submit(ack, body)

        @bolt.action(blocks.EXTEND)
        async def extend_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_extend_click(body)

        @bolt.view(blocks.EXTEND)
        async def extend_submitted(ack: Any, body: dict[str, Any]) -> None:
            await self._on_extend_submit(ack, body)

        @bolt.action(blocks.APPROVE_EXTENSION)
        async def approve_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_decision(body, approve=True)

        @bolt.action(blocks.DECLINE_EXTENSION)
        async def decline_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self._on_decision(body, approve=False)

        @bolt.event("app_home_opened")
        async def home_opened(ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
            await ack()
            if event.get("tab", "home") == "home":
                await self._on_home(body)

    # --- answering ----------------------------------------------------------------------

    def _queue_answer(
        self,
        uow: UnitOfWork,
        key: str,
        where: Where,
        content: Mapping[str, Any],
        tenant_id: int | None,
        lead_id: int | None = None,
    ) -> None:
        """Queue the answer; ``lead_id`` marks one that shows that lead's customer, so that
        erasing the customer's data also cancels or empties it."""
        recipient, method, args = where.call(content)
        slack(
            uow,
            tenant_id=tenant_id,
            kind="slack.answer",
            recipient=recipient,
            method=method,
            args=args,
            dedupe_key=f"{key}:answer",
            lead_id=lead_id,
        )

    def _queue_claims_answer(self, uow: UnitOfWork, key: str, where: Where, actor: Actor) -> None:
        """The user's open claims, rendered when delivered: no customer data is stored in the
        outbox for an answer that shows several leads."""
        slack(
            uow,
            tenant_id=actor.tenant_id,
            kind="slack.answer",
            recipient=where.channel or where.user,
            method="lyra.claims_answer",
            args={"user": where.user, "channel": where.channel, "partner": actor.partner_id},
            dedupe_key=f"{key}:answer",
        )

    async def _answer_alone(
        self, key: str, where: Where, content: Mapping[str, Any], tenant_id: int | None = None
    ) -> None:
        """An answer outside any command (unknown user, help): queued once per request."""
        uow = UnitOfWork(SYSTEM, self.clock.now(), self.settings, self.bus.renderer)
        self._queue_answer(uow, key, where, content, tenant_id)
        try:
            async with in_transaction("default"):
                await uow.flush()
        except IntegrityError:
            return  # queued already: the same request, handled again
        for callback in self.bus.after_commit:
            callback(uow)

    async def _say(self, key: str, where: Where, text: str, tenant_id: int | None = None) -> None:
        await self._answer_alone(key, where, blocks.text_answer(text), tenant_id)

    async def _first_delivery(self, key: str) -> bool:
        """Record a request that changes nothing in Lyra, so a retry of it is ignored."""
        try:
            async with in_transaction("default"):
                if await InboundKey.exists(key=key):
                    return False
                await InboundKey.create(
                    key=key,
                    command="slack",
                    tenant_id=None,
                    reply=None,
                    created_at=self.clock.now(),
                )
        except IntegrityError:
            return False
        return True

    async def _content(self, reply: Reply, actor: Actor) -> dict[str, Any]:
        """The Block Kit answer to a command's reply (rendered inside its transaction)."""
        data = reply.data
        if reply.code == "claimed":
            return blocks.claimed_answer(reply.message, data["lead"], data.get("due_at"))
        if reply.code == "lead_taken":
            return blocks.taken_answer(reply.message)
        if reply.code == "pool":
            return blocks.pool_answer(reply.message, data["leads"], data["total"])
        if reply.code == "report":
            text, summary = slack_summary(self.bus.renderer, data["view"], data.get("locale"))
            return {
                "text": blocks.clip(text, blocks.MAX_TEXT),
                "blocks": summary[: blocks.MAX_BLOCKS],
            }
        return blocks.text_answer(reply.message)

    async def _run(
        self,
        cmd: Command,
        person: SlackPerson,
        where: Where,
        key: str,
        hint: int | None,
        clicked: SlackMessage | None = None,
    ) -> Reply | None:
        """Who is asking, then the command through the bus, answered in its transaction."""
        identity = await identify(person, self.client, self.bus, hint)
        actor = await self._checked(identity, key, where, clicked)
        if actor is None:
            return None

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.code == "mine":
                self._queue_claims_answer(uow, key, where, actor)
            else:
                lead_id = None
                if reply.code == "claimed":
                    lead = await lead_by_ref(actor.tenant_id or 0, reply.data["lead"]["ref"])
                    lead_id = lead.id
                content = await self._content(reply, actor)
                self._queue_answer(uow, key, where, content, actor.tenant_id, lead_id)
            if clicked is not None and not reply.ok:
                # Whatever the button showed was out of date: show what is true now.
                queue_update(uow, clicked.id, clicked.channel_id, clicked.tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if reply.data.get("duplicate"):
            return reply
        await self.bus.disclosed(reply, actor, f"slack {cmd.kind}")
        if reply.code == "lead_taken" and isinstance(cmd, ClaimLead):
            await self._offer_similar(cmd.lead_ref, actor, key, where)
        return reply

    async def _offer_similar(self, ref: str, actor: Actor, key: str, where: Where) -> None:
        """After "taken": leads like it, in a second answer (outside the claim's transaction,
        which stays short; the "taken" answer itself is queued with the refusal)."""
        similar = await self.bus.dispatch(SimilarLeads(ref), actor)
        leads = (similar.data.get("leads") or []) if similar.ok else []
        if leads:
            content = blocks.similar_answer(leads)
            await self._answer_alone(f"{key}:similar", where, content, actor.tenant_id)

    async def _checked(
        self, identity: Identity, key: str, where: Where, clicked: SlackMessage | None
    ) -> Actor | None:
        """The actor, or None after telling the user why not."""
        if identity.actor is None:
            await self._say(key, where, identity.problem)
            return None
        if clicked is not None and clicked.tenant_id != identity.actor.tenant_id:
            await self._say(key, where, NOT_OFFERED)
            return None
        return identity.actor

    async def _clicked_message(self, body: Mapping[str, Any]) -> SlackMessage | None:
        """The recorded digest message a button was pressed in, if any."""
        container = body.get("container") or {}
        if container.get("type") != "message" or container.get("is_ephemeral"):
            return None
        return await SlackMessage.filter(
            channel_id=container.get("channel_id") or "", ts=container.get("message_ts") or ""
        ).first()

    async def _channel_tenant(self, channel: str | None) -> int | None:
        if not channel:
            return None
        link = await SlackChannel.filter(channel_id=channel, active=True).first()
        return link.tenant_id if link else None

    # --- listeners' work ----------------------------------------------------------------

    async def _on_claim(self, body: dict[str, Any]) -> None:
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, _channel_of(body))
        clicked = await self._clicked_message(body)
        hint = clicked.tenant_id if clicked else await self._channel_tenant(where.channel)
        ref = str(action.get("value") or "")
        await self._run(ClaimLead(ref), person, where, request_key(body), hint, clicked)

    async def _on_feedback_click(self, body: dict[str, Any]) -> None:
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, _channel_of(body))
        clicked = await self._clicked_message(body)
        hint = clicked.tenant_id if clicked else await self._channel_tenant(where.channel)
        from_home = (body.get("view") or {}).get("type") == "home"
        await self._open_feedback(
            body, person, str(action.get("value") or ""), where, hint, clicked, from_home
        )

    async def _open_feedback(
        self,
        body: Mapping[str, Any],
        person: SlackPerson,
        raw_ref: str,
        where: Where,
        hint: int | None,
        clicked: SlackMessage | None,
        from_home: bool = False,
    ) -> None:
        def view(tenant: Tenant, lead: Lead) -> dict[str, Any]:
            meta = {"t": tenant.id, "l": lead.id, "c": where.channel or "", "h": int(from_home)}
            return blocks.feedback_modal(teaser(lead), tenant.currency, json.dumps(meta))

        failed = "Lyra could not open the feedback form. Try `/lyra feedback {ref}` again."
        await self._open_lead_modal(body, person, raw_ref, where, hint, clicked, view, failed)

    async def _open_lead_modal(
        self,
        body: Mapping[str, Any],
        person: SlackPerson,
        raw_ref: str,
        where: Where,
        hint: int | None,
        clicked: SlackMessage | None,
        view: Callable[[Tenant, Lead], dict[str, Any]],
        failed: str,
    ) -> None:
        """Open a partner's modal about one lead (``views.open`` needs the trigger within 3 s
        of the click); ``failed`` (with ``{ref}``) answers when Slack will not open it."""
        key = request_key(body)
        if not await self._first_delivery(key):
            return
        actor = await self._checked(
            await identify(person, self.client, self.bus, hint), key, where, clicked
        )
        if actor is None:
            return
        if actor.role != Role.PARTNER:
            await self._say(key, where, PARTNERS_ONLY, actor.tenant_id)
            return
        try:
            lead = await lead_by_ref(actor.tenant_id or 0, raw_ref)
        except DomainError as exc:
            await self._say(key, where, exc.message, actor.tenant_id)
            return
        tenant = await Tenant.get(id=actor.tenant_id)
        try:
            await self.client.views_open(trigger_id=body["trigger_id"], view=view(tenant, lead))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", slack_error(exc))
            await self._say(key, where, failed.format(ref=lead.ref), tenant.id)

    async def _on_feedback_submit(self, ack: Any, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "")
            tenant_id, lead_id = int(meta["t"]), int(meta["l"])
            channel, from_home = str(meta.get("c") or "") or None, bool(meta.get("h"))
        except (ValueError, KeyError, TypeError):
            await _errors(ack, {"outcome": "This form is out of date. Please open it again."})
            return
        values = blocks.modal_values(view.get("state") or {})
        errors = validate_feedback(values)
        if errors:
            await _errors(ack, errors)
            return
        person = SlackPerson.from_body(body)
        identity = await identify(person, self.client, self.bus, tenant_id)
        actor = identity.actor
        lead = await Lead.get_or_none(id=lead_id, tenant_id=tenant_id)
        if actor is None or actor.tenant_id != tenant_id or lead is None:
            await _errors(ack, {"outcome": identity.problem or NOT_OFFERED})
            return
        key, where = request_key(body), Where(person.user_id, channel)
        cmd = GiveFeedback(
            lead.ref,
            values["outcome"],
            values.get("amount") or None,
            values.get("currency") or None,
            values.get("reason", ""),
            values.get("note", ""),
        )

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.ok:  # errors are shown in the modal itself
                self._queue_answer(uow, key, where, blocks.text_answer(reply.message), tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if not reply.ok:
            field = str(reply.data.get("field") or "outcome")
            await _errors(ack, {field: blocks.clip(reply.message, 150)})
            return
        await ack()
        if from_home and not reply.data.get("duplicate"):
            self._spawn(lambda: self._publish_home(person.user_id, actor))

    # --- more time: the partner asks (modal), the owner decides (buttons) ----------------

    async def _on_extend_click(self, body: dict[str, Any]) -> None:
        """Ask for more time: open the modal (days, reason) for a lead the clicker holds."""
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, _channel_of(body))
        hint = await self._channel_tenant(where.channel)

        def view(tenant: Tenant, lead: Lead) -> dict[str, Any]:
            meta = {"t": tenant.id, "l": lead.id, "c": where.channel or ""}
            return blocks.extension_modal(
                teaser(lead),
                tenant.extension_max_days,
                tenant.extension_auto_days,
                json.dumps(meta),
            )

        failed = "Lyra could not open the form. Reply EXTEND {ref} <days> to any Lyra mail."
        raw_ref = str(action.get("value") or "")
        await self._open_lead_modal(body, person, raw_ref, where, hint, None, view, failed)

    async def _on_extend_submit(self, ack: Any, body: dict[str, Any]) -> None:
        """The modal sent: ``RequestExtension`` through the bus; refusals show in the modal."""
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "")
            tenant_id, lead_id = int(meta["t"]), int(meta["l"])
            channel = str(meta.get("c") or "") or None
        except (ValueError, KeyError, TypeError):
            await _errors(ack, {"days": "This form is out of date. Please open it again."})
            return
        values = blocks.modal_values(view.get("state") or {})
        raw_days = values.get("days", "")
        if not raw_days.isdigit() or int(raw_days) < 1:
            await _errors(ack, {"days": "Say how many days, as a whole number like 3."})
            return
        person = SlackPerson.from_body(body)
        identity = await identify(person, self.client, self.bus, tenant_id)
        actor = identity.actor
        lead = await Lead.get_or_none(id=lead_id, tenant_id=tenant_id)
        if actor is None or actor.tenant_id != tenant_id or lead is None:
            await _errors(ack, {"days": identity.problem or NOT_OFFERED})
            return
        key, where = request_key(body), Where(person.user_id, channel)
        cmd = RequestExtension(lead.ref, int(raw_days), values.get("reason", ""))

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.ok:  # errors are shown in the modal itself
                self._queue_answer(uow, key, where, blocks.text_answer(reply.message), tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if not reply.ok:
            await _errors(ack, {"days": blocks.clip(reply.message, 150)})
            return
        await ack()

    async def _on_decision(self, body: dict[str, Any], approve: bool) -> None:
        """Approve / Decline on an owner's extension request: ``DecideExtension`` as the
        clicking owner; the clicked message then shows the outcome instead of the buttons."""
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, _channel_of(body))
        key = request_key(body)
        hint = None
        if where.channel:
            owner_of = await Tenant.filter(slack_owner_channel=where.channel).first()
            hint = owner_of.id if owner_of else None
        identity = await identify(person, self.client, self.bus, hint)
        actor = await self._checked(identity, key, where, None)
        if actor is None:
            return
        if actor.role != Role.OWNER:
            if await self._first_delivery(key):
                await self._say(key, where, OWNERS_DECIDE, actor.tenant_id)
            return
        container = body.get("container") or {}
        message_ts = container.get("message_ts")
        verdict = "Approved" if approve else "Declined"

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            self._queue_answer(uow, key, where, blocks.text_answer(reply.message), actor.tenant_id)
            if reply.ok and where.channel and message_ts:
                content = blocks.decided(verdict, person.user_id, reply.message)
                slack(
                    uow,
                    tenant_id=actor.tenant_id,
                    kind="slack.update",
                    recipient=where.channel,
                    method="chat.update",
                    args={"channel": where.channel, "ts": message_ts, **content},
                    dedupe_key=f"{key}:decided",
                )

        ref = str(action.get("value") or "")
        await self.bus.dispatch(DecideExtension(ref, approve), actor, key=key, respond=respond)

    async def _on_command(self, body: dict[str, Any]) -> None:
        person = SlackPerson.from_body(body)
        key = request_key(body)
        where = Where(person.user_id, body.get("channel_id") or None)
        verb, _, rest = (body.get("text") or "").strip().partition(" ")
        verb, rest = verb.lower(), rest.strip()
        hint = await self._channel_tenant(where.channel)
        if verb in ("", "help"):
            if await self._first_delivery(key):
                await self._answer_alone(key, where, blocks.help_answer())
            return
        if verb not in ("leads", "mine", "claim", "feedback", "release", "report"):
            await self._answer_alone(key, where, blocks.help_answer(f"I do not know '{verb}'."))
            return
        ref, _, reason = rest.partition(" ")
        if verb in ("claim", "feedback", "release") and not ref:
            prompt = f"Say which lead, e.g. `/lyra {verb} L-1042`."
            await self._answer_alone(key, where, blocks.help_answer(prompt))
            return
        if verb == "feedback":
            await self._open_feedback(body, person, ref, where, hint, None)
            return
        if verb == "report":
            identity = await identify(person, self.client, self.bus, hint)
            if identity.actor is not None and identity.actor.role != Role.OWNER:
                await self._say(key, where, OWNERS_ONLY, identity.actor.tenant_id)
                return
        commands: dict[str, Command] = {
            "leads": ListPool(limit=POOL_LIMIT),
            "mine": ListMine(),
            "claim": ClaimLead(ref),
            "release": ReleaseClaim(ref, reason.strip()),
            "report": report_command(rest),
        }
        await self._run(commands[verb], person, where, key, hint)

    async def _on_home(self, body: dict[str, Any]) -> None:
        if not await self._first_delivery(request_key(body)):
            return
        person = SlackPerson.from_body(body)
        identity = await identify(person, self.client, self.bus)
        if identity.actor is None:
            await self._views_publish(person.user_id, blocks.home_unknown(identity.problem))
            return
        await self._publish_home(person.user_id, identity.actor)

    async def _publish_home(self, slack_user: str, actor: Actor) -> None:
        await self._views_publish(slack_user, await self._home_view(actor))

    async def _views_publish(self, slack_user: str, view: dict[str, Any]) -> None:
        try:
            await self.client.views_publish(user_id=slack_user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", slack_user, slack_error(exc))

    async def _home_view(self, actor: Actor) -> dict[str, Any]:
        tenant = await Tenant.get(id=actor.tenant_id)
        if actor.role == Role.PARTNER:
            pool = await self.bus.dispatch(ListPool(limit=1), actor)
            mine = await self.bus.dispatch(ListMine(), actor)
            if not (pool.ok and mine.ok):
                return blocks.home_unknown(pool.message if not pool.ok else mine.message)
            claims = mine.data["claims"]
            due = {c["ref"]: _local(tenant, c["due_at"]) for c in claims}
            await self.bus.disclosed(mine, actor, "slack App Home")
            return blocks.home_partner(pool.data["total"], claims, due)
        week = await self.bus.dispatch(ShowReport(), actor)
        if not week.ok:
            return blocks.home_unknown(week.message)
        _, summary = slack_summary(self.bus.renderer, week.data["view"], tenant.locale)
        return blocks.home_owner(summary)


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


async def _delete_rows(ids: list[uuid.UUID]) -> None:
    await SlackInbox.filter(id__in=ids).delete()


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


def report_command(text: str) -> ShowReport:
    """``/lyra report`` (this week so far), ``report last``, ``report 2026-W48``, or a
    range of local days ``report 2026-11-01..2026-11-30``."""
    text = text.strip()
    if ".." in text:
        first, _, last = text.partition("..")
        return ShowReport(first=first.strip(), last=last.strip() or None)
    return ShowReport(week=text or None)


def _local(tenant: Tenant, when: datetime | str | None) -> str:
    """A reply's time (ISO text in reply data) in the tenant's time zone."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return local_time(tenant, when)


def _channel_of(body: Mapping[str, Any]) -> str | None:
    """The channel an interaction happened in (None on App Home)."""
    channel = body.get("channel")
    if isinstance(channel, Mapping) and channel.get("id"):
        return str(channel["id"])
    container = body.get("container") or {}
    return container.get("channel_id") or None


async def _errors(ack: Any, errors: dict[str, str]) -> None:
    await ack(response_action="errors", errors=errors)
