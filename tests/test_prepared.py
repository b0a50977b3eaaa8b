"""Prepared queries answer exactly what the queryset they were written as answers, with
fresh values bound on every call, on both stores; the cached outbox insert skips duplicates."""

from __future__ import annotations

from datetime import timedelta

from lyra_bot import commands as c
from lyra_bot.domain import LeadStatus
from lyra_bot.models import Claim, Lead, LeadHide, OutboxMessage, User
from lyra_bot.prepared import Prepared, insert_skipping_duplicates
from tests.world import build_world

USER = Prepared(
    lambda p: User.filter(id=p.id, tenant_id=p.tenant_id).select_related("partner", "tenant")
)
LEADS = Prepared(
    lambda p: Lead.filter(tenant_id=p.tenant_id, status=LeadStatus.OPEN).order_by("id")
)
COUNT = Prepared(lambda p: Lead.filter(tenant_id=p.tenant_id, status=LeadStatus.OPEN).count())
TAKE = Prepared(
    lambda p: Lead.filter(id=p.id, status=LeadStatus.OPEN).update(status=LeadStatus.WITHDRAWN)
)


async def test_prepared_matches_queryset_with_each_call_bound_afresh(bus):
    world = await build_world(bus)
    for actor in world.actors.values():
        user = await USER.first(id=actor.user_id, tenant_id=actor.tenant_id)
        expected = await User.get(id=actor.user_id).select_related("partner", "tenant")
        assert (user.email, user.partner.slug, user.tenant.slug) == (
            expected.email,
            expected.partner.slug,
            expected.tenant.slug,
        )
        # another tenant's id finds nothing: the tenant is a bound value, not the first one seen
        assert await USER.first(id=actor.user_id, tenant_id=actor.tenant_id + 1000) is None

    for tenant_id in (world.tenant_id, world.other_tenant_id):
        leads = await LEADS.all(tenant_id=tenant_id)
        expected = await Lead.filter(tenant_id=tenant_id, status=LeadStatus.OPEN).order_by("id")
        assert [(x.ref, x.company, x.status) for x in leads] == [
            (x.ref, x.company, x.status) for x in expected
        ]
        assert await COUNT.scalar(tenant_id=tenant_id) == len(expected)

    first = (await LEADS.all(tenant_id=world.tenant_id))[0]
    assert await TAKE.update(id=first.id) == 1
    assert await TAKE.update(id=first.id) == 0  # the condition holds in the bound statement
    assert (await Lead.get(id=first.id)).status == LeadStatus.WITHDRAWN
    assert await COUNT.scalar(tenant_id=world.tenant_id) == len(world.refs) - 1


async def test_insert_skipping_duplicates_keeps_the_first_row(bus, clock):
    world = await build_world(bus)
    await world.ok(c.ClaimLead(world.refs[0]), "mia@alpine.example")
    before = await OutboxMessage.all().count()

    def message(key: str, recipient: str) -> OutboxMessage:
        return OutboxMessage(
            tenant_id=world.tenant_id,
            channel="email",
            kind="test",
            recipient=recipient,
            payload={"subject": "Grüße", "n": [1, 2]},
            dedupe_key=key,
            message_id=f"<{key}@lyra>",
            next_attempt_at=clock.now() + timedelta(minutes=1),
            created_at=clock.now(),
        )

    await insert_skipping_duplicates([message("k1", "a@x.example"), message("k2", "b@x.example")])
    await insert_skipping_duplicates([message("k1", "z@x.example"), message("k3", "c@x.example")])
    rows = await OutboxMessage.filter(kind="test").order_by("dedupe_key")
    assert [(r.dedupe_key, r.recipient) for r in rows] == [
        ("k1", "a@x.example"),
        ("k2", "b@x.example"),
        ("k3", "c@x.example"),
    ]
    assert rows[0].payload == {"subject": "Grüße", "n": [1, 2]}
    assert rows[0].next_attempt_at == clock.now() + timedelta(minutes=1)
    assert await OutboxMessage.all().count() == before + 3


def _state(obj: object) -> dict:
    """What a model holds: every attribute, related models compared the same way."""
    return {
        k: _state(v) if hasattr(v, "_meta") else v
        for k, v in vars(obj).items()
        if k != "_await_when_save"
    }


CLAIM = Prepared(
    lambda p: Claim.filter(lead_id=p.lead_id).select_related("lead", "partner", "user", "tenant")
)
HIDE = Prepared(lambda p: LeadHide.filter(lead_id=p.lead_id).only("until"))


async def test_prepared_models_hold_what_tortoise_loads(bus, clock):
    """Prepared queries build models themselves: the same values and types (aware UTC
    datetimes, JSON, enums, a null relation, a partial ``.only()`` model) as Tortoise's own."""
    world = await build_world(bus)
    await world.ok(c.ClaimLead(world.refs[0]), "mia@alpine.example")
    await world.ok(c.ReleaseClaim(world.refs[0], "no time"), "mia@alpine.example")
    lead = await Lead.get(tenant_id=world.tenant_id, ref=world.refs[0])

    [claim] = await CLAIM.all(lead_id=lead.id)
    expected = await Claim.get(lead_id=lead.id).select_related("lead", "partner", "user", "tenant")
    assert _state(claim) == _state(expected)
    assert claim.claimed_at.tzinfo is not None and claim.ended_at == clock.now()
    assert (
        claim.lead.duplicate_of_id is None and claim.partner.products == expected.partner.products
    )

    [hide] = await HIDE.all(lead_id=lead.id)
    [expected_hide] = await LeadHide.filter(lead_id=lead.id).only("until")
    assert _state(hide) == _state(expected_hide) and hide._partial
    assert hide.until > clock.now()

    users = await USER.all(id=world.actors["mia@alpine.example"].user_id, tenant_id=world.tenant_id)
    [expected_user] = await User.filter(email="mia@alpine.example").select_related(
        "partner", "tenant"
    )
    assert _state(users[0]) == _state(expected_user)
