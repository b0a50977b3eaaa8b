"""The outbox: messages written with the change that caused them, delivered by a worker.

Handlers call ``mail()`` to queue an email (rendered now, so it says what was true when it
was written). The worker takes due rows, hands each to the transport of its channel, and
records the result: sent, retry later (exponential backoff with jitter), or dead after
``outbox_max_attempts``, in which case the owner is told.

Delivery is at-least-once: a crash between handing a mail to SMTP and marking it sent sends
it again, with the same Message-ID, which receivers use to drop the copy.

Each channel (email, slack, …) is delivered in its own lane, in id order: a slow or failing
SMTP server never holds back a Slack answer, and messages of one channel keep their order.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from contextvars import copy_context
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formataddr, parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import RetryCallState, wait_exponential, wait_random
from tortoise.expressions import F, Q

from lyra_bot.clock import Clock, SystemClock
from lyra_bot.config import Settings
from lyra_bot.db import dialect, transaction
from lyra_bot.domain import InvalidInput, OutboxStatus
from lyra_bot.logs import correlation
from lyra_bot.logs import current as current_correlation
from lyra_bot.metrics import Metrics
from lyra_bot.models import Disclosure, OutboxMessage, Tenant
from lyra_bot.privacy import fields_shown
from lyra_bot.render import Renderer, one_line

if TYPE_CHECKING:
    from lyra_bot.bus import UnitOfWork

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """Delivery can never succeed (bad address, message rejected); do not retry."""


class Waiting(Exception):
    """Not a failure: the row must wait (e.g. for an earlier one); retried later."""


class Transport(Protocol):
    channel: str

    async def send(self, message: OutboxMessage) -> None: ...

    async def close(self) -> None: ...


# --- writing ----------------------------------------------------------------------------


def mail_domain(settings: Settings) -> str:
    return _domain_of(settings.mail_from)


@lru_cache(maxsize=16)
def _domain_of(mail_from: str) -> str:
    """Parsed once per sender: sweeps write thousands of mails in one transaction."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def thread_root(settings: Settings, tenant_id: int, thread: str) -> str:
    """A Message-ID that every mail of one thread refers to (it is never sent itself)."""
    digest = hashlib.sha256(f"{tenant_id}:{thread}".encode()).hexdigest()[:24]
    return f"<thread.{digest}@{mail_domain(settings)}>"


_MIME_TYPE_RE = re.compile(r"^[a-z]+/[a-z0-9][a-z0-9.+-]*$")
_CID_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")


@dataclass(frozen=True)
class Inline:
    """A file shown inside the HTML part (an image the HTML references as ``cid:<cid>``)."""

    cid: str  # without angle brackets: ``content_id()`` makes one
    content_type: str  # e.g. image/png
    data: bytes
    filename: str = ""

    def to_payload(self) -> dict[str, str]:
        if not _CID_RE.match(self.cid):
            raise ValueError(f"not a Content-ID: {self.cid!r}")
        if not _MIME_TYPE_RE.match(self.content_type):
            raise ValueError(f"not a MIME type: {self.content_type!r}")
        return {
            "cid": self.cid,
            "content_type": self.content_type,
            "filename": one_line(self.filename).replace('"', ""),
            "data": base64.b64encode(self.data).decode("ascii"),
        }


def content_id(settings: Settings, name: str) -> str:
    """A fresh, globally unique Content-ID (``name.<random>@<our domain>``) for an inline part."""
    stem = re.sub(r"[^A-Za-z0-9-]", "", name) or "part"
    return f"{stem}.{uuid.uuid4().hex}@{mail_domain(settings)}"


def clean_address(address: str) -> str:
    """A bare address safe for a header; refuses CR/LF and anything that does not parse."""
    if any(ch in address for ch in "\r\n"):
        raise ValueError("address contains a line break")
    _, addr = parseaddr(address)
    if "@" not in addr or " " in addr:
        raise ValueError(f"not an email address: {address!r}")
    return addr


def mail(
    uow: UnitOfWork,
    *,
    tenant_id: int,
    kind: str,
    to: str,
    template: str,
    locale: str | None,
    context: dict[str, Any],
    dedupe_key: str,
    lead_id: int | None = None,
    thread: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    lead: Any = None,
    user_id: int | None = None,
    inline: Sequence[Inline] = (),
    sender: tuple[str, str] | None = None,
) -> OutboxMessage | None:
    """Render and queue one email. Returns None (and logs) when ``to`` is not an address.

    ``sender`` (display name, address or "" for ``LYRA_MAIL_FROM``'s) sets the From header:
    customer mails come from the owner, not from Lyra.

    With ``lead``: if the mail shows that lead's customer data to someone other than the
    customer, sending it is logged as a disclosure (to ``user_id`` where it is a user).
    ``inline`` parts (images) travel with the HTML part; it refers to them as ``cid:…``.
    """
    try:
        recipient = clean_address(to)
    except ValueError:
        log.warning("not queueing %s for tenant %s: bad recipient", kind, tenant_id)
        return None
    rendered = uow.renderer.mail(template, locale, context)
    extra = {k: one_line(v) for k, v in (headers or {}).items()}
    if thread:
        root = thread_root(uow.settings, tenant_id, thread)
        extra.setdefault("In-Reply-To", root)
        extra.setdefault("References", root)
    payload = {
        "to": recipient,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "reply_to": reply_to,
        "headers": extra,
    }
    if inline:
        payload["inline"] = [part.to_payload() for part in inline]
    if sender is not None:
        name, address = sender
        payload["from"] = formataddr(
            (one_line(name), address or parseaddr(uow.settings.mail_from)[1])
        )
    tag = reply_to.split("+", 1)[1].split("@", 1)[0] + "." if reply_to and "+" in reply_to else ""
    discloses = None
    if lead is not None:
        lead_id = lead.id
        shown = fields_shown(lead, rendered.subject, rendered.text, rendered.html)
        if shown and recipient != (lead.email or "").lower():
            discloses = {"lead_id": lead.id, "user_id": user_id, "fields": shown}
    message = OutboxMessage(
        tenant_id=tenant_id,
        lead_id=lead_id,
        discloses=discloses,
        channel="email",
        kind=kind,
        recipient=recipient,
        payload=payload,
        dedupe_key=dedupe_key,
        message_id=f"<{tag}{uuid.uuid4().hex}@{mail_domain(uow.settings)}>",
        status=OutboxStatus.PENDING,
        next_attempt_at=uow.now,
        created_at=uow.now,
        correlation_id=(current_correlation() or "")[:64] or None,
    )
    uow.enqueue(message)
    return message


def slack(
    uow: UnitOfWork,
    *,
    tenant_id: int | None,
    kind: str,
    recipient: str,
    method: str,
    args: dict[str, Any],
    dedupe_key: str,
    lead_id: int | None = None,
) -> OutboxMessage:
    """Queue one Slack Web API call: ``payload = {"method": ..., "args": {...}}``.

    ``recipient`` is the Slack channel (or user) id the call goes to; rows with the same
    recipient are delivered in the order they were written. ``adapters.slack.transport``
    executes the call and documents Lyra's own methods (``lyra.*``, rendered at delivery).
    """
    message = OutboxMessage(
        tenant_id=tenant_id,
        lead_id=lead_id,
        channel="slack",
        kind=kind,
        recipient=recipient,
        payload={"method": method, "args": args},
        dedupe_key=dedupe_key,
        message_id=f"<slack.{uuid.uuid4().hex}@{mail_domain(uow.settings)}>",
        status=OutboxStatus.PENDING,
        next_attempt_at=uow.now,
        created_at=uow.now,
        correlation_id=(current_correlation() or "")[:64] or None,
    )
    uow.enqueue(message)
    return message


def slack_update(uow: UnitOfWork, message_id: int, channel_id: str, tenant_id: int) -> None:
    """Queue a re-render of one posted digest message (rendered when delivered, so never
    stale): ``lyra.update_message``; a later one of the same message makes earlier ones moot."""
    slack(
        uow,
        tenant_id=tenant_id,
        kind="slack.update",
        recipient=channel_id,
        method="lyra.update_message",
        args={"message": message_id},
        dedupe_key=f"slack:update:{message_id}:{uuid.uuid4().hex}",
    )


async def pending_before(
    channel: str, recipient: str, row_id: int, exclude: Sequence[int] = ()
) -> bool:
    """Whether an earlier row to ``recipient`` is still pending (not counting ``exclude``,
    rows delivered but not marked yet): a transport that keeps order waits for it."""
    query = OutboxMessage.filter(
        channel=channel, recipient=recipient, status=OutboxStatus.PENDING, id__lt=row_id
    )
    if exclude:
        query = query.exclude(id__in=list(exclude))
    return await query.exists()


async def pending_after(channel: str, dedupe_prefix: str, row_id: int) -> bool:
    """Whether a later pending row's dedupe key starts with ``dedupe_prefix`` (a later
    update of the same thing, which makes this one moot)."""
    return await OutboxMessage.filter(
        channel=channel,
        status=OutboxStatus.PENDING,
        dedupe_key__startswith=dedupe_prefix,
        id__gt=row_id,
    ).exists()


def slack_say(
    uow: UnitOfWork,
    *,
    tenant_id: int | None,
    kind: str,
    say: str,
    locale: str | None,
    context: dict[str, Any],
    channel: str,
    user: str | None = None,
    dedupe_key: str,
    lead_id: int | None = None,
) -> OutboxMessage:
    """Queue what to tell a Slack channel or user: ``say`` (the message kind), the reader's
    ``locale`` and the ``context``; the Slack renderer (``adapters.slack.render``) turns it
    into Block Kit when the row is delivered (``lyra.say``). With ``user`` and a
    ``channel``, only that user sees it there (ephemeral, else their DM); ``channel`` alone
    is a post (a user id there is their DM)."""
    args = {
        "say": {"kind": say, "locale": locale, "context": _json_shaped(context)},
        "channel": channel,
        "user": user,
    }
    return slack(
        uow,
        tenant_id=tenant_id,
        kind=kind,
        recipient=channel if user is None or channel else user,
        method="lyra.say",
        args=args,
        dedupe_key=dedupe_key,
        lead_id=lead_id,
    )


def _json_shaped(value: Any) -> Any:
    """Datetimes as ISO text, decimals and the like as strings: a payload is JSON."""
    return json.loads(json.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def outbox_rows(status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest outbox rows, for ``lyra-bot outbox list``."""
    query = OutboxMessage.all().order_by("-id").limit(limit)
    if status:
        try:
            query = query.filter(status=OutboxStatus(status))
        except ValueError:
            raise InvalidInput(
                "bad_status", value=status, choices=[s.value for s in OutboxStatus]
            ) from None
    return await query.values(
        "id", "status", "channel", "kind", "recipient", "attempts", "created_at", "last_error"
    )


async def outbox_stats() -> dict[str, dict[str, float]]:
    """Pending and dead rows per channel, and the age of the oldest pending one (``/metrics``)."""
    from tortoise.functions import Count, Min

    rows = (
        await OutboxMessage.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.DEAD])
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .group_by("channel", "status")
        .values("channel", "status", "n", "oldest")
    )
    now = datetime.now(UTC)
    stats: dict[str, dict[str, float]] = {"pending": {}, "dead": {}, "oldest_pending_seconds": {}}
    for row in rows:
        status = str(getattr(row["status"], "value", row["status"]))
        stats[status][row["channel"]] = float(row["n"])
        if status == OutboxStatus.PENDING.value and row["oldest"] is not None:
            age = (now - row["oldest"]).total_seconds()
            stats["oldest_pending_seconds"][row["channel"]] = max(age, 0.0)
    return stats


# --- delivering -------------------------------------------------------------------------


def backoff_seconds(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff (initial · 2^(n-1), capped) plus up to ``initial`` of jitter."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    strategy = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)
    return float(strategy(state))


class OutboxWorker:
    """Delivers due outbox rows. Several workers (processes) may run against PostgreSQL."""

    def __init__(
        self,
        settings: Settings,
        transports: Iterable[Transport],
        clock: Clock | None = None,
        renderer: Renderer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.renderer = renderer or Renderer(settings.templates_dir)
        self.metrics = metrics or Metrics()
        self.transports = {t.channel: t for t in transports}
        self.clock = clock or SystemClock()
        self._wakes = {channel: asyncio.Event() for channel in self.transports}
        self.delivered = 0
        self.last_success: datetime | None = None

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called after a commit that queued mail)."""
        for event in self._wakes.values():
            event.set()

    async def run_once(self) -> int:
        """Deliver every due row, each channel in its own lane. Returns how many were handled."""
        counts = await asyncio.gather(*(self._drain(channel) for channel in self.transports))
        return sum(counts)

    async def _drain(self, channel: str) -> int:
        """Deliver batch after batch. Delivered rows are marked sent while the next ones are
        delivered (one UPDATE for all delivered since the last one went out), never only at
        the end of a batch: a failure later in the batch cannot have a delivered row
        delivered again, and a crash at most the few delivered during the last UPDATE."""
        handled = 0
        loop = asyncio.get_running_loop()
        while rows := await self._take(channel):
            # Rows are ours until their lease ends; past (most of) it another worker may take
            # them, so the rest of the batch is left to whoever takes it next.
            lease_ends = loop.time() + 0.8 * self.settings.outbox_lease_seconds
            delivered: list[OutboxMessage] = []
            marking: asyncio.Task[None] | None = None
            try:
                for row in rows:
                    if loop.time() >= lease_ends:
                        break
                    if await self._deliver(row):
                        delivered.append(row)
                    handled += 1
                    if delivered and (marking is None or marking.done()):
                        if marking is not None:
                            await marking  # raises if the database stayed away too long
                        marking = self._marker(delivered, lease_ends)
                        delivered = []
            finally:
                if marking is not None:
                    await marking
                if delivered:
                    await self._marker(delivered, lease_ends)
        return handled

    def _marker(self, rows: list[OutboxMessage], lease_ends: float) -> asyncio.Task[None]:
        """Mark ``rows`` sent in a task (and context) of its own, beside the deliveries: a
        try on a connection the database cut leaves nothing behind for the next one."""
        return asyncio.create_task(self._mark_sent(rows, lease_ends), context=copy_context())

    async def run_forever(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._lane(channel, stop) for channel in self.transports))

    async def _lane(self, channel: str, stop: asyncio.Event) -> None:
        """Passes until ``stop``. Each pass runs as a task of its own, in a copy of the lane's
        context: whatever a pass leaves in its context (a transaction whose connection the
        database cut) dies with it, so the next pass starts clean."""
        wake = self._wakes[channel]
        while not stop.is_set():
            wake.clear()  # before draining, so a commit during the pass wakes the next one
            try:
                await asyncio.create_task(
                    self._drain(channel), name=f"outbox-{channel}", context=copy_context()
                )
            except Exception:
                log.exception("outbox %s lane pass failed; retrying", channel)
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(
                waiters, timeout=self.settings.outbox_poll_seconds, return_when="FIRST_COMPLETED"
            )
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()

    async def _take(self, channel: str) -> list[OutboxMessage]:
        now = self.clock.now()
        async with transaction():
            query = (
                OutboxMessage.filter(
                    status=OutboxStatus.PENDING,
                    next_attempt_at__lte=now,
                    channel=channel,
                )
                .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
                .order_by("id")
                .limit(self.settings.outbox_batch)
            )
            if dialect() == "postgres":
                query = query.select_for_update(skip_locked=True)
            rows = await query
            if rows:
                lease = now + timedelta(seconds=self.settings.outbox_lease_seconds)
                await OutboxMessage.filter(id__in=[r.id for r in rows]).update(locked_until=lease)
        return rows

    async def _deliver(self, row: OutboxMessage) -> bool:
        """Hand one row to its transport; a failure is recorded here, a success by the caller.

        Recording a failure may fail too (the database is away): that is logged and the row
        stays taken until its lease ends, then it is tried again. It was not delivered, so
        nothing is sent twice, and the rest of the batch goes on."""
        transport = self.transports[row.channel]
        name = getattr(transport, "name", row.channel)
        origin = f"{row.correlation_id}/" if row.correlation_id else ""
        with correlation(f"{origin}outbox-{row.id}"):
            try:
                await transport.send(row)
            except Exception as exc:
                if not isinstance(exc, PermanentError | Waiting):
                    self.metrics.transport_failed(name, exc)
                try:
                    await self._failed(row, exc)
                except Exception:
                    log.exception("outbox %s: recording its failure failed", row.id)
                return False
            self.metrics.transport_ok(name)
            log.debug("outbox %s (%s) delivered via %s", row.id, row.kind, name)
            return True

    async def _mark_sent(self, rows: list[OutboxMessage], lease_ends: float) -> None:
        """Record delivered rows, retrying while the database is away and the rows are still
        ours (their lease), so a short outage does not make them be delivered again."""
        loop = asyncio.get_running_loop()
        pause = 0.05
        while True:
            try:
                await asyncio.create_task(self._record_sent(rows), context=copy_context())
                return
            except Exception as exc:
                if loop.time() + pause >= lease_ends:
                    raise
                ids = ", ".join(str(row.id) for row in rows)
                log.warning("outbox %s delivered, not yet recorded (%s); trying again", ids, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _record_sent(self, rows: list[OutboxMessage]) -> None:
        now = self.clock.now()
        disclosures = [
            Disclosure(
                tenant_id=row.tenant_id,
                lead_id=row.discloses["lead_id"],
                user_id=row.discloses.get("user_id"),
                recipient=row.recipient,
                fields_shown=row.discloses["fields"],
                channel=row.channel,
                purpose=row.kind,
                at=now,
            )
            for row in rows
            if row.discloses and row.tenant_id is not None
        ]
        sent = OutboxMessage.filter(id__in=[row.id for row in rows])
        update = {
            "status": OutboxStatus.SENT,
            "sent_at": now,
            "attempts": F("attempts") + 1,
            "locked_until": None,
        }
        if disclosures:
            async with transaction():
                await sent.update(**update)
                await Disclosure.bulk_create(disclosures)
        else:
            await sent.update(**update)
        self.delivered += len(rows)
        self.last_success = now
        for row in rows:
            self.metrics.delivered.labels(row.channel).inc()
            latency = (now - row.created_at).total_seconds()
            self.metrics.delivery_latency.labels(row.channel).observe(max(latency, 0.0))

    async def _failed(self, row: OutboxMessage, exc: Exception) -> None:
        if isinstance(exc, Waiting):
            # e.g. an earlier message to the same Slack channel that another instance is
            # delivering: retried after a poll interval, no attempt counted, no backoff.
            await OutboxMessage.filter(id=row.id).update(
                next_attempt_at=self.clock.now()
                + timedelta(seconds=min(1.0, self.settings.outbox_poll_seconds)),
                locked_until=None,
                last_error=f"waiting: {exc}"[:2000],
            )
            return
        attempts = row.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:2000]
        now = self.clock.now()
        if isinstance(exc, PermanentError) or attempts >= self.settings.outbox_max_attempts:
            self.metrics.delivery_failures.labels(row.channel, "dead").inc()
            log.error(
                "outbox %s (%s) is dead after %d attempts: %s", row.id, row.kind, attempts, error
            )
            async with transaction():
                await OutboxMessage.filter(id=row.id).update(
                    status=OutboxStatus.DEAD, attempts=attempts, last_error=error, locked_until=None
                )
                await self._alert_owner(row, error, now)
            return
        delay = backoff_seconds(
            attempts, self.settings.outbox_backoff_initial, self.settings.outbox_backoff_max
        )
        if not isinstance(exc, Waiting):
            self.metrics.delivery_failures.labels(row.channel, "retry").inc()
        log.warning("outbox %s (%s) failed, retry in %.0fs: %s", row.id, row.kind, delay, error)
        await OutboxMessage.filter(id=row.id).update(
            attempts=attempts,
            last_error=error,
            next_attempt_at=now + timedelta(seconds=delay),
            locked_until=None,
        )

    async def _alert_owner(self, row: OutboxMessage, error: str, now: datetime) -> None:
        """Tell the owner a message could not be delivered (never about an alert itself)."""
        if row.tenant_id is None or row.kind == "outbox.dead":
            return
        tenant = await Tenant.get(id=row.tenant_id)
        from lyra_bot.bus import UnitOfWork
        from lyra_bot.commands import Actor

        uow = UnitOfWork(Actor.system(tenant.id), now, self.settings, self.renderer)
        mail(
            uow,
            tenant_id=tenant.id,
            kind="outbox.dead",
            to=tenant.owner_email,
            template="delivery_failed",
            locale=tenant.locale,
            context={
                "tenant": tenant,
                "kind": row.kind,
                "channel": row.channel,
                "recipient": row.recipient,
                "error": error,
            },
            dedupe_key=f"dead:{row.id}",
            lead_id=row.lead_id,
        )
        await uow.flush()
