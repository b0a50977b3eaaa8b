"""Putting leads in: validation, CSV import (all or nothing), duplicate flags, refs."""

from __future__ import annotations

from lyra_bot import commands as c
from lyra_bot.domain import LeadStatus
from lyra_bot.models import AuditEvent, Lead
from tests.world import build_world

HEADER = "product,region,industry,size,need,company,contact_name,email,phone\n"


async def test_add_lead_validates_and_normalises(bus):
    world = await build_world(bus)
    reply = await world.ok(
        c.AddLead("Switch", "ch-lu", need="  Ten\r\nswitches  ", email="Boss@Example.COM"),
        world.owner,
    )
    lead = reply.data["lead"]
    assert (lead["region"], lead["need"], lead["email"]) == (
        "CH-LU",
        "Ten switches",
        "boss@example.com",
    )
    bad = await world.do(c.AddLead("", "Zurich city", email="not-an-email"), world.owner)
    assert bad.code == "invalid_input"
    for part in ("product is missing", "region 'ZURICH CITY'", "email 'not-an-email'"):
        assert part in bad.message
    long = await world.do(c.AddLead("X" * 101, "CH"), world.owner)
    assert "longer than 100" in long.message
    assert (await world.do(c.AddLead("VPN", "CH"), "mia@alpine.example")).code == "forbidden"


async def test_import_all_rows(bus):
    world = await build_world(bus)
    text = HEADER + (
        'Router,CH-ZH,Retail,10-50,"Two routers, quickly",Shop AG,Eva Ott,eva@shop.example,'
        "044 111 11 11\n"
        "Router,CH-BS,,,,,,,061 222 22 22\n"
        "\n"
    )
    seen = []
    reply = await world.ok(
        c.ImportLeads(text, progress=lambda done, total: seen.append(done)), world.owner
    )
    assert reply.data["count"] == 2 and reply.data["refs"] == ["L-1006", "L-1007"]
    assert seen and seen[-1] == 2
    lead = await Lead.get(tenant_id=world.tenant_id, ref="L-1006")
    assert (lead.need, lead.source, lead.status) == ("Two routers, quickly", "csv", LeadStatus.OPEN)
    assert await AuditEvent.filter(kind="lead.added", tenant_id=world.tenant_id).count() == 7


async def test_import_with_one_bad_row_imports_nothing_and_names_the_line(bus):
    world = await build_world(bus)
    before = await Lead.all().count()
    text = HEADER + (
        "Router,CH-ZH,,,,,,a@x.example,\n"
        "Router,CH-ZH,,,,,,b@x.example,\n"
        "Router,,,,,,,c@x.example,\n"  # line 4: no region
        "Router,CH-ZH,,,,,,d@x.example,\n"
    )
    reply = await world.do(c.ImportLeads(text), world.owner)
    assert reply.code == "invalid_input"
    assert "Nothing was imported" in reply.message and "line 4: region is missing" in reply.message
    assert reply.data["problems"] == [{"phrase": "missing_field", "field": "region", "line": 4}]
    assert await Lead.all().count() == before


async def test_import_reports_bad_header_and_multiline_rows(bus):
    world = await build_world(bus)
    reply = await world.do(c.ImportLeads("colour,region\nX,CH\n"), world.owner)
    assert reply.message.startswith("line 1:") and "missing columns: product" in reply.message
    assert "unknown columns: colour" in reply.message
    text = (
        HEADER.strip()
        + ",address\n"
        + 'Router,CH-ZH,,,,,,,,"Line 1\nLine 2"\nRouter,XX YY,,,,,,,,\n'
    )
    reply = await world.do(c.ImportLeads(text), world.owner)
    assert "line 4: region 'XX YY'" in reply.message  # the quoted address spans lines 2-3
    assert (await world.do(c.ImportLeads(""), world.owner)).code == "invalid_input"


async def test_duplicates_of_live_leads_are_held_not_pooled(bus):
    world = await build_world(bus)
    text = HEADER + (
        "VPN,CH-ZH,,,,,,ANNA@huber.example,\n"  # same email as L-1001 (any case)
        "VPN,CH-ZH,,,,,,new@x.example,+41 (31) 555-0202\n"  # same phone digits as L-1002
        "VPN,CH-ZH,,,,,,twice@x.example,\n"
        "VPN,CH-ZH,,,,,,twice@x.example,\n"  # duplicate inside the file
        "VPN,CH-ZH,,,,,,fresh@x.example,\n"
    )
    reply = await world.ok(c.ImportLeads(text), world.owner)
    assert reply.data["held"] == ["L-1006", "L-1007", "L-1009"]
    held = await Lead.get(tenant_id=world.tenant_id, ref="L-1006")
    assert held.hold_reason == "possible duplicate of L-1001" and held.duplicate_of_id is not None
    assert (
        await Lead.get(tenant_id=world.tenant_id, ref="L-1009")
    ).hold_reason == "possible duplicate of L-1008"
    pool = [
        lead["ref"] for lead in (await world.ok(c.ListPool(), "mia@alpine.example")).data["leads"]
    ]
    assert "L-1006" not in pool and "L-1010" in pool
    assert (await world.do(c.ClaimLead("L-1006"), "mia@alpine.example")).code == "lead_taken"

    await world.ok(c.ApproveLead("L-1006"), world.owner)
    await world.ok(c.ClaimLead("L-1006"), "mia@alpine.example")
    assert (await world.do(c.ApproveLead("L-1006"), world.owner)).code == "invalid_transition"

    single = await world.ok(c.AddLead("VPN", "CH", email="sara@limmat.example"), world.owner)
    assert single.code == "lead_held"
    forced = await world.ok(
        c.AddLead("VPN", "CH", email="sara@limmat.example", allow_duplicate=True), world.owner
    )
    assert forced.code == "lead_added"
    # a withdrawn lead is not live: the same customer may come back
    await world.ok(c.WithdrawLead("L-1004"), world.owner)
    assert (
        await world.ok(c.AddLead("VPN", "CH", email="luc@lac.example"), world.owner)
    ).code == "lead_added"


async def test_explicit_refs_are_kept_and_never_reused(bus):
    world = await build_world(bus)
    await world.ok(c.AddLead("VPN", "CH", ref="l-1007"), world.owner)
    rows = "VPN,CH,,,,,,a@x.example,\nVPN,CH,,,,,,,044 1\n"
    refs = (await world.ok(c.ImportLeads(HEADER + rows), world.owner)).data["refs"]
    assert refs == ["L-1006", "L-1008"]
    text = "ref,product,region,email\nL-1008,VPN,CH,b@x.example\n"
    clash = await world.do(c.ImportLeads(text), world.owner)
    assert "already used: L-1008" in clash.message
