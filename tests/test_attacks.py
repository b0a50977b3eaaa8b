"""Attacks, one place: each listed attack is answered safely, here or in the test named below.

``PROVEN_ELSEWHERE`` maps attacks already proven in other modules to their tests (a test here
checks they still exist); the rest are proven in this module.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import json
import logging
import re
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from lyra_bot.adapters.api import ROUTES
from lyra_bot.adapters.email.smtp import mime_bytes

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.config import Settings
from lyra_bot.models import (
    ApiKey,
    AuditEvent,
    Claim,
    ContactCheck,
    Lead,
    OutboxMessage,
    SlackInbox,
    User,
)
from lyra_bot.ratelimit import RateLimits
from tests.api_harness import Api, api_key
from tests.email_helpers import address_for, reply_mail
from tests.slack_fake import SlackSender
from tests.slack_harness import ALPINE_CHANNEL, slack  # noqa: F401
from tests.world import build_world

PROVEN_ELSEWHERE = {
    "forged reply token (guessed, tampered, garbage)": [
        "tests/test_tokens.py::test_tampering_foreign_keys_and_garbage_are_refused",
        "tests/test_email_inbound.py::test_corpus_through_the_bus",  # guessed_token.eml
    ],
    "foreign reply token (another key, another tenant)": [
        "tests/test_email_inbound.py::test_foreign_key_and_other_tenants_tokens_are_refused",
    ],
    "expired reply token": [
        "tests/test_tokens.py::test_expiry_and_key_rotation",
        "tests/test_email_inbound.py::test_corpus_through_the_bus",  # expired_token.eml
    ],
    "replayed reply mail": [
        "tests/test_email_inbound.py::test_claim_by_reply_runs_once_however_often_it_arrives",
    ],
    "spoofed From": [
        "tests/test_email_inbound.py::test_colleague_answering_a_forwarded_digest_is_refused",
        "tests/test_email_inbound.py::test_corpus_through_the_bus",  # spoofed_sender.eml
    ],
    "a command hidden in the quoted mail (any client, any language, no quote marks)": [
        "tests/test_email_parse.py::test_commands_never_come_from_quoted_text",
        "tests/test_email_parse.py::test_corpus_mail_yields_exactly_the_expected_commands",
        "tests/test_email_inbound.py::test_lyra_s_own_text_below_a_reply_is_quoted_even_without_marker",
        "tests/test_email_inbound.py::test_a_command_in_doubt_stops_the_whole_mail_and_the_answer_asks",
    ],
    "Slack bad signature, stale timestamp, unsigned": [
        "tests/test_slack_claims.py::test_forged_or_stale_requests_get_401_and_change_nothing",
    ],
    "Slack retried body (Slack's own retries)": [
        "tests/test_slack_claims.py::test_retried_request_is_processed_once",
    ],
    "Slack mention / link injection in lead text": [
        "tests/test_slack_setup.py::test_digest_blocks_escape_lead_text_end_to_end",
    ],
    "CR/LF in mail headers": [
        "tests/test_email_e2e.py::test_header_values_never_carry_line_breaks"
    ],
    "CSV formula injection in exports": [
        "tests/test_report_cli.py::test_csv_cells_that_spreadsheets_would_run_are_neutralised",
    ],
    "reports across tenants": [
        "tests/test_reports.py::test_reports_never_include_another_tenants_data",
    ],
    "API fuzzing from the OpenAPI document": [
        "tests/test_api_fuzz.py::test_fuzzing_the_api_from_its_openapi_document_finds_no_5xx",
    ],
    "API requests per key": [
        "tests/test_api.py::test_requests_per_key_are_limited_with_retry_after",
    ],
    "link scanner answering the contact check (GET acts)": [
        "tests/test_contact_checks.py::test_no_link_alerts_the_owner_once_and_a_reused_link_changes_nothing",
    ],
    "one token, several powers (purpose inside the MAC)": [
        "tests/test_tokens.py::test_a_token_works_only_for_its_purpose",
    ],
    "erase misses data (columns, JSON, SQLite free pages and WAL)": [
        "tests/test_privacy.py::test_erase_leaves_no_trace_in_any_column_or_in_the_sqlite_files",
        "tests/test_privacy.py::test_every_text_and_json_column_is_classified_for_erasure",
    ],
    "a reply address of another partner user outranked by References": [
        "tests/test_attacks.py::test_references_never_outrank_another_users_valid_reply_address",
    ],
    "a suite that depends on the hour (start-up sweeps, leases, e2e at four instants)": [
        "tests/test_email_e2e.py::test_lyra_bot_run_polls_imap_and_sends_over_smtp",
        "tests/test_service.py::"
        "test_run_serves_health_delivers_mail_from_other_processes_and_stops_on_sigterm",
        "tests/test_lease.py::test_one_holder_at_a_time_and_takeover_after_expiry",
        "tests/test_digest_cadence.py::"
        "test_start_up_sends_todays_digests_only_when_due_at_each_instant",
    ],
    "database connections cut mid-load (a lane that never recovers)": [
        "tests/test_faults.py::test_database_connections_terminated_mid_load_lose_and_double_nothing",
        "tests/test_transactions.py::"
        "test_a_connection_that_cannot_be_handed_back_does_not_stick_to_the_task",
    ],
    "a delivered answer sent twice (partial outbox batches)": [
        "tests/test_outbox_partial.py::"
        "test_rows_delivered_before_a_failure_whose_recording_fails_are_not_sent_again",
    ],
}


def test_attacks_proven_elsewhere_still_have_their_tests():
    for attack, tests in PROVEN_ELSEWHERE.items():
        for test in tests:
            path, name = test.split("::")
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            assert callable(getattr(module, name, None)), (attack, test)


# --- the intake API: keys and tenants ------------------------------------------------------


async def globex_only_lead(world: Any) -> str:
    """A reference only globex has (both tenants number their leads from L-1001)."""
    cmd = c.AddLead("Firewall", "CH", company="Secret Corp", email="olga@other.example")
    reply = await world.ok(dataclasses.replace(cmd, ref="L-5000"), world.other_owner)
    assert not await Lead.exists(tenant_id=world.tenant_id, ref="L-5000")
    return reply.data["lead"]["ref"]


def _paths(ref: str) -> list[tuple[str, str]]:
    return [(r.method.upper(), "/api/v1" + r.path.replace("{ref}", ref)) for r in ROUTES]


async def test_api_without_a_valid_key_is_401_for_every_route_and_does_nothing(api: Api):
    revoked_id, revoked = await api_key(api.services, api.world.tenant_id, "old")
    reply = await api.services.bus.dispatch(c.RevokeApiKey(revoked_id), api.world.owner)
    assert reply.ok
    again = await api.services.bus.dispatch(c.RevokeApiKey(revoked_id), api.world.owner)
    assert (again.ok, again.message) == (False, f"API key {revoked_id} is already revoked.")
    prefix = api.key.split("_")[1]
    wrong_secret = f"lyra_{prefix}_{'A' * 43}"  # a real key's public part, a guessed secret
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer lyra_"},
        {"Authorization": f"Basic {api.key}"},
        {"Authorization": f"Token {api.key}"},
        {"Authorization": f"Bearer {api.key[:-1]}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": "Bearer ' OR 1=1 --"},
    ]
    before = (await Lead.all().count(), await AuditEvent.all().count())
    answers = set()
    for method, path in _paths(api.world.refs[0]):
        for headers in attempts:
            status, got, body = await api.call(
                method, path, key=None, headers=headers, json={"product": "X", "region": "CH"}
            )
            assert status == 401, (method, path, headers, body)
            assert got["WWW-Authenticate"].startswith("Bearer")
            answers.add(json.dumps(body))
    assert len(answers) == 1  # one answer for every failure: nothing to learn from it
    assert (await Lead.all().count(), await AuditEvent.all().count()) == before
    assert (await Lead.get(tenant_id=api.world.tenant_id, ref=api.world.refs[0])).status == "open"


async def test_another_tenants_key_and_refs_are_unknown_on_every_route(api: Api):
    world = api.world
    mine, theirs = world.refs[-1], await globex_only_lead(world)
    leads_before = {lead.id: lead.status for lead in await Lead.all()}
    # globex's key on acme's references, and acme's key on globex's: as if they did not exist.
    for key, ref, secret in (("globex", mine, "anna@huber.example"), ("acme", theirs, "olga")):
        for method, path in _paths(ref):
            if path == "/api/v1/leads":
                continue
            status, _, body = await api.call(method, path, key=key)
            assert (status, body["error"]) == (404, "unknown_lead"), (key, path, body)
            assert secret not in json.dumps(body)
    assert {lead.id: lead.status for lead in await Lead.all()} == leads_before
    # A lead added with globex's key belongs to globex, whatever the body says.
    status, _, body = await api.call(
        "POST", "/api/v1/leads", key="globex", json={"product": "VPN", "region": "CH"}
    )
    assert status == 201
    lead = await Lead.get(id=max(leads_before) + 1)
    assert lead.tenant_id == world.other_tenant_id and lead.ref == body["ref"]
    status, _, body = await api.call(
        "POST", "/api/v1/leads", json={"product": "VPN", "region": "CH", "tenant_id": 2}
    )
    assert status == 422 and body["errors"][0]["field"] == "tenant_id"
    # Keys cannot be revoked across tenants either.
    other_key = await ApiKey.get(tenant_id=world.other_tenant_id)
    reply = await api.services.bus.dispatch(c.RevokeApiKey(other_key.id), world.owner)
    assert not reply.ok and (await ApiKey.get(id=other_key.id)).revoked_at is None


def _dummy(field: dataclasses.Field, ref: str) -> Any:
    if field.name == "lead_ref":
        return ref
    kind = str(field.type)
    if "int" in kind:
        return 3
    if "tuple" in kind:
        return ("company",)
    if "bool" in kind:
        return True
    return {"outcome": "won", "legal_basis": "consent"}.get(field.name, "x")


async def test_every_command_on_another_tenants_lead_is_refused_and_changes_nothing(bus):
    from tests.world import build_world

    world = await build_world(bus)
    theirs = await globex_only_lead(world)
    lead = await Lead.get(tenant_id=world.other_tenant_id, ref=theirs)
    events, outbox = await AuditEvent.all().count(), await OutboxMessage.all().count()
    by_ref = [
        cls
        for cls in vars(c).values()
        if isinstance(cls, type)
        and issubclass(cls, c.Command)
        and dataclasses.is_dataclass(cls)
        and "lead_ref" in {f.name for f in dataclasses.fields(cls)}
    ]
    assert len(by_ref) >= 8, by_ref
    tried = 0
    for cls in by_ref:
        required = [
            f
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        values = {f.name: _dummy(f, theirs) for f in required}
        cmd = cls(**{**values, "lead_ref": theirs})
        for who in (world.owner, world.actors["mia@alpine.example"]):
            reply = await bus.dispatch(cmd, who)
            # Refused, or (a listing filtered by the reference) an empty answer.
            assert not reply.ok or not any(reply.data.values()), (cmd, who.role, reply)
            assert "Secret Corp" not in reply.message and "olga" not in json.dumps(reply.data)
            tried += 1
    assert tried >= 16
    assert (await Lead.get(id=lead.id)).status == lead.status
    assert await AuditEvent.all().count() == events
    assert await OutboxMessage.all().count() == outbox


# --- the intake API: bodies ------------------------------------------------------------------


async def test_oversized_bodies_get_413_and_add_nothing(api: Api):
    limit = api.services.settings.api_max_bytes
    big = {"product": "VPN", "region": "CH", "notes": "n" * (limit + 10)}
    status, _, body = await api.call("POST", "/api/v1/leads", json=big)
    assert (status, body["error"]) == (413, "too_large")

    async def chunked():  # no Content-Length: the server counts while it reads
        yield b'{"product": "VPN", "region": "CH", "notes": "'
        for _ in range(limit // 4096 + 2):
            yield b"n" * 4096
        yield b'"}'

    status, _, body = await api.call(
        "POST", "/api/v1/leads", data=chunked(), headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]) == (413, "too_large")
    ref = api.world.refs[0]
    status, _, _ = await api.call("POST", f"/api/v1/leads/{ref}/withdraw", data=b"x" * (limit + 1))
    assert status == 413
    assert not await Lead.filter(notes__startswith="nnn").exists()
    assert (await Lead.get(tenant_id=api.world.tenant_id, ref=ref)).status == "open"
    # Just under the limit is fine (a long lead is refused by its field limits, not a crash).
    status, _, body = await api.call("POST", "/api/v1/leads", json={**big, "notes": "n" * 5000})
    assert status == 201, body


async def test_very_long_references_and_keys_are_refused_before_any_lookup(api: Api):
    for method, path in _paths("L-" + "9" * 5000):
        if "9999" in path:
            status, _, body = await api.call(method, path, headers={"Idempotency-Key": "k"})
            assert (status, body["error"]) == (404, "unknown_lead"), (path[:40], body)
    ref = api.world.refs[0]
    status, _, body = await api.call(
        "POST", f"/api/v1/leads/{ref}/withdraw", headers={"Idempotency-Key": "k" * 201}
    )
    assert status == 422 and body["errors"][0]["field"] == "Idempotency-Key"
    # A read with an Idempotency-Key is simply a read, every time (nothing stored).
    for _ in range(2):
        status, _, body = await api.call(
            "GET", f"/api/v1/leads/{ref}", headers={"Idempotency-Key": "read-1"}
        )
        assert status == 200 and body["company"] == "Huber Maschinen AG"
    assert (await Lead.get(tenant_id=api.world.tenant_id, ref=ref)).status == "open"


HOSTILE = {
    "product": "Firewall",
    "region": "CH-ZH",
    "industry": "<b>Retail</b>",
    "need": "<script>alert('need')</script> <!channel> <https://evil.example|click> & co",
    "company": "Evil\r\nBcc: victim@evil.example <img src=x onerror=alert(1)>",
    "contact_name": "Eve\r\nSubject: pwned",
    "email": "eve@customer.example",
    "phone": "+41 44 555 66 66\r\nX-Injected: 1",
    "address": "Street 1\r\n\r\n<script>alert('addr')</script>",
    "notes": "<iframe src=https://evil.example></iframe> *bold* <@U0BOSS> " + "N" * 4900,
    "legal_basis": "legitimate_interest",
    "legal_note": "asked for a quote\r\nX-Injected: 2",
}


def _texts(value: Any) -> list[str]:
    """Every text a Slack payload shows (blocks sent as JSON strings included)."""
    if isinstance(value, str):
        if value[:1] in "[{":
            try:
                return _texts(json.loads(value))
            except ValueError:
                pass
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


async def test_hostile_lead_fields_via_the_api_are_inert_in_mail_and_slack(slack):  # noqa: F811
    """HTML, script, CR/LF, Slack mentions and very long values from an API client reach
    every mail of the lead's life (digest, claim to partner, owner and customer, reminder,
    lapse, stale alert: HTML part and headers) and Slack blocks as plain, escaped, bounded
    text."""
    services, world = slack.services, slack.world
    await world.ok(c.UpdateTenant(mail_customers=True), world.owner)
    _, key = await api_key(services, world.tenant_id)
    base = slack.sender.url.removesuffix("/slack/events")
    async with slack.session.post(
        f"{base}/api/v1/leads", json=HOSTILE, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status == 201, await response.text()
        ref = (await response.json())["ref"]
    lead = await Lead.get(tenant_id=world.tenant_id, ref=ref)
    assert "\r" not in lead.company + lead.contact_name + lead.phone + lead.legal_note
    assert lead.need == HOSTILE["need"]  # stored as given; escaped where it is shown

    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]
    start = services.clock.now()
    status, _ = await slack.click("U0MIA", "lyra.claim", ref, message_ts=ts)
    assert status == 200
    await slack.settle()
    assert await Claim.filter(lead_id=lead.id).count() == 1
    # The lead's later life: reminders, the lapse, the stale alert.
    system = c.Actor.system()
    for hours in (30, 47, 49):
        services.clock.advance(hours=hours - (services.clock.now() - start).total_seconds() / 3600)
        for sweep in (c.SendReminders(), c.ExpireOverdue()):
            assert (await services.bus.dispatch(sweep, system)).ok
    await slack.settle()
    services.clock.advance(days=10)
    assert (await services.bus.dispatch(c.StaleLeadAlert(), system)).ok
    await slack.settle()

    # Slack: nothing the customer typed becomes a mention, a link or markup; texts fit.
    shown = [t for call in slack.fake.calls for t in _texts(call.args)]
    joined = "\n".join(shown)
    assert "&lt;script&gt;" in joined and "&lt;!channel&gt;" in joined
    for bad in ("<!channel>", "<https://evil.example|click>", "<@U0BOSS>", "<script>", "<iframe"):
        assert bad not in joined, bad
    assert all(len(t) <= 3000 for t in shown)
    methods = {call.method for call in slack.fake.calls}
    assert {"chat.postMessage", "chat.postEphemeral", "chat.update"} <= methods, methods
    [answer] = [a for a in slack.ephemerals_to("U0MIA") if ref in json.dumps(a)]
    assert "Eve Subject: pwned" in json.dumps(answer)  # the claimer sees the customer

    # Mail: one recipient per mail, no smuggled headers, HTML escaped.
    rows = await OutboxMessage.filter(tenant_id=world.tenant_id).order_by("id")
    about_lead = [
        r
        for r in rows
        if r.channel == "email" and (r.lead_id == lead.id or ref in json.dumps(r.payload))
    ]
    kinds = {r.kind for r in about_lead}
    assert {
        "digest",
        "claim.partner",
        "claim.owner",
        "claim.customer",
        "reminder.partner",
        "lapse.partner",
        "lapse.owner",
        "stale.owner",
    } <= kinds, kinds
    for row in about_lead:
        raw = mime_bytes(row, services.settings)
        msg = message_from_bytes(raw, policy=default_policy)
        assert msg.get_all("Bcc") is None and msg.get_all("X-Injected") is None, row.kind
        assert len(msg.get_all("Subject")) == 1 and len(msg.get_all("To")) == 1, row.kind
        assert "pwned" not in str(msg["Subject"]), row.kind
        assert len(msg["To"].addresses) == 1, (row.kind, msg["To"])
        for header, value in msg.items():
            assert "\r" not in str(value) and "\n" not in str(value), (row.kind, header)
        html = msg.get_body(("html",))
        if html is not None:
            content = html.get_content().lower()
            for bad in ("<script", "<iframe", "<img src=x", "<b>retail"):
                assert bad not in content, (row.kind, bad)
    partner_mail = next(r for r in about_lead if r.kind == "claim.partner")
    assert "&lt;script&gt;" in partner_mail.payload["html"]


async def test_a_captured_slack_request_replayed_verbatim_does_nothing_again(slack):  # noqa: F811
    """An attacker who captured a signed request can replay it within the 300 s window (the
    signature still holds) - it is the same action, handled once; older copies get 401."""
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]
    claim = slack.sender.action_body(
        "U0MIA", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL, message_ts=ts
    )
    captured = slack.sender.headers(claim)
    assert (await slack.send(claim, headers=captured))[0] == 200
    await slack.settle()
    for _ in range(3):
        status, _ = await slack.sender.post(slack.session, claim, headers=captured)
        assert status == 200
    await slack.settle()
    assert await Claim.all().count() == 1
    assert await OutboxMessage.filter(kind="claim.partner").count() == 1
    old = slack.sender.headers(claim, ts=int(captured["X-Slack-Request-Timestamp"]) - 301)
    assert (await slack.sender.post(slack.session, claim, headers=old))[0] == 401


# --- claims per minute, on every channel ----------------------------------------------------


async def test_claims_per_minute_are_limited_on_every_channel_with_a_clear_answer(slack):  # noqa: F811
    services = slack.services
    services.bus.rate_limits.claims = RateLimitItemPerMinute(1)
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]

    # Mia's first claim (Slack) passes; her second, by email, is refused with the reason.
    await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)
    await slack.settle()
    to = await address_for(services.settings, services.clock, "mia@alpine.example")
    outcome = await services.mail.process(
        reply_mail("Mia <mia@alpine.example>", to, "CLAIM L-1002")
    )
    [(_, refused)] = outcome.results
    assert refused.code == "rate_limited" and refused.data["retry_after"] >= 1
    [answer] = await OutboxMessage.filter(recipient="mia@alpine.example", kind__startswith="answer")
    assert "claiming too fast: at most 1 claims a minute" in answer.payload["text"]
    # ... and again in Slack.
    await slack.click("U0MIA", "lyra.claim", "L-1003", message_ts=ts)
    await slack.settle()
    assert any("claiming too fast" in json.dumps(e) for e in slack.ephemerals_to("U0MIA"))
    # The limit is per person: Max (same partner) still claims.
    await slack.click("U0MAX", "lyra.claim", "L-1002", message_ts=ts)
    await slack.settle()
    claims = await Claim.all().prefetch_related("lead", "user")
    assert sorted((cl.lead.ref, cl.user.email) for cl in claims) == [
        ("L-1001", "mia@alpine.example"),
        ("L-1002", "max@alpine.example"),
    ]


def test_a_limit_of_zero_means_no_limit():
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, claims_per_minute=0, partner_claims_per_minute=0, api_rate_per_minute=0
    )
    limits = RateLimits(settings)
    assert limits.claims is None and limits.partner_claims is None and limits.api is None


async def test_a_partner_cannot_sweep_the_pool_by_spreading_claims_over_its_users(slack):  # noqa: F811
    """The per-partner limit counts every user of the partner on every channel; a mail with
    several refused claims gets one "too fast" answer, not one per line."""
    services = slack.services
    services.bus.rate_limits.partner_claims = RateLimitItemPerMinute(2)
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]

    await slack.click("U0MIA", "lyra.claim", "L-1001", message_ts=ts)  # alpine: 1 of 2
    await slack.settle()
    to = await address_for(services.settings, services.clock, "max@alpine.example")
    outcome = await services.mail.process(
        reply_mail("Max <max@alpine.example>", to, "CLAIM L-1002\nCLAIM L-1003\nCLAIM L-1004")
    )
    assert [r.code for _, r in outcome.results] == ["claimed", "rate_limited", "rate_limited"]
    assert {r.data["per"] for _, r in outcome.results[1:]} == {"partner"}
    answers = await OutboxMessage.filter(recipient="max@alpine.example", kind__startswith="answer")
    assert len(answers) == 1, [a.payload["text"] for a in answers]
    assert "partner is claiming too fast: at most 2 claims a minute" in answers[0].payload["text"]
    # Mia (under her own limit) is refused too: her partner has used its minute.
    await slack.click("U0MIA", "lyra.claim", "L-1003", message_ts=ts)
    await slack.settle()
    assert any(
        "partner is claiming too fast" in json.dumps(e) for e in slack.ephemerals_to("U0MIA")
    )
    claims = await Claim.all().prefetch_related("lead", "user")
    assert sorted((cl.lead.ref, cl.user.email) for cl in claims) == [
        ("L-1001", "mia@alpine.example"),
        ("L-1002", "max@alpine.example"),
    ]


# --- one-click links: link scanners, and one purpose per token -----------------------------

LINK_RE = re.compile(r"https?://[^\s\"'<>]+")
ACTING = ("/check/", "/privacy/opt-out/", "/email/unsubscribe/")


async def _mails_with_every_link(world: Any, services: Any, clock: Any) -> Claim:
    """A digest (unsubscribe link), a claim (the customer's opt-out link) and, three days
    later, the customer's contact check (yes / no links)."""
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim = await Claim.get(lead__ref="L-1001", tenant_id=world.tenant_id)
    clock.set(claim.check_due_at)
    assert (await services.scheduler.run_job("customer-contact-check")).count == 1
    return claim


async def _links_in(**filters: Any) -> list[str]:
    """The paths of Lyra's links in the matching mails (text, HTML and headers)."""
    found: set[str] = set()
    for row in await OutboxMessage.filter(channel="email", **filters):
        payload = row.payload or {}
        parts = [payload.get("text", ""), payload.get("html", "")]
        parts += list((payload.get("headers") or {}).values())
        for part in parts:
            for url in LINK_RE.findall(html.unescape(str(part))):
                if url.startswith("http://127.0.0.1:8080/"):
                    found.add(urlsplit(url).path)
    return sorted(found)


async def _state(world: Any) -> tuple[Any, ...]:
    return (
        await AuditEvent.all().count(),
        await OutboxMessage.all().count(),
        list(await ContactCheck.all().values_list("answer", flat=True)),
        list(await User.all().order_by("id").values_list("digest_enabled", flat=True)),
        list(await Lead.all().order_by("id").values_list("opted_out_at", "status")),
    )


async def test_a_link_scanner_opening_every_link_changes_nothing_then_the_click_works(
    services, clock, http
):
    """Mail filters (Safe Links, Mimecast, Proofpoint) fetch every link in a mail before the
    person sees it: GET and HEAD of every link change nothing; the person's own click shows a
    page whose form (no JavaScript) POSTs, and only that acts."""
    world = await build_world(services.bus)
    claim = await _mails_with_every_link(world, services, clock)
    paths = await _links_in()
    acting = [p for p in paths if p.startswith(ACTING)]
    assert {p.split("/")[1] for p in acting} == {"check", "privacy", "email"}, paths
    before = await _state(world)
    for path in paths:
        for _ in range(2):
            assert (await http.get(path)).status < 500
        assert (await http.head(path)).status < 500
    assert await _state(world) == before

    check = [p for p in await _links_in(kind="contact_check.customer") if p.endswith("/yes")]
    opt_out = [p for p in await _links_in(kind="claim.customer") if "/opt-out/" in p]
    unsubscribe = [
        p
        for p in await _links_in(kind="digest", recipient="mia@alpine.example")
        if "/unsubscribe/" in p
    ]
    for [path] in (check, opt_out, unsubscribe):
        page = await http.get(path)
        assert page.status == 200 and '<form method="post"' in await page.text(), path
        assert (await http.post(path)).status == 200, path
    assert (await ContactCheck.get(claim_id=claim.id)).answer == "yes"
    assert not (await User.get(email="mia@alpine.example")).digest_enabled
    assert (await Lead.get(id=claim.lead_id)).opted_out_at is not None


async def test_a_token_opens_only_the_door_it_was_made_for(services, clock, http):
    """Whoever sees a reply address (a partner's, the customer's, the contact check's) cannot
    unsubscribe, opt out or answer a contact check with it, and no link is a reply address."""
    world = await build_world(services.bus)
    await _mails_with_every_link(world, services, clock)
    replies = {
        kind: tokens.token_in((await OutboxMessage.get(kind=kind)).payload["reply_to"])
        for kind in ("claim.customer", "contact_check.customer")
    }
    mia = await OutboxMessage.get(kind="digest", recipient="mia@alpine.example")
    replies["digest"] = tokens.token_in(mia.payload["reply_to"])
    before = await _state(world)
    for token in replies.values():
        for path in (
            f"/email/unsubscribe/{token}",
            f"/privacy/opt-out/{token}",
            f"/check/{token}/yes",
            f"/check/{token}/no",
        ):
            for method in (http.get, http.post):
                resp = await method(path)
                assert resp.status in {400, 404}, (path, resp.status)
    assert await _state(world) == before
    # ... and a link's token is no reply address.
    [link] = [p for p in await _links_in(kind="digest", recipient="mia@alpine.example")]
    unsubscribe = link.rsplit("/", 1)[1]
    outcome = await services.mail.process(
        reply_mail(
            "mia@alpine.example",
            tokens.reply_address(services.settings, unsubscribe),
            "CLAIM L-1002",
        )
    )
    assert outcome.reason == "token_invalid"
    assert not await Claim.filter(lead__ref="L-1002").exists()


async def test_an_unidentified_sender_learns_nothing_about_the_tenant(services, clock):
    """A stranger writing to a partner's reply address (or answering a stale mail) is told
    why nothing happened, in neutral words: no tenant name, no owner address."""
    world = await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    old = tokens.issue(
        services.settings,
        "u",
        world.tenant_id,
        (await User.get(email="mia@alpine.example")).id,
        None,
        clock.now() - timedelta(days=40),
    )
    for sender, address, reason in (
        ("spy@evil.example", to, "wrong_sender"),
        ("spy2@evil.example", tokens.reply_address(services.settings, old), "token_expired"),
    ):
        outcome = await services.mail.process(reply_mail(sender, address, "CLAIM L-1001"))
        assert outcome.reason == reason
        [answer] = await OutboxMessage.filter(recipient=sender)
        seen = json.dumps(answer.payload).lower()
        assert "acme" not in seen, (reason, answer.payload["text"])
    assert await Claim.all().count() == 0


async def test_references_never_outrank_another_users_valid_reply_address(services, clock):
    """Mia writes to Eve's (another partner's) reply address and her References carry one of
    her own Message-IDs: refused as sent to someone else. References only speak for a mail
    whose address carries no valid token."""
    from tests.world import build_world

    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
    own = await OutboxMessage.filter(recipient="mia@alpine.example", kind="claim.partner").first()
    assert own is not None
    eve_address = await address_for(services.settings, clock, "eve@romandie.example")
    mia = "Mia <mia@alpine.example>"

    attack = reply_mail(mia, eve_address, "claim L-1001", references=own.message_id)
    outcome = await services.mail.process(attack)
    assert (outcome.status, outcome.reason) == ("failed", "wrong_sender")
    assert await Claim.filter(lead__ref="L-1001").count() == 0

    inbound = services.settings.inbound_address
    plain = reply_mail(mia, inbound, "claim L-1001", references=own.message_id)
    outcome = await services.mail.process(plain)
    assert outcome.status == "processed"
    claim = await Claim.get(lead__ref="L-1001").prefetch_related("user")
    assert claim.user.email == "mia@alpine.example"


# --- Slack: the installation's workspace only; unreadable bodies and answers ---------------


async def test_a_signed_request_from_another_workspace_never_links_or_acts(slack):  # noqa: F811
    """One Slack app may be installed in several workspaces, all signing with its secret:
    a request from a workspace that is not the installation's (``auth.test``) does nothing,
    and a profile from another workspace never links a partner user by its email."""
    world, fake = slack.world, slack.fake
    await world.ok(c.AddUser("zoe@alpine.example", "Zoe", "alpine"), world.owner)
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]
    evil = SlackSender(slack.sender.url, team="T0EVIL")
    fake.add_user("U0ZOE", "zoe@alpine.example", team="T0EVIL")
    lookups = len(fake.of("users.info"))

    for body in (
        evil.action_body("U0ZOE", "lyra.claim", "L-1001", channel=ALPINE_CHANNEL, message_ts=ts),
        evil.command_body("U0ZOE", "claim L-1001", channel=ALPINE_CHANNEL),
        evil.event_body("U0ZOE"),
    ):
        status, _ = await evil.post(slack.session, body)
        assert status == 200
    await slack.settle()
    assert len(fake.of("users.info")) == lookups  # refused before any profile lookup
    # From our workspace's id, but the profile says the person belongs to another one.
    fake.add_user("U0ZOE2", "zoe@alpine.example", team="T0EVIL")
    await slack.click("U0ZOE2", "lyra.claim", "L-1001", message_ts=ts)
    await slack.settle()
    zoe = await User.get(email="zoe@alpine.example")
    assert zoe.slack_user_id is None
    assert await Claim.all().count() == 0
    # Zoe's own account in the installation's workspace links and claims.
    fake.add_user("U0ZOE3", "zoe@alpine.example")
    await slack.click("U0ZOE3", "lyra.claim", "L-1001", message_ts=ts)
    await slack.settle()
    zoe = await User.get(email="zoe@alpine.example")
    assert (zoe.slack_team_id, zoe.slack_user_id) == ("T0LYRA", "U0ZOE3")
    assert await Claim.filter(user_id=zoe.id).count() == 1


async def test_a_signed_but_unreadable_body_is_acked_logged_once_and_never_retried(
    slack,  # noqa: F811
    caplog,
):
    bodies = [
        ("payload=%7Bnot+json", False),
        ("payload=%5B1%2C2%5D", False),  # a JSON list, not an object
        ("{not json", True),
        ('"just a string"', True),
        ("[]", True),
    ]
    caplog.set_level(logging.WARNING)
    for body, json_body in bodies:
        status, _ = await slack.sender.post(slack.session, body, json_body=json_body)
        assert status == 200, body
    await slack.settle()
    assert await SlackInbox.all().count() == 0
    assert await slack.app.recover(older_than=0) == 0  # nothing stored to try again
    dropped = [r for r in caplog.records if "unreadable body" in r.getMessage()]
    assert len(dropped) == len(bodies)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_users_info_answer_that_is_not_json_is_a_failed_lookup(slack, caplog):  # noqa: F811
    """Slack (or a proxy before it) answering ``users.info`` with text, broken JSON or a JSON
    list: the person is told to try again, nothing raises, nothing is retried for ever."""
    world, fake = slack.world, slack.fake
    await world.ok(c.AddUser("ina@alpine.example", "Ina", "alpine"), world.owner)
    fake.add_user("U0INA", "ina@alpine.example")
    ts = {m.channel_id: m.ts for m in await slack.digests()}[ALPINE_CHANNEL]
    caplog.set_level(logging.WARNING)
    for body, content_type in (
        ("upstream timed out", "text/plain"),
        ('{"ok": tru', "application/json"),
        ("[1, 2]", "application/json"),
        ("<html>Bad gateway</html>", "text/html"),
    ):
        fake.answer_raw_next("users.info", body, content_type)
        status, _ = await slack.click("U0INA", "lyra.claim", "L-1002", message_ts=ts)
        assert status == 200
        await slack.settle()
        assert await SlackInbox.all().count() == 0, body
        assert (await User.get(email="ina@alpine.example")).slack_user_id is None, body
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert all(e["user"] == "U0INA" for e in slack.ephemerals_to("U0INA"))
    assert len(slack.ephemerals_to("U0INA")) == 4
    await slack.click("U0INA", "lyra.claim", "L-1002", message_ts=ts)  # Slack answers again
    await slack.settle()
    assert (await User.get(email="ina@alpine.example")).slack_user_id == "U0INA"
