"""The mails each lead event sends, queued in the outbox of the handler's transaction.

One function per event; each knows its three (or two) recipients. Every mail about one claim
shares a thread, so the claim, reminders, feedback and lapse mails read as one conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot import tokens
from lyra_bot.bus import UnitOfWork
from lyra_bot.domain import ExtensionStatus, customer_language, full_view, teaser
from lyra_bot.models import Claim, Extension, Feedback, Lead, Partner, Tenant, User
from lyra_bot.outbox import mail, slack_say
from lyra_bot.render import pick_locale


def local_time(tenant: Tenant, when: datetime | None) -> str:
    if when is None:
        return ""
    return when.astimezone(ZoneInfo(tenant.timezone)).strftime("%Y-%m-%d %H:%M %Z")


def user_locale(tenant: Tenant, partner: Partner | None, user: User | None) -> str:
    return pick_locale(user and user.locale, partner and partner.locale, tenant.locale)


def customer_locale(tenant: Tenant, lead: Lead) -> str:
    return customer_language(lead.locale, lead.region, tenant.locale)


def reply_to(uow: UnitOfWork, kind: str, tenant: Tenant, subject_id: int, lead: Lead | None) -> str:
    token = tokens.issue(uow.settings, kind, tenant.id, subject_id, lead and lead.id, uow.now)
    return tokens.reply_address(uow.settings, token)


def _context(
    tenant: Tenant,
    lead: Lead,
    claim: Claim | None,
    partner: Partner | None,
    user: User | None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "tenant": {"name": tenant.name, "owner_email": tenant.owner_email},
        "lead": full_view(lead),
        "teaser": teaser(lead),
        "partner": {"name": partner.name} if partner else None,
        "user": {"name": user.name or user.email, "email": user.email} if user else None,
        "tz": tenant.timezone,
        "due": claim.due_at if claim else None,
        **extra,
    }


def _send(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    event: str,
    audience: str,
    key: str,
    context: dict[str, Any],
    thread: str | None,
    *,
    to: str,
    locale: str,
    token: tuple[str, int],
    user_id: int | None = None,
    sender: tuple[str, str] | None = None,
    reply_address: str | None = None,
) -> None:
    """One mail of ``event`` to ``audience`` (owner, partner or customer), threaded per claim."""
    mail(
        uow,
        tenant_id=tenant.id,
        kind=f"{event}.{audience}",
        to=to,
        template=f"{event}_{audience}",
        locale=locale,
        context=context,
        dedupe_key=f"{key}:{audience}",
        lead=lead,
        user_id=user_id,
        thread=thread and f"{thread}:{audience}",
        reply_to=reply_address or reply_to(uow, token[0], tenant, token[1], lead),
        sender=sender,
    )


def _to_owner(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    event: str,
    key: str,
    context: dict[str, Any],
    thread: str | None,
) -> None:
    _send(
        uow,
        tenant,
        lead,
        event,
        "owner",
        key,
        context,
        thread,
        to=tenant.owner_email,
        locale=tenant.locale,
        token=("o", tenant.id),
    )


def _to_partner(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    partner: Partner,
    user: User,
    event: str,
    key: str,
    context: dict[str, Any],
    thread: str | None,
) -> None:
    _send(
        uow,
        tenant,
        lead,
        event,
        "partner",
        key,
        context,
        thread,
        to=user.email,
        locale=user_locale(tenant, partner, user),
        token=("u", user.id),
        user_id=user.id,
    )


def _to_customer(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    event: str,
    key: str,
    context: dict[str, Any],
    thread: str | None,
) -> None:
    """Customers are mailed only if the tenant wants it, and never after they opted out."""
    if not (tenant.mail_customers and lead.email) or lead.opted_out_at is not None:
        return
    context = {**context, **customer_voice(tenant), "opt_out_url": opt_out_url(uow, tenant, lead)}
    _send(
        uow,
        tenant,
        lead,
        event,
        "customer",
        key,
        context,
        thread,
        to=lead.email,
        locale=customer_locale(tenant, lead),
        token=("c", lead.id),
        sender=customer_sender(tenant),
        reply_address=tenant.customer_reply_to or None,
    )


def customer_sender(tenant: Tenant) -> tuple[str, str]:
    """Customer mails come from the owner: its display name, and its address if it set one."""
    return (tenant.sender_name or tenant.name, tenant.customer_from)


def customer_voice(tenant: Tenant) -> dict[str, Any]:
    """What a customer mail's footer shows: who writes, and the owner's imprint."""
    lines = [line for line in (tenant.imprint_company, tenant.imprint_address) if line]
    imprint = {"lines": lines, "privacy_url": tenant.privacy_url}
    return {
        "sender_name": tenant.sender_name or tenant.name,
        "imprint": imprint if lines or tenant.privacy_url else None,
    }


def customer_hears_of(tenant: Tenant, outcome: str) -> bool:
    """After feedback the customer is mailed only where it makes sense: a sale or a first
    contact (``positive``, the default); ``all`` adds lost, not qualified, duplicate …"""
    policy = tenant.customer_feedback_mails
    return policy == "all" or (policy == "positive" and outcome in POSITIVE_OUTCOMES)


POSITIVE_OUTCOMES = frozenset({"won", "contacted"})


def opt_out_url(uow: UnitOfWork, tenant: Tenant, lead: Lead) -> str:
    """A signed link with which the customer asks not to be contacted (valid a year)."""
    token = tokens.issue(
        uow.settings, "c", tenant.id, lead.id, lead.id, uow.now, days=365, purpose="opt-out"
    )
    return f"{uow.settings.public_url.rstrip('/')}/privacy/opt-out/{token}"


def claimed(
    uow: UnitOfWork, tenant: Tenant, lead: Lead, claim: Claim, partner: Partner, user: User
) -> None:
    """Three mails: the owner learns who took it, the partner gets the customer, the customer
    learns a partner will call."""
    context = _context(tenant, lead, claim, partner, user)
    thread, key = f"claim:{claim.id}", f"claim:{claim.id}"
    _to_owner(uow, tenant, lead, "claim", key, context, thread)
    _to_partner(uow, tenant, lead, partner, user, "claim", key, context, thread)
    _to_customer(uow, tenant, lead, "claim", key, context, thread)


def feedback_given(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    feedback: Feedback,
    *,
    update: bool,
) -> None:
    """Feedback mails all three; a later update (contacted → won) tells owner and partner."""
    context = _context(
        tenant,
        lead,
        claim,
        partner,
        user,
        feedback={
            "outcome": feedback.outcome,
            "amount": feedback.amount,
            "currency": feedback.currency,
            "reason": feedback.reason,
            "note": feedback.note,
            "on_time": feedback.on_time,
        },
        update=update,
    )
    thread, key = f"claim:{claim.id}", f"feedback:{feedback.id}"
    _to_owner(uow, tenant, lead, "feedback", key, context, thread)
    _to_partner(uow, tenant, lead, partner, user, "feedback", key, context, thread)
    if not update and customer_hears_of(tenant, feedback.outcome):
        _to_customer(uow, tenant, lead, "feedback", key, context, thread)


def lapsed(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    hidden_until: datetime,
) -> None:
    """The partner learns its claim lapsed (and the lead went back to the pool)."""
    context = _context(tenant, lead, claim, partner, user, hidden_until=hidden_until)
    _to_partner(
        uow, tenant, lead, partner, user, "lapse", f"lapse:{claim.id}", context, f"claim:{claim.id}"
    )


def lapses_to_owner(uow: UnitOfWork, tenant: Tenant, items: list[dict[str, Any]], key: str) -> None:
    """One summary per sweep, rather than one mail per lapsed claim."""
    mail(
        uow,
        tenant_id=tenant.id,
        kind="lapse.owner",
        to=tenant.owner_email,
        template="lapse_owner",
        locale=tenant.locale,
        context={"tenant": {"name": tenant.name}, "tz": tenant.timezone, "items": items},
        dedupe_key=key,
    )


def released(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    reason: str,
) -> None:
    context = _context(tenant, lead, claim, partner, user, reason=reason)
    _to_owner(uow, tenant, lead, "release", f"release:{claim.id}", context, f"claim:{claim.id}")


def withdrawn_while_held(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    reason: str,
) -> None:
    """The partner holding a withdrawn lead is told to stop."""
    context = _context(tenant, lead, claim, partner, user, reason=reason)
    _to_partner(
        uow,
        tenant,
        lead,
        partner,
        user,
        "withdraw",
        f"withdraw:{claim.id}",
        context,
        f"claim:{claim.id}",
    )


# --- scheduler sweeps, extensions, reliability -------------------------------------------


def reminder(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    offset_hours: int,
) -> None:
    """The claim's user is reminded of the deadline: by mail (in the claim's thread) and, when
    the user is linked to Slack, by direct message."""
    zone = ZoneInfo(tenant.timezone)
    # Counted on the local clock, as a person reads "due tomorrow 10:00" (DST included).
    left = claim.due_at.astimezone(zone).replace(tzinfo=None) - uow.now.astimezone(zone).replace(
        tzinfo=None
    )
    hours_left = max(1, round(left.total_seconds() / 3600))
    context = _context(tenant, lead, claim, partner, user, hours_left=hours_left)
    key = f"remind:{claim.id}:{int(claim.due_at.timestamp())}:{offset_hours}"
    locale = user_locale(tenant, partner, user)
    mail(
        uow,
        tenant_id=tenant.id,
        kind="reminder.partner",
        to=user.email,
        template="reminder",
        locale=locale,
        context=context,
        dedupe_key=key,
        lead_id=lead.id,
        thread=f"claim:{claim.id}:partner",
        reply_to=reply_to(uow, "u", tenant, user.id, lead),
    )
    if user.slack_user_id:
        slack_say(
            uow,
            tenant_id=tenant.id,
            kind="reminder.slack",
            say="reminder",
            locale=locale,
            context={
                "lead": {
                    k: context["lead"].get(k) for k in ("ref", "company", "product", "region")
                },
                "due_at": claim.due_at,
                "tz": tenant.timezone,
                "hours_left": hours_left,
            },
            channel=user.slack_user_id,
            dedupe_key=f"{key}:slack",
            lead_id=lead.id,
        )


def contact_check(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    yes_url: str,
    no_url: str,
    reply_address: str,
) -> None:
    """Ask the customer whether the partner got in touch: two one-click links, or a reply."""
    context = _context(
        tenant,
        lead,
        claim,
        partner,
        None,
        yes_url=yes_url,
        no_url=no_url,
        claimed=claim.claimed_at,
    )
    mail(
        uow,
        tenant_id=tenant.id,
        kind="contact_check.customer",
        to=lead.email,
        template="contact_check",
        locale=customer_locale(tenant, lead),
        context={**context, **customer_voice(tenant)},
        dedupe_key=f"check:{claim.id}:customer",
        lead_id=lead.id,
        thread=f"claim:{claim.id}:customer",
        reply_to=reply_address,
        sender=customer_sender(tenant),
    )


def contact_denied(
    uow: UnitOfWork, tenant: Tenant, lead: Lead, claim: Claim, partner: Partner
) -> None:
    """The customer says nobody called: the owner hears it at once."""
    context = _context(tenant, lead, claim, partner, None, claimed=claim.claimed_at)
    _to_owner(uow, tenant, lead, "contact_check", f"check:{claim.id}", context, None)


def stale_leads(uow: UnitOfWork, tenant: Tenant, items: list[dict[str, Any]], key: str) -> None:
    """One summary of the leads nobody claimed for the tenant's number of days."""
    mail(
        uow,
        tenant_id=tenant.id,
        kind="stale.owner",
        to=tenant.owner_email,
        template="stale_owner",
        locale=tenant.locale,
        context={
            "tenant": {"name": tenant.name},
            "tz": tenant.timezone,
            "items": items,
            "days": tenant.stale_lead_days,
        },
        dedupe_key=key,
    )


def extension_decided(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    extension: Extension,
) -> None:
    """The partner learns whether it got more time (at once when the policy allowed it)."""
    context = _context(
        tenant,
        lead,
        claim,
        partner,
        user,
        extension={
            "days": extension.days,
            "approved": extension.status == ExtensionStatus.APPROVED,
            "auto": extension.auto,
            "old_due": extension.old_due_at,
        },
    )
    key = f"extension:{extension.id}:{extension.status}"
    _to_partner(uow, tenant, lead, partner, user, "extension", key, context, f"claim:{claim.id}")
    if user.slack_user_id:
        slack_say(
            uow,
            tenant_id=tenant.id,
            kind="extension.slack",
            say="extension_partner",
            locale=user_locale(tenant, partner, user),
            context={
                "extension": {
                    "days": extension.days,
                    "approved": extension.status == ExtensionStatus.APPROVED,
                    "auto": extension.auto,
                    "old_due_at": extension.old_due_at,
                },
                "lead": {"ref": lead.ref},
                "due_at": claim.due_at,
                "tz": tenant.timezone,
                "tenant": tenant.name,
            },
            channel=user.slack_user_id,
            dedupe_key=f"{key}:partner:slack",
            lead_id=lead.id,
        )


def extension_requested(
    uow: UnitOfWork,
    tenant: Tenant,
    lead: Lead,
    claim: Claim,
    partner: Partner,
    user: User,
    extension: Extension,
    owner_slack: list[str] | None = None,
) -> None:
    """The owner is asked to approve or decline a request beyond the automatic limit: by mail
    (decided by reply) and, in Slack, in each of ``owner_slack`` (the owner channel, or the
    DMs of the owner's staff) with Approve / Decline buttons."""
    context = _context(
        tenant,
        lead,
        claim,
        partner,
        user,
        extension={"days": extension.days, "reason": extension.reason},
    )
    key = f"extension:{extension.id}:request"
    _to_owner(uow, tenant, lead, "extension", key, context, f"claim:{claim.id}")
    if not owner_slack:
        return
    said = {
        "extension": {"id": extension.id, "days": extension.days, "reason": extension.reason},
        "lead": {"ref": lead.ref, "product": lead.product, "region": lead.region},
        "partner": partner.name,
        "user": user.name or user.email,
        "due_at": claim.due_at,
        "tz": tenant.timezone,
    }
    for target in owner_slack:
        slack_say(
            uow,
            tenant_id=tenant.id,
            kind="extension.owner.slack",
            say="extension_owner",
            locale=tenant.locale,
            context=said,
            channel=target,
            dedupe_key=f"{key}:slack:{target}",
            lead_id=lead.id,
        )


def partner_paused(
    uow: UnitOfWork,
    tenant: Tenant,
    partner: Partner,
    users: list[User],
    lapses: int,
    until: datetime,
) -> None:
    """The partner's users and the owner learn that the partner may not claim for a while."""
    context = {
        "tenant": {"name": tenant.name},
        "partner": {"name": partner.name},
        "lapses": lapses,
        "limit": tenant.lapse_limit,
        "tz": tenant.timezone,
        "until": until,
    }
    key = f"paused:{partner.id}:{int(until.timestamp())}"
    for user in users:
        mail(
            uow,
            tenant_id=tenant.id,
            kind="paused.partner",
            to=user.email,
            template="paused_partner",
            locale=user_locale(tenant, partner, user),
            context={**context, "user": {"name": user.name or user.email}},
            dedupe_key=f"{key}:{user.id}",
        )
    mail(
        uow,
        tenant_id=tenant.id,
        kind="paused.owner",
        to=tenant.owner_email,
        template="paused_owner",
        locale=tenant.locale,
        context=context,
        dedupe_key=f"{key}:owner",
    )
