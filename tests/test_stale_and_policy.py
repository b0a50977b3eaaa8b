"""Stale-lead alerts to the owner, and changing a tenant's policy."""

from __future__ import annotations

from datetime import timedelta

from lyra_bot import commands as c
from lyra_bot.commands import Actor
from lyra_bot.models import AuditEvent, Claim, OutboxMessage, Tenant
from tests.world import build_world


async def test_leads_nobody_claims_are_reported_to_the_owner_once(services, clock):
    world = await build_world(services.bus, stale_lead_days=7)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")  # claimed: not stale
    clock.advance(days=6, hours=23)
    assert (await services.scheduler.run_job("stale-lead-alert")).count == 0
    clock.advance(hours=1)
    result = await services.scheduler.run_job("stale-lead-alert")
    assert result.count == 5  # acme's four unclaimed leads and globex's one

    mails = {m.recipient: m for m in await OutboxMessage.filter(kind="stale.owner")}
    assert set(mails) == {"owner@acme.example", "owner@globex.example"}
    text = mails["owner@acme.example"].payload["text"]
    assert all(ref in text for ref in ("L-1002", "L-1003", "L-1004", "L-1005"))
    assert "L-1001" not in text and "Secret" not in text
    assert "7 days" in mails["owner@acme.example"].payload["subject"]
    clock.advance(days=3)
    assert (await services.scheduler.run_job("stale-lead-alert")).count == 0
    assert await OutboxMessage.filter(kind="stale.owner").count() == 2


async def test_a_lead_back_in_the_pool_is_counted_again_from_its_return(services, clock):
    world = await build_world(services.bus, stale_lead_days=7, claim_deadline_hours=24)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(days=7)
    await services.scheduler.run_job("expire-overdue")  # L-1001 back in the pool, now
    await services.scheduler.run_job("stale-lead-alert")
    first = await OutboxMessage.get(kind="stale.owner", recipient="owner@acme.example")
    assert "L-1001" not in first.payload["text"]
    clock.advance(days=7)
    assert (await services.scheduler.run_job("stale-lead-alert")).count == 1
    second = (
        await OutboxMessage.filter(kind="stale.owner", recipient="owner@acme.example")
        .order_by("-id")
        .first()
    )
    assert "L-1001" in second.payload["text"] and "L-1002" not in second.payload["text"]


async def test_owner_changes_policy_and_new_claims_follow_it(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    old = await Claim.get(lead__ref="L-1001", tenant_id=world.tenant_id)

    reply = await world.ok(
        c.UpdateTenant(
            claim_deadline_hours=9,
            deadline_business_hours=True,
            work_hours="09:00-18:00",
            work_days="mon-fri",
            holidays="CH-ZH",
            reminder_hours="4",
        ),
        world.owner,
    )
    assert reply.data["changes"] == {
        "claim_deadline_hours": 9,
        "deadline_business_hours": True,
        "work_hours": "09:00-18:00",
        "holidays": "CH-ZH",
        "reminder_hours": "4",
    }
    assert await AuditEvent.filter(kind="tenant.updated").count() == 1
    assert (await Claim.get(id=old.id)).due_at == old.due_at  # existing claims keep theirs

    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")  # Monday 10:00 in Zurich
    new = await Claim.get(lead__ref="L-1002", tenant_id=world.tenant_id)
    assert new.due_at - new.claimed_at == timedelta(days=1)  # 8 h today + 1 h tomorrow
    # Four working hours before Tuesday 10:00: Tuesday 09-10 and Monday 15-18.
    assert new.next_remind_at == new.claimed_at + timedelta(hours=5)
    shown = await world.ok(c.ShowTenant(), world.owner)
    assert shown.data["policy"]["work_days"] == "mon-fri"


async def test_bad_policy_is_refused_with_the_reason_and_changes_nothing(services, clock):
    world = await build_world(services.bus)
    cases = [
        (c.UpdateTenant(work_days="weekends"), "not a weekday"),
        (c.UpdateTenant(work_hours="18:00-09:00"), "end before they start"),
        (c.UpdateTenant(holidays="CH-XX"), "not a subdivision"),
        (c.UpdateTenant(reminder_hours="0"), "between 1 and 720"),
        (c.UpdateTenant(lapse_limit=-1), "lapse limit"),
        (c.UpdateTenant(extension_auto_days=20), "may not exceed"),
        (c.UpdateTenant(timezone="Mars/Olympus"), "not a time zone"),
        (c.UpdateTenant(), "Nothing to change"),
    ]
    for cmd, message in cases:
        reply = await world.do(cmd, world.owner)
        assert reply.code == "invalid_input" and message in reply.message, (cmd, reply)
    partner = await world.do(c.UpdateTenant(cap_open_claims=99), "mia@alpine.example")
    assert partner.code == "forbidden"
    tenant = await Tenant.get(id=world.tenant_id)
    assert (tenant.work_days, tenant.lapse_limit, tenant.cap_open_claims) == ([0, 1, 2, 3, 4], 0, 2)
    bad_tenant = await services.bus.dispatch(
        c.AddTenant("initech", "Initech", "o@initech.example", holidays="Atlantis"), Actor.system()
    )
    assert bad_tenant.code == "invalid_input" and not await Tenant.exists(slug="initech")
