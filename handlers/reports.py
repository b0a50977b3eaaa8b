"""Owner reports: on demand (``ShowReport``, for Slack and other chat channels) and the weekly
report each owner gets by mail, with a chart, and in its Slack channel (``SendOwnerReports``).

The numbers come from ``lyra_bot.reports`` (rows and audit events, never logs); the CLI
calls the same ``build_report``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lyra_bot.handlers.common import require, tenant_of

from lyra_bot.bus import Reply, UnitOfWork, handles, prepares
from lyra_bot.business_time import parse_clock
from lyra_bot.commands import Actor, Role, SendOwnerReports, ShowReport
from lyra_bot.models import AuditEvent, Tenant
from lyra_bot.outbox import Inline, content_id, mail, slack_say
from lyra_bot.reports import exports
from lyra_bot.reports.chart import chart_png
from lyra_bot.reports.periods import Period, choose_period, week_containing
from lyra_bot.reports.report import Report, build_report
from lyra_bot.reports.view import report_context

SENT_EVENT = "report.sent"


@handles(ShowReport)
async def show_report(cmd: ShowReport, actor: Actor, uow: UnitOfWork) -> Reply:
    """The owner's report formatted for reading (``view``, what Slack shows) with its headline
    figures as data. Kept small: a chat answer's reply is stored with its idempotency key, so
    the whole document (every partner) is for the CLI and its exports, not for this reply."""
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    period = choose_period(ZoneInfo(tenant.timezone), uow.now, cmd.week, cmd.first, cmd.last)
    report = await build_report(tenant, period, uow.now)
    view = report_context(report, uow.settings.report_max_partners)
    return Reply(
        True,
        "report",
        {
            "tenant": tenant.name,
            "period_label": view["period"],
            **{k: view["summary"][k] for k in ("claims", "won", "lapses", "open")},
            "period": exports.period_json(report.period),
            "headline": exports.headline(report),
            "view": view,
            "locale": tenant.locale,
        },
    )


def due_week(tenant: Tenant, now: datetime) -> tuple[Period, datetime] | None:
    """The week whose report is due by now and when it fell due: the last complete week
    before the latest report day and time that has passed (None: reports are off)."""
    if tenant.report_day is None:
        return None
    zone = ZoneInfo(tenant.timezone)
    local = now.astimezone(zone)
    clock = parse_clock(tenant.report_time)
    day: date = local.date() - timedelta(days=(local.weekday() - tenant.report_day) % 7)
    moment = datetime.combine(day, clock, tzinfo=zone)
    if moment > local:
        day -= timedelta(days=7)
        moment = datetime.combine(day, clock, tzinfo=zone)
    return week_containing(day - timedelta(days=7), zone), moment


@prepares(SendOwnerReports)
async def prepare_owner_reports(
    cmd: SendOwnerReports, actor: Actor, uow: UnitOfWork
) -> dict[tuple[int, str], tuple[Report, bytes]]:
    """Before the sweep's transaction: compute the due reports and draw their charts (seconds
    for a large tenant, which on SQLite would otherwise hold every claim back)."""
    require(actor, Role.SYSTEM, Role.OWNER)
    ready = {}
    for tenant, week in (await _due_reports(actor, uow))[: cmd.batch]:
        report = await build_report(tenant, week, uow.now)
        ready[(tenant.id, week.label)] = (report, await chart_png(report))
    return ready


@handles(SendOwnerReports)
async def send_owner_reports(cmd: SendOwnerReports, actor: Actor, uow: UnitOfWork) -> Reply:
    """Sweep: every tenant whose report day and time have passed gets last week's report once
    (a service that was down sends it late, and only the latest week's). The reports come
    ready from ``prepare_owner_reports``; which are due is checked again here, under the
    sweep's lock, so a report another instance sent meanwhile is not sent twice."""
    require(actor, Role.SYSTEM, Role.OWNER)
    todo = await _due_reports(actor, uow)
    ready = uow.prepared or {}
    done = []
    for tenant, week in todo[: cmd.batch]:
        report, png = ready.get((tenant.id, week.label)) or (None, None)
        if report is None:  # due since the preparation: computed here
            report = await build_report(tenant, week, uow.now)
        await queue_report(uow, tenant, report, png)
        done.append(f"{tenant.slug} {week.label}")
    return Reply(
        True,
        "reports_sent",
        {"count": len(done), "sent": done, "more": len(todo) > cmd.batch},
    )


async def _due_reports(actor: Actor, uow: UnitOfWork) -> list[tuple[Tenant, Period]]:
    """(tenant, week) of every report due by now and not sent yet."""
    query = Tenant.filter(report_day__isnull=False)
    if actor.tenant_id is not None:
        query = query.filter(id=actor.tenant_id)
    due: list[tuple[Tenant, Period]] = []
    for tenant in await query.order_by("id"):
        found = due_week(tenant, uow.now)
        if found is not None:
            due.append((tenant, found[0]))
    ids = [t.id for t, _ in due]
    sent = await _already_sent(ids, uow.now)
    # A week that ended before the tenant existed has nothing to say: not sent.
    added = dict(
        await AuditEvent.filter(tenant_id__in=ids, kind="tenant.added").values_list(
            "tenant_id", "at"
        )
    )
    return [
        (t, week)
        for t, week in due
        if (t.id, week.label) not in sent and (t.id not in added or week.end > added[t.id])
    ]


async def _already_sent(tenant_ids: list[int], now: datetime) -> set[tuple[int, str]]:
    """(tenant, week) pairs reported lately, from the audit trail (one query for all)."""
    if not tenant_ids:
        return set()
    rows = await AuditEvent.filter(
        tenant_id__in=tenant_ids, kind=SENT_EVENT, at__gte=now - timedelta(days=15)
    ).values_list("tenant_id", "data")
    return {(tenant_id, (data or {}).get("week", "")) for tenant_id, data in rows}


async def queue_report(
    uow: UnitOfWork, tenant: Tenant, report: Report, png: bytes | None = None
) -> dict[str, Any]:
    """Queue one report: the mail with its chart inline (``png``, else drawn now), and the
    summary in Slack when the tenant's owner channel is linked; audited as ``report.sent``."""
    view = report_context(report, uow.settings.report_max_partners)
    label = report.period.label
    cid = content_id(uow.settings, "chart")
    if png is None:
        png = await chart_png(report)
    mail(
        uow,
        tenant_id=tenant.id,
        kind="report.owner",
        to=tenant.owner_email,
        template="owner_report",
        locale=tenant.locale,
        context={**view, "chart_cid": cid},
        dedupe_key=f"report:{tenant.id}:{label}",
        inline=[Inline(cid, "image/png", png, f"lyra-{label}.png")],
    )
    if tenant.slack_owner_channel:
        slack_say(
            uow,
            tenant_id=tenant.id,
            kind="report.slack",
            say="owner_report",
            locale=tenant.locale,
            context=view,
            channel=tenant.slack_owner_channel,
            dedupe_key=f"report:{tenant.id}:{label}:slack",
        )
    uow.audit(SENT_EVENT, tenant.id, week=label, partners=len(report.partners))
    return view
