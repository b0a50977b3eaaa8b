"""Setting up tenants, partners and their users."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lyra_bot.handlers.common import require, tenant_of
from lyra_bot.handlers.pool import pool_query
from lyra_bot.handlers.slack_links import CHANNEL_RE, slack_id
from tortoise.functions import Count

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.business_time import (
    format_holidays,
    format_report_day,
    format_work_days,
    parse_clock,
    parse_holidays,
    parse_hours_list,
    parse_report_day,
    parse_work_days,
    parse_work_hours,
)
from lyra_bot.commands import (
    Actor,
    AddPartner,
    AddTenant,
    AddUser,
    ListPartners,
    ListTenants,
    Role,
    ShowTenant,
    UpdateTenant,
)
from lyra_bot.domain import (
    ClaimState,
    InvalidInput,
    NotFound,
    normalize_entitlements,
    parse_currency,
)
from lyra_bot.i18n import LOCALES
from lyra_bot.models import Claim, Partner, Tenant, User
from lyra_bot.outbox import clean_address

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _slug(value: str) -> str:
    slug = value.strip().lower()
    if not _SLUG_RE.match(slug):
        raise InvalidInput("bad_slug", value=value)
    return slug


def _email(value: str) -> str:
    try:
        return clean_address(value.strip()).lower()
    except ValueError:
        raise InvalidInput("bad_email", value=value) from None


def _locale(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.lower() not in LOCALES:
        raise InvalidInput("bad_locale", value=value, choices=list(LOCALES))
    return value.lower()


def _between(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidInput("out_of_range", name=name, low=low, high=high)
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("bad_timezone", value=value) from None
    return value


_RANGES = {
    "claim_deadline_hours": ("The claim deadline", 1, 24 * 90),
    "cap_open_claims": ("The cap", 1, 1000),
    "lapse_cooldown_hours": ("The cooldown", 0, 24 * 365),
    "contact_check_days": ("The contact check days", 0, 365),
    "stale_lead_days": ("The stale lead days", 0, 365),
    "extension_auto_days": ("The automatic extension", 0, 90),
    "extension_max_days": ("The longest extension", 1, 90),
    "lapse_limit": ("The lapse limit", 0, 1000),
    "lapse_pause_days": ("The pause", 1, 365),
    "retention_months": ("The retention", 1, 240),
}


def _policy(values: dict[str, Any]) -> dict[str, Any]:
    """Validated Tenant columns for the policy values given (by AddTenant or UpdateTenant)."""
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if name in _RANGES:
            label, low, high = _RANGES[name]
            columns[name] = _between(label, value, low, high)
        elif name == "name":
            columns[name] = value.strip()
            if not columns[name]:
                raise InvalidInput("empty_name")
        elif name == "owner_email":
            columns[name] = _email(value)
        elif name == "timezone":
            columns[name] = _timezone(value)
        elif name == "locale":
            columns[name] = _locale(value) or "de"
        elif name == "currency":
            columns[name] = parse_currency(value, "CHF")
        elif name in ("mail_customers", "deadline_business_hours", "require_consent"):
            columns[name] = bool(value)
        elif name == "work_days":
            columns[name] = parse_work_days(value)
        elif name == "work_hours":
            columns["work_start"], columns["work_end"] = parse_work_hours(value)
        elif name == "holidays":
            columns["holiday_country"], columns["holiday_subdiv"] = parse_holidays(value)
        elif name == "reminder_hours":
            columns[name] = parse_hours_list(value)
        elif name == "report_day":
            columns[name] = parse_report_day(value)
        elif name == "slack_owner_channel":
            columns[name] = _slack_channel(value)
        elif name in ("report_time", "digest_time"):
            columns[name] = parse_clock(value).strftime("%H:%M")
        elif name in _TEXT_LIMITS:
            columns[name] = _text(name, value)
        elif name in ("customer_from", "customer_reply_to"):
            columns[name] = "" if _cleared(value) else _email(value)
        elif name == "privacy_url":
            columns[name] = "" if _cleared(value) else _url(value)
        elif name == "customer_feedback_mails":
            columns[name] = _feedback_mails(value)
        else:
            raise AssertionError(f"no rule for tenant policy {name!r}")
    return columns


_TEXT_LIMITS = {"sender_name": 200, "imprint_company": 200, "imprint_address": 500}


def _text(name: str, value: str) -> str:
    """One line of text (line breaks become spaces: it may end up in a header)."""
    text = " ".join(str(value).split())
    if len(text) > _TEXT_LIMITS[name]:
        raise InvalidInput("text_too_long", field=name, max=_TEXT_LIMITS[name])
    return text


def _cleared(value: str | None) -> bool:
    return (value or "").strip().lower() in {"", "none", "-"}


def _url(value: str) -> str:
    url = value.strip()
    if not re.match(r"^https?://[^\s<>\"]+$", url) or len(url) > 500:
        raise InvalidInput("bad_url", value=value)
    return url


FEEDBACK_MAILS = ("all", "positive", "none")


def _feedback_mails(value: str) -> str:
    choice = value.strip().lower()
    if choice not in FEEDBACK_MAILS:
        raise InvalidInput("not_a_choice", value=value, choices=list(FEEDBACK_MAILS))
    return choice


def _slack_channel(value: str | None) -> str | None:
    """The owner's Slack channel id (upper-cased), or None for ``none`` / empty."""
    if (value or "").strip().lower() in {"", "none", "-"}:
        return None
    return slack_id(value or "", CHANNEL_RE, "channel")


def _check_consistent(tenant: Tenant) -> None:
    if tenant.extension_auto_days > tenant.extension_max_days:
        raise InvalidInput(
            "auto_over_max", auto=tenant.extension_auto_days, max=tenant.extension_max_days
        )


def policy_view(tenant: Tenant) -> dict[str, Any]:
    """A tenant's policy as the owner would write it (``tenant set`` options)."""
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "owner_email": tenant.owner_email,
        "timezone": tenant.timezone,
        "locale": tenant.locale,
        "currency": tenant.currency,
        "claim_deadline_hours": tenant.claim_deadline_hours,
        "deadline_business_hours": tenant.deadline_business_hours,
        "work_days": format_work_days(tenant.work_days),
        "work_hours": f"{tenant.work_start}-{tenant.work_end}",
        "holidays": format_holidays(tenant.holiday_country, tenant.holiday_subdiv),
        "cap_open_claims": tenant.cap_open_claims,
        "mail_customers": tenant.mail_customers,
        "lapse_cooldown_hours": tenant.lapse_cooldown_hours,
        "reminder_hours": ",".join(str(h) for h in tenant.reminder_hours) or "none",
        "contact_check_days": tenant.contact_check_days,
        "stale_lead_days": tenant.stale_lead_days,
        "extension_auto_days": tenant.extension_auto_days,
        "extension_max_days": tenant.extension_max_days,
        "lapse_limit": tenant.lapse_limit,
        "lapse_pause_days": tenant.lapse_pause_days,
        "require_consent": tenant.require_consent,
        "retention_months": tenant.retention_months,
        "report_day": format_report_day(tenant.report_day),
        "report_time": tenant.report_time,
        "slack_owner_channel": tenant.slack_owner_channel or "none",
        "digest_time": tenant.digest_time,
        "sender_name": tenant.sender_name or tenant.name,
        "customer_from": tenant.customer_from or "none",
        "customer_reply_to": tenant.customer_reply_to or "none",
        "imprint_company": tenant.imprint_company,
        "imprint_address": tenant.imprint_address,
        "privacy_url": tenant.privacy_url or "none",
        "customer_feedback_mails": tenant.customer_feedback_mails,
    }


@handles(AddTenant)
async def add_tenant(cmd: AddTenant, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    slug = _slug(cmd.slug)
    values = {k: v for k, v in asdict(cmd).items() if k != "slug"}
    values["name"] = values["name"].strip() or slug
    columns = _policy(values)
    if await Tenant.exists(slug=slug):
        raise InvalidInput("tenant_exists", slug=slug)
    tenant = Tenant(slug=slug, **columns)
    _check_consistent(tenant)
    await tenant.save()
    uow.audit("tenant.added", tenant.id, slug=slug)
    return Reply(True, "tenant_added", {"id": tenant.id, "slug": slug})


@handles(UpdateTenant)
async def update_tenant(cmd: UpdateTenant, actor: Actor, uow: UnitOfWork) -> Reply:
    """Policy changes apply from now on: claims already made keep their deadline."""
    require(actor, Role.OWNER, Role.SYSTEM)
    tenant = await tenant_of(actor)
    given = {k: v for k, v in asdict(cmd).items() if v is not None}
    if not given:
        raise InvalidInput("nothing_to_change")
    columns = _policy(given)
    before = policy_view(tenant)
    for name, value in columns.items():
        setattr(tenant, name, value)
    _check_consistent(tenant)
    await tenant.save(update_fields=list(columns))
    after = policy_view(tenant)
    changes = {k: after[k] for k in after if after[k] != before[k]}
    uow.audit("tenant.updated", tenant.id, changes=changes)
    return Reply(True, "tenant_updated", {"changes": changes, "policy": after, "slug": tenant.slug})


@handles(ShowTenant)
async def show_tenant(cmd: ShowTenant, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER, Role.SYSTEM)
    tenant = await tenant_of(actor)
    return Reply(True, "tenant", {"policy": policy_view(tenant), "slug": tenant.slug})


@handles(ListTenants)
async def list_tenants(cmd: ListTenants, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    rows = (
        await Tenant.all()
        .order_by("slug")
        .values(
            "id",
            "slug",
            "name",
            "owner_email",
            "timezone",
            "locale",
            "claim_deadline_hours",
            "cap_open_claims",
            "mail_customers",
        )
    )
    return Reply(True, "tenants", {"tenants": rows, "count": len(rows)})


@handles(AddPartner)
async def add_partner(cmd: AddPartner, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    slug = _slug(cmd.slug)
    products = normalize_entitlements(cmd.products, upper=False)
    regions = normalize_entitlements(cmd.regions, upper=True)
    if not products or not regions:
        raise InvalidInput("partner_needs_scope")
    if await Partner.exists(tenant_id=tenant.id, slug=slug):
        raise InvalidInput("partner_exists", slug=slug)
    partner = await Partner.create(
        tenant_id=tenant.id,
        slug=slug,
        name=cmd.name.strip() or slug,
        products=products,
        regions=regions,
        locale=_locale(cmd.locale),
    )
    uow.audit("partner.added", tenant.id, partner_id=partner.id, products=products, regions=regions)
    return Reply(True, "partner_added", {"id": partner.id, "slug": slug})


@handles(ListPartners)
async def list_partners(cmd: ListPartners, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    partners = await Partner.filter(tenant_id=actor.tenant_id).order_by("slug")
    held = dict(
        await Claim.filter(tenant_id=actor.tenant_id, state=ClaimState.ACTIVE)
        .annotate(n=Count("id"))
        .group_by("partner_id")
        .values_list("partner_id", "n")
    )
    rows = [
        {
            "slug": p.slug,
            "name": p.name,
            "products": p.products,
            "regions": p.regions,
            "active_claims": held.get(p.id, 0),
            "pool": await pool_query(p.tenant_id, p, uow.now).count(),
        }
        for p in partners
    ]
    return Reply(True, "partners", {"partners": rows, "count": len(rows)})


@handles(AddUser)
async def add_user(cmd: AddUser, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    email = _email(cmd.email)
    partner = None
    if cmd.partner_slug:
        partner = await Partner.get_or_none(tenant_id=tenant.id, slug=cmd.partner_slug.lower())
        if partner is None:
            raise NotFound("no_partner", slug=cmd.partner_slug)
    if await User.exists(tenant_id=tenant.id, email=email):
        raise InvalidInput("user_exists", email=email)
    user = await User.create(
        tenant_id=tenant.id,
        partner_id=partner and partner.id,
        email=email,
        name=cmd.name.strip(),
        locale=_locale(cmd.locale),
        slack_user_id=cmd.slack_user_id,
        slack_team_id=cmd.slack_team_id,
    )
    uow.audit("user.added", tenant.id, partner_id=partner and partner.id, user_id=user.id)
    return Reply(
        True,
        "user_added",
        {
            "id": user.id,
            "email": email,
            "partner": partner.slug if partner else "",
            "phrase": "user_added" if partner else "owner_user_added",
        },
    )
