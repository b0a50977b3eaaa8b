"""A small known world for tests: two tenants, partners with different entitlements, users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lyra_bot import commands as c
from lyra_bot.bus import Bus, Reply
from lyra_bot.commands import Actor
from lyra_bot.models import User

CUSTOMERS = [
    # product, region, company, contact, email, phone
    (
        "Firewall",
        "CH-ZH",
        "Huber Maschinen AG",
        "Anna Huber",
        "anna@huber.example",
        "+41 44 555 01 01",
    ),
    (
        "Firewall",
        "CH-BE",
        "Praxis Keller",
        "Marc Keller",
        "marc@keller.example",
        "+41 31 555 02 02",
    ),
    ("VPN", "CH-ZH", "Limmat Treuhand", "Sara Meier", "sara@limmat.example", "+41 44 555 03 03"),
    ("Firewall", "CH-GE", "Boutiques du Lac", "Luc Favre", "luc@lac.example", "+41 22 555 04 04"),
    ("Firewall", "DE-BY", "Bauer GmbH", "Jonas Bauer", "jonas@bauer.example", "+49 89 555 05 05"),
]


@dataclass
class World:
    bus: Bus
    tenant_id: int
    owner: Actor
    actors: dict[str, Actor] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)
    other_tenant_id: int = 0
    other_owner: Actor | None = None
    other_refs: list[str] = field(default_factory=list)

    async def do(self, cmd: c.Command, who: str | Actor, key: str | None = None) -> Reply:
        actor = who if isinstance(who, Actor) else self.actors[who]
        return await self.bus.dispatch(cmd, actor, key)

    async def ok(self, cmd: c.Command, who: str | Actor, key: str | None = None) -> Reply:
        reply = await self.do(cmd, who, key)
        assert reply.ok, reply.message
        return reply


async def add_partner(
    bus: Bus,
    owner: Actor,
    slug: str,
    products: tuple[str, ...],
    regions: tuple[str, ...],
    users: tuple[str, ...],
    locale: str | None = None,
) -> dict[str, Actor]:
    reply = await bus.dispatch(c.AddPartner(slug, slug.title(), products, regions, locale), owner)
    assert reply.ok, reply.message
    actors = {}
    for email in users:
        reply = await bus.dispatch(c.AddUser(email, email.split("@")[0].title(), slug), owner)
        assert reply.ok, reply.message
        user = await User.get(id=reply.data["id"])
        assert owner.tenant_id is not None and user.partner_id is not None
        actors[email] = Actor.partner_user(owner.tenant_id, user.partner_id, user.id, "test")
    return actors


async def add_tenant(bus: Bus, slug: str, **policy: Any) -> Actor:
    reply = await bus.dispatch(
        c.AddTenant(slug, slug.title(), f"owner@{slug}.example", locale="en", **policy),
        Actor.system(),
    )
    assert reply.ok, reply.message
    return Actor.owner(reply.data["id"], "test")


async def build_world(bus: Bus, **policy: Any) -> World:
    """Tenant ``acme`` (cap 2, 48 h deadline) with partners:

    - alpine: everything in CH (users mia, max)
    - lakeside: Firewall in CH-ZH only (user tom)
    - romandie: Firewall in CH-GE (user eve)

    and tenant ``globex`` with its own partner and one lead.
    """
    settings = {"cap_open_claims": 2, "claim_deadline_hours": 48, **policy}
    owner = await add_tenant(bus, "acme", **settings)
    assert owner.tenant_id is not None
    world = World(bus, owner.tenant_id, owner)
    world.actors.update(
        await add_partner(
            bus, owner, "alpine", ("*",), ("CH",), ("mia@alpine.example", "max@alpine.example")
        )
    )
    world.actors.update(
        await add_partner(
            bus, owner, "lakeside", ("Firewall",), ("CH-ZH",), ("tom@lakeside.example",)
        )
    )
    world.actors.update(
        await add_partner(
            bus, owner, "romandie", ("firewall",), ("CH-GE",), ("eve@romandie.example",), "fr"
        )
    )
    for product, region, company, contact, email, phone in CUSTOMERS:
        reply = await world.ok(
            c.AddLead(
                product,
                region,
                "Industry",
                "10-50",
                f"Needs {product.lower()}",
                company,
                contact,
                email,
                phone,
                "Street 1",
                "private note",
            ),
            owner,
        )
        world.refs.append(reply.data["lead"]["ref"])

    other = await add_tenant(bus, "globex")
    world.other_tenant_id, world.other_owner = other.tenant_id or 0, other
    world.actors.update(
        await add_partner(bus, other, "gamma", ("*",), ("*",), ("gus@gamma.example",))
    )
    reply = await world.ok(
        c.AddLead(
            "Firewall",
            "CH-ZH",
            company="Secret Corp",
            contact_name="Olga Secret",
            email="olga@secret.example",
            phone="+41 44 999 99 99",
        ),
        other,
    )
    world.other_refs.append(reply.data["lead"]["ref"])
    return world
