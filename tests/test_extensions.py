"""Extensions: the tenant's policy grants the first short one at once, the owner decides the
rest; the partner hears either way; reminders follow the new deadline; all of it audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from lyra_bot import commands as c
from lyra_bot.domain import ExtensionStatus
from lyra_bot.i18n import babel_locale
from lyra_bot.models import AuditEvent, Claim, Extension, OutboxMessage, Tenant
from lyra_bot.render import format_moment
from tests.world import build_world

MIA = "mia@alpine.example"


async def claim(world, ref: str = "L-1001", who: str = MIA) -> Claim:
    await world.ok(c.ClaimLead(ref), who)
    return await Claim.get(lead__ref=ref, tenant_id=world.tenant_id)


async def test_first_short_request_is_granted_at_once_and_the_partner_told(services, clock):
    world = await build_world(services.bus)  # auto up to 2 days, at most 14
    held = await claim(world)
    reply = await world.ok(c.RequestExtension("L-1001", 2, "customer on holiday"), MIA)

    assert reply.code == "extension_approved" and reply.data["auto"] is True
    after = await Claim.get(id=held.id)
    assert after.due_at == held.due_at + timedelta(days=2)
    assert after.next_remind_at == after.due_at - timedelta(hours=24)
    [ext] = await Extension.filter(claim_id=held.id)
    assert (ext.status, ext.auto, ext.new_due_at) == (ExtensionStatus.APPROVED, True, after.due_at)
    [mail] = await OutboxMessage.filter(kind="extension.partner")
    assert mail.recipient == MIA and "2 more days granted" in mail.payload["subject"]
    assert await OutboxMessage.filter(kind="extension.owner").count() == 0
    kinds = await AuditEvent.filter(claim_id=held.id).order_by("id").values_list("kind", flat=True)
    assert kinds == ["lead.claimed", "extension.requested", "extension.approved"]
    approved = await AuditEvent.get(kind="extension.approved")
    assert approved.data["auto"] is True and approved.data["days"] == 2


async def test_longer_or_second_requests_wait_for_the_owner_who_approves(services, clock):
    world = await build_world(services.bus)
    held = await claim(world)
    await world.ok(c.RequestExtension("L-1001", 1), MIA)  # the automatic one is used up
    due_after_auto = (await Claim.get(id=held.id)).due_at

    reply = await world.ok(c.RequestExtension("L-1001", 1, "still waiting for the CFO"), MIA)
    assert reply.code == "extension_requested"
    assert (await Claim.get(id=held.id)).due_at == due_after_auto
    [ask] = await OutboxMessage.filter(kind="extension.owner")
    assert ask.recipient == "owner@acme.example"
    assert "still waiting for the CFO" in ask.payload["text"]
    assert "APPROVE L-1001" in ask.payload["text"]
    again = await world.do(c.RequestExtension("L-1001", 3), MIA)
    assert again.code == "invalid_transition" and "still waiting" in again.message

    clock.advance(hours=1)
    decided = await world.ok(c.DecideExtension("L-1001", True, "ok this once"), world.owner)
    assert decided.code == "extension_approved"
    assert (await Claim.get(id=held.id)).due_at == due_after_auto + timedelta(days=1)
    pending = await Extension.filter(claim_id=held.id).order_by("id")
    assert [(e.status, e.auto) for e in pending] == [
        (ExtensionStatus.APPROVED, True),
        (ExtensionStatus.APPROVED, False),
    ]
    assert pending[1].decided_at == clock.now()
    assert await OutboxMessage.filter(kind="extension.partner").count() == 2
    nothing = await world.do(c.DecideExtension("L-1001", True), world.owner)
    assert nothing.code == "invalid_transition" and "No extension request" in nothing.message


async def test_owner_declines_and_the_deadline_stays(services, clock):
    world = await build_world(services.bus)
    held = await claim(world)
    await world.ok(c.RequestExtension("L-1001", 5, "big project"), MIA)  # over the auto limit
    reply = await world.ok(c.DecideExtension("L-1001", False), world.owner)
    assert reply.code == "extension_declined"
    assert (await Claim.get(id=held.id)).due_at == held.due_at
    [told] = await OutboxMessage.filter(kind="extension.partner")
    assert "no extension" in told.payload["subject"] and "declined" in told.payload["text"]
    [ext] = await Extension.all()
    assert ext.status == ExtensionStatus.DECLINED and ext.new_due_at is None
    assert await AuditEvent.filter(kind="extension.declined", claim_id=held.id).exists()


async def test_requests_that_cannot_be_granted_are_refused_clearly(services, clock):
    world = await build_world(services.bus)
    await claim(world)
    too_long = await world.do(c.RequestExtension("L-1001", 15), MIA)
    assert too_long.code == "invalid_input" and "1 to 14 days" in too_long.message
    zero = await world.do(c.RequestExtension("L-1001", 0), MIA)
    assert zero.code == "invalid_input"
    not_mine = await world.do(c.RequestExtension("L-1001", 1), "tom@lakeside.example")
    assert not_mine.code == "not_your_lead"
    owner_cannot_ask = await world.do(c.RequestExtension("L-1001", 1), world.owner)
    assert owner_cannot_ask.code == "forbidden"
    partner_cannot_decide = await world.do(c.DecideExtension("L-1001", True), MIA)
    assert partner_cannot_decide.code == "forbidden"
    clock.advance(hours=49)
    late = await world.do(c.RequestExtension("L-1001", 1), MIA)
    assert late.code == "invalid_transition" and "passed" in late.message
    assert await Extension.all().count() == 0


async def test_a_pending_request_cannot_be_decided_after_the_claim_lapsed(services, clock):
    world = await build_world(services.bus)
    await claim(world)
    await world.ok(c.RequestExtension("L-1001", 7), MIA)
    clock.advance(hours=48)
    await services.scheduler.run_job("expire-overdue")
    reply = await world.do(c.DecideExtension("L-1001", True), world.owner)
    assert reply.code == "invalid_transition"


async def test_business_time_tenant_extends_by_working_days(services, clock):
    zurich = ZoneInfo("Europe/Zurich")
    world = await build_world(
        services.bus, deadline_business_hours=True, claim_deadline_hours=9, holidays="CH-ZH"
    )
    clock.set(datetime(2026, 4, 29, 15, 0, tzinfo=zurich).astimezone(UTC))  # Wednesday
    held = await claim(world)
    assert held.due_at.astimezone(zurich) == datetime(2026, 4, 30, 15, 0, tzinfo=zurich)
    await world.ok(c.RequestExtension("L-1001", 2), MIA)
    # Thursday 15:00 + 2 working days: Friday 1 May is a holiday in Zurich → Tuesday 5 May.
    after = await Claim.get(id=held.id)
    assert after.due_at.astimezone(zurich) == datetime(2026, 5, 5, 15, 0, tzinfo=zurich)


async def test_reminders_follow_the_extended_deadline(services, clock):
    world = await build_world(services.bus)  # 48 h, reminders 24 h and 2 h
    held = await claim(world)
    for _ in range(30):  # 30 hours: the 24 h reminder of the first deadline goes out
        clock.advance(hours=1)
        await services.scheduler.run_job("send-reminders")
    await world.ok(c.RequestExtension("L-1001", 2), MIA)
    new_due = (await Claim.get(id=held.id)).due_at
    while clock.now() < new_due:
        clock.advance(minutes=30)
        await services.scheduler.run_job("send-reminders")
        await services.scheduler.run_job("expire-overdue")
    sent = await OutboxMessage.filter(kind="reminder.partner").order_by("id")
    assert [r.created_at - held.claimed_at for r in sent] == [
        timedelta(hours=24),
        timedelta(days=2, hours=24),
        timedelta(days=2, hours=46),
    ]
    tenant = await Tenant.get(id=world.tenant_id)
    due = format_moment(new_due, babel_locale(tenant.locale, "CH"), tenant.timezone)
    assert due.startswith("Fri, 6 Nov 2026")  # the reader's words, not an ISO date
    assert all(due in r.payload["text"] for r in sent[1:])
