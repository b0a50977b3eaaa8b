"""``lyra-bot``: the admin command line. Every state change goes through the bus.

Errors a user can cause print one line on stderr and exit with status 1; an unreachable
or outdated database exits with status 2.
"""

import contextlib
import json
import os
import sys
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from lyra_bot.console import LazyConsole
from lyra_bot.lazy import lazy

if TYPE_CHECKING:
    import asyncio

    from lyra_bot import commands as c
    from lyra_bot.bus import Bus, Reply
    from lyra_bot.commands import Actor
    from lyra_bot.domain import DomainError
    from lyra_bot.models import Tenant
else:
    # Loaded by the first command that needs them: `lyra-bot --help` imports no part of the
    # store and not even asyncio.
    asyncio = lazy("asyncio")
    c = lazy("lyra_bot.commands")

T = TypeVar("T")


def group(help: str, **options: Any) -> typer.Typer:
    """A command group. Help is click's plain text: rich-formatted help imports markdown-it
    and more, and took longer than the whole of ``lyra-bot --help`` may (bench/cli.py)."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=help, **options)


app = group("Lyra: the self-service lead pool.", add_completion=False)
db_app = group("The database.")
tenant_app = group("Owners (tenants).")
partner_app = group("Partners of a tenant.")
user_app = group("People acting for partners or the owner.")
lead_app = group("Leads.")
outbox_app = group("Messages waiting to be delivered.")
digest_app = group("Digests of new leads (mail and Slack).")
privacy_app = group("Customer data: disclosures, export, erasure.")
jobs_app = group("The scheduler's jobs (sweeps).")
extension_app = group("Decide partners' extension requests.")
mail_app = group("Replies by email (the IMAP inbox).")
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
api_key_app = group("Keys of the intake API (/api/v1).")
tenant_app.add_typer(api_key_app, name="api-key")

out = LazyConsole()
err = LazyConsole(stderr=True)

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", "-t", envvar="LYRA_TENANT", help="Tenant short name (default: the only one)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LimitOpt = Annotated[int, typer.Option(min=1, help="Show at most this many.")]
OffsetOpt = Annotated[int, typer.Option(min=0, help="Skip this many first (with --limit).")]
AsOpt = Annotated[str, typer.Option("--as", help="Email of the partner user acting.")]


class CliError(Exception):
    """A one-line message for the user; exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


def fail_now(message: str, code: int = 1) -> NoReturn:
    """``fail`` outside ``run``: print the one line and exit."""
    err.print(f"[red]Error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run(body: Callable[[], Awaitable[T]], *, migrate: bool = False) -> T:
    """Open the store, run ``body``, close the store; turn failures into one-line errors."""
    from tortoise.connection import get_connection

    from lyra_bot.config import get_settings
    from lyra_bot.db import close_db, init_db, pending_migrations

    async def main() -> T:
        settings = get_settings()
        try:
            await init_db(settings, migrate=migrate)
            await get_connection("default").execute_query("SELECT 1")
            if not migrate and (pending := await pending_migrations()):
                fail(say_cli("migrations_pending", {"count": len(pending)}), 2)
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


async def tenant_by_slug(slug: str | None) -> "Tenant":
    tenant = await _tenant_by_slug(slug)
    _ZONE.append(zoneinfo.ZoneInfo(tenant.timezone))
    return tenant


async def _tenant_by_slug(slug: str | None) -> "Tenant":
    from lyra_bot.models import Tenant

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


async def partner_actor(tenant: "Tenant", email: str) -> "Actor":
    from lyra_bot.models import User

    user = await User.get_or_none(tenant_id=tenant.id, email=email.strip().lower())
    if user is None or user.partner_id is None:
        fail(f"{email} is not a partner user of '{tenant.slug}'.")
    return c.Actor.partner_user(tenant.id, user.partner_id, user.id, "cli")


def reader_locale() -> str:
    """The CLI speaks the language of its user's environment (``LYRA_LOCALE``, else the
    POSIX locale variables), English when none of Lyra's four is set."""
    from lyra_bot.i18n import pick_locale

    names = ("LYRA_LOCALE", "LC_ALL", "LC_MESSAGES", "LANG")
    return pick_locale(*(os.environ.get(name) for name in names))


def text_of(reply: "Reply") -> str:
    """What a reply says, in the reader's language (the CLI's renderer)."""
    from lyra_bot.phrases import say

    return say(reply.code, reply.data, reader_locale())


def error_text(exc: "DomainError") -> str:
    return say_cli(exc.code, exc.data)


def say_cli(code: str, data: dict[str, Any]) -> str:
    """A phrase of the CLI's own (not a reply) in the reader's language."""
    from lyra_bot.phrases import say

    return say(code, data, reader_locale())


async def send(cmd: "c.Command", actor: "Actor", bus: "Bus | None" = None) -> "Reply":
    from lyra_bot.wiring import build_bus

    if bus is None:
        bus = build_bus()
        bus.counted = False  # nobody scrapes a CLI process's metrics: skip prometheus_client
    reply = await bus.dispatch(cmd, actor)
    if not reply.ok:
        fail(text_of(reply))
    return reply


def print_json(data: Any) -> None:
    """Plain indented JSON on stdout: for scripts and pipes (rich's highlighting of a long
    listing took longer than the command itself)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def show(
    reply: "Reply", as_json: bool, key: str | None = None, columns: Sequence[str] = ()
) -> None:
    """Print a listing as a rich table (times in the tenant's zone, a caption when it shows
    only part of the rows), or its data as JSON."""
    if as_json:
        print_json(reply.to_json()["data"])
        return
    if key is None:
        out.print(text_of(reply), highlight=False)
        return
    from lyra_bot import cli_render

    data = reply.to_json()["data"]
    rows = data.get(key, [])
    caption = None
    if "total" in data:
        caption = cli_render.page_caption(len(rows), data["total"], data.get("offset", 0), key)
    out.print(cli_render.table(text_of(reply), rows, columns, zone(), caption))


def show_record(reply: "Reply", as_json: bool, key: str) -> None:
    """One record (``… show``) as a panel, or its data as JSON."""
    if as_json:
        print_json(reply.to_json()["data"])
        return
    from lyra_bot import cli_render

    out.print(cli_render.record(text_of(reply), reply.to_json()["data"][key], zone()))


_ZONE: list[Any] = []  # the time zone of the tenant this command works on (tables show it)


def zone() -> Any:
    """The tenant's ``ZoneInfo`` once ``tenant_by_slug`` found it, else None (UTC)."""
    return _ZONE[-1] if _ZONE else None


def say(reply: "Reply", as_json: bool = False) -> None:
    if as_json:
        print_json(reply.to_json())
    else:
        out.print(text_of(reply), highlight=False)


# --- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from lyra_bot.db import upgrade

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
    say(run(lambda: send(cmd, c.Actor.system())))


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

    async def body() -> "Reply":
        return await send(cmd, c.Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body), as_json)


@tenant_app.command("show")
def tenant_show(slug: str, as_json: JsonOpt = False) -> None:
    """A tenant's whole policy."""

    async def body() -> "Reply":
        return await send(c.ShowTenant(), c.Actor.owner((await tenant_by_slug(slug)).id))

    show_record(run(body), as_json, "policy")


@tenant_app.command("list")
def tenant_list(as_json: JsonOpt = False) -> None:
    """List tenants."""
    reply = run(lambda: send(c.ListTenants(), c.Actor.system()))
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

    async def body() -> "Reply":
        return await send(c.CreateApiKey(name), c.Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body), as_json)


@api_key_app.command("revoke")
def api_key_revoke(slug: str, key_id: int) -> None:
    """Revoke an API key at once (requests with it get 401)."""

    async def body() -> "Reply":
        return await send(c.RevokeApiKey(key_id), c.Actor.owner((await tenant_by_slug(slug)).id))

    say(run(body))


@api_key_app.command("list")
def api_key_list(slug: str, as_json: JsonOpt = False) -> None:
    """A tenant's API keys (never the keys themselves)."""

    async def body() -> "Reply":
        return await send(c.ListApiKeys(), c.Actor.owner((await tenant_by_slug(slug)).id))

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

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        cmd = c.AddPartner(
            slug, name, tuple(products.split(",")), tuple(regions.split(",")), locale
        )
        return await send(cmd, c.Actor.owner(t.id))

    say(run(body))


@partner_app.command("list")
def partner_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """List partners with their entitlements, open claims and pool size."""

    async def body() -> "Reply":
        return await send(c.ListPartners(), c.Actor.owner((await tenant_by_slug(tenant)).id))

    show(
        run(body),
        as_json,
        "partners",
        ("slug", "name", "products", "regions", "active_claims", "pool"),
    )


@partner_app.command("show")
def partner_show(slug: str, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """One partner: entitlements, users, claims by state, pool size."""

    async def body() -> "Reply":
        return await send(c.ShowPartner(slug), c.Actor.owner((await tenant_by_slug(tenant)).id))

    reply = run(body)
    show_record(reply, as_json, "partner")


@user_app.command("list")
def user_list(
    partner: Annotated[str | None, typer.Option(help="Only this partner's users.")] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """People acting for partners or for the owner."""

    async def body() -> "Reply":
        return await send(c.ListUsers(partner), c.Actor.owner((await tenant_by_slug(tenant)).id))

    show(
        run(body),
        as_json,
        "users",
        ("email", "name", "partner", "locale", "active", "digest", "slack", "created_at"),
    )


@user_app.command("show")
def user_show(email: str, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """One user: partner, language, Slack link, digests, open claims."""

    async def body() -> "Reply":
        return await send(c.ShowUser(email), c.Actor.owner((await tenant_by_slug(tenant)).id))

    show_record(run(body), as_json, "user")


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

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.AddUser(email, name, partner, locale), c.Actor.owner(t.id))

    say(run(body))


@partner_app.command("link-slack")
def partner_link_slack(
    partner: str,
    channel_id: Annotated[str, typer.Argument(help="Slack channel id, like C0123ABCD.")],
    team: Annotated[str | None, typer.Option(help="Slack team (workspace) id.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Post this partner's lead digests in a Slack channel."""

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.LinkSlackChannel(partner, channel_id, team), c.Actor.owner(t.id))

    say(run(body))


@partner_app.command("unlink-slack")
def partner_unlink_slack(channel_id: str, tenant: TenantOpt = None) -> None:
    """Stop posting digests in a Slack channel."""

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.UnlinkSlackChannel(channel_id), c.Actor.owner(t.id))

    say(run(body))


@user_app.command("link-slack")
def user_link_slack(
    email: str,
    slack_user: Annotated[str, typer.Option(help="Slack user id, like U0123ABCD.")],
    slack_team: Annotated[str, typer.Option(help="The user's own Slack team id, like T0123ABCD.")],
    tenant: TenantOpt = None,
) -> None:
    """Link a user to a Slack account (needed for people from other organisations)."""

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.LinkSlackUser(email, slack_team, slack_user), c.Actor.owner(t.id))

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

    async def body() -> "Reply":
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
        return await send(cmd, c.Actor.owner(t.id))

    say(run(body), as_json)


@lead_app.command("import")
def lead_import(
    path: Path,
    allow_duplicates: bool = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and say what would happen.")
    ] = False,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a CSV (any delimiter; UTF-8 or Windows-1252) or .xlsx file; all rows or none.

    Columns: product, region (required), industry, size, need, company, contact_name, email,
    phone, address, notes, ref, legal_basis, consent_source, consent_at, legal_note; also
    named like "Contact Name", "E-Mail", "Firma", "Société", "Telefon". Every lead needs an
    email or a phone number."""
    from lyra_bot import lead_files
    from lyra_bot.domain import DomainError

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail_now(f"cannot read {path}: {exc.strerror or exc}")
    try:
        table = lead_files.read_file(data, path.name)
        found = lead_files.records(table)
    except DomainError as exc:
        fail_now(error_text(exc))
    found_in_xlsx = table.encoding == "xlsx"

    async def body() -> "Reply":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        t = await tenant_by_slug(tenant)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
        )
        with Progress(*columns, console=err.real, transient=True) as progress:
            task = progress.add_task("Checking" if dry_run else "Importing", total=len(found))

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total or len(found))

            cmd = c.ImportLeads(
                source="xlsx" if found_in_xlsx else "csv",
                allow_duplicates=allow_duplicates,
                records=tuple(found),
                dry_run=dry_run,
                progress=tick,
            )
            return await send(cmd, c.Actor.owner(t.id))

    say(run(body), as_json)


@lead_app.command("list")
def lead_list(
    status: str | None = None,
    limit: LimitOpt = 200,
    offset: OffsetOpt = 0,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List leads with status and holder, newest first (says when there are more)."""

    async def body() -> "Reply":
        return await send(
            c.ListLeads(status, limit, offset), c.Actor.owner((await tenant_by_slug(tenant)).id)
        )

    show(
        run(body),
        as_json,
        "leads",
        ("ref", "status", "product", "region", "industry", "size", "need", "holder"),
    )


@lead_app.command("show")
def lead_show(ref: str, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Everything about one lead, with its claims, feedback and history (owner view)."""
    from lyra_bot.bus import Bus

    async def body() -> "Reply":
        actor = c.Actor.owner((await tenant_by_slug(tenant)).id)
        bus = Bus()
        reply = await send(c.ShowLead(ref), actor, bus)
        if as_json:
            print_json(reply.to_json()["data"])
        else:
            from lyra_bot.cli_render import lead_panel

            out.print(lead_panel(reply.to_json()["data"], zone()))
        await bus.disclosed(reply, actor, "lead show")
        return reply

    run(body)


@lead_app.command("withdraw")
def lead_withdraw(ref: str, reason: str = "", tenant: TenantOpt = None) -> None:
    """Take a lead out of the pool (its holder, if any, is told to stop)."""

    async def body() -> "Reply":
        return await send(
            c.WithdrawLead(ref, reason), c.Actor.owner((await tenant_by_slug(tenant)).id)
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

    async def body() -> "Reply":
        actor = c.Actor.owner((await tenant_by_slug(tenant)).id)
        if legitimate_interest is not None:
            cmd = c.RecordConsent(ref, "legitimate_interest", legal_note=legitimate_interest)
        else:
            cmd = c.RecordConsent(ref, "consent", source, at)
        return await send(cmd, actor)

    say(run(body))


@lead_app.command("approve")
def lead_approve(ref: str, tenant: TenantOpt = None) -> None:
    """Put a held lead (a possible duplicate) into the pool."""

    async def body() -> "Reply":
        return await send(c.ApproveLead(ref), c.Actor.owner((await tenant_by_slug(tenant)).id))

    say(run(body))


@lead_app.command("claim")
def lead_claim(ref: str, as_user: AsOpt, tenant: TenantOpt = None) -> None:
    """Claim a lead on behalf of a partner user."""

    async def body() -> "Reply":
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

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        cmd = c.GiveFeedback(ref, outcome, amount, currency, reason, note)
        return await send(cmd, await partner_actor(t, as_user))

    say(run(body))


@lead_app.command("release")
def lead_release(ref: str, as_user: AsOpt, reason: str = "", tenant: TenantOpt = None) -> None:
    """Give a claimed lead back to the pool on behalf of its partner user."""

    async def body() -> "Reply":
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

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.RequestExtension(ref, days, reason), await partner_actor(t, as_user))

    say(run(body))


def _decide(ref: str, approve: bool, note: str, tenant: str | None) -> None:
    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        return await send(c.DecideExtension(ref, approve, note), c.Actor.owner(t.id))

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

    async def body() -> "Reply":
        return await send(c.ExpireOverdue(), c.Actor.owner((await tenant_by_slug(tenant)).id))

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

    async def body() -> "Reply":
        t = await tenant_by_slug(tenant)
        actor = await partner_actor(t, as_user) if as_user else c.Actor.owner(t.id)
        return await send(c.ListPool(limit), actor)

    show(run(body), as_json, "leads", ("ref", "product", "region", "industry", "size", "need"))


@app.command("claims")
def claims(
    as_user: Annotated[str, typer.Option("--as", help="The partner user whose claims to show.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open claims of a partner user's partner, with deadlines."""
    from lyra_bot.bus import Bus

    async def body() -> "Reply":
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
    status: Annotated[str | None, typer.Option(help="pending, sent or dead.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only this tenant's (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Messages in the outbox, newest first."""

    async def body() -> "Reply":
        return await send(c.ListOutbox(status, limit, offset), await outbox_actor(tenant))

    show(
        run(body),
        as_json,
        "messages",
        ("id", "status", "channel", "kind", "recipient", "attempts", "created_at", "last_error"),
    )


@outbox_app.command("show")
def outbox_show(
    message_id: Annotated[int, typer.Argument(metavar="ID")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Its tenant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """One message: status, attempts, last error, what it says (its payload)."""

    async def body() -> "Reply":
        return await send(c.ShowOutboxMessage(message_id), await outbox_actor(tenant))

    show_record(run(body), as_json, "message")


@outbox_app.command("retry")
def outbox_retry(
    message_ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="Dead messages to send again.")
    ] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead message.")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only its.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put dead letters back to pending: the running service (or 'outbox deliver') sends them."""
    if not message_ids and not all_dead:
        fail_now("Say which messages (IDs) or --all; see 'lyra-bot outbox list --status dead'.")

    async def body() -> "Reply":
        return await send(c.RetryOutbox(tuple(message_ids or ())), await outbox_actor(tenant))

    say(run(body), as_json)


async def outbox_actor(tenant: str | None) -> "Actor":
    """The tenant's owner with --tenant, else the system (every tenant's messages)."""
    if tenant:
        return c.Actor.owner((await tenant_by_slug(tenant)).id)
    await common_zone()
    return c.Actor.system()


async def common_zone() -> None:
    """Tables of every tenant's rows (outbox, jobs) show times in the tenants' zone when
    they all share one (else in UTC, labelled so)."""
    from lyra_bot.models import Tenant

    zones = await Tenant.all().distinct().limit(2).values_list("timezone", flat=True)
    if len(zones) == 1:
        _ZONE.append(zoneinfo.ZoneInfo(zones[0]))


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

    out.print(say_cli("outbox_delivered", {"count": run(body)}))


# --- privacy ------------------------------------------------------------------------------


@privacy_app.command("log")
def privacy_log(
    tenant_slug: Annotated[str, typer.Argument(metavar="TENANT")],
    lead: Annotated[str | None, typer.Option("--lead", help="Only this lead.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only leads of this customer email.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who was shown which customer data, when and how."""

    async def body() -> "Reply":
        actor = c.Actor.owner((await tenant_by_slug(tenant_slug)).id)
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

    async def body() -> "Reply":
        actor = c.Actor.owner((await tenant_by_slug(tenant_slug)).id)
        return await send(c.ExportCustomerData(customer), actor)

    reply = run(body)
    text = json.dumps(reply.data, ensure_ascii=False, indent=2)
    if out_file is None:
        print(text)
    else:
        out_file.write_text(text + "\n", encoding="utf-8")
        err.print(text_of(reply), highlight=False)


@privacy_app.command("erase")
def privacy_erase(
    tenant_slug: Annotated[str, typer.Argument(metavar="TENANT")],
    customer: Annotated[str, typer.Option(help="The customer's email.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one customer's data (outcomes and amounts stay for the reports)."""
    if not yes and not typer.confirm(f"Erase every trace of {customer}? This cannot be undone."):
        raise typer.Exit(1)

    async def body() -> "Reply":
        actor = c.Actor.owner((await tenant_by_slug(tenant_slug)).id)
        return await send(c.EraseCustomerData(customer), actor)

    say(run(body))


@privacy_app.command("purge")
def privacy_purge() -> None:
    """Erase customer data past every tenant's retention now (the scheduler does this daily)."""
    from lyra_bot.bus import Bus, Reply

    async def body() -> "Reply":
        bus, erased = Bus(), 0
        while True:
            reply = await send(c.PurgeExpiredPersonalData(), c.Actor.system(), bus)
            erased += reply.data["erased"]
            if not reply.data["more"]:
                return Reply(True, "purged", {"erased": erased})

    say(run(body))


# --- jobs ---------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(as_json: JsonOpt = False) -> None:
    """Each job with its interval, last run and result, and next run."""
    from lyra_bot.app import bootstrap
    from lyra_bot.bus import Reply

    async def body() -> "Reply":
        rows = await bootstrap().scheduler.status()
        await common_zone()
        return Reply(True, "jobs", {"jobs": rows, "count": len(rows)})

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

    async def body() -> "list[Reply]":
        tenant_id = (await tenant_by_slug(tenant)).id if tenant else None
        mails = await send(c.SendDigests(tenant_id), c.Actor.system())
        actor = c.Actor.owner(tenant_id) if tenant_id is not None else c.Actor.system()
        return [mails, await send(c.PostSlackDigests(max_leads), actor)]

    for reply in run(body):
        say(reply)


@mail_app.command("poll")
def mail_poll(
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")] = False,
) -> None:
    """Read replies from the IMAP inbox (LYRA_IMAP_HOST) and act on them."""
    import signal

    from lyra_bot.app import bootstrap
    from lyra_bot.config import get_settings
    from lyra_bot.logs import configure as configure_logging

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
                return say_cli(
                    "mail_polled",
                    {
                        "count": result.processed,
                        "failed": result.failed,
                        "deferred": result.deferred,
                    },
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
    from lyra_bot.clock import clock_for
    from lyra_bot.config import get_settings
    from lyra_bot.domain import DomainError
    from lyra_bot.reports import exports
    from lyra_bot.reports.chart import chart_png
    from lyra_bot.reports.periods import choose_period
    from lyra_bot.reports.report import build_report
    from lyra_bot.reports.table import print_report

    async def body() -> tuple[Any, bytes | None]:
        t = await tenant_by_slug(tenant)
        now = clock_for(get_settings().clock_start).now()
        try:
            period = choose_period(zoneinfo.ZoneInfo(t.timezone), now, week, first, last)
        except DomainError as exc:
            fail(error_text(exc))
        result = await build_report(t, period, now)
        return result, (await chart_png(result) if chart else None)

    result, png = run(body)
    if chart is not None and png is not None:
        _write(chart, png)
    if output_format == ReportFormat.table:
        from rich.console import Console

        console = (
            Console(file=output.open("w", encoding="utf-8"), width=200) if output else out.real
        )
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
    from lyra_bot.config import get_settings, secret_key_problem
    from lyra_bot.logs import configure as configure_logging

    settings = get_settings()
    if problem := secret_key_problem(settings):
        err.print(f"[red]Error:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    configure_logging(settings)
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
        run_demo(database, outbox_dir, out.real, lang)
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

    run_gallery(out_dir, png, out.real)


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="lyra-bot")
