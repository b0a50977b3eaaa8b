"""Setting up tenants, partners and their users."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise.functions import Count

from handlers.common import require, tenant_of
from handlers.pool import pool_query
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import (
    Actor,
    AddPartner,
    AddTenant,
    AddUser,
    ListPartners,
    ListTenants,
    Role,
)
from lyra_bot.domain import (
    ClaimState,
    InvalidInput,
    NotFound,
    normalize_entitlements,
    parse_currency,
)
from lyra_bot.models import Claim, Partner, Tenant, User
from lyra_bot.outbox import clean_address
from lyra_bot.render import LOCALES

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _slug(value: str) -> str:
    slug = value.strip().lower()
    if not _SLUG_RE.match(slug):
        raise InvalidInput(f"'{value}' is not a short name (letters, digits, - and _).")
    return slug


def _email(value: str) -> str:
    try:
        return clean_address(value.strip()).lower()
    except ValueError:
        raise InvalidInput(f"'{value}' is not an email address.") from None


def _locale(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.lower() not in LOCALES:
        raise InvalidInput(f"'{value}' is not a supported language ({', '.join(LOCALES)}).")
    return value.lower()


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise InvalidInput(f"{name} must be at least 1.")
    return value


@handles(AddTenant)
async def add_tenant(cmd: AddTenant, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.SYSTEM)
    slug = _slug(cmd.slug)
    try:
        ZoneInfo(cmd.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"'{cmd.timezone}' is not a time zone (like Europe/Zurich).") from None
    if await Tenant.exists(slug=slug):
        raise InvalidInput(f"A tenant '{slug}' already exists.")
    tenant = await Tenant.create(
        slug=slug,
        name=cmd.name.strip() or slug,
        owner_email=_email(cmd.owner_email),
        timezone=cmd.timezone,
        locale=_locale(cmd.locale) or "de",
        claim_deadline_hours=_positive("The claim deadline", cmd.claim_deadline_hours),
        cap_open_claims=_positive("The cap", cmd.cap_open_claims),
        mail_customers=cmd.mail_customers,
        lapse_cooldown_hours=max(0, cmd.lapse_cooldown_hours),
        currency=parse_currency(cmd.currency, "CHF"),
        require_consent=cmd.require_consent,
        retention_months=_positive("The retention", cmd.retention_months),
    )
    uow.audit("tenant.added", tenant.id, slug=slug)
    return Reply(True, "tenant_added", f"Tenant '{slug}' added.", {"id": tenant.id, "slug": slug})


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
    return Reply(True, "tenants", f"{len(rows)} tenant(s).", {"tenants": rows})


@handles(AddPartner)
async def add_partner(cmd: AddPartner, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    slug = _slug(cmd.slug)
    products = normalize_entitlements(cmd.products, upper=False)
    regions = normalize_entitlements(cmd.regions, upper=True)
    if not products or not regions:
        raise InvalidInput("A partner needs at least one product and one region (or *).")
    if await Partner.exists(tenant_id=tenant.id, slug=slug):
        raise InvalidInput(f"A partner '{slug}' already exists.")
    partner = await Partner.create(
        tenant_id=tenant.id,
        slug=slug,
        name=cmd.name.strip() or slug,
        products=products,
        regions=regions,
        locale=_locale(cmd.locale),
    )
    uow.audit("partner.added", tenant.id, partner_id=partner.id, products=products, regions=regions)
    return Reply(
        True, "partner_added", f"Partner '{slug}' added.", {"id": partner.id, "slug": slug}
    )


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
    return Reply(True, "partners", f"{len(rows)} partner(s).", {"partners": rows})


@handles(AddUser)
async def add_user(cmd: AddUser, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    email = _email(cmd.email)
    partner = None
    if cmd.partner_slug:
        partner = await Partner.get_or_none(tenant_id=tenant.id, slug=cmd.partner_slug.lower())
        if partner is None:
            raise NotFound(f"There is no partner '{cmd.partner_slug}'.")
    if await User.exists(tenant_id=tenant.id, email=email):
        raise InvalidInput(f"A user {email} already exists.")
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
    who = f"partner '{partner.slug}'" if partner else "the owner"
    return Reply(
        True, "user_added", f"User {email} added for {who}.", {"id": user.id, "email": email}
    )
