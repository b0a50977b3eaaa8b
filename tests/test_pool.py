"""The pool shows teasers only, to the partners entitled to them, oldest first."""

from __future__ import annotations

import json

from lyra_bot import commands as c
from lyra_bot.domain import PRIVATE_FIELDS, TEASER_FIELDS, teaser
from lyra_bot.models import Lead
from tests.world import CUSTOMERS, build_world


def _private_values(leads: list[Lead]) -> set[str]:
    values = {str(getattr(lead, f)) for lead in leads for f in PRIVATE_FIELDS}
    return {v for v in values if v and len(v) > 3}


async def test_no_pool_listing_contains_a_private_value(bus):
    world = await build_world(bus)
    leads = await Lead.all()
    secrets = _private_values(leads)
    assert {
        "anna@huber.example",
        "Huber Maschinen AG",
        "+41 44 555 01 01",
        "private note",
    } <= secrets

    renderings = []
    for actor in [world.owner, world.other_owner, *world.actors.values()]:
        reply = await world.ok(c.ListPool(), actor)
        renderings.append(json.dumps(reply.to_json(), ensure_ascii=False))
        assert all(set(lead) == set(TEASER_FIELDS) for lead in reply.data["leads"])
    # a refused claim suggests similar leads: teasers too
    await world.ok(
        c.AddLead("Firewall", "CH-ZH", company="Second AG", email="s@second.example"), world.owner
    )
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    taken = await world.ok(c.SimilarLeads("L-1001"), "tom@lakeside.example")
    assert taken.data["leads"]
    renderings.append(json.dumps(taken.to_json(), ensure_ascii=False))
    secrets = _private_values(await Lead.all())
    for text in renderings:
        leaked = [s for s in secrets if s in text]
        assert not leaked, leaked


async def test_pool_respects_entitlements_and_order(bus, clock):
    world = await build_world(bus)
    clock.advance(minutes=5)
    await world.ok(c.AddLead("Firewall", "CH-ZH-WIN"), world.owner)

    def refs(reply):
        return [lead["ref"] for lead in reply.data["leads"]]

    assert refs(await world.ok(c.ListPool(), "mia@alpine.example")) == [
        "L-1001",
        "L-1002",
        "L-1003",
        "L-1004",
        "L-1006",
    ]
    assert refs(await world.ok(c.ListPool(), "tom@lakeside.example")) == ["L-1001", "L-1006"]
    assert refs(await world.ok(c.ListPool(), "eve@romandie.example")) == ["L-1004"]
    assert refs(await world.ok(c.ListPool(), "gus@gamma.example")) == ["L-1001"]
    assert refs(await world.ok(c.ListPool(limit=2), "mia@alpine.example")) == ["L-1001", "L-1002"]
    owner_view = await world.ok(c.ListPool(), world.owner)
    assert owner_view.data["total"] == len(CUSTOMERS) + 1

    # oldest in the pool first: a lead given back re-enters the pool now, so it comes last
    # (for partners other than the one that gave it back).
    await world.ok(c.ClaimLead("L-1001"), "tom@lakeside.example")
    clock.advance(minutes=1)
    await world.ok(c.ReleaseClaim("L-1001"), "tom@lakeside.example")
    assert refs(await world.ok(c.ListPool(), "mia@alpine.example"))[-1] == "L-1001"


async def test_show_lead_gives_full_data_only_to_holder_and_owner(bus):
    world = await build_world(bus)
    teaser_view = await world.ok(c.ShowLead("L-1001"), "tom@lakeside.example")
    assert teaser_view.code == "lead_teaser" and set(teaser_view.data["lead"]) == set(TEASER_FIELDS)
    assert (await world.do(c.ShowLead("L-1002"), "tom@lakeside.example")).code == "not_your_lead"

    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    assert (await world.ok(c.ShowLead("L-1001"), "max@alpine.example")).data["lead"][
        "phone"
    ] == "+41 44 555 01 01"
    assert (await world.do(c.ShowLead("L-1001"), "tom@lakeside.example")).code == "not_your_lead"
    owner = await world.ok(c.ShowLead("L-1001"), world.owner)
    assert owner.data["lead"]["email"] == "anna@huber.example"
    assert (
        owner.data["claims"][0]["partner"] == "Alpine"
        and owner.data["claims"][0]["state"] == "active"
    )

    await world.ok(c.ReleaseClaim("L-1001"), "mia@alpine.example")
    after = await world.do(c.ShowLead("L-1001"), "mia@alpine.example")
    assert after.code == "not_your_lead"  # released: hidden during the cooldown, and no data


def test_teaser_is_a_whitelist():
    class Anything:
        pass

    lead = Anything()
    for field in (*TEASER_FIELDS, *PRIVATE_FIELDS, "secret_future_field"):
        setattr(lead, field, f"value of {field}")
    assert set(teaser(lead)) == set(TEASER_FIELDS)
