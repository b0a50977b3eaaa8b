"""Answers to a mail's sender: one per mail, threaded on it, with the reply address for the
next mail.

The answer lists every result of the mail in order, each under the line it answers, in the
reader's words (``lyra_bot.phrases``). Its dedupe key is the mail's, so a second delivery of
the same mail writes nothing new. Only mails from unknown senders are limited to one error
answer per address, kind and day: a known user is always told what went wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot.adapters.email.grammar import is_reply
from lyra_bot.adapters.email.identity import Identity, TenantView
from lyra_bot.adapters.email.parsing import ParsedMail

from lyra_bot import tokens
from lyra_bot.bus import Reply, UnitOfWork
from lyra_bot.outbox import mail
from lyra_bot.phrases import say
from lyra_bot.render import mailto, one_line, pick_locale


@dataclass
class Context:
    """Everything an answer needs to know about the mail it answers."""

    mail: ParsedMail
    key: str
    tenant: TenantView | None = None
    identity: Identity | None = None
    locale: str = "en"


@dataclass
class Result:
    """One line of the mail and what came of it."""

    line: str  # what the sender wrote ("" for the mail as a whole)
    code: str
    data: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


def reply_address(uow: UnitOfWork, ctx: Context) -> str | None:
    identity = ctx.identity
    if identity is None or identity.kind != "u" or identity.user is None:
        return None
    lead_id = identity.lead.id if identity.lead else None
    token = tokens.issue(uow.settings, "u", identity.tenant.id, identity.user.id, lead_id, uow.now)
    return tokens.reply_address(uow.settings, token)


def thread_headers(ctx: Context) -> dict[str, str]:
    parsed = ctx.mail
    if parsed.message_id.endswith("@lyra.invalid>"):
        return {}
    refs = [*reversed(parsed.references[:8]), parsed.message_id]
    return {"In-Reply-To": parsed.message_id, "References": " ".join(dict.fromkeys(refs))}


def answer(
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
    """Queue the answer to a mail that carried no command (a refusal, a note): one result."""
    answer_all(uow, ctx, [Result(command, code, data, not error)], key)


def answer_all(
    uow: UnitOfWork, ctx: Context, results: list[Result], key: str | None = None
) -> None:
    """Queue the one answer to the mail: every result in order."""
    sender = ctx.mail.sender
    tenant = ctx.tenant
    reply_to = reply_address(uow, ctx)
    identity = ctx.identity
    shown = [_shown(ctx, result, reply_to) for result in results]
    error = not any(result.ok for result in results)
    if error and identity is None:
        # An unknown sender (or a loop of two robots) gets one error answer a day.
        first = results[0]
        ref = first.data.get("ref") if first.code not in {"no_command", "quoted_only"} else ""
        digest = hashlib.sha256(f"{sender}|{first.code}|{ref or ''}".encode()).hexdigest()[:24]
        dedupe = f"error:{tenant.id if tenant else 0}:{digest}:{day(uow.now, tenant)}"
    else:
        dedupe = f"answer:{key or ctx.key}"
    code = results[0].code
    similar = shown[0]["similar"] if len(shown) == 1 else []
    mail(
        uow,
        tenant_id=tenant.id if tenant else None,  # type: ignore[arg-type]
        kind="answer.error" if error else "answer",
        to=sender,
        template="reply",
        locale=ctx.locale,
        context={
            "subject": re_subject(ctx.mail.subject),
            "code": code,
            "results": shown,
            "similar": similar,
            "show_help": any(r.data.get("show_help") or r.code == "help" for r in results),
            "user": {"name": identity.user.name or identity.user.email}
            if identity and identity.user
            else None,
            "tenant": {"name": tenant.name} if tenant and identity else None,
            "token": bool(reply_to),
        },
        dedupe_key=dedupe[:200],
        lead_id=identity.lead.id if identity and identity.lead else None,
        reply_to=reply_to,
        headers=thread_headers(ctx),
    )


def _shown(ctx: Context, result: Result, reply_to: str | None) -> dict[str, Any]:
    """A result as the answer shows it: the line quoted, the sentence in the reader's words,
    the customer of a lead just claimed, leads like one that got away."""
    tz = ctx.tenant.timezone if ctx.tenant else None
    lead = result.data.get("lead") if result.code == "claimed" else None
    return {
        "wrote": one_line(result.line)[:200],
        "wrote_text": say("you_wrote", {"line": one_line(result.line)[:200]}, ctx.locale)
        if result.line
        else "",
        "text": say(result.code, result.data, ctx.locale, tz),
        "ok": result.ok,
        "lead": lead,
        "similar_text": say("similar_intro", {}, ctx.locale),
        "similar": [
            {**item, "claim_url": mailto(reply_to, f"CLAIM {item['ref']}")}
            for item in result.data.get("similar") or []
            if reply_to
        ],
    }


def answer_mine(uow: UnitOfWork, ctx: Context, reply: Reply, key: str) -> None:
    identity = ctx.identity
    assert identity is not None and identity.user is not None and identity.partner
    tenant = identity.tenant
    claims = [{**item, "due_at": when(item.get("due_at"))} for item in reply.data.get("claims", [])]
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
        reply_to=reply_address(uow, ctx),
        headers=thread_headers(ctx),
    )


async def complete(ctx: Context) -> None:
    """The locale of the answer: the one ``FindMailSender`` chose for the person, else the
    tenant's."""
    identity = ctx.identity
    if identity is None:
        ctx.locale = pick_locale(ctx.tenant.locale if ctx.tenant else None)
        return
    ctx.locale = identity.locale


def when(value: Any) -> datetime | None:
    """Reply data holds times as ISO text (it is made JSON-safe)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value


def re_subject(subject: str) -> str:
    subject = one_line(subject)[:200] or "Lyra"
    return subject if is_reply(subject) else f"Re: {subject}"


def day(now: datetime, tenant: TenantView | None) -> str:
    zone = ZoneInfo(tenant.timezone) if tenant else ZoneInfo("UTC")
    return now.astimezone(zone).strftime("%Y-%m-%d")
