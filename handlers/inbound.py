"""Inbound mail that carries no partner command: recorded, and acted on where useful.

Machine mail (auto-replies, read receipts, list traffic, our own) is only recorded. A hard
bounce marks the address (digests skip it) and tells the owner. A customer's answer goes to
the owner. Answers to the *sender*, if any, are the email adapter's business (``respond``).
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from lyra_bot.handlers.common import require

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, RecordMail, Role, SentText
from lyra_bot.domain import ClaimState, full_view
from lyra_bot.models import Claim, Lead, MailBounce, OutboxMessage, Tenant, User
from lyra_bot.outbox import mail
from lyra_bot.privacy import subject_key

log = logging.getLogger(__name__)

# Alerts about these mails would only bounce or loop themselves.
_NO_ALERT_KINDS = {"bounce.owner", "outbox.dead"}


@handles(RecordMail)
async def record_mail(cmd: RecordMail, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    log.info("inbound mail %s from %s: %s %s", cmd.message_id, cmd.sender, cmd.verdict, cmd.reason)
    data = {"verdict": cmd.verdict, "sender": cmd.sender, "reason": cmd.reason}
    if cmd.verdict == "bounce" and cmd.bounced:
        data["marked"] = await _hard_bounce(cmd, uow)
    elif actor.tenant_id is not None:
        uow.audit(
            f"mail.{cmd.verdict}"[:40],
            actor.tenant_id,
            lead_id=cmd.lead_id,
            sender=cmd.sender,
            reason=cmd.reason,
            subject=cmd.subject[:200],
        )
        if cmd.verdict == "customer" and cmd.lead_id is not None:
            await _forward_to_owner(cmd, actor.tenant_id, uow)
    return Reply(True, cmd.verdict, {**data, "phrase": "mail_recorded"})


@handles(SentText)
async def sent_text(cmd: SentText, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    mails = OutboxMessage.filter(
        tenant_id=actor.tenant_id, channel="email", recipient=cmd.recipient.lower()
    )
    if cmd.message_ids:
        mails = mails.filter(message_id__in=list(cmd.message_ids[:10]))
    else:  # a reply that names none of our mails: the latest few we sent the writer
        mails = mails.order_by("-id").limit(5)
    payloads = await mails.values_list("payload", flat=True)
    lines: dict[str, None] = {}
    for payload in payloads:
        text = payload.get("text") if isinstance(payload, dict) else None
        lines.update(dict.fromkeys(x for x in (text or "").splitlines() if x.strip()))
    return Reply(True, "sent_text", {"lines": list(lines), "count": len(lines)})


async def _hard_bounce(cmd: RecordMail, uow: UnitOfWork) -> list[str]:
    """Mark each failed address of the tenant whose mail bounced, and alert its owner once a day."""
    original = (
        await OutboxMessage.filter(message_id=cmd.original_id).first() if cmd.original_id else None
    )
    if original is None or original.tenant_id is None:
        log.warning("bounce for %s matches no mail of ours; recorded only", cmd.bounced)
        return []
    tenant = await Tenant.get(id=original.tenant_id)
    day = uow.now.astimezone(ZoneInfo(tenant.timezone)).strftime("%Y-%m-%d")
    marked = []
    for address in cmd.bounced:
        row = await MailBounce.get_or_none(tenant_id=tenant.id, address=address)
        if row is None:
            await MailBounce.create(
                tenant_id=tenant.id,
                address=address,
                status=cmd.bounce_status[:16],
                reason=cmd.reason[:500],
                kind=original.kind,
                first_at=uow.now,
                last_at=uow.now,
            )
        else:
            await MailBounce.filter(id=row.id).update(
                count=row.count + 1, last_at=uow.now, status=cmd.bounce_status[:16]
            )
        marked.append(address)
        uow.audit(
            "mail.bounced",
            tenant.id,
            lead_id=original.lead_id,
            address=address,
            status=cmd.bounce_status,
            mail_kind=original.kind,
        )
        if original.kind in _NO_ALERT_KINDS or address == tenant.owner_email.lower():
            continue
        mail(
            uow,
            tenant_id=tenant.id,
            kind="bounce.owner",
            to=tenant.owner_email,
            template="bounce_owner",
            locale=tenant.locale,
            context={
                "tenant": {"name": tenant.name},
                "address": address,
                "kind": original.kind,
                "status": cmd.bounce_status,
                "reason": cmd.reason,
                "who": await _who(tenant.id, address, original.lead_id),
            },
            # A key never holds the address itself: keys outlive erasure (they are unique).
            dedupe_key=f"bounce:{tenant.id}:{subject_key(address)}:{day}",
        )
    return marked


async def _who(tenant_id: int, address: str, lead_id: int | None) -> str:
    user = await User.filter(tenant_id=tenant_id, email=address).select_related("partner").first()
    if user is not None:
        return f"{user.name or user.email}, {user.partner.name}" if user.partner else user.email
    if lead_id is not None:
        lead = await Lead.get_or_none(id=lead_id, tenant_id=tenant_id)
        if lead is not None and lead.email.lower() == address:
            return f"{lead.contact_name or lead.company} ({lead.ref})"
    return ""


async def _forward_to_owner(cmd: RecordMail, tenant_id: int, uow: UnitOfWork) -> None:
    """The customer's own words reach the owner, who can answer them directly."""
    tenant = await Tenant.get(id=tenant_id)
    lead = await Lead.get_or_none(id=cmd.lead_id, tenant_id=tenant_id)
    if lead is None:
        return
    claim = (
        await Claim.filter(lead_id=lead.id, state=ClaimState.ACTIVE)
        .select_related("partner")
        .first()
    )
    mail(
        uow,
        tenant_id=tenant.id,
        kind="customer.owner",
        to=tenant.owner_email,
        template="customer_reply_owner",
        locale=tenant.locale,
        context={
            "tenant": {"name": tenant.name},
            "lead": full_view(lead),
            "sender": cmd.sender,
            "subject": cmd.subject,
            "text": cmd.text[:20000] or "-",
            "holder": claim.partner.name if claim else "",
        },
        dedupe_key=f"customer:{tenant.id}:{cmd.message_id}"[:200],
        lead_id=lead.id,
        thread=f"lead:{lead.id}:customer",
        reply_to=cmd.sender,
    )
