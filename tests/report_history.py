"""A known two-week history for the report tests, driven through the bus with the clock.

Tenant ``acme`` (Europe/Zurich, CET in November): 48 h deadline, cap 5, customers asked one
day after a claim, stale after 5 days, two lapses in 30 days pause a partner for 7 days.

Week 2026-W45 (Mon 2 Nov – Sun 8 Nov, local):
- Mon 09:00 UTC: five leads added (L-1001 … L-1005, by ``build_world``).
- Mon 10:00 mia (alpine) claims L-1002; 11:00 eve (romandie) L-1004 and mia L-1003;
  12:00 max (alpine) L-1001.
- Tue 10:00 mia: L-1002 won 12,000 CHF (on time). Tue 11:00 eve asks 2 days more on L-1004
  (granted at once). Tue 12:00 the customers of all four are asked: L-1002 and L-1003 say
  yes, L-1004 says no (romandie did not call), L-1001 never answers.
- Wed 11:30 mia: L-1003 lost (late: due 11:00). Wed 12:30 L-1001 lapses (max).
- Thu 10:00 tom (lakeside) claims L-1001; Thu 14:00 tom releases it.
- Fri 09:00 eve: L-1004 won 5,000 EUR (on time after the extension).
- Sat 10:00 the owner withdraws L-1001.
- Sun 22:30 UTC (23:30 local, still W45) L-1006 is added; Sun 23:30 UTC (00:30 Monday
  local: W46) L-1007 is added.

Week 2026-W46:
- Mon 9 Nov 08:00 UTC mia claims L-1006 and L-1007; asks 5 more days on L-1006 (the owner
  declines at 10:00) and 1 day on L-1007 (granted at once).
- Wed 11 Nov 09:00 L-1006 lapses: alpine's second lapse pauses it for 7 days.
- Wed 10:00 mia: L-1007 contacted (on time); Fri 13 Nov 10:00: won 3,000 CHF.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lyra_bot import commands as c
from lyra_bot.clock import FrozenClock
from lyra_bot.commands import Actor
from lyra_bot.models import Claim
from tests.world import World, build_world

POLICY = {
    "cap_open_claims": 5,
    "contact_check_days": 1,
    "stale_lead_days": 5,
    "lapse_limit": 2,
    "lapse_pause_days": 7,
}
MIA, MAX, TOM, EVE = (
    "mia@alpine.example",
    "max@alpine.example",
    "tom@lakeside.example",
    "eve@romandie.example",
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def answer_check(world: World, ref: str, answer: str) -> None:
    claim = await Claim.filter(tenant_id=world.tenant_id, lead__ref=ref).order_by("-id").first()
    assert claim is not None
    await world.ok(c.AnswerContactCheck(claim.id, answer), Actor.customer(world.tenant_id, "web"))


async def build_history(services, clock: FrozenClock, *, second_week: bool = True) -> World:
    clock.set(at(2, 9))
    world = await build_world(services.bus, **POLICY)

    clock.set(at(2, 10))
    await world.ok(c.ClaimLead("L-1002"), MIA)
    clock.set(at(2, 11))
    await world.ok(c.ClaimLead("L-1004"), EVE)
    await world.ok(c.ClaimLead("L-1003"), MIA)
    clock.set(at(2, 12))
    await world.ok(c.ClaimLead("L-1001"), MAX)

    clock.set(at(3, 10))
    await world.ok(c.GiveFeedback("L-1002", "won", "12000", "CHF"), MIA)
    clock.set(at(3, 11))
    granted = await world.ok(c.RequestExtension("L-1004", 2, "customer away"), EVE)
    assert granted.code == "extension_approved"
    clock.set(at(3, 12))
    assert (await services.scheduler.run_job("customer-contact-check")).count == 4
    await answer_check(world, "L-1002", "yes")
    await answer_check(world, "L-1003", "ja")
    await answer_check(world, "L-1004", "no")

    clock.set(at(4, 11, 30))
    late = await world.ok(c.GiveFeedback("L-1003", "lost", reason="price"), MIA)
    assert late.ok
    clock.set(at(4, 12, 30))
    assert (await services.scheduler.run_job("expire-overdue")).count == 1  # L-1001

    clock.set(at(5, 10))
    await world.ok(c.ClaimLead("L-1001"), TOM)
    clock.set(at(5, 14))
    await world.ok(c.ReleaseClaim("L-1001", "not our field"), TOM)
    clock.set(at(6, 9))
    await world.ok(c.GiveFeedback("L-1004", "won", "5000", "EUR"), EVE)
    clock.set(at(7, 10))
    await world.ok(c.WithdrawLead("L-1001", "customer bought elsewhere"), world.owner)

    clock.set(at(8, 22, 30))
    reply = await world.ok(c.AddLead("Firewall", "CH-ZH", need="late Sunday"), world.owner)
    assert reply.data["lead"]["ref"] == "L-1006"
    clock.set(at(8, 23, 30))
    reply = await world.ok(c.AddLead("VPN", "CH-BE", need="Monday in Zurich"), world.owner)
    assert reply.data["lead"]["ref"] == "L-1007"
    if not second_week:
        return world

    clock.set(at(9, 8))
    await world.ok(c.ClaimLead("L-1006"), MIA)
    await world.ok(c.ClaimLead("L-1007"), MIA)
    pending = await world.ok(c.RequestExtension("L-1006", 5, "big project"), MIA)
    assert pending.code == "extension_requested"
    assert (await world.ok(c.RequestExtension("L-1007", 1), MIA)).code == "extension_approved"
    clock.set(at(9, 10))
    await world.ok(c.DecideExtension("L-1006", approve=False), world.owner)
    clock.set(at(11, 9))
    expired = await services.scheduler.run_job("expire-overdue")
    assert expired.count == 1
    clock.set(at(11, 10))
    await world.ok(c.GiveFeedback("L-1007", "contacted"), MIA)
    clock.set(at(13, 10))
    await world.ok(c.GiveFeedback("L-1007", "won", "3000"), MIA)
    return world
