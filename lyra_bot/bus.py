"""The command bus: one command, one handler, one transaction, one Reply.

``Bus.dispatch`` is the single way any channel changes state. It opens the transaction,
records the inbound idempotency key, runs the handler, writes the audit and outbox rows the
handler collected, and commits. A second dispatch with the same key returns the first Reply
and changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tortoise.exceptions import IntegrityError

from lyra_bot.clock import Clock, clock_for
from lyra_bot.commands import Actor, Command, RecordDisclosure, Sweep
from lyra_bot.config import Settings, get_settings
from lyra_bot.db import transaction, try_advisory_xact_lock
from lyra_bot.domain import PRIVATE_FIELDS, DomainError
from lyra_bot.models import AuditEvent, InboundKey, OutboxMessage
from lyra_bot.phrases import say
from lyra_bot.prepared import insert, insert_skipping_duplicates
from lyra_bot.privacy import MARKER, private_views, scrub
from lyra_bot.ratelimit import RateLimits
from lyra_bot.render import Renderer

if TYPE_CHECKING:
    from lyra_bot.metrics import Metrics

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)


@dataclass
class Reply:
    """A channel-neutral answer: a code and data, no prose. Each channel's renderer says it
    in its reader's language through ``lyra_bot.phrases``; ``message`` is the English
    sentence, for what is machine-facing (logs, the API's JSON, the scheduler's record)."""

    ok: bool
    code: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Always JSON-shaped (ISO datetimes, decimal strings), fresh or replayed from storage.
        self.data = _jsonable(self.data)

    @property
    def message(self) -> str:
        return say(self.code, self.data, "en")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "code": self.code, "message": self.message, "data": self.data}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Reply:
        return cls(raw["ok"], raw["code"], raw.get("data") or {})

    @classmethod
    def error(cls, exc: DomainError) -> Reply:
        return cls(False, exc.code, exc.data)


Handler = Callable[[Any, Actor, "UnitOfWork"], Awaitable[Reply]]
Hook = Callable[["UnitOfWork"], Awaitable[None]]
Responder = Callable[[Reply, "UnitOfWork"], Awaitable[None]]
"""Answers the sender of one dispatch (e.g. a reply mail), inside the command's transaction."""

_HANDLERS: dict[type[Command], Handler] = {}
_PREPARERS: dict[type[Command], Handler] = {}


def handles(command_type: type[C]) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``command_type``."""

    def register(fn: Handler) -> Handler:
        if command_type in _HANDLERS:
            raise RuntimeError(f"{command_type.__name__} already has a handler")
        _HANDLERS[command_type] = fn
        return fn

    return register


def prepares(command_type: type[C]) -> Callable[[Handler], Handler]:
    """Register ``fn`` to run before ``command_type``'s transaction, its result in
    ``uow.prepared``: slow reads and drawing that must not hold the write lock (on SQLite it
    is the whole database's). The handler, inside the transaction, re-checks what may have
    changed in between and uses what was prepared."""

    def register(fn: Handler) -> Handler:
        _PREPARERS[command_type] = fn
        return fn

    return register


def handler_of(command_type: type[Command]) -> Handler:
    """The handler of ``command_type``, importing its module on first use (only that one:
    ``lyra_bot.handlers.HANDLER_MODULES``)."""
    handler = _HANDLERS.get(command_type)
    if handler is None:
        from lyra_bot.handlers import load

        load(command_type.__name__)
        handler = _HANDLERS.get(command_type)
        if handler is None:
            raise LookupError(f"no handler for {command_type.__name__}")
    return handler


@dataclass
class UnitOfWork:
    """What a handler may use besides the ORM: the clock, settings, outbox and audit trail.

    Rows are collected here and written in bulk at the end of the handler's transaction.
    """

    actor: Actor
    now: datetime
    settings: Settings
    renderer: Renderer
    outbox: list[OutboxMessage] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    changed_leads: set[int] = field(default_factory=set)
    queued: int = 0  # outbox rows written by this unit of work
    rate_limits: RateLimits | None = None  # the process's counters (claims per minute)
    event_counts: Tally[str] = field(default_factory=Tally)  # audit events written, by kind
    prepared: Any = None  # what the command's preparer made outside the transaction
    # Work that must wait for the commit (e.g. wiping erased data out of SQLite's log).
    post_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def audit(
        self,
        kind: str,
        tenant_id: int,
        *,
        lead_id: int | None = None,
        partner_id: int | None = None,
        user_id: int | None = None,
        claim_id: int | None = None,
        **data: Any,
    ) -> None:
        if lead_id is not None and kind.startswith(("lead.", "claim.")):
            self.changed_leads.add(lead_id)
        self.events.append(
            AuditEvent(
                tenant_id=tenant_id,
                kind=kind,
                lead_id=lead_id,
                partner_id=partner_id,
                user_id=user_id,
                claim_id=claim_id,
                channel=self.actor.channel,
                data=_jsonable(data),
                at=self.now,
            )
        )

    def enqueue(self, message: OutboxMessage) -> None:
        self.outbox.append(message)

    async def flush(self) -> None:
        self.event_counts.update(event.kind for event in self.events)
        if len(self.events) == 1:  # the common case: one row through the cached INSERT
            await insert(self.events[0])
        elif self.events:
            await AuditEvent.bulk_create(self.events, batch_size=500)
        self.events = []
        if self.outbox:
            await insert_skipping_duplicates(self.outbox, batch_size=500)
            self.queued += len(self.outbox)
            self.outbox = []


class Bus:
    """Dispatches commands. Built once per process by ``lyra_bot.app.bootstrap``."""

    def __init__(
        self,
        settings: Settings | None = None,
        clock: Clock | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.clock = clock or clock_for(self.settings.clock_start)
        self.renderer = renderer or Renderer(self.settings.templates_dir)
        self.rate_limits = RateLimits(self.settings)
        self.before_commit: list[Hook] = []
        self._metrics: Metrics | None = None
        self.counted = True  # False: no Prometheus counting (a CLI command, gone in a moment)
        self.after_commit: list[Callable[[UnitOfWork], None]] = [self._count_committed]

    @property
    def metrics(self) -> Metrics:
        """The bus's Prometheus counters, made on first use: a CLI command that only reads
        should not import prometheus_client (bench/cli.py)."""
        if self._metrics is None:
            from lyra_bot.metrics import Metrics

            self._metrics = Metrics()
        return self._metrics

    async def dispatch(
        self,
        cmd: Command,
        actor: Actor,
        key: str | None = None,
        respond: Responder | None = None,
        fingerprint: str | None = None,
    ) -> Reply:
        """Run ``cmd`` for ``actor`` in one transaction; ``key`` makes it idempotent.

        ``fingerprint`` (a hash of the request) is kept with the key: a later dispatch with
        the same key but another fingerprint is refused (``idempotency_key_reused``) instead
        of being answered as a duplicate, so a client reusing keys by mistake loses nothing.

        ``respond`` (if given) runs with the Reply in the same transaction as the command, or,
        when the command was refused, in the transaction that records the refusal; it never
        runs for a duplicate delivery, so an inbound message is answered once.
        """
        started = time.perf_counter()
        result = "error"
        try:
            reply = await self._dispatch(cmd, actor, key, respond, fingerprint)
            result = _result(reply)
            return reply
        finally:
            elapsed = time.perf_counter() - started
            if self.counted:
                self.metrics.command(cmd.kind, result, elapsed)
            log.debug(
                "%s via %s (tenant %s): %s in %.1f ms",
                cmd.kind,
                actor.channel,
                actor.tenant_id,
                result,
                elapsed * 1000,
            )

    def _count_committed(self, uow: UnitOfWork) -> None:
        if uow.event_counts and self.counted:
            self.metrics.committed(uow.event_counts, uow.actor.channel)

    async def _dispatch(
        self,
        cmd: Command,
        actor: Actor,
        key: str | None,
        respond: Responder | None,
        fingerprint: str | None,
    ) -> Reply:
        handler = handler_of(type(cmd))
        uow = UnitOfWork(
            actor, self.clock.now(), self.settings, self.renderer, rate_limits=self.rate_limits
        )
        if not cmd.writes and key is None and respond is None:
            try:
                return await handler(cmd, actor, uow)
            except DomainError as exc:
                return Reply.error(exc)
        try:
            prepare = _PREPARERS.get(type(cmd))
            if prepare is not None:
                uow.prepared = await prepare(cmd, actor, uow)
            async with transaction() as connection:
                if isinstance(cmd, Sweep) and not await try_advisory_xact_lock(
                    connection, f"lyra.sweep.{cmd.kind}"
                ):
                    return Reply(True, "busy", {"busy": True, "more": False, "job": cmd.kind})
                # A duplicate delivery runs the handler too, then fails to insert its key at
                # the end and rolls back: one write for the common case, not three.
                reply = await handler(cmd, actor, uow)
                for hook in self.before_commit:
                    await hook(uow)
                if respond is not None:
                    await respond(reply, uow)
                await uow.flush()
                if key is not None:
                    await _claim_key(key, cmd, actor, uow.now, reply, fingerprint)
        except DomainError as exc:
            reply = Reply.error(exc)
            if key is not None or respond is not None:
                reply = await self._record_error(
                    key, cmd, actor, uow.now, reply, respond, fingerprint
                )
            return reply
        except IntegrityError:
            # A concurrent delivery of the same key won the insert; answer like it did.
            if key is not None and await InboundKey.exists(key=key):
                return await _stored_reply(key, fingerprint)
            raise
        for callback in self.after_commit:
            callback(uow)
        for task in uow.post_commit:
            await task()
        return reply

    async def disclosed(self, reply: Reply, actor: Actor, purpose: str) -> None:
        """An adapter has shown ``reply`` to a person: log the customer data it carried."""
        for view in private_views(reply.data):
            fields = tuple(f for f in PRIVATE_FIELDS if view.get(f) and view[f] != MARKER)
            if fields:
                await self.dispatch(RecordDisclosure(view["ref"], fields, purpose), actor)

    async def remember(self, key: str, command: str = "request") -> bool:
        """Record the key of a request that changes nothing in Lyra (help, a form opened),
        so a retry of it is ignored: False when the key was recorded before."""
        try:
            async with transaction():
                if await InboundKey.exists(key=key):
                    return False
                await InboundKey.create(
                    key=key,
                    command=command,
                    tenant_id=None,
                    reply=None,
                    created_at=self.clock.now(),
                )
        except IntegrityError:
            return False
        return True

    async def send(self, actor: Actor, write: Callable[[UnitOfWork], object]) -> bool:
        """Outbox rows written outside any command (the answer to a request that changes
        nothing), in their own transaction; False when their dedupe key was queued before."""
        uow = UnitOfWork(actor, self.clock.now(), self.settings, self.renderer)
        write(uow)
        try:
            async with transaction():
                await uow.flush()
        except IntegrityError:
            return False
        for callback in self.after_commit:
            callback(uow)
        return True

    async def _record_error(
        self,
        key: str | None,
        cmd: Command,
        actor: Actor,
        now: datetime,
        reply: Reply,
        respond: Responder | None = None,
        fingerprint: str | None = None,
    ) -> Reply:
        """Remember a refused command too, so a re-delivery is not answered twice."""
        uow = UnitOfWork(actor, now, self.settings, self.renderer, rate_limits=self.rate_limits)
        try:
            async with transaction():
                if key is not None:
                    await _claim_key(key, cmd, actor, now, reply, fingerprint)
                if respond is not None:
                    await respond(reply, uow)
                    await uow.flush()
        except IntegrityError:
            if key is None:
                raise
            return await _stored_reply(key, fingerprint)
        for callback in self.after_commit:
            callback(uow)
        return reply


async def _claim_key(
    key: str,
    cmd: Command,
    actor: Actor,
    now: datetime,
    reply: Reply | None = None,
    fingerprint: str | None = None,
) -> None:
    """Record the idempotency key with its reply, last thing in the command's transaction.

    The key is unique: of two concurrent deliveries only one can commit; the other fails
    here with ``IntegrityError`` (on PostgreSQL after waiting for the first to commit), its
    whole transaction rolls back, and the caller answers with the stored reply.
    """
    await InboundKey.create(
        key=key,
        command=cmd.kind,
        tenant_id=actor.tenant_id,
        reply=_stored(reply, fingerprint) if reply else None,
        created_at=now,
    )


def _stored(reply: Reply, fingerprint: str | None = None) -> dict[str, Any]:
    """What is kept of a reply: no customer data (a re-delivery is not answered again)."""
    stored = {**reply.to_json(), "data": scrub(reply.data)}
    if fingerprint is not None:
        stored["fingerprint"] = fingerprint
    return stored


async def _stored_reply(key: str, fingerprint: str | None = None) -> Reply:
    row = await InboundKey.get(key=key)
    if row.reply is None:
        return Reply(True, "duplicate")
    if fingerprint is not None and row.reply.get("fingerprint", fingerprint) != fingerprint:
        return Reply(False, "idempotency_key_reused")
    reply = Reply.from_json(row.reply)
    reply.data = {**reply.data, "duplicate": True}
    return reply


def _result(reply: Reply) -> str:
    """The ``result`` label of ``lyra_commands_total``."""
    if reply.data.get("duplicate"):
        return "duplicate"
    if reply.code == "busy" and reply.data.get("busy"):
        return "busy"
    return "ok" if reply.ok else "refused"


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """Make handler data storable as JSON (datetimes, decimals, enums)."""
    kind = type(value)
    if kind in _PLAIN:  # most values: answered before the isinstance chain
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
