"""Privacy by design: consent at intake, the disclosure log, access ending with the claim,
retention, data subject requests and the customer's opt-out link."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from lyra_bot.handlers.notify import opt_out_url
from tortoise import Tortoise, fields
from tortoise.fields.data import CharEnumFieldInstance

from lyra_bot import commands as c
from lyra_bot.app import build_web_app
from lyra_bot.bus import UnitOfWork
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import (
    AuditEvent,
    Claim,
    ContactCheck,
    Disclosure,
    Feedback,
    Lead,
    MailBounce,
    OutboxMessage,
    Tenant,
)
from lyra_bot.privacy import CUSTOMER_DATA
from lyra_bot.reports import exports
from lyra_bot.reports.periods import parse_week
from lyra_bot.reports.report import build_report
from tests.email_helpers import reply_mail
from tests.world import CUSTOMERS, build_world

ANNA = CUSTOMERS[0]  # Firewall, CH-ZH, Huber Maschinen AG, Anna Huber, anna@…, phone


async def _all_stored_text() -> str:
    """Every value of every column of every table, as one text."""
    parts = []
    for model in Tortoise.apps["models"].values():
        for row in await model.all().values():
            parts.append(repr(row))
    return "\n".join(parts)


def _values_of(customer) -> list[str]:
    _, _, company, contact, email, phone = customer
    return [company, contact, email, phone]


# --- legal basis at intake -----------------------------------------------------------------


async def test_tenant_requiring_consent_keeps_leads_without_it_out_of_the_pool(bus):
    world = await build_world(bus)
    await Tenant.filter(id=world.tenant_id).update(require_consent=True)

    held = await world.ok(c.AddLead("VPN", "CH-ZH", email="new@x.example"), world.owner)
    ref = held.data["lead"]["ref"]
    assert held.code == "lead_held" and "no consent recorded" in held.message
    li = await world.ok(
        c.AddLead(
            "VPN", "CH-ZH", legal_basis="legitimate_interest", legal_note="existing customer"
        ),
        world.owner,
    )
    assert li.code == "lead_held"  # consent is required, legitimate interest is not enough
    ok = await world.ok(
        c.AddLead(
            "VPN",
            "CH-ZH",
            legal_basis="consent",
            consent_source="web form",
            consent_at="2026-10-30T14:02:00+01:00",
        ),
        world.owner,
    )
    assert ok.code == "lead_added"
    pool = [
        lead["ref"] for lead in (await world.ok(c.ListPool(), "mia@alpine.example")).data["leads"]
    ]
    assert ref not in pool and ok.data["lead"]["ref"] in pool
    assert (await world.do(c.ClaimLead(ref), "mia@alpine.example")).code == "lead_taken"
    refused = await world.do(c.ApproveLead(ref), world.owner)
    assert refused.code == "invalid_transition" and "consent" in refused.message

    opened = await world.ok(
        c.RecordConsent(ref, "consent", "phone call", "2026-11-01"), world.owner
    )
    assert "now in the pool" in opened.message
    lead = await Lead.get(tenant_id=world.tenant_id, ref=ref)
    assert (lead.status, lead.consent_source, lead.consent_at.year) == (
        LeadStatus.OPEN,
        "phone call",
        2026,
    )


async def test_legal_basis_is_validated_and_imported(bus):
    world = await build_world(bus)
    bad = await world.do(c.AddLead("VPN", "CH", legal_basis="consent"), world.owner)
    assert "consent_source" in bad.message and "consent_at" in bad.message
    bad = await world.do(c.AddLead("VPN", "CH", legal_basis="because"), world.owner)
    assert "not consent or legitimate_interest" in bad.message
    bad = await world.do(c.AddLead("VPN", "CH", legal_basis="li"), world.owner)
    assert "legal_note" in bad.message
    csv = (
        "product,region,email,legal_basis,consent_source,consent_at,legal_note\n"
        "VPN,CH,a@x.example,consent,fair booth,2026-09-01,\n"
        "VPN,CH,b@x.example,legitimate_interest,,,existing customer since 2019\n"
        "VPN,CH,c@x.example,consent,,yesterday,\n"
    )
    reply = await world.do(c.ImportLeads(csv), world.owner)
    assert "line 4:" in reply.message and "consent_source" in reply.message
    reply = await world.ok(c.ImportLeads(csv.rsplit("VPN,CH,c@", 1)[0]), world.owner)
    imported = await Lead.filter(tenant_id=world.tenant_id, ref__in=reply.data["refs"]).order_by(
        "id"
    )
    assert [lead.legal_basis for lead in imported] == ["consent", "legitimate_interest"]
    assert imported[1].legal_note == "existing customer since 2019"


# --- disclosure log --------------------------------------------------------------------------


async def test_every_disclosure_path_writes_exactly_one_record(services):
    world = await build_world(services.bus)
    bus = services.bus
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await services.worker.run_once()
    await services.worker.run_once()  # delivering again does not log again

    logged = await Disclosure.all().order_by("id")
    by_purpose = {(d.purpose, d.recipient): d for d in logged}
    assert set(by_purpose) == {
        ("claim.partner", "mia@alpine.example"),
        ("claim.owner", "owner@acme.example"),
    }
    partner = by_purpose[("claim.partner", "mia@alpine.example")]
    assert set(partner.fields_shown) >= {"company", "contact_name", "email", "phone", "address"}
    assert (
        partner.channel == "email" and partner.user_id == world.actors["mia@alpine.example"].user_id
    )
    assert (
        await OutboxMessage.filter(kind="claim.customer", status="sent").count() == 1
    )  # not a disclosure

    owner_view = await world.ok(c.ShowLead("L-1001"), world.owner)
    await bus.disclosed(owner_view, world.owner, "lead show")
    mine = await world.ok(c.ListMine(), "max@alpine.example")
    await bus.disclosed(mine, world.actors["max@alpine.example"], "claims")
    teaser_only = await world.ok(c.ListPool(), "tom@lakeside.example")
    await bus.disclosed(teaser_only, world.actors["tom@lakeside.example"], "pool")
    assert await Disclosure.all().count() == 4
    log = await world.ok(c.ListDisclosures(lead_ref="L-1001"), world.owner)
    assert [d["purpose"] for d in log.data["disclosures"]] == [
        "claim.owner",
        "claim.partner",
        "lead show",
        "claims",
    ]
    by_customer = await world.ok(
        c.ListDisclosures(customer_email="anna@huber.example"), world.owner
    )
    assert len(by_customer.data["disclosures"]) == 4


# --- access ends with the claim ----------------------------------------------------------------


async def test_partner_loses_access_after_lapse_release_or_withdrawal(bus, clock):
    world = await build_world(bus, cap_open_claims=5, lapse_cooldown_hours=0)
    mia = "mia@alpine.example"
    for ref in ("L-1001", "L-1002", "L-1003"):
        await world.ok(c.ClaimLead(ref), mia)
    assert (await world.ok(c.ShowLead("L-1001"), mia)).data["lead"]["email"] == "anna@huber.example"

    await world.ok(c.ReleaseClaim("L-1002"), mia)
    await world.ok(c.WithdrawLead("L-1003"), world.owner)
    clock.advance(hours=49)
    await world.ok(c.ExpireOverdue(), world.owner)

    for ref in ("L-1001", "L-1002", "L-1003"):
        shown = await world.do(c.ShowLead(ref), mia)
        assert shown.code in {"lead_teaser", "not_your_lead"}, ref
        assert "email" not in shown.data.get("lead", {})
        assert (await world.do(c.GiveFeedback(ref, "won", "5"), mia)).code == "not_your_lead"
    assert (await world.ok(c.ListMine(), mia)).data["claims"] == []


# --- retention -----------------------------------------------------------------------------


def _report_inputs():
    async def snapshot():
        return {
            "leads": await Lead.all()
            .order_by("id")
            .values_list(
                "ref", "product", "region", "industry", "size", "need", "status", "closed_at"
            ),
            "claims": await Claim.all()
            .order_by("id")
            .values_list("lead_id", "partner_id", "state", "claimed_at", "due_at", "ended_at"),
            "feedback": await Feedback.all()
            .order_by("id")
            .values_list("outcome", "amount", "currency", "on_time", "created_at"),
            "events": await AuditEvent.exclude(kind__startswith="privacy.")
            .order_by("id")
            .values_list("kind", "lead_id", "partner_id", "at"),
        }

    return snapshot()


WEEKS = ("2026-W45", "2026-W49")  # the claims, then L-1004's feedback 30 days later


async def _weekly_report(tenant_id: int, clock, week: str) -> dict:
    tenant = await Tenant.get(id=tenant_id)
    period = parse_week(week, ZoneInfo(tenant.timezone), clock.now())
    return exports.to_json(await build_report(tenant, period, clock.now()))


async def test_retention_erases_old_customer_data_and_keeps_report_numbers(services, clock):
    world = await build_world(services.bus, cap_open_claims=5)
    await Tenant.filter(id=world.tenant_id).update(retention_months=24)
    mia = "mia@alpine.example"
    await world.ok(c.ClaimLead("L-1001"), mia)
    await world.ok(c.GiveFeedback("L-1001", "won", "12000", note="Anna Huber signed"), mia)
    await world.ok(c.ClaimLead("L-1002"), mia)
    await world.ok(c.GiveFeedback("L-1002", "lost", reason="Marc Keller chose a competitor"), mia)
    await world.ok(c.ClaimLead("L-1003"), mia)
    await world.ok(c.WithdrawLead("L-1003", "Sara Meier called us directly"), world.owner)
    await services.worker.run_once()
    clock.advance(days=30)
    await world.ok(c.ClaimLead("L-1004"), "eve@romandie.example")
    await world.ok(c.GiveFeedback("L-1004", "contacted"), "eve@romandie.example")  # closed later

    before = await _report_inputs()
    clock.advance(days=365 * 2 - 20)  # L-1001..3 closed 24 months + 10 days ago; L-1004 not yet
    weeks = [await _weekly_report(world.tenant_id, clock, week) for week in WEEKS]
    reply = await world.ok(c.PurgeExpiredPersonalData(), c.Actor.system())
    assert reply.data["erased"] == 3
    after = await _report_inputs()
    assert after == before
    # The weekly reports of those weeks read the same after the purge.
    assert [await _weekly_report(world.tenant_id, clock, week) for week in WEEKS] == weeks
    assert weeks[0]["totals"]["won"] == 1 and weeks[0]["totals"]["withdrawn"] == 1
    assert weeks[0]["totals"]["revenue"] == {"CHF": "12000.00"}

    stored = await _all_stored_text()
    for customer in CUSTOMERS[:3]:
        for value in _values_of(customer):
            assert value not in stored, value
    for value in ("Anna Huber signed", "chose a competitor", "called us directly"):
        assert value not in stored
    assert "luc@lac.example" in stored  # L-1004 is within retention
    again = await world.ok(c.PurgeExpiredPersonalData(), c.Actor.system())
    assert again.data["erased"] == 0


# --- data subject requests -----------------------------------------------------------------


async def test_export_holds_every_stored_value_and_erase_removes_them(services):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await services.worker.run_once()
    export = await world.ok(c.ExportCustomerData("Anna@Huber.example"), world.owner)
    text = repr(export.data)
    for value in (*_values_of(ANNA), "Street 1", "private note"):
        assert value in text, value
    assert {m["kind"] for m in export.data["messages"]} == {
        "claim.owner",
        "claim.partner",
        "claim.customer",
    }
    assert export.data["claims"][0]["partner"] == "Alpine" and export.data["disclosures"]
    assert await AuditEvent.filter(kind="privacy.exported").count() == 1

    erased = await world.ok(c.EraseCustomerData("anna@huber.example"), world.owner)
    assert erased.data["erased"] == ["L-1001"]
    stop = await OutboxMessage.get(kind="withdraw.partner")
    assert stop.recipient == "mia@alpine.example"  # the partner holding it is told to stop
    stored = await _all_stored_text()
    for value in _values_of(ANNA):
        assert value not in stored, value
    assert "marc@keller.example" in stored  # other customers untouched
    assert (
        await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    ).state == ClaimState.WITHDRAWN


# --- opt-out link --------------------------------------------------------------------------


async def test_opt_out_link_is_signed_and_works_once(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    customer_mail = await OutboxMessage.get(kind="claim.customer")
    url = re.search(r"http\S+/privacy/opt-out/\S+", customer_mail.payload["text"]).group(0)
    path = url.split("127.0.0.1:8080", 1)[1]

    server = TestServer(build_web_app(services))
    await server.start_server()
    try:
        async with ClientSession() as http:
            base = f"http://{server.host}:{server.port}"
            async with http.get(base + path) as resp:
                assert resp.status == 200 and "<form" in await resp.text()
            assert (await Lead.get(tenant_id=world.tenant_id, ref="L-1001")).opted_out_at is None

            async with http.post(base + path) as resp:
                done = await resp.text()  # in German: the customer is in Zürich
                assert resp.status == 200 and "nicht mehr kontaktiert" in done
            lead = await Lead.get(tenant_id=world.tenant_id, ref="L-1001")
            assert lead.status == LeadStatus.WITHDRAWN and lead.opted_out_at is not None
            assert (
                await OutboxMessage.get(kind="withdraw.partner")
            ).recipient == "mia@alpine.example"
            assert await AuditEvent.filter(kind="customer.opted_out").count() == 1

            async with http.post(base + path) as resp:
                assert "bereits vermerkt" in await resp.text()
            assert await OutboxMessage.filter(kind="withdraw.partner").count() == 1

            forged = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
            async with http.post(base + forged) as resp:
                assert resp.status == 404
            other = opt_out_url(
                UnitOfWork(
                    world.owner,
                    clock.now() - timedelta(days=400),
                    services.settings,
                    services.bus.renderer,
                ),
                await Tenant.get(id=world.tenant_id),
                await Lead.get(tenant_id=world.tenant_id, ref="L-1002"),
            )
            async with http.get(base + other.split("127.0.0.1:8080", 1)[1]) as resp:
                assert resp.status == 404  # expired
    finally:
        await server.close()
    assert (await Lead.get(tenant_id=world.tenant_id, ref="L-1002")).status == LeadStatus.OPEN


# --- erasure reaches every column: one registry --------------------------------------------

TEXT_FIELDS = (fields.CharField, fields.TextField, fields.JSONField)


def test_every_text_and_json_column_is_classified_for_erasure(store):
    """A new column that can hold text cannot be forgotten by erasure: it must be listed in
    ``CUSTOMER_DATA``, as erased or with the reason it never holds customer data."""
    seen: dict[str, set[str]] = {}
    for name, model in Tortoise.apps["models"].items():
        for field_name, field in model._meta.fields_map.items():
            if isinstance(field, TEXT_FIELDS) and not isinstance(field, CharEnumFieldInstance):
                seen.setdefault(name, set()).add(field_name)
    listed = {name: set(columns) for name, columns in CUSTOMER_DATA.items() if columns}
    missing = {
        n: sorted(c - listed.get(n, set())) for n, c in seen.items() if c - listed.get(n, set())
    }
    assert not missing, f"classify these columns in lyra_bot.privacy.CUSTOMER_DATA: {missing}"
    stale = {n: sorted(c - seen.get(n, set())) for n, c in listed.items() if c - seen.get(n, set())}
    assert not stale, f"CUSTOMER_DATA lists columns no model has: {stale}"


async def _everything_about_anna(world, services, clock) -> None:
    """Anna's data in every place Lyra keeps something: her lead, the claim's mails, her own
    mails (recorded, forwarded, answered), a contact check, a bounce, partners' free text."""
    mia = "mia@alpine.example"
    await world.ok(c.ClaimLead("L-1001"), mia)
    await world.ok(c.RequestExtension("L-1001", 2, "Anna Huber is on holiday"), mia)
    customer_mail = await OutboxMessage.get(kind="claim.customer")
    await services.mail.process(
        reply_mail(
            "Anna Huber <anna@huber.example>",
            customer_mail.payload["reply_to"],
            "Please call me on +41 44 555 01 01",
            subject="Re: your enquiry",
        )
    )
    await services.mail.process(  # a new mail, answering nothing: refused, recorded
        reply_mail("anna@huber.example", "leads@lyra.test", "Hello?", subject="Anna Huber here")
    )
    claim = await Claim.get(lead__ref="L-1001", tenant_id=world.tenant_id)
    clock.set(claim.check_due_at)
    assert (await services.scheduler.run_job("customer-contact-check")).count == 1
    check_mail = await OutboxMessage.get(kind="contact_check.customer")
    await services.mail.process(
        reply_mail("anna@huber.example", check_mail.payload["reply_to"], "NO")
    )
    await services.bus.dispatch(
        c.RecordMail(
            "bounce",
            "mailer-daemon@huber.example",
            reason="550 5.1.1 <anna@huber.example>: mailbox unavailable",
            bounced=("anna@huber.example",),
            bounce_status="5.1.1",
            original_id=customer_mail.message_id,
        ),
        c.Actor.system(),
    )
    await world.ok(
        c.GiveFeedback("L-1001", "lost", reason="Anna Huber chose a competitor", note="n/a"), mia
    )
    await world.ok(c.ClaimLead("L-1002"), mia)  # another customer; a note that names Anna
    await world.ok(
        c.GiveFeedback("L-1002", "won", "500", note="referred by anna@huber.example"), mia
    )
    await services.worker.run_once()


async def _stored_everywhere() -> str:
    """Every value of every column of every table (JSON as text), case-folded."""
    parts = []
    for model in Tortoise.apps["models"].values():
        for row in await model.all().values():
            parts += [json.dumps(v, default=str, ensure_ascii=False) for v in row.values()]
    return "\n".join(parts).casefold()


def _sqlite_files(url: str) -> list[Path]:
    if not url.startswith("sqlite://"):
        return []
    path = Path(url.split("://", 1)[1])
    return [path, path.with_name(path.name + "-wal")]


async def _where(value: str) -> list[str]:
    """Which table, column and row still hold ``value`` (for a failure's message)."""
    found = []
    for name, model in Tortoise.apps["models"].items():
        for row in await model.all().values():
            for column, v in row.items():
                text = json.dumps(v, default=str, ensure_ascii=False)
                if value.casefold() in text.casefold():
                    found.append(f"{name}.{column}: {text[:300]}")
    return found


async def test_erase_leaves_no_trace_in_any_column_or_in_the_sqlite_files(services, clock):
    world = await build_world(services.bus)
    await _everything_about_anna(world, services, clock)
    anna = _values_of(ANNA)  # (every customer of the world lives at "Street 1")
    before = await _stored_everywhere()
    for value in anna:
        assert value.casefold() in before, value  # the scenario put each value somewhere
    assert await ContactCheck.exists(email="anna@huber.example")
    assert await MailBounce.exists(address="anna@huber.example")
    files = _sqlite_files(services.settings.database_url)
    if files:
        raw = b"".join(f.read_bytes().lower() for f in files if f.exists())
        assert all(v.casefold().encode() in raw for v in anna)  # the file scan can see them

    erased = await world.ok(c.EraseCustomerData("anna@huber.example"), world.owner)
    assert erased.data["erased"] == ["L-1001"]

    stored = await _stored_everywhere()
    for value in anna:
        assert value.casefold() not in stored, (value, await _where(value))
    assert "marc@keller.example" in stored  # other customers untouched
    note = await Feedback.get(lead__ref="L-1002", lead__tenant_id=world.tenant_id)
    assert note.note == "referred by [erased]" and note.amount == 500  # facts stay
    for file in files:  # the database file and its write-ahead log, free pages included
        raw = file.read_bytes().lower() if file.exists() else b""
        for value in anna:
            assert value.casefold().encode() not in raw, (file.name, value)
    if files:
        pragma = await Tortoise.get_connection("default").execute_query_dict("PRAGMA secure_delete")
        assert pragma == [{"secure_delete": 1}]


async def test_erasing_two_customers_whose_mail_bounced_leaves_no_bounce_behind(services, clock):
    """Bounce records are unique per tenant and address: erasure deletes the customer's
    instead of marking them (two markers would collide)."""
    world = await build_world(services.bus)
    for customer in CUSTOMERS[:2]:
        await MailBounce.create(
            tenant_id=world.tenant_id,
            address=customer[4],
            reason=f"550 <{customer[4]}> unknown",
            first_at=clock.now(),
            last_at=clock.now(),
        )
    for customer in CUSTOMERS[:2]:
        await world.ok(c.EraseCustomerData(customer[4]), world.owner)
    assert await MailBounce.filter(tenant_id=world.tenant_id).count() == 0
