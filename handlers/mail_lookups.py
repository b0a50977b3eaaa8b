"""What the email adapter needs from the store: who a reply token names, the locale of their
answer, the user of an unsubscribe link, and the LEADS answer (a digest mail)."""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers import digests, notify
from lyra_bot.handlers.common import partner_context, require

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, DigestRecipient, FindMailSender, Role, SendPoolDigest
from lyra_bot.models import Claim, Lead, Partner, Tenant, User
from lyra_bot.prepared import Prepared
from lyra_bot.render import pick_locale

# Every reply's identity lookups, built once (see lyra_bot.prepared).
_USER = Prepared(lambda p: User.filter(id=p.id, tenant_id=p.tenant_id).limit(1))
_LEAD = Prepared(lambda p: Lead.filter(id=p.id, tenant_id=p.tenant_id).limit(1))
NOBODY = Reply(True, "mail_sender", {"found": False})


def _tenant(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "locale": tenant.locale,
        "timezone": tenant.timezone,
    }


def _lead(lead: Lead | None) -> dict[str, Any] | None:
    if lead is None:
        return None
    return {"id": lead.id, "ref": lead.ref, "locale": lead.locale}


def _found(kind: str, tenant: Tenant, locale: str, **parts: Any) -> Reply:
    return Reply(
        True,
        "mail_sender",
        {"found": True, "kind": kind, "tenant": _tenant(tenant), "locale": locale, **parts},
    )


@handles(FindMailSender)
async def find_mail_sender(cmd: FindMailSender, actor: Actor, uow: UnitOfWork) -> Reply:
    """Plain lookups, no joins: this runs for every reply. Addresses compare case-blind."""
    require(actor, Role.SYSTEM)
    sender = cmd.sender.lower()
    if not sender or actor.tenant_id is None:
        return NOBODY
    tenant_id = actor.tenant_id
    if cmd.token_kind == "u":
        user = await _USER.first(id=cmd.subject_id, tenant_id=tenant_id)
        if user is None or user.email.lower() != sender or user.partner_id is None:
            return NOBODY
        tenant = await Tenant.get(id=tenant_id)
        partner = await Partner.get(id=user.partner_id)
        lead = None
        if cmd.lead_id is not None:
            lead = await _LEAD.first(id=cmd.lead_id, tenant_id=tenant.id)
        return _found(
            "u",
            tenant,
            notify.user_locale(tenant, partner, user),
            user={
                "id": user.id,
                "email": user.email,
                "name": user.name,
                "locale": user.locale,
                "partner_id": user.partner_id,
            },
            partner={"id": partner.id, "name": partner.name, "locale": partner.locale},
            lead=_lead(lead),
        )
    tenant = await Tenant.get_or_none(id=tenant_id)
    if tenant is None:
        return NOBODY
    if cmd.token_kind == "k":
        claim = (
            await Claim.filter(id=cmd.subject_id, tenant_id=tenant.id)
            .select_related("lead")
            .first()
        )
        if claim is None or claim.lead.email.lower() != sender:
            return NOBODY
        locale = notify.customer_locale(tenant, claim.lead)
        return _found("k", tenant, locale, lead=_lead(claim.lead), claim_id=claim.id)
    if cmd.token_kind == "c":
        lead = await Lead.get_or_none(id=cmd.subject_id, tenant_id=tenant.id)
        if lead is None or lead.email.lower() != sender:
            return NOBODY
        return _found("c", tenant, notify.customer_locale(tenant, lead), lead=_lead(lead))
    lead = None
    if cmd.lead_id is not None:
        lead = await Lead.get_or_none(id=cmd.lead_id, tenant_id=tenant.id)
    staff = {
        email.lower(): user_id
        for user_id, email in await User.filter(
            tenant_id=tenant.id, partner_id__isnull=True, active=True
        ).values_list("id", "email")
    }
    if sender != tenant.owner_email.lower() and sender not in staff:
        return NOBODY
    return _found(
        "o", tenant, pick_locale(tenant.locale), lead=_lead(lead), staff_id=staff.get(sender)
    )


@handles(DigestRecipient)
async def digest_recipient(cmd: DigestRecipient, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    user = await User.get_or_none(id=cmd.user_id, tenant_id=actor.tenant_id)
    if user is None:
        return Reply(True, "digest_recipient", {"user": None})
    view = {
        "id": user.id,
        "tenant_id": user.tenant_id,
        "partner_id": user.partner_id,
        "email": user.email,
    }
    return Reply(True, "digest_recipient", {"user": view})


@handles(SendPoolDigest)
async def send_pool_digest(cmd: SendPoolDigest, actor: Actor, uow: UnitOfWork) -> Reply:
    tenant, partner, user = await partner_context(actor)
    found = await digests.digest_for(uow, tenant, partner, user)
    if found is None:
        return Reply(True, "pool_empty")
    context, token = found
    context["in_reply"] = True
    digests.queue_digest(
        uow,
        tenant,
        partner,
        user,
        context,
        token,
        cmd.dedupe_key,
        headers=dict(cmd.headers),
        kind="answer",
    )
    return Reply(True, "pool_sent", {"total": context.get("total")})
