"""Claiming: one winner, capped, entitled, and the three notifications."""

from __future__ import annotations

import asyncio

from lyra_bot import commands as c
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import Claim, Lead, OutboxMessage, Tenant
from tests.world import add_partner, build_world


async def test_claim_gives_partner_the_customer_and_mails_all_three(bus):
    world = await build_world(bus)
    reply = await world.ok(c.ClaimLead("l-1001"), "mia@alpine.example")

    assert reply.code == "claimed"
    assert reply.data["lead"]["email"] == "anna@huber.example"
    lead = await Lead.get(tenant_id=world.tenant_id, ref="L-1001")
    assert lead.status == LeadStatus.CLAIMED
    rows = await OutboxMessage.filter(lead_id=lead.id).order_by("id")
    assert [(r.kind, r.recipient) for r in rows] == [
        ("claim.owner", "owner@acme.example"),
        ("claim.partner", "mia@alpine.example"),
        ("claim.customer", "anna@huber.example"),
    ]
    partner_mail = rows[1].payload
    for value in ("Huber Maschinen AG", "Anna Huber", "anna@huber.example", "+41 44 555 01 01"):
        assert value in partner_mail["text"] and value in partner_mail["html"]
    assert "Huber" not in rows[2].payload["subject"]
    assert partner_mail["reply_to"].startswith("leads+")


async def test_customer_mail_skipped_when_tenant_turned_it_off_or_no_email(bus):
    world = await build_world(bus, mail_customers=False)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    kinds = await OutboxMessage.filter(kind__startswith="claim.").values_list("kind", flat=True)
    assert sorted(kinds) == ["claim.owner", "claim.partner"]

    await Tenant.filter(id=world.tenant_id).update(mail_customers=True)
    no_email = await world.ok(c.AddLead("VPN", "CH-BE", phone="+41 31 000 00 00"), world.owner)
    await world.ok(c.ClaimLead(no_email.data["lead"]["ref"]), "mia@alpine.example")
    assert await OutboxMessage.filter(kind="claim.customer").count() == 0


async def test_second_partner_is_told_it_is_taken_with_similar_leads(bus):
    world = await build_world(bus)
    await world.ok(c.AddLead("Firewall", "CH-ZH", need="Another firewall"), world.owner)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")

    reply = await world.do(c.ClaimLead("L-1001"), "tom@lakeside.example")

    assert not reply.ok and reply.code == "lead_taken"
    similar = (await world.ok(c.SimilarLeads("L-1001"), "tom@lakeside.example")).data["leads"]
    assert similar and all(s["ref"] != "L-1001" for s in similar)
    assert all("email" not in s and "company" not in s for s in similar)
    assert await Claim.filter(lead__ref="L-1001").count() == 1


async def test_cap_counts_claims_awaiting_feedback(bus):
    world = await build_world(bus)  # cap 2
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    await world.ok(c.ClaimLead("L-1002"), "max@alpine.example")  # same partner, other user

    reply = await world.do(c.ClaimLead("L-1003"), "mia@alpine.example")
    assert reply.code == "over_cap" and reply.data["cap"] == 2
    assert (await Lead.get(ref="L-1003", tenant_id=world.tenant_id)).status == LeadStatus.OPEN

    await world.ok(c.GiveFeedback("L-1001", "no_contact"), "mia@alpine.example")
    await world.ok(c.ClaimLead("L-1003"), "mia@alpine.example")


async def test_partner_cannot_claim_outside_its_entitlements(bus):
    world = await build_world(bus)
    reply = await world.do(c.ClaimLead("L-1002"), "tom@lakeside.example")  # CH-BE, tom has CH-ZH
    assert reply.code == "not_entitled"
    reply = await world.do(c.ClaimLead("L-1003"), "tom@lakeside.example")  # VPN, tom has Firewall
    assert reply.code == "not_entitled"
    reply = await world.do(c.ClaimLead("L-1005"), "mia@alpine.example")  # DE-BY, alpine has CH
    assert reply.code == "not_entitled"
    assert await Claim.all().count() == 0


async def test_claiming_own_lead_again_says_so(bus):
    world = await build_world(bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    reply = await world.do(c.ClaimLead("L-1001"), "max@alpine.example")
    assert reply.code == "already_yours"
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1


async def test_other_tenants_refs_are_unknown(bus):
    world = await build_world(bus)
    foreign = world.other_refs[0]  # globex's L-1001 is a different lead from acme's L-1001
    reply = await world.ok(c.ClaimLead(foreign), "mia@alpine.example")
    assert reply.data["lead"]["company"] == "Huber Maschinen AG"  # acme's own L-1001

    globex_only = (
        await world.ok(
            c.AddLead("VPN", "CH-ZH", company="Globex Only", ref="G-5001"), world.other_owner
        )
    ).data["lead"]["ref"]
    for cmd in (
        c.ClaimLead(globex_only),
        c.ShowLead(globex_only),
        c.GiveFeedback(globex_only, "won", "1"),
    ):
        reply = await world.do(cmd, "mia@alpine.example")
        assert reply.code == "unknown_lead", cmd
    for cmd in (c.WithdrawLead(globex_only), c.ShowLead(globex_only), c.ApproveLead(globex_only)):
        reply = await world.do(cmd, world.owner)
        assert reply.code == "unknown_lead", cmd
    reply = await world.do(c.ClaimLead("L-1001"), "gus@gamma.example")
    assert reply.data["lead"]["company"] == "Secret Corp"


async def test_fifty_concurrent_claims_on_one_lead_have_one_winner(bus):
    world = await build_world(bus)
    actors = []
    for i in range(50):
        actors += (
            await add_partner(bus, world.owner, f"p{i}", ("*",), ("CH",), (f"u{i}@p{i}.example",))
        ).values()

    replies = await asyncio.gather(*(bus.dispatch(c.ClaimLead("L-1001"), a) for a in actors))

    assert sum(r.ok for r in replies) == 1
    assert {r.code for r in replies if not r.ok} == {"lead_taken"}
    assert await Claim.filter(lead__ref="L-1001", lead__tenant_id=world.tenant_id).count() == 1
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1


async def test_concurrent_claims_by_two_users_of_a_capped_partner_stay_under_cap(bus):
    world = await build_world(bus, cap_open_claims=1)
    mia, max_ = world.actors["mia@alpine.example"], world.actors["max@alpine.example"]
    for i in range(10):
        await world.ok(c.AddLead("VPN", "CH-LU", need=f"lead {i}"), world.owner)
    for _ in range(5):
        pool = (await world.ok(c.ListPool(), mia)).data["leads"]
        a, b = pool[0]["ref"], pool[1]["ref"]
        replies = await asyncio.gather(
            bus.dispatch(c.ClaimLead(a), mia), bus.dispatch(c.ClaimLead(b), max_)
        )
        active = await Claim.filter(partner_id=mia.partner_id, state=ClaimState.ACTIVE).count()
        assert active == 1 and sum(r.ok for r in replies) == 1
        assert {r.code for r in replies} == {"claimed", "over_cap"}
        await world.ok(c.ReleaseClaim(next(r.data["lead"]["ref"] for r in replies if r.ok)), mia)
