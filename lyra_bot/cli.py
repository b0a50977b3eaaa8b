"""``lyra-bot``: the admin command line. Every state change goes through the bus.

Errors a user can cause print one line on stderr and exit with status 1; an unreachable
or outdated database exits with status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from tortoise.connection import get_connection

from lyra_bot import commands as c
from lyra_bot.bus import Bus, Reply
from lyra_bot.commands import Actor
from lyra_bot.config import get_settings
from lyra_bot.db import close_db, init_db, pending_migrations, upgrade
from lyra_bot.domain import DomainError
from lyra_bot.logs import configure as configure_logging
from lyra_bot.models import Tenant, User

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Lyra: the self-service lead pool."
)
db_app = typer.Typer(no_args_is_help=True, help="The database.")
tenant_app = typer.Typer(no_args_is_help=True, help="Owners (tenants).")
partner_app = typer.Typer(no_args_is_help=True, help="Partners of a tenant.")
user_app = typer.Typer(no_args_is_help=True, help="People acting for partners or the owner.")
lead_app = typer.Typer(no_args_is_help=True, help="Leads.")
outbox_app = typer.Typer(no_args_is_help=True, help="Messages waiting to be delivered.")
digest_app = typer.Typer(no_args_is_help=True, help="Digests of new leads (mail and Slack).")
privacy_app = typer.Typer(no_args_is_help=True, help="Customer data: disclosures, export, erasure.")
jobs_app = typer.Typer(no_args_is_help=True, help="The scheduler's jobs (sweeps).")
extension_app = typer.Typer(no_args_is_help=True, help="Decide partners' extension requests.")
mail_app = typer.Typer(no_args_is_help=True, help="Replies by email (the IMAP inbox).")
for sub, name in (
    (db_app, "db"),
    (tenant_app, "tenant"),
    (partner_app, "partner"),
    (user_app, "user"),
    (lead_app, "lead"),
    (outbox_app, "outbox"),
    (digest_app, "digest"),
    (privacy_app, "privacy"),
    (jobs_app, "jobs"),
    (mail_app, "mail"),
):
    app.add_typer(sub, name=name)
lead_app.add_typer(extension_app, name="extension")
api_key_app = typer.Typer(no_args_is_help=True, help="Keys of the intake API (/api/v1).")
tenant_app.add_typer(api_key_app, name="api-key")

out = Console()
err = Console(stderr=True)

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", "-t", envvar="LYRA_TENANT", help="Tenant short name (default: the only one)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsOpt = Annotated[str, typer.Option("--as", help="Email of the partner user acting.")]


class CliError(Exception):
    """A one-line message for the user; exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


def run(body: Callable[[], Awaitable[T]], *, migrate: bool = False) -> T:
    """Open the store, run ``body``, close the store; turn failures into one-line errors."""

    async def main() -> T:
        settings = get_settings()
        try:
            await init_db(settings, migrate=migrate)
            await get_connection("default").execute_query("SELECT 1")
            if not migrate and (pending := await pending_migrations()):
                fail(
                    f"The database needs {len(pending)} migration(s); run 'lyra-bot db upgrade'.",
                    2,
                )
            return await body()
        finally:
            await close_db()

    try:
        return asyncio.run(main())
    except CliError as exc:
        err.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.code) from None
    except (OSError, ConnectionError) as exc:
        err.print(f"[red]Error:[/red] cannot open the database: {exc}", highlight=False)
        raise typer.Exit(2) from None


async def tenant_by_slug(slug: str | None) -> Tenant:
    if slug:
        tenant = await Tenant.get_or_none(slug=slug.lower())
        if tenant is None:
            fail(f"There is no tenant '{slug}'. See 'lyra-bot tenant list'.")
        return tenant
    tenants = await Tenant.all().limit(2)
    if len(tenants) != 1:
        fail(
            "Say which tenant with --tenant (or LYRA_TENANT)."
            if tenants
            else "No tenant yet; add one with 'lyra-bot tenant add'."
        )
    return tenants[0]


async def partner_actor(tenant: Tenant, email: str) -> Actor:
    user = await User.get_or_none(tenant_id=tenant.id, email=email.strip().lower())
    if user is None or user.partner_id is None:
        fail(f"{email} is not a partner user of '{tenant.slug}'.")
    return Actor.partner_user(tenant.id, user.partner_id, user.id, "cli")


async def send(cmd: c.Command, actor: Actor, bus: Bus | None = None) -> Reply:
    from lyra_bot.app import build_bus

    reply = await (bus or build_bus()).dispatch(cmd, actor)
    if not reply.ok:
        fail(reply.message)
    return reply


def show(reply: Reply, as_json: bool, key: str | None = None, columns: Sequence[str] = ()) -> None:
    """Print a listing as a rich table, or its data as JSON."""
    if as_json:
        out.print_json(json.dumps(reply.to_json()["data"], ensure_ascii=False))
        return
    rows = reply.to_json()["data"].get(key, []) if key else []
    if key is None:
        out.print(reply.message, highlight=False)
        return
    table = Table(*columns, title=reply.message, title_justify="left")
    for row in rows:
        table.add_row(*(_cell(row.get(col)) for col in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def say(reply: Reply, as_json: bool = False) -> None:
    if as_json:
        out.print_json(json.dumps(reply.to_json(), ensure_ascii=False))
    else:
        out.print(reply.message, highlight=False)


# --- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""

    async def body() -> None:
        await upgrade(
            progress=lambda event, app_label, name: (
                event == "apply_done" and out.print(f"applied {name}")
            )
        )
        out.print("The database is up to date.")

    try:
        asyncio.run(body())
    except (OSError, ConnectionError) as exc:
        err.print(f"[red]Error:[/red] cannot open the database: {exc}", highlight=False)
        raise typer.Exit(2) from None


# --- tenants, partners, users ------------------------------------------------------------


# Policy options shared by 'tenant add' (defaults) and 'tenant set' (None = unchanged).
BusinessOpt = typer.Option(
    "--business-hours/--calendar-hours",
    help="Count the claim deadline (and reminder offsets) in working hours, or around the clock.",
)
WorkDaysOpt = typer.Option(help="Working days, like mon-fri or mon,tue,thu.")
WorkHoursOpt = typer.Option(help="Working hours, like 08:00-17:00.")
HolidaysOpt = typer.Option(help="Public holidays: country and subdivision (CH-ZH), or none.")
RemindOpt = typer.Option(help="Reminders, in hours before the deadline (24,2), or none.")
CheckOpt = typer.Option(help="Days after a claim to ask the customer if called (0 = never).")
StaleOpt = typer.Option(help="Days unclaimed before a lead is reported (0 = never).")
AutoExtOpt = typer.Option(help="A first extension up to this many days is granted at once.")
MaxExtOpt = typer.Option(help="The longest extension a partner may ask for, in days.")
LapseLimitOpt = typer.Option(help="Lapses in 30 days that pause a partner (0 = never).")
PauseOpt = typer.Option(help="Days a partner is paused from claiming.")
ReportDayOpt = typer.Option(help="Weekday the weekly owner report is sent (mon … sun, or none).")
ReportTimeOpt = typer.Option(help="Local time the weekly owner report is sent, like 08:00.")
DigestTimeOpt = typer.Option(help="Local time digests go out on working days, like 07:00.")
OwnerChannelOpt = typer.Option(help="Slack channel id for the owner's report summary, or none.")


@tenant_app.command("add")
def tenant_add(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    owner_email: Annotated[str, typer.Option(help="Where owner notices go.")],
    timezone: str = "Europe/Zurich",
    locale: str = "de",
    deadline_hours: Annotated[int, typer.Option(help="Hours a partner has for feedback.")] = 72,
    cap: Annotated[int, typer.Option(help="Open claims a partner may hold without feedback.")] = 3,
    mail_customers: Annotated[
        bool, typer.Option(help="Tell customers who will contact them.")
    ] = True,
    cooldown_hours: Annotated[
        int, typer.Option(help="Hours a lapsed lead stays hidden from its partner.")
    ] = 72,
    currency: str = "CHF",
    require_consent: Annotated[
        bool, typer.Option(help="Keep leads without recorded consent out of the pool.")
    ] = False,
    retention_months: Annotated[
        int, typer.Option(help="Months closed leads keep the customer's data.")
    ] = 24,
    business_hours: Annotated[bool, BusinessOpt] = False,
    work_days: Annotated[str, WorkDaysOpt] = "mon-fri",
    work_hours: Annotated[str, WorkHoursOpt] = "08:00-17:00",
    holidays: Annotated[str, HolidaysOpt] = "CH",
    reminders: Annotated[str, RemindOpt] = "24,2",
    contact_check_days: Annotated[int, CheckOpt] = 3,
    stale_days: Annotated[int, StaleOpt] = 7,
    auto_extension_days: Annotated[int, AutoExtOpt] = 2,
    max_extension_days: Annotated[int, MaxExtOpt] = 14,
    lapse_limit: Annotated[int, LapseLimitOpt] = 0,
    pause_days: Annotated[int, PauseOpt] = 14,
    report_day: Annotated[str, ReportDayOpt] = "mon",
    report_time: Annotated[str, ReportTimeOpt] = "08:00",
    slack_owner_channel: Annotated[str | None, OwnerChannelOpt] = None,
    digest_time: Annotated[str, DigestTimeOpt] = "07:00",
) -> None:
    """Add a tenant (an owner organisation) with its policy."""
    cmd = c.AddTenant(
        slug,
        name,
        owner_email,
        timezone,
        locale,
        deadline_hours,
        cap,
        mail_customers,
        cooldown_hours,
        currency,
        require_consent=require_consent,
        retention_months=retention_months,
        deadline_business_hours=business_hours,
        work_days=work_days,
        work_hours=work_hours,
        holidays=holidays,
        reminder_hours=reminders,
        contact_check_days=contact_check_days,
        stale_lead_days=stale_days,
        extension_auto_days=auto_extension_days,
        extension_max_days=max_extension_days,
        lapse_limit=lapse_limit,
        lapse_pause_days=pause_days,
        report_day=report_day,
        report_time=report_time,
        slack_owner_channel=slack_owner_channel,
        digest_time=digest_time,
    )
    say(run(lambda: send(cmd, Actor.system())))


@tenant_app.command("set")
def tenant_set(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    owner_email: Annotated[str | None, typer.Option(help="Where owner notices go.")] = None,
    timezone: str | None = None,
    locale: str | None = None,
    deadline_hours: Annotated[int | None, typer.Option(help="Hours for feedback.")] = None,
    cap: Annotated[int | None, typer.Option(help="Open claims per partner.")] = None,
    mail_customers: Annotated[
        bool | None, typer.Option("--mail-customers/--no-mail-customers")
    ] = None,
    cooldown_hours: Annotated[int | None, typer.Option(help="Hours a lapsed lead hides.")] = None,
    currency: str | None = None,
    business_hours: Annotated[bool | None, BusinessOpt] = None,
    work_days: Annotated[str | None, WorkDaysOpt] = None,
    work_hours: Annotated[str | None, WorkHoursOpt] = None,
    holidays: Annotated[str | None, HolidaysOpt] = None,
    reminders: Annotated[str | None, RemindOpt] = None,
    contact_check_days: Annotated[int | None, CheckOpt] = None,
    stale_days: Annotated[int | None, StaleOpt] = None,
    auto_extension_days: Annotated[int | None, AutoExtOpt] = None,
    max_extension_days: Annotated[int | None, MaxExtOpt] = None,
    lapse_limit: Annotated[int | None, LapseLimitOpt] = None,
    pause_days: Annotated[int | None, PauseOpt] = None,
    require_consent: Annotated[
        bool | None, typer.Option("--require-consent/--no-require-consent")
    ] = None,
    retention_months: Annotated[int | None, typer.Option(help="Months of retention.")] = None,
    report_day: Annotated[str | None, ReportDayOpt] = None,
    report_time: Annotated[str | None, ReportTimeOpt] = None,
    slack_owner_channel: Annotated[str | None, OwnerChannelOpt] = None,
    digest_time: Annotated[str | None, DigestTimeOpt] = None,
    sender_name: Annotated[
        str | None, typer.Option(help="Sender name of customer mails (default: the name).")
    ] = None,
    customer_from: Annotated[
        str | None, typer.Option(help="From address of customer mails ('none': Lyra's).")
    ] = None,
    customer_reply_to: Annotated[
        str | None, typer.Option(help="Reply-To of customer mails ('none': Lyra reads them).")
    ] = None,
    imprint_company: Annotated[
        str | None, typer.Option(help="Company in the footer of every customer mail.")
    ] = None,
    imprint_address: Annotated[
        str | None, typer.Option(help="Postal address in that footer.")
    ] = None,
    privacy_url: Annotated[
        str | None, typer.Option(help="Privacy policy link in that footer ('none').")
    ] = None,
    customer_feedback_mails: Annotated[
        str | None,
        typer.Option(
            help="Mail the customer after feedback: all, positive (won, contacted), none."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a tenant's policy (only the options given; new claims follow it)."""
    cmd = c.UpdateTenant(
        name=name,
        owner_email=owner_email,
        timezone=timezone,
        locale=locale,
        claim_deadline_hours=deadline_hours,
        cap_open_claims=cap,
        mail_customers=mail_customers,
        lapse_cooldown_hours=cooldown_hours,
        currency=currency,
        deadline_business_hours=business_hours,
        work_days=work_days,
        work_hours=work_hours,
        holidays=holidays,
        reminder_hours=reminders,
        contact_check_days=contact_check_days,
        stale_lead_days=stale_days,
        extension_auto_days=auto_extension_days,
        extension_max_days=max_extension_days,
        lapse_limit=lapse_limit,
        lapse_pause_days=pause_days,
        require_consent=require_consent,
        retention_months=retention_months,
        report_day=report_day,
        report_time=report_time,
        slack_owner_channel=slack_owner_channel,
        digest_time=digest_time,
        sender_name=sender_name,
        customer_from=customer_from,
        customer_reply_to=customer_reply_to,
        imprint_company=imprint_company,
        imprint_address=imprint_address,
        privacy_url=privacy_url,
        customer_feedback_mails=customer_feedback_mails,
    )

    async def body() -> Reply:
        return await send(cmd, Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body), as_json)


@tenant_app.command("show")
def tenant_show(slug: str) -> None:
    """A tenant's whole policy."""

    async def body() -> Reply:
        return await send(c.ShowTenant(), Actor.owner((await tenant_by_slug(slug)).id))

    reply = run(body)
    table = Table("setting", "value", title=reply.message, title_justify="left")
    for key, value in reply.to_json()["data"]["policy"].items():
        table.add_row(key, _cell(value))
    out.print(table)


@tenant_app.command("list")
def tenant_list(as_json: JsonOpt = False) -> None:
    """List tenants."""
    reply = run(lambda: send(c.ListTenants(), Actor.system()))
    show(
        reply,
        as_json,
        "tenants",
        (
            "slug",
            "name",
            "owner_email",
            "timezone",
            "locale",
            "claim_deadline_hours",
            "cap_open_claims",
        ),
    )


@api_key_app.command("create")
def api_key_create(
    slug: str,
    name: Annotated[str, typer.Option(help="What the key is for (web form, CRM …).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Make an API key; it is printed once and only its hash is stored."""

    async def body() -> Reply:
        return await send(c.CreateApiKey(name), Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body), as_json)


@api_key_app.command("revoke")
def api_key_revoke(slug: str, key_id: int) -> None:
    """Revoke an API key at once (requests with it get 401)."""

    async def body() -> Reply:
        return await send(c.RevokeApiKey(key_id), Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body))


@api_key_app.command("list")
def api_key_list(slug: str, as_json: JsonOpt = False) -> None:
    """A tenant's API keys (never the keys themselves)."""

    async def body() -> Reply:
        return await send(c.ListApiKeys(), Actor.owner((await tenant_by_slug(slug)).id))

    show(
        run(body),
        as_json,
        "keys",
        ("id", "name", "prefix", "created_at", "last_used_at", "revoked_at"),
    )


@partner_app.command("add")
def partner_add(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    products: Annotated[str, typer.Option(help="Comma-separated products, or *.")],
    regions: Annotated[str, typer.Option(help="Comma-separated regions (CH covers CH-ZH), or *.")],
    locale: str | None = None,
    tenant: TenantOpt = None,
) -> None:
    """Add a partner with its entitlements."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        cmd = c.AddPartner(
            slug, name, tuple(products.split(",")), tuple(regions.split(",")), locale
        )
        return await send(cmd, Actor.owner(t.id))

    say(run(body))


@partner_app.command("list")
def partner_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """List partners with their entitlements, open claims and pool size."""

    async def body() -> Reply:
        return await send(c.ListPartners(), Actor.owner((await tenant_by_slug(tenant)).id))

    show(
        run(body),
        as_json,
        "partners",
        ("slug", "name", "products", "regions", "active_claims", "pool"),
    )


@user_app.command("add")
def user_add(
    email: str,
    name: str = "",
    partner: Annotated[
        str | None, typer.Option(help="Partner short name; omit for the owner's staff.")
    ] = None,
    locale: str | None = None,
    tenant: TenantOpt = None,
) -> None:
    """Add a person acting for a partner (or for the owner)."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.AddUser(email, name, partner, locale), Actor.owner(t.id))

    say(run(body))


@partner_app.command("link-slack")
def partner_link_slack(
    partner: str,
    channel_id: Annotated[str, typer.Argument(help="Slack channel id, like C0123ABCD.")],
    team: Annotated[str | None, typer.Option(help="Slack team (workspace) id.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Post this partner's lead digests in a Slack channel."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.LinkSlackChannel(partner, channel_id, team), Actor.owner(t.id))

    say(run(body))


@partner_app.command("unlink-slack")
def partner_unlink_slack(channel_id: str, tenant: TenantOpt = None) -> None:
    """Stop posting digests in a Slack channel."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.UnlinkSlackChannel(channel_id), Actor.owner(t.id))

    say(run(body))


@user_app.command("link-slack")
def user_link_slack(
    email: str,
    slack_user: Annotated[str, typer.Option(help="Slack user id, like U0123ABCD.")],
    slack_team: Annotated[str, typer.Option(help="The user's own Slack team id, like T0123ABCD.")],
    tenant: TenantOpt = None,
) -> None:
    """Link a user to a Slack account (needed for people from other organisations)."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.LinkSlackUser(email, slack_team, slack_user), Actor.owner(t.id))

    say(run(body))


# --- leads --------------------------------------------------------------------------------


@lead_app.command("add")
def lead_add(
    product: Annotated[str, typer.Option()],
    region: Annotated[str, typer.Option(help="Region code like CH-ZH.")],
    need: str = "",
    industry: str = "",
    size: str = "",
    company: str = "",
    contact: str = "",
    email: str = "",
    phone: str = "",
    address: str = "",
    notes: str = "",
    legal_basis: Annotated[
        str, typer.Option(help="consent or legitimate_interest: why the customer may be contacted.")
    ] = "",
    consent_source: Annotated[str, typer.Option(help="Where consent was given (web form …).")] = "",
    consent_at: Annotated[
        str | None, typer.Option(help="When consent was given (ISO date).")
    ] = None,
    legal_note: Annotated[str, typer.Option(help="Which legitimate interest.")] = "",
    ref: str | None = None,
    allow_duplicate: bool = False,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add one lead to the pool."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        cmd = c.AddLead(
            product,
            region,
            industry,
            size,
            need,
            company,
            contact,
            email,
            phone,
            address,
            notes,
            legal_basis=legal_basis,
            consent_source=consent_source,
            consent_at=consent_at,
            legal_note=legal_note,
            ref=ref,
            allow_duplicate=allow_duplicate,
        )
        return await send(cmd, Actor.owner(t.id))

    say(run(body), as_json)


@lead_app.command("import")
def lead_import(
    path: Path,
    allow_duplicates: bool = False,
    tenant: TenantOpt = None,
) -> None:
    """Import a CSV file (header: product,region,… ); all rows or none."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]Error:[/red] cannot read {path}: {exc}", highlight=False)
        raise typer.Exit(1) from None

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("Importing", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total or None)

            return await send(
                c.ImportLeads(text, source="csv", allow_duplicates=allow_duplicates, progress=tick),
                Actor.owner(t.id),
            )

    say(run(body))


@lead_app.command("list")
def lead_list(
    status: str | None = None,
    limit: int = 200,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List leads with status and holder."""

    async def body() -> Reply:
        return await send(
            c.ListLeads(status, limit), Actor.owner((await tenant_by_slug(tenant)).id)
        )

    show(
        run(body),
        as_json,
        "leads",
        ("ref", "status", "product", "region", "industry", "size", "need", "holder"),
    )


@lead_app.command("show")
def lead_show(ref: str, tenant: TenantOpt = None) -> None:
    """Everything about one lead, with its claims and feedback (owner view)."""

    async def body() -> Reply:
        actor = Actor.owner((await tenant_by_slug(tenant)).id)
        bus = Bus()
        reply = await send(c.ShowLead(ref), actor, bus)
        say(reply, True)
        await bus.disclosed(reply, actor, "lead show")
        return reply

    run(body)


@lead_app.command("withdraw")
def lead_withdraw(ref: str, reason: str = "", tenant: TenantOpt = None) -> None:
    """Take a lead out of the pool (its holder, if any, is told to stop)."""

    async def body() -> Reply:
        return await send(
            c.WithdrawLead(ref, reason), Actor.owner((await tenant_by_slug(tenant)).id)
        )

    say(run(body))


@lead_app.command("consent")
def lead_consent(
    ref: str,
    source: Annotated[str, typer.Option(help="Where consent was given (web form …).")] = "",
    at: Annotated[str | None, typer.Option(help="When consent was given (ISO date).")] = None,
    legitimate_interest: Annotated[
        str | None, typer.Option(help="Record legitimate interest (this note) instead of consent.")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Record why the customer may be contacted (a lead held for it then enters the pool)."""

    async def body() -> Reply:
        actor = Actor.owner((await tenant_by_slug(tenant)).id)
        if legitimate_interest is not None:
            cmd = c.RecordConsent(ref, "legitimate_interest", legal_note=legitimate_interest)
        else:
            cmd = c.RecordConsent(ref, "consent", source, at)
        return await send(cmd, actor)

    say(run(body))


@lead_app.command("approve")
def lead_approve(ref: str, tenant: TenantOpt = None) -> None:
    """Put a held lead (a possible duplicate) into the pool."""

    async def body() -> Reply:
        return await send(c.ApproveLead(ref), Actor.owner((await tenant_by_slug(tenant)).id))

    say(run(body))


@lead_app.command("claim")
def lead_claim(ref: str, as_user: AsOpt, tenant: TenantOpt = None) -> None:
    """Claim a lead on behalf of a partner user."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.ClaimLead(ref), await partner_actor(t, as_user))

    say(run(body))


@lead_app.command("feedback")
def lead_feedback(
    ref: str,
    outcome: str,
    as_user: AsOpt,
    amount: str | None = None,
    currency: str | None = None,
    reason: str = "",
    note: str = "",
    tenant: TenantOpt = None,
) -> None:
    """Record feedback on behalf of a partner user (won, lost, contacted, no_contact, …)."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        cmd = c.GiveFeedback(ref, outcome, amount, currency, reason, note)
        return await send(cmd, await partner_actor(t, as_user))

    say(run(body))


@lead_app.command("release")
def lead_release(ref: str, as_user: AsOpt, reason: str = "", tenant: TenantOpt = None) -> None:
    """Give a claimed lead back to the pool on behalf of its partner user."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.ReleaseClaim(ref, reason), await partner_actor(t, as_user))

    say(run(body))


@lead_app.command("extend")
def lead_extend(
    ref: str,
    days: int,
    as_user: AsOpt,
    reason: str = "",
    tenant: TenantOpt = None,
) -> None:
    """Ask for more days on a claimed lead, on behalf of its partner user."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.RequestExtension(ref, days, reason), await partner_actor(t, as_user))

    say(run(body))


def _decide(ref: str, approve: bool, note: str, tenant: str | None) -> None:
    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        return await send(c.DecideExtension(ref, approve, note), Actor.owner(t.id))

    say(run(body))


@extension_app.command("approve")
def extension_approve(ref: str, note: str = "", tenant: TenantOpt = None) -> None:
    """Grant the extension a partner asked for on a lead."""
    _decide(ref, True, note, tenant)


@extension_app.command("decline")
def extension_decline(ref: str, note: str = "", tenant: TenantOpt = None) -> None:
    """Refuse the extension a partner asked for on a lead (the deadline stays)."""
    _decide(ref, False, note, tenant)


@lead_app.command("expire")
def lead_expire(tenant: TenantOpt = None) -> None:
    """Lapse every overdue claim now (the scheduler does this every minute)."""

    async def body() -> Reply:
        return await send(c.ExpireOverdue(), Actor.owner((await tenant_by_slug(tenant)).id))

    say(run(body))


@app.command("pool")
def pool(
    as_user: Annotated[
        str | None, typer.Option("--as", help="See the pool as this partner user.")
    ] = None,
    limit: int | None = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The pool as teasers (as a partner user sees it with --as)."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        actor = await partner_actor(t, as_user) if as_user else Actor.owner(t.id)
        return await send(c.ListPool(limit), actor)

    show(run(body), as_json, "leads", ("ref", "product", "region", "industry", "size", "need"))


@app.command("claims")
def claims(
    as_user: Annotated[str, typer.Option("--as", help="The partner user whose claims to show.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open claims of a partner user's partner, with deadlines."""

    async def body() -> Reply:
        t = await tenant_by_slug(tenant)
        actor, bus = await partner_actor(t, as_user), Bus()
        reply = await send(c.ListMine(), actor, bus)
        show(
            reply,
            as_json,
            "claims",
            ("ref", "product", "region", "company", "contact_name", "due_at"),
        )
        await bus.disclosed(reply, actor, "claims")
        return reply

    run(body)


# --- outbox -------------------------------------------------------------------------------


@outbox_app.command("list")
def outbox_list(
    status: str | None = None,
    limit: int = 50,
    as_json: JsonOpt = False,
) -> None:
    """Messages in the outbox, newest first."""
    from lyra_bot.outbox import outbox_rows

    async def body() -> Reply:
        try:
            rows = await outbox_rows(status, limit)
        except DomainError as exc:
            fail(exc.message)
        return Reply(True, "outbox", f"{len(rows)} message(s).", {"messages": rows})

    show(
        run(body),
        as_json,
        "messages",
        ("id", "status", "channel", "kind", "recipient", "attempts", "created_at", "last_error"),
    )


@outbox_app.command("deliver")
def outbox_deliver() -> None:
    """Deliver every due message now."""
    from lyra_bot.app import bootstrap

    async def body() -> int:
        services = bootstrap()
        try:
            return await services.worker.run_once()
        finally:
            await services.worker.close()

    out.print(f"Delivered {run(body)} message(s).")


# --- privacy ------------------------------------------------------------------------------


@privacy_app.command("log")
def privacy_log(
    tenant_slug: Annotated[str, typer.Argument(metavar="TENANT")],
    lead: Annotated[str | None, typer.Option("--lead", help="Only this lead.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only leads of this customer email.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who was shown which customer data, when and how."""

    async def body() -> Reply:
        actor = Actor.owner((await tenant_by_slug(tenant_slug)).id)
        return await send(c.ListDisclosures(lead, customer), actor)

    show(
        run(body),
        as_json,
        "disclosures",
        ("at", "lead", "recipient", "fields", "channel", "purpose"),
    )


@privacy_app.command("export")
def privacy_export(
    tenant_slug: Annotated[str, typer.Argument(metavar="TENANT")],
    customer: Annotated[str, typer.Option(help="The customer's email.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write JSON here (default: stdout).")
    ] = None,
) -> None:
    """Everything Lyra holds about one customer, as JSON (a data subject access request)."""

    async def body() -> Reply:
        actor = Actor.owner((await tenant_by_slug(tenant_slug)).id)
        return await send(c.ExportCustomerData(customer), actor)

    reply = run(body)
    text = json.dumps(reply.data, ensure_ascii=False, indent=2)
    if out_file is None:
        print(text)
    else:
        out_file.write_text(text + "\n", encoding="utf-8")
        err.print(reply.message, highlight=False)


@privacy_app.command("erase")
def privacy_erase(
    tenant_slug: Annotated[str, typer.Argument(metavar="TENANT")],
    customer: Annotated[str, typer.Option(help="The customer's email.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one customer's data (outcomes and amounts stay for the reports)."""
    if not yes and not typer.confirm(f"Erase every trace of {customer}? This cannot be undone."):
        raise typer.Exit(1)

    async def body() -> Reply:
        actor = Actor.owner((await tenant_by_slug(tenant_slug)).id)
        return await send(c.EraseCustomerData(customer), actor)

    say(run(body))


@privacy_app.command("purge")
def privacy_purge() -> None:
    """Erase customer data past every tenant's retention now (the scheduler does this daily)."""

    async def body() -> Reply:
        bus, erased = Bus(), 0
        while True:
            reply = await send(c.PurgeExpiredPersonalData(), Actor.system(), bus)
            erased += reply.data["erased"]
            if not reply.data["more"]:
                return Reply(True, "purged", f"Erased customer data of {erased} lead(s).")

    say(run(body))


# --- jobs ---------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(as_json: JsonOpt = False) -> None:
    """Each job with its interval, last run and result, and next run."""
    from lyra_bot.app import bootstrap

    async def body() -> Reply:
        rows = await bootstrap().scheduler.status()
        return Reply(True, "jobs", f"{len(rows)} job(s).", {"jobs": rows})

    show(
        run(body),
        as_json,
        "jobs",
        ("name", "every", "last_run", "last_ok", "last_result", "next_run"),
    )


@jobs_app.command("run")
def jobs_run(name: str) -> None:
    """Run one job now (messages it queues are delivered by the running service, or by
    'lyra-bot outbox deliver')."""
    from lyra_bot.app import bootstrap
    from lyra_bot.scheduler import UnknownJob

    async def body() -> Any:
        try:
            return await bootstrap().scheduler.run_job(name)
        except UnknownJob as exc:
            fail(str(exc))

    result = run(body)
    if not result.ok:
        fail(f"{name}: {result.message}")
    out.print(f"{name}: {result.message}", highlight=False)


# --- email --------------------------------------------------------------------------------


@digest_app.command("send")
def digest_send(
    tenant: TenantOpt = None,
    max_leads: Annotated[
        int | None,
        typer.Option(help="Most leads per Slack channel (default LYRA_SLACK_DIGEST_MAX_LEADS)."),
    ] = None,
) -> None:
    """Queue digests now: today's mail for every partner user (once per user and day), and
    for every linked Slack channel the teasers it has not been shown yet."""

    async def body() -> list[Reply]:
        tenant_id = (await tenant_by_slug(tenant)).id if tenant else None
        mails = await send(c.SendDigests(tenant_id), Actor.system())
        actor = Actor.owner(tenant_id) if tenant_id is not None else Actor.system()
        return [mails, await send(c.PostSlackDigests(max_leads), actor)]

    for reply in run(body):
        say(reply)


@mail_app.command("poll")
def mail_poll(
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")] = False,
) -> None:
    """Read replies from the IMAP inbox (LYRA_IMAP_HOST) and act on them."""
    from lyra_bot.app import bootstrap

    settings = get_settings()
    if not settings.imap_host:
        err.print("[red]Error:[/red] set LYRA_IMAP_HOST to read replies.", highlight=False)
        raise typer.Exit(1)
    configure_logging(settings)

    async def body() -> str:
        services = bootstrap(settings)
        poller = services.imap_poller()
        assert poller is not None
        try:
            if once:
                result = await poller.poll_once()
                return (
                    f"Processed {result.processed} mail(s), {result.failed} refused or failed, "
                    f"{result.deferred} left for the next poll."
                )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await poller.run_forever(stop)
            return "Stopped."
        except OSError as exc:
            fail(f"cannot reach the IMAP server: {exc}", 2)
        finally:
            await poller.close()
            await services.worker.close()

    out.print(run(body), highlight=False)


# --- reports ------------------------------------------------------------------------------


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class ReportBy(StrEnum):
    partner = "partner"
    product = "product"
    region = "region"


@app.command("report")
def report(
    tenant: Annotated[str, typer.Argument(help="Tenant short name.")],
    week: Annotated[
        str | None, typer.Option(help="ISO week like 2026-W48, or this / last (default: this).")
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", help="First local day of a range, like 2026-11-01.")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Last local day of the range (default: today).")
    ] = None,
    output_format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
    by: Annotated[ReportBy, typer.Option(help="Rows per partner, product or region.")] = (
        ReportBy.partner
    ),
    chart: Annotated[Path | None, typer.Option(help="Also write the chart as a PNG.")] = None,
    bom: Annotated[bool, typer.Option(help="Start CSV with a BOM (for Excel).")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """The owner report: headline figures with the change from the period before, and one
    row per partner, product or region (json: the whole report, docs/reports.md)."""
    from lyra_bot.clock import SystemClock
    from lyra_bot.reports import exports
    from lyra_bot.reports.chart import chart_png
    from lyra_bot.reports.periods import choose_period
    from lyra_bot.reports.report import build_report
    from lyra_bot.reports.table import print_report

    async def body() -> tuple[Any, bytes | None]:
        t = await tenant_by_slug(tenant)
        now = SystemClock().now()
        try:
            period = choose_period(ZoneInfo(t.timezone), now, week, first, last)
        except DomainError as exc:
            fail(exc.message)
        result = await build_report(t, period, now)
        return result, (await chart_png(result) if chart else None)

    result, png = run(body)
    if chart is not None and png is not None:
        _write(chart, png)
    if output_format == ReportFormat.table:
        console = Console(file=output.open("w", encoding="utf-8"), width=200) if output else out
        print_report(console, result, by.value)
        return
    if output_format == ReportFormat.json:
        text = json.dumps(exports.to_json(result), ensure_ascii=False, indent=2) + "\n"
    else:
        text = exports.to_csv(exports.rows(result, by.value), bom=bom)
    if output is not None:
        _write(output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        err.print(f"[red]Error:[/red] cannot write {path}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from None


# --- service ------------------------------------------------------------------------------


@app.command("run")
def run_service() -> None:
    """Run Lyra: the HTTP endpoints, the outbox worker and the scheduler, until SIGTERM."""
    from lyra_bot.app import serve

    configure_logging(get_settings())
    try:
        asyncio.run(serve())
    except (OSError, ConnectionError) as exc:
        err.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command("demo")
def demo(
    database: Annotated[
        Path, typer.Option(help="SQLite file to create (replaced if present).")
    ] = Path("lyra-demo.db"),
    outbox_dir: Annotated[Path, typer.Option(help="Where the demo's emails are written.")] = Path(
        "demo-outbox"
    ),
    locale: Annotated[
        str, typer.Option(help="The owner's and partners' language: de, fr, it or en.")
    ] = "en",
) -> None:
    """Walk through the whole story on a fresh SQLite file, printing each step."""
    from lyra_bot.demo import run_demo
    from lyra_bot.domain import LANGUAGES, language

    lang = language(locale)
    if lang is None or lang != locale.strip().lower():
        err.print(f"[red]Error:[/red] --locale must be one of {', '.join(LANGUAGES)}.")
        raise typer.Exit(2)
    try:
        run_demo(database, outbox_dir, out, lang)
    except CliError as exc:
        err.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.code) from None


@app.command("gallery")
def gallery(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (one subfolder a language).")],
    png: Annotated[
        bool, typer.Option("--png", help="Also screenshot each HTML mail with headless Chromium.")
    ] = False,
) -> None:
    """Every mail kind in every language from one seeded story, to review all wording."""
    from lyra_bot.gallery import run_gallery

    run_gallery(out_dir, png, out)


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="lyra-bot")
