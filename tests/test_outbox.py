"""The outbox worker: delivery through the file transport, retries with backoff, dead letters."""

from __future__ import annotations

import email
from email import policy

from lyra_bot import commands as c
from lyra_bot.domain import OutboxStatus
from lyra_bot.models import OutboxMessage
from lyra_bot.outbox import backoff_seconds
from tests.world import build_world


def _read(path):
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


async def test_worker_writes_each_mail_once_with_proper_headers(services, settings):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    assert await services.worker.run_once() == 3
    assert await services.worker.run_once() == 0
    files = sorted((settings.outbox_dir / str(world.tenant_id)).glob("*.eml"))
    assert len(files) == 3
    rows = {r.kind: r for r in await OutboxMessage.all()}
    partner = _read(next(f for f in files if "claim-partner" in f.name))
    assert partner["Message-ID"] == rows["claim.partner"].message_id
    assert partner["Auto-Submitted"] == "auto-generated"
    assert partner["Reply-To"].startswith("leads+")
    assert partner["In-Reply-To"] and partner["References"] == partner["In-Reply-To"]
    assert partner.get_body(("plain",)).get_content().count("anna@huber.example") == 1
    assert "anna@huber.example" in partner.get_body(("html",)).get_content()
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 for r in rows.values())


async def test_failures_retry_with_backoff_then_deliver(services, settings, clock):
    world = await build_world(services.bus)
    settings.outbox_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.outbox_dir.write_text("not a folder")  # every write fails
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")

    await services.worker.run_once()
    row = await OutboxMessage.get(kind="claim.partner")
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
    assert row.next_attempt_at > clock.now() and "Error" in row.last_error
    assert await services.worker.run_once() == 0  # not due yet

    settings.outbox_dir.unlink()
    clock.advance(seconds=5)
    assert await services.worker.run_once() == 3
    row = await OutboxMessage.get(id=row.id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    assert (
        _read(next(settings.outbox_dir.rglob("*claim-partner.eml")))["Message-ID"] == row.message_id
    )


async def test_dead_letter_after_the_bound_alerts_the_owner(services, settings, clock):
    world = await build_world(services.bus)
    settings.outbox_max_attempts = 2
    settings.outbox_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.outbox_dir.write_text("not a folder")
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    for _ in range(2):
        await services.worker.run_once()
        clock.advance(minutes=5)
    dead = await OutboxMessage.filter(status=OutboxStatus.DEAD, kind__startswith="claim.").count()
    assert dead == 3
    alerts = await OutboxMessage.filter(kind="outbox.dead").order_by("id")
    assert len(alerts) == 3 and {a.recipient for a in alerts} == {"owner@acme.example"}
    assert "anna@huber.example" in " ".join(a.payload["text"] for a in alerts)
    settings.outbox_dir.unlink()
    await services.worker.run_once()
    assert all(
        a.status == OutboxStatus.SENT for a in await OutboxMessage.filter(kind="outbox.dead")
    )


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    delays = [backoff_seconds(n, 30, 3600) for n in range(1, 12)]
    assert 30 <= delays[0] <= 60 and 60 <= delays[1] <= 90 and 120 <= delays[2] <= 150
    assert all(d <= 3600 + 30 for d in delays) and delays[-1] >= 3600
    assert len({backoff_seconds(3, 30, 3600) for _ in range(20)}) > 1


async def test_a_row_waiting_for_another_is_retried_soon_without_an_attempt(services, clock):
    """Another instance delivering an earlier message to the same place is not a failure:
    no backoff (30 s and growing by default), no attempt counted."""
    from lyra_bot.outbox import Waiting

    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    transport = services.worker.transports["email"]
    real_send = transport.send

    async def busy(row: OutboxMessage) -> None:
        raise Waiting("an earlier message is being delivered elsewhere")

    transport.send = busy  # type: ignore[method-assign]
    await services.worker.run_once()
    rows = await OutboxMessage.all()
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in rows)
    assert all(0 < (r.next_attempt_at - clock.now()).total_seconds() <= 1 for r in rows)
    transport.send = real_send  # type: ignore[method-assign]
    clock.advance(seconds=1)
    assert await services.worker.run_once() == len(rows)
    assert await OutboxMessage.filter(status=OutboxStatus.SENT).count() == len(rows)
