"""Digest mails: per partner user, the teasers it may claim now, newest first.

``SendDigests`` is a sweep (the scheduler runs it on a cadence; ``lyra-bot digest send`` runs
it now): one digest per user and local day, so running it twice the same day sends nothing
new. ``SetDigests`` is STOP / START by mail and the one-click unsubscribe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot.handlers import notify
from lyra_bot.handlers.common import partner_context, require, tenant_of
from lyra_bot.handlers.pool import PoolIndex, PoolLead, pool_query
from tortoise.functions import Max

from lyra_bot import tokens
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import Actor, Role, SendDigests, SetDigests
from lyra_bot.domain import teaser
from lyra_bot.models import AuditEvent, Lead, MailBounce, OutboxMessage, Partner, Tenant, User
from lyra_bot.outbox import mail
from lyra_bot.render import mailto


def unsubscribe_url(uow: UnitOfWork, tenant_id: int, user_id: int) -> str:
    """The one-click link: a token of its own (not the reply address's), so whoever sees a
    partner's reply address cannot turn its digests off."""
    token = tokens.issue(
        uow.settings, "u", tenant_id, user_id, None, uow.now, purpose="unsubscribe"
    )
    return f"{uow.settings.public_url.rstrip('/')}/email/unsubscribe/{token}"


def lead_items(
    leads: list[Lead] | list[PoolLead], reply_address: str, since: datetime | None
) -> list[dict[str, Any]]:
    """Teasers (never more: ``domain.teaser``) with a new-flag and a one-click claim link."""
    items = []
    for lead in leads:
        item = teaser(lead)
        item["new"] = since is None or (lead.opened_at is not None and lead.opened_at > since)
        item["claim_url"] = mailto(reply_address, f"CLAIM {lead.ref}")
        items.append(item)
    return items


async def last_digest_at(user: User) -> datetime | None:
    row = (
        await OutboxMessage.filter(
            tenant_id=user.tenant_id, kind="digest", recipient=user.email.lower()
        )
        .order_by("-created_at")
        .first()
    )
    return row.created_at if row else None


async def digest_for(
    uow: UnitOfWork, tenant: Tenant, partner: Partner, user: User
) -> tuple[dict[str, Any], str] | None:
    """One user's digest (the LEADS answer): template context and token, or None if the
    pool is empty."""
    query = pool_query(tenant.id, partner, uow.now)
    total = await query.count()
    if total == 0:
        return None
    # Newest first: what opened since the last digest leads the list.
    leads = await query.order_by("-opened_at", "-id").limit(uow.settings.digest_max_leads)
    return digest_context(uow, tenant, partner, user, leads, total, await last_digest_at(user))


def digest_context(
    uow: UnitOfWork,
    tenant: Tenant,
    partner: Partner,
    user: User,
    leads: list[Lead] | list[PoolLead],
    total: int,
    since: datetime | None,
) -> tuple[dict[str, Any], str]:
    token = tokens.issue(uow.settings, "u", tenant.id, user.id, None, uow.now)
    address = tokens.reply_address(uow.settings, token)
    items = lead_items(leads, address, since)
    context = {
        "tenant": {"name": tenant.name},
        "partner": {"name": partner.name},
        "user": {"name": user.name or user.email, "email": user.email},
        "leads": items,
        "total": total,
        "new": sum(1 for i in items if i["new"]),
        "more": total - len(items),
        "reply_address": address,
        "in_reply": False,
        "unsubscribe_url": unsubscribe_url(uow, tenant.id, user.id),
        "today": uow.now,
        "tz": tenant.timezone,
    }
    return context, token


def queue_digest(
    uow: UnitOfWork,
    tenant: Tenant,
    partner: Partner,
    user: User,
    context: dict[str, Any],
    token: str,
    dedupe_key: str,
    headers: dict[str, str] | None = None,
    kind: str = "digest",
) -> OutboxMessage | None:
    """Queue one digest mail, with RFC 8058 one-click unsubscribe headers."""
    address = tokens.reply_address(uow.settings, token)
    extra = {
        "List-Unsubscribe": f"<{context['unsubscribe_url']}>, <{mailto(address, 'STOP')}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        **(headers or {}),
    }
    return mail(
        uow,
        tenant_id=tenant.id,
        kind=kind,
        to=user.email,
        template="digest",
        locale=notify.user_locale(tenant, partner, user),
        context=context,
        dedupe_key=dedupe_key,
        reply_to=address,
        headers=extra,
    )


@handles(SendDigests)
async def send_digests(cmd: SendDigests, actor: Actor, uow: UnitOfWork) -> Reply:
    """Every active partner user with digests on, an address that does not bounce, and at
    least one lead to claim gets today's digest (once per local day)."""
    require(actor, Role.SYSTEM, Role.OWNER)
    tenant_id = actor.tenant_id if actor.role == Role.OWNER else cmd.tenant_id
    tenants = [await tenant_of(actor)] if actor.role == Role.OWNER else []
    if not tenants:
        query = Tenant.all() if tenant_id is None else Tenant.filter(id=tenant_id)
        tenants = await query.order_by("id")
    queued = skipped = 0
    for tenant in tenants:
        queued_here, skipped_here = await queue_tenant_digests(uow, tenant)
        queued += queued_here
        skipped += skipped_here
    return Reply(True, "digests", {"queued": queued, "skipped": skipped})


async def queue_tenant_digests(
    uow: UnitOfWork, tenant: Tenant, only_new: bool = False
) -> tuple[int, int]:
    """Queue today's digest for each of the tenant's partner users who gets one: digests on,
    an address that does not bounce, a lead to claim (``only_new``: a lead opened since the
    user's last digest) and no digest yet this local day. Returns (queued, skipped)."""
    bouncing = await _still_bouncing(tenant)
    users = (
        await User.filter(
            tenant_id=tenant.id,
            partner_id__not_isnull=True,
            active=True,
            digest_enabled=True,
            partner__active=True,
        )
        .select_related("partner")
        .order_by("id")
    )
    if not users:
        return 0, 0
    day = uow.now.astimezone(ZoneInfo(tenant.timezone)).strftime("%Y-%m-%d")
    index = await PoolIndex.load(tenant.id, uow.now)
    last_sent = dict(
        await OutboxMessage.filter(tenant_id=tenant.id, kind="digest")
        .annotate(last=Max("created_at"))
        .group_by("recipient")
        .values_list("recipient", "last")
    )
    sent = set(
        await OutboxMessage.filter(
            tenant_id=tenant.id, kind="digest", dedupe_key__startswith=f"digest:{tenant.id}:"
        )
        .filter(dedupe_key__endswith=f":{day}")
        .values_list("dedupe_key", flat=True)
    )
    queued = skipped = 0
    for user in users:
        key = f"digest:{tenant.id}:{user.id}:{day}"
        if key in sent or user.email.lower() in bouncing:
            skipped += 1
            continue
        since = last_sent.get(user.email)
        if only_new and since is not None and index.pool(user.partner, since=since).total == 0:
            skipped += 1
            continue
        pool = index.pool(user.partner)
        if pool.total == 0:
            skipped += 1
            continue
        newest = pool.leads[-uow.settings.digest_max_leads :][::-1]
        context, token = digest_context(uow, tenant, user.partner, user, newest, pool.total, since)
        if queue_digest(uow, tenant, user.partner, user, context, token, key) is not None:
            queued += 1
    if queued:
        uow.audit("digests.sent", tenant.id, day=day, count=queued)
    return queued, skipped


async def _still_bouncing(tenant: Tenant) -> set[str]:
    """Addresses that bounced, less those whose person has acted by email since (a mail
    from the address arrived, so it works again): those bounces are cleared here."""
    bounces = await MailBounce.filter(tenant_id=tenant.id)
    if not bounces:
        return set()
    users = dict(
        await User.filter(tenant_id=tenant.id, email__in=[b.address for b in bounces]).values_list(
            "email", "id"
        )
    )
    bouncing = set()
    for bounce in bounces:
        user_id = users.get(bounce.address)
        if user_id is not None and await AuditEvent.exists(
            tenant_id=tenant.id, user_id=user_id, channel="email", at__gt=bounce.last_at
        ):
            await MailBounce.filter(id=bounce.id).delete()
            continue
        bouncing.add(bounce.address)
    return bouncing


@handles(SetDigests)
async def set_digests(cmd: SetDigests, actor: Actor, uow: UnitOfWork) -> Reply:
    _, _, user = await partner_context(actor)
    if user.digest_enabled != cmd.enabled:
        await User.filter(id=user.id).update(digest_enabled=cmd.enabled)
        uow.audit(
            "user.digests_on" if cmd.enabled else "user.digests_off",
            user.tenant_id,
            partner_id=actor.partner_id,
            user_id=user.id,
        )
    if cmd.enabled:
        return Reply(True, "digests_on", {"enabled": True})
    return Reply(True, "digests_off", {"enabled": False})
