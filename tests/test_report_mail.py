"""The weekly owner report by mail: sent by the scheduler at the tenant's day and time, once,
over real SMTP; the MIME holds the text, the HTML and the chart the HTML refers to by its
Content-ID; the PNG decodes; three locales with their number and date formats."""

from __future__ import annotations

import asyncio
import html
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import lyra_bot.handlers.reports
import pytest
from babel.dates import format_interval
from babel.numbers import format_currency, format_percent
from lyra_bot.adapters.slack.render import render
from PIL import Image

from lyra_bot import commands as c
from lyra_bot.app import bootstrap
from lyra_bot.models import AuditEvent, OutboxMessage, Tenant
from lyra_bot.outbox import Inline
from lyra_bot.reports.periods import parse_week
from lyra_bot.reports.report import build_report
from lyra_bot.reports.view import report_context
from tests.report_history import at, build_history
from tests.test_email_e2e import mail_settings

OWNER = "owner@acme.example"


async def test_the_report_goes_out_at_the_tenants_day_and_time_once(services, clock):
    world = await build_history(services, clock, second_week=False)
    scheduler = services.scheduler
    # Monday 9 Nov 07:59 in Zurich: the last report time that passed was Monday 2 Nov 08:00,
    # for week 44, which ended before the tenants were added (Monday 2 Nov 10:00): nothing.
    clock.set(at(9, 6, 59))
    assert (await scheduler.run_job("owner-report")).count == 0
    clock.set(at(9, 7, 0))  # 08:00 in Zurich
    first = await scheduler.run_job("owner-report")
    assert first.ok and first.count == 2
    assert first.message.endswith("acme 2026-W45, globex 2026-W45.")
    clock.set(at(12, 7, 0))
    assert (await scheduler.run_job("owner-report")).count == 0  # nothing more this week
    # The service was down over Monday 16 Nov: week 46 goes out late, on Wednesday.
    clock.set(at(18, 14, 0))
    late = await scheduler.run_job("owner-report")
    assert late.count == 2 and "acme 2026-W46" in late.message
    rows = await OutboxMessage.filter(kind="report.owner", tenant_id=world.tenant_id).order_by("id")
    assert [row.dedupe_key for row in rows] == [
        f"report:{world.tenant_id}:2026-W45",
        f"report:{world.tenant_id}:2026-W46",
    ]
    assert {row.recipient for row in rows} == {OWNER}
    events = await AuditEvent.filter(kind="report.sent", tenant_id=world.tenant_id).values_list(
        "tenant_id", "data"
    )
    assert [data["week"] for _, data in events] == ["2026-W45", "2026-W46"]

    # Friday 17:30 in the owner's policy; globex turned reports off.
    await world.ok(c.UpdateTenant(report_day="fri", report_time="17:30"), world.owner)
    assert world.other_owner is not None
    await world.ok(c.UpdateTenant(report_day="none"), world.other_owner)
    clock.set(at(20, 16, 30))  # Friday 20 Nov 17:30: last week (46) is already out
    assert (await scheduler.run_job("owner-report")).count == 0
    clock.set(at(27, 16, 29))  # Friday 27 Nov 17:29: not yet
    assert (await scheduler.run_job("owner-report")).count == 0
    clock.set(at(27, 16, 30))
    third = await scheduler.run_job("owner-report")
    assert third.count == 1 and third.message.endswith(": acme 2026-W47.")
    globex = OutboxMessage.filter(kind="report.owner", tenant_id=world.other_tenant_id)
    assert await globex.count() == 2  # weeks 45 and 46, none after reports were turned off


async def test_writes_go_on_while_the_report_is_computed_and_drawn(services, clock, monkeypatch):
    """The report is built and its chart drawn before the sweep's transaction: on SQLite that
    transaction holds the only write lock, and a large tenant's report takes seconds."""
    world = await build_history(services, clock, second_week=False)
    clock.set(at(9, 7, 0))
    drawing, written, added = asyncio.Event(), asyncio.Event(), []

    async def owner_adds_a_lead() -> None:  # another request, started before the sweep
        while True:
            await drawing.wait()
            drawing.clear()
            cmd = c.AddLead("VPN", "CH-ZH", need="added during the report")
            added.append(await world.do(cmd, world.owner))
            written.set()

    async def chart_while_an_owner_adds_a_lead(report):
        written.clear()
        drawing.set()
        await asyncio.wait_for(written.wait(), 10)  # the write must not wait for the report
        return await draw(report)

    draw = lyra_bot.handlers.reports.chart_png
    monkeypatch.setattr(lyra_bot.handlers.reports, "chart_png", chart_while_an_owner_adds_a_lead)
    owner = asyncio.create_task(owner_adds_a_lead())
    try:
        sent = await services.scheduler.run_job("owner-report")
    finally:
        owner.cancel()
    assert sent.count == 2 and len(added) == 2 and all(reply.ok for reply in added)
    assert await OutboxMessage.filter(kind="report.owner").count() == 2


async def test_the_sent_mail_has_text_html_and_the_chart_by_content_id(store, clock, smtp_server):
    services = bootstrap(mail_settings(store, smtp_server), clock)
    try:
        await build_history(services, clock, second_week=False)
        clock.set(at(9, 7))
        await services.scheduler.run_job("owner-report")
        await services.worker.run_once()
    finally:
        await services.worker.close()
    [message] = [m for m in smtp_server.to(OWNER) if "Week 45" in str(m["Subject"])]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text is not None and html_part is not None
    related = [p for p in message.iter_parts() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1 and related[0].get_param("type") == "text/html"

    body = html_part.get_content()
    [cid] = re.findall(r'src="cid:([^"]+)"', body)
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    assert images[0]["Content-ID"] == f"<{cid}>"
    assert images[0].get_content_disposition() == "inline"
    png = images[0].get_content()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (800, 700)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 10  # bars and text, not a blank canvas
    assert 5_000 < len(png) < 300_000

    plain = text.get_content()
    assert "Partner scorecard" in plain and "Alpine" in plain
    assert "Reliability 50/100" in plain
    # Scorecard order: lapses first (alpine), then "not contacted" (romandie).
    assert body.index("Alpine") < body.index("Romandie") < body.index("Lakeside")
    assert "CHF" in body and "12" in body


@pytest.mark.parametrize(
    ("locale", "babel", "words"),
    [
        ("en", "en_CH", ("Weekly report", "Partner scorecard", "Lapses", "Reliability")),
        ("de", "de_CH", ("Wochenbericht", "Partner im Überblick", "Verfallen", "Zuverlässigkeit")),
        (
            "fr",
            "fr_CH",
            ("Rapport hebdomadaire", "Tableau des partenaires", "Expirés", "Fiabilité"),
        ),
        (
            "it",
            "it_CH",
            ("Rapporto settimanale", "Quadro dei partner", "Scaduti", "Affidabilità"),
        ),
    ],
)
async def test_the_report_mail_renders_in_each_locale_with_its_formats(
    services, clock, locale, babel, words
):
    world = await build_history(services, clock, second_week=False)
    await world.ok(c.UpdateTenant(locale=locale), world.owner)
    tenant = await Tenant.get(id=world.tenant_id)
    clock.set(at(9, 7))
    report = await build_report(tenant, parse_week("2026-W45", tenant_zone(tenant), clock.now()),
                                clock.now())  # fmt: skip
    context = {**report_context(report), "chart_cid": "chart.1@lyra.test"}
    rendered = services.bus.renderer.mail("owner_report", locale, context)
    for word in words:
        assert word in rendered.html, word
        assert word in rendered.text, word
    week = {"en": "Week", "de": "Woche", "fr": "Semaine", "it": "Settimana"}[locale]
    assert f"{week} 45" in rendered.subject and "2026-W45" not in rendered.subject
    chf = format_currency(Decimal("12000"), "CHF", locale=babel)
    eur = format_currency(Decimal("5000"), "EUR", locale=babel)
    rate = format_percent(Decimal("0.6667"), "#,##0.#%", locale=babel)
    days = format_interval(date(2026, 11, 2), date(2026, 11, 8), "yMMMd", locale=babel)
    for text in (html.unescape(rendered.html), rendered.text):
        assert chf in text and eur in text and rate in text
        assert days in text
    assert 'src="cid:chart.1@lyra.test"' in rendered.html
    assert "{{" not in rendered.html and "{{" not in rendered.text


def tenant_zone(tenant: Tenant):
    from zoneinfo import ZoneInfo

    return ZoneInfo(tenant.timezone)


def test_inline_parts_are_checked_before_they_are_queued():
    good = Inline("chart.1@lyra.test", "image/png", b"\x89PNG", "week.png")
    assert good.to_payload()["data"] == "iVBORw=="
    for bad in (
        Inline("chart\r\nBcc: x@y@lyra.test", "image/png", b""),
        Inline("<chart@lyra.test>", "image/png", b""),
        Inline("chart@lyra.test", "image/png\r\nX: y", b""),
    ):
        with pytest.raises(ValueError):
            bad.to_payload()
    assert datetime(2026, 11, 9, tzinfo=UTC)  # keeps the import honest for readers


async def test_the_summary_goes_to_the_owners_slack_channel_when_linked(services, clock):
    world = await build_history(services, clock, second_week=False)
    bad = await world.do(c.UpdateTenant(slack_owner_channel="#general"), world.owner)
    assert not bad.ok and "not a Slack channel id" in bad.message
    await world.ok(c.UpdateTenant(slack_owner_channel="c0owner1"), world.owner)
    await world.ok(c.AddPartner("shouty", "<!channel> Shouty", ("*",), ("CH",)), world.owner)
    clock.set(at(9, 7))
    await services.scheduler.run_job("owner-report")
    [row] = await OutboxMessage.filter(kind="report.slack", tenant_id=world.tenant_id)
    assert row.channel == "slack" and row.recipient == "C0OWNER1"
    assert row.dedupe_key == f"report:{world.tenant_id}:2026-W45:slack"
    assert row.payload["method"] == "lyra.say" and row.payload["args"]["channel"] == "C0OWNER1"
    said = row.payload["args"]["say"]  # what to say; Block Kit is made when it is delivered
    assert (said["kind"], said["locale"]) == ("owner_report", "en")
    args = render(said["kind"], said["locale"], said["context"], services.bus.renderer)
    assert args["text"] == "Weekly report · Acme · Week 45, 2–8 Nov 2026"  # en_CH
    body = "\n".join(block["text"]["text"] for block in args["blocks"])
    assert "• Claims: *5* (+5)" in body
    assert "• Alpine: Claims 3 · Lapses 1" in body
    assert "&lt;!channel&gt; Shouty" in body and "<!channel>" not in body  # no mass mention
    await world.ok(c.UpdateTenant(slack_owner_channel="none"), world.owner)
    clock.set(at(16, 7))
    await services.scheduler.run_job("owner-report")
    assert await OutboxMessage.filter(kind="report.slack").count() == 1
