"""Operations over real HTTP: /readyz says whether Lyra can work and how its transports
fare, /metrics counts what really happened (a claim by mail through the webhook, a Slack
click, an expired claim, a dead letter), every response carries its request id."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from lyra_bot.adapters.email.imap import ImapPoller
from prometheus_client.parser import text_string_to_metric_families

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.app import bootstrap, build_web_app
from lyra_bot.config import Settings
from lyra_bot.db import close_db, init_db
from lyra_bot.models import User
from tests.conftest import make_settings
from tests.email_helpers import reply_mail
from tests.mailservers import free_port
from tests.slack_harness import ALPINE_CHANNEL, slack  # noqa: F401
from tests.world import build_world


def with_mail(store: Settings, smtp=None, imap=None, **extra) -> Settings:
    update: dict = {"inbound_webhook_secret": "hook-secret", **extra}
    if smtp is not None:
        update.update(smtp_host=smtp.host, smtp_port=smtp.port, smtp_tls="none")
    if imap is not None:
        update.update(
            imap_host=imap.host,
            imap_port=imap.port,
            imap_username=imap.user,
            imap_password=imap.password,
            imap_tls="none",
            imap_poll_seconds=0.2,
        )
    return store.model_validate({**store.model_dump(), **update})


class Scrape:
    """The samples of one /metrics answer."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: aiohttp.ClientSession, base: str) -> Scrape:
    async with http.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return Scrape(await resp.text())


async def test_readyz_reports_database_migrations_and_smtp_health(store, clock, smtp_server):
    services = bootstrap(with_mail(store, smtp_server), clock)
    world = await build_world(services.bus)
    server = TestServer(build_web_app(services))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{base}/readyz")
            body = await resp.json()
            assert resp.status == 200 and body["status"] == "ready", body
            assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
            assert body["transports"] == {
                "smtp": {"last_success": None, "last_failure": None, "last_error": None, "ok": None}
            }
            # SMTP goes away while a claim's mails wait: still ready (the outbox keeps them),
            # but the failure shows, without the recipient's address.
            await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
            smtp_server.stop()
            await services.worker.run_once()
            body = await (await http.get(f"{base}/readyz")).json()
            smtp = body["transports"]["smtp"]
            assert body["status"] == "ready" and smtp["ok"] is False and smtp["last_failure"]
            assert smtp["last_error"] and "@" not in smtp["last_error"]
            before = await scrape(http, base)
            assert before("lyra_outbox_pending", channel="email") == 3
            assert before("lyra_outbox_delivery_failures_total", channel="email", outcome="retry")
            assert before("lyra_transport_last_failure_timestamp_seconds", transport="smtp") > 0
            # ... and comes back: the queue drains, the transport is healthy again
            smtp_server.start()
            clock.advance(minutes=5)
            assert await services.worker.run_once() == 3
            body = await (await http.get(f"{base}/readyz")).json()
            assert body["transports"]["smtp"]["ok"] is True
            after = await scrape(http, base)
            assert after("lyra_outbox_pending", channel="email") == 0
            assert after("lyra_outbox_delivered_total", channel="email") == 3
            assert after("lyra_outbox_delivery_latency_seconds_count", channel="email") == 3
            # the messages waited 5 minutes (the frozen clock moved): the histogram says so
            assert (
                after("lyra_outbox_delivery_latency_seconds_bucket", channel="email", le="60.0")
                == 0
            )
            assert (
                after("lyra_outbox_delivery_latency_seconds_bucket", channel="email", le="300.0")
                == 3
            )
    finally:
        await server.close()
        await services.worker.close()


async def test_readyz_is_503_with_reasons(tmp_path: Path, clock):
    cases = {
        # a database that cannot be opened
        f"sqlite://{tmp_path}/missing-dir/lyra.db": "database: OperationalError",
        # a database nobody migrated
        f"sqlite://{tmp_path}/empty.db": "migrations not applied: models.0001_initial",
    }
    for url, reason in cases.items():
        settings = make_settings(url, tmp_path)
        await init_db(settings)
        server = TestServer(build_web_app(bootstrap(settings, clock)))
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                resp = await http.get(str(server.make_url("/readyz")))
                body = await resp.json()
                assert resp.status == 503 and body["status"] == "not ready"
                assert body["reasons"][0].startswith(reason), body
                health = await http.get(str(server.make_url("/healthz")))
                assert health.status == 200  # alive, just not ready
        finally:
            await server.close()
            await close_db()


async def test_metrics_count_a_claim_by_mail_and_what_else_comes_in(store, clock, smtp_server):
    services = bootstrap(with_mail(store, smtp_server, outbox_max_attempts=1), clock)
    world = await build_world(services.bus)
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(services.settings, "u", world.tenant_id, mia.id, None, clock.now())
    address = tokens.reply_address(services.settings, token)
    claim = reply_mail("Mia <mia@alpine.example>", address, "claim L-1001")
    out_of_office = reply_mail(
        "mia@alpine.example", address, "I am away", headers={"Auto-Submitted": "auto-replied"}
    )
    forged = reply_mail(
        "mia@alpine.example", "leads+k1.u1.1.0.zz.aaaaaaaaaaaaaaaaaaaa@lyra.test", "claim L-1002"
    )
    smtp_server.refuse.add("anna@huber.example")  # the customer's mail bounces: a dead letter
    server = TestServer(build_web_app(services))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    auth = {"Authorization": "Bearer hook-secret", "X-Request-ID": f"test-{uuid.uuid4().hex}"}
    try:
        async with aiohttp.ClientSession() as http:
            for raw in (claim, claim, out_of_office, forged):
                resp = await http.post(f"{base}/inbound/email", data=raw, headers=auth)
                assert resp.status == 200
                assert resp.headers["X-Request-ID"] == auth["X-Request-ID"]
            await services.worker.run_once()
            clock.advance(hours=49)  # past the 48 h deadline
            result = await services.scheduler.run_job("expire-overdue")
            assert result.ok and result.count == 1, result
            m = await scrape(http, base)
    finally:
        await server.close()
        await services.worker.close()
    inbound = "lyra_inbound_mails_total"
    assert m(inbound, source="webhook", outcome="accepted", reason="commands") == 1
    assert m(inbound, source="webhook", outcome="duplicate", reason="") == 1
    assert m(inbound, source="webhook", outcome="auto_reply", reason="auto_reply") == 1
    assert m(inbound, source="webhook", outcome="rejected", reason="token_invalid") == 1
    assert m("lyra_commands_total", kind="ClaimLead", result="ok") == 1
    assert m("lyra_commands_total", kind="ClaimLead", result="duplicate") == 1
    assert m("lyra_commands_total", kind="ExpireOverdue", result="ok") >= 1
    assert m("lyra_command_duration_seconds_count", kind="ClaimLead") == 2
    assert m("lyra_claims_total", channel="email") == 1
    assert m("lyra_lapses_total") == 1
    assert m("lyra_outbox_dead", channel="email") == 1
    assert m("lyra_outbox_delivery_failures_total", channel="email", outcome="dead") == 1
    assert m("lyra_outbox_delivered_total", channel="email") >= 3
    assert m("lyra_transport_last_success_timestamp_seconds", transport="smtp") > 0
    route = {"route": "/inbound/email", "method": "POST", "status": "200"}
    assert m("lyra_http_request_duration_seconds_count", **route) == 4


async def test_metrics_count_a_slack_click_and_its_ack(slack):  # noqa: F811
    base = slack.sender.url.rsplit("/slack/", 1)[0]
    await slack.digests()
    status, _ = await slack.click("U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL)
    assert status == 200
    body = slack.sender.action_body("U0MIA", "lyra.claim", "L-1002", channel=ALPINE_CHANNEL)
    forged = await slack.session.post(
        slack.sender.url,
        data=body,
        headers={**slack.sender.headers(body), "X-Slack-Signature": "v0=bad"},
    )
    assert forged.status == 401
    await slack.settle()
    m = await scrape(slack.session, base)
    assert m("lyra_slack_ack_seconds_count", kind="interactive") == 1
    assert m("lyra_slack_ack_seconds_bucket", kind="interactive", le="1.0") == 1
    assert m("lyra_slack_ack_seconds_count", kind="rejected") == 1
    assert m("lyra_claims_total", channel="slack") == 1
    assert m("lyra_commands_total", kind="ClaimLead", result="ok") == 1
    assert m("lyra_outbox_delivered_total", channel="slack") >= 1
    assert m("lyra_outbox_pending", channel="slack") == 0
    assert m("lyra_transport_last_success_timestamp_seconds", transport="slack") > 0
    ready = await (await slack.session.get(f"{base}/readyz")).json()
    assert set(ready["transports"]) == {"file", "slack"} and ready["transports"]["slack"]["ok"]


async def test_imap_claim_and_an_imap_outage_show_in_metrics_and_readyz(
    store, clock, smtp_server, dovecot
):
    services = bootstrap(with_mail(store, smtp_server, dovecot), clock)
    world = await build_world(services.bus)
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(services.settings, "u", world.tenant_id, mia.id, None, clock.now())
    raw = reply_mail(
        "mia@alpine.example", tokens.reply_address(services.settings, token), "claim L-1003"
    )
    await asyncio.to_thread(dovecot.append, raw)
    poller = services.imap_poller()
    assert poller is not None
    # the same service, but its IMAP server is gone (nothing listens on that port)
    down = services.settings.model_copy(update={"imap_port": free_port()})
    dead = ImapPoller(down, services.mail)
    server = TestServer(build_web_app(services))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        assert (await poller.poll_once()).processed == 1
        async with aiohttp.ClientSession() as http:
            m = await scrape(http, base)
            assert (
                m("lyra_inbound_mails_total", source="imap", outcome="accepted", reason="commands")
                == 1
            )
            assert m("lyra_claims_total", channel="email") == 1
            ready = await (await http.get(f"{base}/readyz")).json()
            assert ready["transports"]["imap"]["ok"] is True
            stop = asyncio.Event()
            task = asyncio.create_task(dead.run_forever(stop))
            for _ in range(100):
                if services.bus.metrics.transports["imap"].last_failure:
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 5)
            resp = await http.get(f"{base}/readyz")
            imap = (await resp.json())["transports"]["imap"]
            assert resp.status == 200 and imap["ok"] is False and "Connection" in imap["last_error"]
    finally:
        await server.close()
        await poller.close()
        await dead.close()
        await services.worker.close()


def test_each_app_counts_for_itself(tmp_path: Path):
    """Two apps in one process keep separate registries (no clash, no shared counts)."""
    one = bootstrap(make_settings(f"sqlite://{tmp_path}/a.db", tmp_path))
    two = bootstrap(make_settings(f"sqlite://{tmp_path}/b.db", tmp_path))
    one.bus.metrics.claims.labels("email").inc()
    assert b'lyra_claims_total{channel="email"} 1.0' in one.bus.metrics.render()
    assert b"lyra_claims_total{" not in two.bus.metrics.render()
