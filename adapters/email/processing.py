"""One inbound mail, from raw bytes to commands on the bus and answers in the outbox.

The IMAP poller and the webhook both call ``MailProcessor.process``. The steps:

1. ``parsing.read_mail``: MIME, machine check, the new text above the quote.
2. Machines (auto-replies, bounces, receipts, lists, our own mail) are recorded, never
   answered, never read for commands.
3. Who is speaking (``identity``): a valid signed token (Reply-To plus-address, or
   recovered from our Message-ID in In-Reply-To/References) *and* a From address that
   belongs to the token's person. Anything else is refused, with a short answer where one is safe.
4. Each command runs in its own bus transaction, keyed by the mail's Message-ID and the
   command's position. Then *one* answer lists every result in order, each under the line
   it answers ("You wrote: WON L-1042"), threaded on the sender's mail (``answers``); its
   dedupe key is the mail's, so a second delivery of the same mail changes nothing and
   answers nothing. A mail whose only commands were answered by the handler's own mail to
   the sender (a claim, a feedback) gets no second one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lyra_bot.adapters.email import answers
from lyra_bot.adapters.email.answers import Context, complete
from lyra_bot.adapters.email.grammar import (
    ParsedCommand,
    is_reply,
    parse_line,
    parse_lines,
    parse_owner_lines,
    parse_yes_no_text,
)
from lyra_bot.adapters.email.identity import Identifier, actor_of
from lyra_bot.adapters.email.parsing import ParsedMail, read_mail
from lyra_bot.adapters.email.quotes import cut_own

from lyra_bot import commands as c
from lyra_bot.bus import Bus, Reply, UnitOfWork
from lyra_bot.commands import Actor, Role
from lyra_bot.config import Settings
from lyra_bot.domain import REF_PREFIX
from lyra_bot.logs import correlation
from lyra_bot.render import pick_locale

log = logging.getLogger(__name__)


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


class MailProcessor:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.identifier = Identifier(bus, settings)
        own = {settings.inbound_address.lower()}
        from_addr = settings.mail_from.rpartition("<")[2].rstrip(">").strip().lower()
        if "@" in from_addr:
            own.add(from_addr)
        self.own = frozenset(own)

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
        identity, error, tenant = await self.identifier.identify(parsed)
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
        identity, _, _ = await self.identifier.identify(ctx.mail)
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
        data: dict[str, Any] = {}
        if reason == "token_invalid" or (
            reason == "no_token" and self.identifier.replied_to_us(ctx.mail)
        ):
            # They did answer one of our mails: its reply address arrived changed.
            data["phrase"] = "token_mangled"
        outcome = await self._record(
            ctx, "refused", answer=reason, error=True, reason=reason, data=data
        )
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
        # An unidentified sender (a stranger, a forwarded mail) learns nothing about whose
        # system this is: the tenant is named only to a person the mail identified.
        named = ctx.tenant if identity is not None else None
        extra = {"tenant": named.name if named else "", **(data or {})}

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if answer and parsed.sender:
                await complete(ctx)
                answers.answer(uow, ctx, answer, extra, "", key or ctx.key, error=error)

        reply = await self.bus.dispatch(cmd, actor, key or ctx.key, respond)
        return Outcome("processed", verdict, reason, [("", reply)])

    # --- a partner user's commands -----------------------------------------------------

    async def _partner(self, ctx: Context) -> Outcome:
        identity = ctx.identity
        assert identity is not None and identity.user is not None
        assert identity.user.partner_id is not None
        parsed = ctx.mail
        await self._cut_own_text(ctx)
        default_ref = identity.lead.ref if identity.lead else None
        # Amounts in the user's own locale first (the partner's is read only for answers).
        locale = pick_locale(identity.user.locale, identity.tenant.locale)
        found = commands_of(parsed, default_ref, REF_PREFIX, locale)
        if any(p.command for p in parse_lines(parsed.doubtful, default_ref, REF_PREFIX, locale)):
            # Unsure where the quoted mail begins, and a command lies in doubt: act on
            # nothing, ask for the commands above the quoted text.
            return await self._record(
                ctx, "unsure", answer="quoted_only", error=True, data={"show_help": True}
            )
        if not found:
            quoted = parse_lines(parsed.quoted, default_ref, REF_PREFIX)
            verdict = "quoted_only" if any(p.command for p in quoted) else "no_command"
            return await self._record(
                ctx, verdict, answer=verdict, error=True, data={"show_help": True}
            )
        return await self._run(ctx, found, actor_of(identity))

    async def _cut_own_text(self, ctx: Context) -> None:
        """What Lyra sent (the mails the reply refers to) below the new text is quoted."""
        parsed = ctx.mail
        if ctx.tenant is None or len(parsed.text.splitlines()) + len(parsed.doubtful) < 2:
            return  # one line cannot hold a stretch of our text
        ours = f"@{self.identifier.domain}>"
        ids = tuple(m for m in parsed.references if m.lower().endswith(ours))[:10]
        actor = Actor(Role.SYSTEM, "email", ctx.tenant.id)
        reply = await self.bus.dispatch(c.SentText(ids, parsed.sender), actor)
        sent = reply.data.get("lines") or []
        if not sent:
            return
        parsed.text, own = cut_own(parsed.text, sent)
        parsed.doubtful, own_doubt = cut_own(parsed.doubtful, sent)
        parsed.quoted = "\n".join(x for x in (own, own_doubt, parsed.quoted) if x)

    async def _owner(self, ctx: Context) -> Outcome:
        """The owner answers an extension request: APPROVE / DECLINE (other changes: CLI)."""
        identity = ctx.identity
        assert identity is not None
        default_ref = identity.lead.ref if identity.lead else None
        found = parse_owner_lines(ctx.mail.text, default_ref, REF_PREFIX)
        if not found:
            return await self._record(ctx, "owner", answer="owner_reply")
        actor = Actor.owner(identity.tenant.id, "email", identity.staff_id)
        return await self._run(ctx, found, actor)

    async def _contact_check(self, ctx: Context) -> Outcome:
        """The customer answers "were you contacted?" with YES or NO (JA/NEIN, OUI/NON);
        anything else is a message for the owner."""
        identity = ctx.identity
        assert identity is not None and identity.lead is not None and identity.claim_id
        parsed = ctx.mail
        answer = parse_yes_no_text(parsed.text)
        if answer is None and not parsed.text.strip() and not is_reply(parsed.subject):
            answer = parse_yes_no_text(parsed.subject)
        if answer is None:
            return await self._record(ctx, "customer", answer="customer_ack", text=parsed.text)
        item = ParsedCommand("answer", answer, c.AnswerContactCheck(identity.claim_id, answer))
        actor = Actor.customer(identity.tenant.id, "email", identity.lead.id)
        return await self._run(ctx, [item], actor)

    async def _run(self, ctx: Context, found: list[ParsedCommand], actor: Actor) -> Outcome:
        """Each command in order, in its own transaction; then one answer with every result."""
        outcome = Outcome("processed", "commands")
        results: list[answers.Result] = []
        alone = len(found) == 1
        for index, item in enumerate(found[:20], start=1):
            key = f"{ctx.key}#{index}"
            if item.command is None:
                verdict = "help" if item.error is None else "parse_error"
                code = "help" if item.error is None else item.error
                data = {**item.data, "show_help": item.error in {None, "unknown_command"}}
                sub = await self._record(ctx, verdict, key=key)
                outcome.results.append((item.describe(), sub.results[0][1]))
                results.append(answers.Result(item.line, code, data, item.error is None))
                continue
            told: list[bool] = []
            command = item.command
            if isinstance(command, c.ListPool):
                # LEADS by mail is answered with a digest mail, threaded on the partner's.
                command = c.SendPoolDigest(
                    f"answer:{key}", tuple(answers.thread_headers(ctx).items())
                )
            reply = await self.bus.dispatch(
                command, actor, key, self._responder(ctx, key, alone, told)
            )
            outcome.results.append((item.describe(), reply))
            if told:
                continue  # answered by its own mail (the handler's, or a listing)
            data = dict(reply.data)
            data.setdefault("ref", _ref_of(item.command))
            if reply.code == "lead_taken" and data["ref"] and "similar" not in data:
                # Up to three leads like the one that got away (the claim's transaction has
                # ended; this read is a query of its own).
                similar = await self.bus.dispatch(c.SimilarLeads(data["ref"], 3), actor)
                data["similar"] = similar.data.get("leads", []) if similar.ok else []
            if reply.code == "claimed" and not reply.data.get("duplicate"):
                await self.bus.disclosed(reply, actor, "email answer")
            results.append(answers.Result(item.line, reply.code, data, reply.ok))
        if results and not outcome.duplicate:
            await complete(ctx)
            await self.bus.send(actor, lambda uow: answers.answer_all(uow, ctx, results))
        return outcome

    def _responder(self, ctx: Context, key: str, alone: bool, told: list[bool]):
        """Inside a command's transaction: whether it already answered the sender, and the
        listings, which are documents of their own (the pool as a digest, the open claims
        with their customers) rather than lines of the answer."""

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            sender = ctx.mail.sender
            if reply.ok and alone and any(m.recipient == sender for m in uow.outbox):
                told.append(True)  # the handler wrote to the sender (claim, feedback)
                return
            if reply.ok and reply.code == "pool_sent":
                told.append(True)  # the digest mail is the answer
            elif reply.ok and reply.code == "mine":
                await complete(ctx)
                answers.answer_mine(uow, ctx, reply, key)
                told.append(True)

        return respond


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
    if outcome.verdict in {"no_command", "quoted_only", "unsure"}:
        return "rejected", outcome.verdict
    return "accepted", outcome.verdict


def commands_of(
    parsed: ParsedMail, default_ref: str | None, prefix: str = "L-", locale: str | None = "en"
) -> list[ParsedCommand]:
    """The commands of a mail: its new text, else (a mailto: link's) subject."""
    found = parse_lines(parsed.text, default_ref, prefix, locale)
    if not found and not parsed.text.strip() and not is_reply(parsed.subject):
        found = parse_line(parsed.subject, default_ref, prefix, locale)
    return found


def _key(message_id: str) -> str:
    """The idempotency key of a mail: its Message-ID (hashed when too long for the column)."""
    if len(message_id) <= 200:
        return f"mail:{message_id}"
    return f"mail:#{hashlib.sha256(message_id.encode()).hexdigest()}"


def _ref_of(cmd: c.Command | None) -> str | None:
    return getattr(cmd, "lead_ref", None)
