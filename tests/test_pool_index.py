"""The batched pool of many partners (what a digest run needs) equals ``pool_query`` for each
partner, entitlements, hides and order included, with a fixed number of queries."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from lyra_bot.handlers.pool import PoolIndex, pool_query

from lyra_bot import commands as c
from lyra_bot.domain import LeadStatus, teaser
from lyra_bot.models import Lead, LeadHide, Partner
from tests.world import add_partner, add_tenant

PRODUCTS = ["Firewall", "VPN", "Switch", "wlan"]
REGIONS = ["CH-ZH", "CH-BE", "CH-GE", "CH-ZH-W", "DE-BY", "AT"]


class CountQueries(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def test_pool_index_matches_pool_query_for_every_partner(bus, clock):
    rng = random.Random(7)
    owner = await add_tenant(bus, "acme")
    for i in range(30):
        products = tuple(rng.sample(["*", "firewall", "VPN", "Switch", "WLAN"], rng.randint(1, 2)))
        regions = tuple(rng.sample(["*", "CH", "CH-ZH", "DE", "AT", "CH-GE"], rng.randint(1, 2)))
        await add_partner(bus, owner, f"p{i}", products, regions, (f"u{i}@p{i}.example",))
    for i in range(150):
        clock.advance(minutes=rng.choice([0, 1, 7]))  # equal opened_at values happen
        product, region = rng.choice(PRODUCTS), rng.choice(REGIONS)
        reply = await bus.dispatch(c.AddLead(product, region, need=f"n{i}"), owner)
        assert reply.ok, reply.message
    partners = await Partner.filter(tenant_id=owner.tenant_id).order_by("id")
    leads = await Lead.filter(tenant_id=owner.tenant_id).order_by("id")
    for lead in rng.sample(leads, 15):  # some leads are no longer open
        await Lead.filter(id=lead.id).update(status=LeadStatus.CLAIMED)
    for lead in rng.sample(leads, 40):  # some are hidden from one partner, some hides expired
        until = clock.now() + timedelta(hours=rng.choice([-1, 5]))
        await LeadHide.create(
            tenant_id=owner.tenant_id,
            lead_id=lead.id,
            partner_id=rng.choice(partners).id,
            until=until,
        )

    counter = CountQueries()
    db_log = logging.getLogger("tortoise.db_client")
    level = db_log.level
    db_log.setLevel(logging.DEBUG)
    db_log.addHandler(counter)
    try:
        index = await PoolIndex.load(owner.tenant_id, clock.now())
    finally:
        db_log.removeHandler(counter)
        db_log.setLevel(level)
    assert counter.count == 2

    since = leads[70].opened_at
    compared = 0
    for partner in partners:
        expected = await pool_query(owner.tenant_id, partner, clock.now())
        got = index.pool(partner)
        assert [teaser(x) for x in got.leads] == [teaser(x) for x in expected], partner.slug
        assert got.total == len(expected)
        newer = [x for x in expected if x.opened_at > since]
        recent = index.pool(partner, since=since, limit=5)
        assert recent.total == len(newer)
        assert [x.ref for x in recent.leads] == [x.ref for x in newer[:5]]
        compared += len(expected)
    assert compared > 200  # the comparison was not vacuous
