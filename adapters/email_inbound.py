"""One inbound mail, from raw bytes to commands on the bus and answers in the outbox.

The IMAP poller and the webhook both call ``MailProcessor.process``. The steps:

1. ``email_in.read_mail``: MIME, machine check, the new text above the quote.
2. Machines (auto-replies, bounces, receipts, lists, our own mail) are recorded, never
   answered, never read for commands.
3. Who is speaking: a valid signed token (Reply-To plus-address, or recovered from our
   Message-ID in In-Reply-To/References) *and* a From address that belongs to the token's
   person. Anything else is refused, with a short answer where one is safe.
4. Each command runs in its own bus transaction, keyed by the mail's Message-ID and the
   command's position, and its answer is queued in that same transaction. A second delivery
   of the same mail finds every key used and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot.adapters.email_commands import (
    ParsedCommand,
    parse_line,
    parse_lines,
    parse_owner_lines,
    parse_yes_no_text,
)
from lyra_bot.adapters.email_in import ParsedMail, read_mail
from lyra_bot.handlers import digests, notify, pool

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.bus import Bus, Reply, UnitOfWork
from lyra_bot.commands import Actor, Role
from lyra_bot.config import Settings
from lyra_bot.domain import REF_PREFIX, DomainError, TokenExpired
from lyra_bot.logs import correlation
from lyra_bot.models import Claim, Lead, Partner, Tenant, User
from lyra_bot.outbox import mail, mail_domain
from lyra_bot.prepared import Prepared
from lyra_bot.render import one_line, pick_locale

log = logging.getLogger(__name__)

TENANT_CACHE_SECONDS = 60.0
# Every reply's identity lookups, built once (see lyra_bot.prepared).
_USER = Prepared(lambda p: User.filter(id=p.id, tenant_id=p.tenant_id).limit(1))
_LEAD = Prepared(lambda p: Lead.filter(id=p.id, tenant_id=p.tenant_id).limit(1))
_REPLY_PREFIXES = ("re:", "aw:", "antw:", "ré:", "réf:", "sv:", "wg:", "fw:", "fwd:", "tr:")


@dataclass
class Outcome:
    """What became of one mail: ``processed`` (handled as designed) or ``failed`` (refused)."""

    status: str
    verdict: str
    reason: str = ""
    results: list[tuple[str, Reply]] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        return bool(self.results) and all(r.data.get("duplicate") for _, r in self.results)


@dataclass
class Identity:
    kind: str  # "u" partner user, "c"/"k" a lead's customer, "o" the owner
    tenant: Tenant
    user: User | None = None
    partner: Partner | None = None
    lead: Lead | None = None  # the lead the answered mail was about
    claim_id: int | None = None  # "k": the claim a contact check asked about


@dataclass
class Context:
    """Everything an answer needs to know about the mail it answers."""

    mail: ParsedMail
    key: str
    tenant: Tenant | None = None
    identity: Identity | None = None
    locale: str = "en"


class MailProcessor:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.domain = mail_domain(settings).lower()
        local, _, domain = settings.inbound_address.lower().rpartition("@")
        self.inbound_local, self.inbound_domain = local, domain
        own = {settings.inbound_address.lower()}
        from_addr = settings.mail_from.rpartition("<")[2].rstrip(">").strip().lower()
        if "@" in from_addr:
            own.add(from_addr)
        self.own = frozenset(own)
        self._tenants: dict[int, tuple[float, Tenant]] = {}

    # --- entry point -------------------------------------------------------------------

    async def process(self, raw: bytes, source: str = "imap", size: int | None = None) -> Outcome:
        """Handle one mail. ``size`` (when the transport knows it) over the limit means
        ``raw`` holds only the headers: the sender is told the mail was too large.

        Runs under a correlation id of its own (or the webhook request's) and is counted in
        ``lyra_inbound_mails_total`` by outcome."""
        with correlation(prefix="mail-", keep=True):
            try:
                outcome = await self._process(raw, source, size)
            except Exception:
                self.bus.metrics.inbound_mails.labels(source, "error", "exception").inc()
                raise
            label, reason = mail_outcome(outcome)
            self.bus.metrics.inbound_mails.labels(source, label, reason).inc()
            log.info("inbound mail via %s: %s (%s)", source, label, reason or "-")
            return outcome

    async def _process(self, raw: bytes, source: str, size: int | None) -> Outcome:
        parsed = read_mail(raw, self.own)
        size = size if size is not None else len(raw)
        ctx = Context(parsed, _key(parsed.message_id))
        if parsed.machine:
            return await self._machine(ctx)
        if size > self.settings.inbound_max_bytes:
            return await self._oversize(ctx, size)
        identity, error, tenant = await self._identify(parsed)
        if identity is None:
            ctx.tenant = tenant
            ctx.locale = pick_locale(tenant.locale if tenant else None)
            return await self._refuse(ctx, error or "no_token")
        ctx.identity, ctx.tenant = identity, identity.tenant
        if identity.kind == "c":
            return await self._record(ctx, "customer", answer="customer_ack", text=parsed.text)
        if identity.kind == "o":
            return await self._owner(ctx)
        if identity.kind == "k":
            return await self._contact_check(ctx)
        return await self._partner(ctx)

    # --- machines, refusals, records ---------------------------------------------------

    async def _machine(self, ctx: Context) -> Outcome:
        parsed = ctx.mail
        bounce = parsed.bounce
        cmd = c.RecordMail(
            parsed.machine or "machine",
            parsed.sender,
            parsed.subject,
            reason=(bounce.diagnostic if bounce and bounce.diagnostic else parsed.machine_reason),
            message_id=parsed.message_id,
            bounced=tuple(bounce.recipients) if bounce else (),
            bounce_status=bounce.status if bounce else "",
            original_id=bounce.original_id if bounce else "",
        )
        reply = await self.bus.dispatch(cmd, Actor(Role.SYSTEM, "email", None), ctx.key)
        return Outcome(
            "processed", parsed.machine or "machine", parsed.machine_reason, [("", reply)]
        )

    async def _oversize(self, ctx: Context, size: int) -> Outcome:
        identity, _, _ = await self._identify(ctx.mail)
        if identity is not None:
            ctx.identity, ctx.tenant = identity, identity.tenant
        data = {
            "size_kb": size // 1024,
            "limit_kb": self.settings.inbound_max_bytes // 1024,
        }
        outcome = await self._record(ctx, "oversize", answer="oversize", error=True, data=data)
        outcome.status = "failed"
        return outcome

    async def _refuse(self, ctx: Context, reason: str) -> Outcome:
        log.warning(
            "refused mail %s from %s: %s", ctx.mail.message_id, ctx.mail.sender or "?", reason
        )
        outcome = await self._record(ctx, "refused", answer=reason, error=True, reason=reason)
        outcome.status = "failed"
        return outcome

    async def _record(
        self,
        ctx: Context,
        verdict: str,
        *,
        answer: str | None = None,
        error: bool = False,
        reason: str = "",
        text: str = "",
        data: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Outcome:
        parsed = ctx.mail
        identity = ctx.identity
        cmd = c.RecordMail(
            verdict,
            parsed.sender,
            parsed.subject,
            reason=reason or answer or "",
            message_id=parsed.message_id,
            lead_id=identity.lead.id if identity and identity.lead else None,
            text=text,
        )
        actor = Actor(Role.SYSTEM, "email", ctx.tenant.id if ctx.tenant else None)
        extra = {"tenant": ctx.tenant.name if ctx.tenant else "", **(data or {})}

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if answer and parsed.sender:
                await _complete(ctx)
                self._answer(uow, ctx, answer, extra, "", key or ctx.key, error=error)

        reply = await self.bus.dispatch(cmd, actor, key or ctx.key, respond)
        return Outcome("processed", verdict, reason, [("", reply)])

    # --- who is speaking ---------------------------------------------------------------

    def _candidates(self, parsed: ParsedMail) -> list[str]:
        """Tokens in our reply addresses first, then in our Message-IDs it refers to."""
        found: list[str] = []
        for address in parsed.recipients:
            local, _, domain = address.rpartition("@")
            base, plus, tag = local.partition("+")
            if plus and base == self.inbound_local and domain == self.inbound_domain:
                token = tokens.token_in(tag)
                if token:
                    found.append(token)
        for message_id in parsed.references:
            local, _, domain = message_id.strip("<>").rpartition("@")
            if domain.lower() == self.domain:
                token = tokens.token_in(local)
                if token:
                    found.append(token)
        return list(dict.fromkeys(found))

    async def _identify(
        self, parsed: ParsedMail
    ) -> tuple[Identity | None, str | None, Tenant | None]:
        """The person behind the mail; else why not (an answer code) and, if known, the tenant."""
        now = self.bus.clock.now()
        error: str | None = None
        tenant_id: int | None = None
        for candidate in self._candidates(parsed):
            try:
                token = tokens.verify(self.settings, candidate, now)
            except TokenExpired:
                error, tenant_id = "token_expired", tenant_id or _tenant_in(candidate)
                continue
            except DomainError:
                error = error or "token_invalid"
                continue
            identity = await self._person(token, parsed.sender)
            if identity is not None:
                return identity, None, identity.tenant
            error, tenant_id = "wrong_sender", token.tenant_id
        tenant = await Tenant.get_or_none(id=tenant_id) if tenant_id else None
        return None, error, tenant

    async def _tenant(self, tenant_id: int) -> Tenant:
        """Tenants change rarely (name, language, time zone): a minute's
        cache spares every reply a query."""
        now = time.monotonic()
        cached = self._tenants.get(tenant_id)
        if cached is not None and now - cached[0] < TENANT_CACHE_SECONDS:
            return cached[1]
        tenant = await Tenant.get(id=tenant_id)
        self._tenants[tenant_id] = (now, tenant)
        return tenant

    async def _person(self, token: tokens.ReplyToken, sender: str) -> Identity | None:
        """The token's person, if ``sender`` is that person (addresses compare case-blind)."""
        if not sender:
            return None
        if token.kind == "u":
            # Plain lookups (no joins): this runs for every reply. The partner row is read
            # only when an answer needs its name or language (``_complete``).
            user = await _USER.first(id=token.subject_id, tenant_id=token.tenant_id)
            if user is None or user.email.lower() != sender or user.partner_id is None:
                return None
            tenant = await self._tenant(token.tenant_id)
            lead = None
            if token.lead_id is not None:
                lead = await _LEAD.first(id=token.lead_id, tenant_id=tenant.id)
            return Identity("u", tenant, user=user, lead=lead)
        tenant = await Tenant.get_or_none(id=token.tenant_id)
        if tenant is None:
            return None
        if token.kind == "k":
            claim = (
                await Claim.filter(id=token.subject_id, tenant_id=tenant.id)
                .select_related("lead")
                .first()
            )
            if claim is None or claim.lead.email.lower() != sender:
                return None
            return Identity("k", tenant, lead=claim.lead, claim_id=claim.id)
        if token.kind == "c":
            lead = await Lead.get_or_none(id=token.subject_id, tenant_id=tenant.id)
            if lead is None or lead.email.lower() != sender:
                return None
            return Identity("c", tenant, lead=lead)
        lead = None
        if token.lead_id is not None:
            lead = await Lead.get_or_none(id=token.lead_id, tenant_id=tenant.id)
        owners = {tenant.owner_email.lower()}
        owners.update(
            e.lower()
            for e in await User.filter(
                tenant_id=tenant.id, partner_id__isnull=True, active=True
            ).values_list("email", flat=True)
        )
        if sender in owners:
            return Identity("o", tenant, lead=lead)
        return None

    # --- a partner user's commands -----------------------------------------------------

    async def _partner(self, ctx: Context) -> Outcome:
        identity = ctx.identity
        assert identity is not None and identity.user is not None
        assert identity.user.partner_id is not None
        parsed = ctx.mail
        default_ref = identity.lead.ref if identity.lead else None
        found = commands_of(parsed, default_ref, REF_PREFIX)
        if not found:
            quoted = parse_lines(parsed.quoted, default_ref, REF_PREFIX)
            verdict = "quoted_only" if any(p.command for p in quoted) else "no_command"
            return await self._record(
                ctx, verdict, answer=verdict, error=True, data={"show_help": True}
            )
        return await self._run(ctx, found, actor_of(identity))

    async def _owner(self, ctx: Context) -> Outcome:
        """The owner answers an extension request: APPROVE / DECLINE (other changes: CLI)."""
        identity = ctx.identity
        assert identity is not None
        default_ref = identity.lead.ref if identity.lead else None
        found = parse_owner_lines(ctx.mail.text, default_ref, REF_PREFIX)
        if not found:
            return await self._record(ctx, "owner", answer="owner_reply")
        staff = await User.get_or_none(
            tenant_id=identity.tenant.id, email=ctx.mail.sender, partner_id__isnull=True
        )
        actor = Actor.owner(identity.tenant.id, "email", staff.id if staff else None)
        return await self._run(ctx, found, actor)

    async def _contact_check(self, ctx: Context) -> Outcome:
        """The customer answers "were you contacted?" with YES or NO (JA/NEIN, OUI/NON);
        anything else is a message for the owner."""
        identity = ctx.identity
        assert identity is not None and identity.lead is not None and identity.claim_id
        parsed = ctx.mail
        answer = parse_yes_no_text(parsed.text)
        if answer is None and not parsed.text.strip() and not _is_reply(parsed.subject):
            answer = parse_yes_no_text(parsed.subject)
        if answer is None:
            return await self._record(ctx, "customer", answer="customer_ack", text=parsed.text)
        item = ParsedCommand("answer", answer, c.AnswerContactCheck(identity.claim_id, answer))
        actor = Actor.customer(identity.tenant.id, "email", identity.lead.id)
        return await self._run(ctx, [item], actor)

    async def _run(self, ctx: Context, found: list[ParsedCommand], actor: Actor) -> Outcome:
        """Each command in order, in its own transaction with its own answer."""
        outcome = Outcome("processed", "commands")
        for index, item in enumerate(found[:20], start=1):
            key = f"{ctx.key}#{index}"
            if item.command is None:
                verdict = "help" if item.error is None else "parse_error"
                answer = "help" if item.error is None else item.error
                data = {**item.data, "show_help": item.error in {None, "unknown_command"}}
                sub = await self._record(
                    ctx, verdict, answer=answer, error=item.error is not None, data=data, key=key
                )
                outcome.results.append((item.describe(), sub.results[0][1]))
                continue
            reply = await self.bus.dispatch(
                item.command, actor, key, self._responder(ctx, item, key, actor)
            )
            outcome.results.append((item.describe(), reply))
        return outcome

    def _responder(self, ctx: Context, item: ParsedCommand, key: str, actor: Actor):
        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            sender = ctx.mail.sender
            if reply.ok and any(m.recipient == sender for m in uow.outbox):
                return  # the handler already wrote to the sender (claim, feedback): that answers
            await _complete(ctx)
            if reply.ok and reply.code == "pool":
                await self._answer_pool(uow, ctx, key)
                return
            if reply.code == "mine":
                self._answer_mine(uow, ctx, reply, key)
                return
            data = dict(reply.data)
            data.setdefault("ref", _ref_of(item.command))
            if data.get("due_at") and ctx.tenant is not None:
                data["due"] = notify.local_time(ctx.tenant, _when(data["due_at"]))
            if reply.code == "lead_taken" and data["ref"] and "similar" not in data:
                # Up to three leads like the one that got away (a read in this short
                # transaction: the claim's own transaction has already ended).
                similar = await pool.similar_leads(c.SimilarLeads(data["ref"], 3), actor, uow)
                data["similar"] = similar.data.get("leads", [])
            self._answer(
                uow,
                ctx,
                reply.code,
                data,
                reply.message,
                key,
                error=not reply.ok,
                command=item.line,
            )

        return respond

    # --- answers -----------------------------------------------------------------------

    def _reply_address(self, uow: UnitOfWork, ctx: Context) -> str | None:
        identity = ctx.identity
        if identity is None or identity.kind != "u" or identity.user is None:
            return None
        lead_id = identity.lead.id if identity.lead else None
        token = tokens.issue(
            uow.settings, "u", identity.tenant.id, identity.user.id, lead_id, uow.now
        )
        return tokens.reply_address(uow.settings, token)

    def _threading(self, ctx: Context) -> dict[str, str]:
        parsed = ctx.mail
        if parsed.message_id.endswith("@lyra.invalid>"):
            return {}
        refs = [*reversed(parsed.references[:8]), parsed.message_id]
        return {"In-Reply-To": parsed.message_id, "References": " ".join(dict.fromkeys(refs))}

    def _answer(
        self,
        uow: UnitOfWork,
        ctx: Context,
        code: str,
        data: dict[str, Any],
        message: str,
        key: str,
        *,
        error: bool,
        command: str = "",
    ) -> None:
        """Queue one answer to the sender. Errors: at most one per address, kind and day."""
        sender = ctx.mail.sender
        tenant = ctx.tenant
        reply_to = self._reply_address(uow, ctx)
        identity = ctx.identity
        similar = [
            {**lead, "claim_url": digests.mailto(reply_to, f"CLAIM {lead['ref']}")}
            for lead in data.get("similar") or []
            if reply_to
        ]
        if error:
            ref = data.get("ref") if code not in {"no_command", "quoted_only"} else ""
            digest = hashlib.sha256(f"{sender}|{code}|{ref or ''}".encode()).hexdigest()[:24]
            dedupe = f"error:{tenant.id if tenant else 0}:{digest}:{_day(uow.now, tenant)}"
        else:
            dedupe = f"answer:{key}"
        mail(
            uow,
            tenant_id=tenant.id if tenant else None,  # type: ignore[arg-type]
            kind="answer.error" if error else "answer",
            to=sender,
            template="reply",
            locale=ctx.locale,
            context={
                "subject": _re_subject(ctx.mail.subject),
                "code": code,
                "data": data,
                "message": message,
                "command": one_line(command)[:200],
                "similar": similar,
                "show_help": bool(data.get("show_help")) or code == "help",
                "user": {"name": identity.user.name or identity.user.email}
                if identity and identity.user
                else None,
                "tenant": {"name": tenant.name} if tenant else None,
                "token": bool(reply_to),
            },
            dedupe_key=dedupe[:200],
            lead_id=identity.lead.id if identity and identity.lead else None,
            reply_to=reply_to,
            headers=self._threading(ctx),
        )

    async def _answer_pool(self, uow: UnitOfWork, ctx: Context, key: str) -> None:
        identity = ctx.identity
        assert identity is not None and identity.user is not None and identity.partner
        found = await digests.digest_for(uow, identity.tenant, identity.partner, identity.user)
        if found is None:
            self._answer(uow, ctx, "pool_empty", {}, "", key, error=False)
            return
        context, token = found
        context["in_reply"] = True
        digests.queue_digest(
            uow,
            identity.tenant,
            identity.partner,
            identity.user,
            context,
            token,
            f"answer:{key}",
            headers=self._threading(ctx),
            kind="answer",
        )

    def _answer_mine(self, uow: UnitOfWork, ctx: Context, reply: Reply, key: str) -> None:
        identity = ctx.identity
        assert identity is not None and identity.user is not None and identity.partner
        tenant = identity.tenant
        claims = [
            {**item, "due_at": _when(item.get("due_at"))}
            for item in reply.data.get("claims", [])
        ]
        mail(
            uow,
            tenant_id=tenant.id,
            kind="answer",
            to=ctx.mail.sender,
            template="mine",
            locale=ctx.locale,
            context={
                "tenant": {"name": tenant.name},
                "tz": tenant.timezone,
                "partner": {"name": identity.partner.name},
                "user": {"name": identity.user.name or identity.user.email},
                "claims": claims,
            },
            dedupe_key=f"answer:{key}"[:200],
            reply_to=self._reply_address(uow, ctx),
            headers=self._threading(ctx),
        )


# --- helpers ---------------------------------------------------------------------------


MACHINE_VERDICTS = frozenset({"auto_reply", "receipt", "list", "own", "machine"})


def mail_outcome(outcome: Outcome) -> tuple[str, str]:
    """(outcome, reason) labels of one mail: accepted, rejected (with the reason), auto_reply
    (out-of-office, receipts, lists, our own mail), bounce, or duplicate (seen before)."""
    if outcome.duplicate:
        return "duplicate", ""
    if outcome.verdict == "bounce":
        return "bounce", ""
    if outcome.verdict in MACHINE_VERDICTS:
        return "auto_reply", outcome.verdict
    if outcome.status != "processed":
        return "rejected", outcome.reason or outcome.verdict
    if outcome.verdict in {"no_command", "quoted_only"}:
        return "rejected", outcome.verdict
    return "accepted", outcome.verdict


def commands_of(
    parsed: ParsedMail, default_ref: str | None, prefix: str = "L-"
) -> list[ParsedCommand]:
    """The commands of a mail: its new text, else (a mailto: link's) subject."""
    found = parse_lines(parsed.text, default_ref, prefix)
    if not found and not parsed.text.strip() and not _is_reply(parsed.subject):
        found = parse_line(parsed.subject, default_ref, prefix)
    return found


def _key(message_id: str) -> str:
    """The idempotency key of a mail: its Message-ID (hashed when too long for the column)."""
    if len(message_id) <= 200:
        return f"mail:{message_id}"
    return f"mail:#{hashlib.sha256(message_id.encode()).hexdigest()}"


def _tenant_in(token: str) -> int | None:
    try:
        return int(token.split(".")[1][1:], 36)
    except (IndexError, ValueError):
        return None


async def _complete(ctx: Context) -> None:
    """Read what only an answer needs: the partner (name, language) and the locale."""
    identity = ctx.identity
    if identity is None:
        ctx.locale = pick_locale(ctx.tenant.locale if ctx.tenant else None)
        return
    if identity.kind == "u" and identity.partner is None and identity.user is not None:
        identity.partner = await Partner.get(id=identity.user.partner_id)
    ctx.locale = _locale_of(identity)


def _locale_of(identity: Identity) -> str:
    if identity.kind in {"c", "k"} and identity.lead is not None:
        return notify.customer_locale(identity.tenant, identity.lead)
    if identity.kind == "u":
        return notify.user_locale(identity.tenant, identity.partner, identity.user)
    return pick_locale(identity.tenant.locale)


def actor_of(identity: Identity) -> Actor:
    assert identity.user is not None and identity.user.partner_id is not None
    return Actor.partner_user(
        identity.tenant.id, identity.user.partner_id, identity.user.id, "email"
    )


def _when(value: Any) -> datetime | None:
    """Reply data holds times as ISO text (it is made JSON-safe)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value


def _ref_of(cmd: c.Command | None) -> str | None:
    return getattr(cmd, "lead_ref", None)


def _is_reply(subject: str) -> bool:
    return subject.strip().lower().startswith(_REPLY_PREFIXES)


def _re_subject(subject: str) -> str:
    subject = one_line(subject)[:200] or "Lyra"
    return subject if _is_reply(subject) else f"Re: {subject}"


def _day(now: datetime, tenant: Tenant | None) -> str:
    zone = ZoneInfo(tenant.timezone) if tenant else ZoneInfo("UTC")
    return now.astimezone(zone).strftime("%Y-%m-%d")
