"""Structured logs: JSON lines with a correlation id per request, mail and job, and never a
secret or a customer's contact data, even at DEBUG, even when a customer writes in."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from lyra_bot import logs, tokens
from lyra_bot.app import bootstrap, build_web_app
from lyra_bot.models import Lead, User
from tests.email_helpers import reply_mail
from tests.slack_harness import ALPINE_CHANNEL, slack  # noqa: F401
from tests.test_observe import with_mail
from tests.world import build_world

# L-1001's customer (tests/world.py): none of this may reach a log line
CUSTOMER = ("Anna Huber", "Huber Maschinen AG", "anna@huber.example", "+41 44 555 01 01")
SECRETS = ("test-secret", "hook-secret")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Lyra's own logging set-up, JSON at DEBUG, into a buffer."""
    root = logging.getLogger()
    quiet = (*logs.PAYLOAD_LOGGERS, "mail.log", "aiohttp.access")
    saved = root.level, {n: logging.getLogger(n).level for n in quiet}
    buffer = io.StringIO()
    logs.configure(fmt="json", level="DEBUG", stream=buffer)
    # the test's own SMTP server (aiosmtpd, in this process) dumps every mail at DEBUG
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        yield buffer
    finally:
        logs.unconfigure()
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def assert_clean(text: str, *extra: str) -> None:
    for value in (*CUSTOMER, *SECRETS, *extra):
        assert value not in text, value
        assert value.lower() not in text.lower(), value


async def test_mail_claim_logs_json_with_the_request_id_and_no_contact_data(
    store, clock, smtp_server, json_logs
):
    services = bootstrap(with_mail(store, smtp_server), clock)
    world = await build_world(services.bus)
    settings = services.settings
    mia = await User.get(email="mia@alpine.example")
    lead = await Lead.get(tenant_id=world.tenant_id, ref="L-1001")
    mia_token = tokens.issue(settings, "u", world.tenant_id, mia.id, None, clock.now())
    customer_token = tokens.issue(settings, "c", world.tenant_id, lead.id, lead.id, clock.now())
    mails = {
        "claim": reply_mail(
            "Mia <mia@alpine.example>", tokens.reply_address(settings, mia_token), "claim L-1001"
        ),
        # the customer writes in, by name, and once with a token that is not theirs
        "customer": reply_mail(
            '"Anna Huber" <anna@huber.example>',
            tokens.reply_address(settings, customer_token),
            "Please call me on +41 44 555 01 01. Anna Huber, Huber Maschinen AG",
        ),
        "refused": reply_mail(
            "Anna Huber <anna@huber.example>",
            tokens.reply_address(settings, mia_token),
            "claim L-1002",
        ),
    }
    smtp_server.refuse.add("anna@huber.example")  # the SMTP error names the customer
    server = TestServer(build_web_app(services))
    await server.start_server()
    ids = {}
    try:
        async with aiohttp.ClientSession() as http:
            for name, raw in mails.items():
                resp = await http.post(
                    str(server.make_url("/inbound/email")),
                    data=raw,
                    headers={"Authorization": "Bearer hook-secret"},
                )
                assert resp.status == 200
                ids[name] = resp.headers["X-Request-ID"]
        await services.worker.run_once()
        await services.scheduler.run_job("expire-overdue")
    finally:
        await server.close()
        await services.worker.close()

    out = json_logs.getvalue()
    records = lines(json_logs)
    assert len(records) > 20 and {"time", "level", "logger", "message"} <= set(records[0])
    assert_clean(out, mia_token, customer_token)
    by_id = {name: [r for r in records if r["correlation_id"] == cid] for name, cid in ids.items()}
    # every line logged while a mail was handled carries its request's id
    assert [r["message"] for r in by_id["claim"]][-1].startswith("POST /inbound/email -> 200")
    assert any(r["message"].startswith("ClaimLead via email") for r in by_id["claim"])
    assert any("inbound mail via webhook: accepted" in r["message"] for r in by_id["claim"])
    refusal = [r for r in by_id["refused"] if r["logger"] == "lyra_bot.adapters.email.processing"]
    assert any("wrong_sender" in r["message"] and "[email]" in r["message"] for r in refusal)
    assert any(
        "inbound mail via webhook: accepted (customer)" in r["message"] for r in by_id["customer"]
    )
    # each delivery is logged under its own id, prefixed by the id of the request that wrote
    # the message: the claim's mails (one refused by the server: dead) trace back to it
    delivered = [r for r in records if " delivered via " in r["message"]]
    claim_mails = [r for r in delivered if "(claim." in r["message"]]
    assert len(claim_mails) == 2  # owner and partner; the customer's is refused
    assert all(r["correlation_id"].startswith(f"{ids['claim']}/outbox-") for r in claim_mails)
    dead = [r for r in records if "is dead" in r["message"]]
    customer_mail = [r for r in dead if "(claim.customer)" in r["message"]]
    assert customer_mail and customer_mail[0]["correlation_id"].startswith(f"{ids['claim']}/")
    assert all(r["correlation_id"].split("/outbox-")[0] in ids.values() for r in dead)
    assert all("[email]" in r["message"] for r in dead)
    jobs = [r for r in records if r["message"].startswith("ExpireOverdue")]
    assert jobs and all(r["correlation_id"].startswith("job-expire-overdue-") for r in jobs)


async def test_slack_claim_logs_the_request_id_in_the_deferred_work(slack, json_logs):  # noqa: F811
    await slack.digests()
    body = slack.sender.action_body("U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL)
    resp = await slack.session.post(
        slack.sender.url,
        data=body,
        headers={**slack.sender.headers(body), "X-Request-ID": "slack-click-0001"},
    )
    assert resp.status == 200 and resp.headers["X-Request-ID"] == "slack-click-0001"
    await slack.settle()
    # the claim answer with the customer's data went to Slack (the fake) ...
    assert any("anna@huber.example" in json.dumps(a) for a in slack.fake.of("chat.postEphemeral"))
    out = json_logs.getvalue()
    records = lines(json_logs)
    # ... but not into the log, at DEBUG, nor the bot token or signing secret
    assert_clean(out, "xoxb-test-token", "test-signing-secret")
    mine = [r["message"] for r in records if r["correlation_id"] == "slack-click-0001"]
    assert "POST /slack/events -> 200" in " ".join(mine)
    assert any(m.startswith("ClaimLead via slack") for m in mine)  # after the ack, in a worker
    assert "Slack request handled: 200" in mine


def test_text_format_and_redaction_of_what_code_might_log(json_logs):
    """The patterns themselves: addresses with their names, tokens, phones, secrets."""
    logs.add_secrets("s3cr3t-value")
    buffer = io.StringIO()
    logs.configure(fmt="text", level="DEBUG", stream=buffer)
    log = logging.getLogger("lyra.test")
    with logs.correlation("cid-text-0001"):
        log.warning(
            "from %s to %s, call %s or %s, key %s, %s, db %s",
            '"Huber, Anna" <anna@huber.example>',
            "leads+k1.u1.2.0.abc.zq5mj2xk3f4ghijklmno@lyra.test",
            "+41 44 555 01 01",
            "044 555 01 01",
            "s3cr3t-value",
            "Authorization: Bearer abc.def",
            "postgres://lyra:pw-in-url@db.internal:5432/lyra",
        )
        try:
            raise ValueError("bad address Anna Huber <anna@huber.example>")
        except ValueError:
            log.exception("failed")
    text = buffer.getvalue()
    assert "[cid-text-0001]" in text and "Traceback" in text
    assert_clean(text, "zq5mj2xk3f4ghijklmno", "s3cr3t-value", "abc.def", "044 555", "pw-in-url")
    assert "postgres://lyra:[redacted]@db.internal:5432/lyra" in text
    assert text.count("[email]") == 4 and text.count("[phone]") == 2


async def test_each_imap_mail_has_its_own_id_on_every_line(
    store, clock, smtp_server, dovecot, json_logs
):
    services = bootstrap(with_mail(store, smtp_server, dovecot), clock)
    world = await build_world(services.bus)
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(services.settings, "u", world.tenant_id, mia.id, None, clock.now())
    address = tokens.reply_address(services.settings, token)
    # a claim by Mia, and the customer trying to use Mia's reply address
    for raw in (
        reply_mail("mia@alpine.example", address, "claim L-1003"),
        reply_mail("Anna Huber <anna@huber.example>", address, "claim L-1001"),
    ):
        await asyncio.to_thread(dovecot.append, raw)
    poller = services.imap_poller()
    assert poller is not None
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
        await services.worker.close()
    assert (result.processed, result.failed) == (1, 1)
    records = lines(json_logs)
    assert_clean(json_logs.getvalue(), token)
    accepted = [r for r in records if "via imap: accepted" in r["message"]]
    moved = [r for r in records if "moved to Failed" in r["message"]]
    assert len(accepted) == 1 and len(moved) == 1
    ids = {accepted[0]["correlation_id"], moved[0]["correlation_id"]}
    assert len(ids) == 2 and all(i.startswith("mail-") for i in ids)
    refused = [r["message"] for r in records if r["correlation_id"] == moved[0]["correlation_id"]]
    assert any("via imap: rejected (wrong_sender)" in m for m in refused)
    claim = [r["message"] for r in records if r["correlation_id"] == accepted[0]["correlation_id"]]
    assert any(m.startswith("ClaimLead via email") for m in claim)
