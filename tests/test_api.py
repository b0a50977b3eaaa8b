"""The intake API as a web form or CRM uses it: add, follow and withdraw leads over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3

from limits import RateLimitItemPerMinute
from lyra_bot.adapters.api import ROUTES, openapi

from lyra_bot import commands as c
from lyra_bot.domain import LEAD_FIELDS
from lyra_bot.models import AuditEvent, Disclosure, InboundKey, Lead
from tests.api_harness import Api
from tests.cli_helpers import cli, cli_json, lyra_env

LEADS = "/api/v1/leads"
FORM = {
    "product": "Firewall",
    "region": "ch-zh",
    "industry": "Retail",
    "need": "Firewall for 3 shops",
    "company": "Velo Zürich GmbH",
    "contact_name": "Lea Frei",
    "email": "Lea@Velo.example",
    "phone": "+41 44 555 77 77",
    "legal_basis": "consent",
    "consent_source": "web form",
    "consent_at": "2026-11-01T08:00:00Z",
}


async def test_add_follow_and_withdraw_a_lead(api: Api):
    status, _, created = await api.call("POST", LEADS, json=FORM)
    assert status == 201, created
    assert created["status"] == "open" and created["ref"].startswith("L-")
    ref = created["ref"]
    lead = await Lead.get(tenant_id=api.world.tenant_id, ref=ref)
    assert (lead.source, lead.email, lead.region, lead.legal_basis) == (
        "api",
        "lea@velo.example",
        "CH-ZH",
        "consent",
    )

    # A partner claims it; the owner's view shows the claim and the history.
    await api.world.ok(c.ClaimLead(ref), "mia@alpine.example")
    status, _, view = await api.call("GET", f"{LEADS}/{ref.lower()}")
    assert status == 200, view
    assert view["status"] == "claimed" and view["company"] == "Velo Zürich GmbH"
    assert (view["legal_basis"], view["consent_source"]) == ("consent", "web form")
    assert view["consent_at"].startswith("2026-11-01T08:00:00")
    assert [cl["partner"] for cl in view["claims"]] == ["Alpine"]
    assert [(e["event"], e["channel"]) for e in view["history"]] == [
        ("lead.added", "api"),
        ("lead.claimed", "test"),
    ]
    # Showing customer data is logged like every owner view.
    disclosure = await Disclosure.get(lead_id=lead.id)
    assert disclosure.channel == "api" and "email" in disclosure.fields_shown

    status, _, body = await api.call("POST", f"{LEADS}/{ref}/withdraw", json={"reason": "sold"})
    assert (status, body["status"]) == (200, "withdrawn"), body
    assert (await Lead.get(id=lead.id)).status == "withdrawn"
    status, _, body = await api.call("POST", f"{LEADS}/{ref}/withdraw")
    assert (status, body["error"]) == (409, "invalid_transition")
    status, _, body = await api.call("GET", f"{LEADS}/L-999999")
    assert (status, body["error"]) == (404, "unknown_lead")


async def test_invalid_input_is_422_naming_each_field_and_adds_nothing(api: Api):
    before = await Lead.all().count()
    cases = [
        ({"region": "CH"}, {"product"}),
        ({"product": "VPN", "region": "Zürich!"}, {"region"}),
        ({"product": "VPN", "region": "CH", "email": "not-an-address"}, {"email"}),
        ({"product": "VPN", "region": "CH", "colour": "red"}, {"colour"}),
        (
            {"product": "VPN", "region": "CH", "legal_basis": "consent"},
            {"consent_source", "consent_at"},
        ),
        ({"product": "VPN", "region": "CH", "legal_basis": "legitimate_interest"}, {"legal_note"}),
        ({"product": "VPN", "region": "CH", "need": "x" * 281}, {"need"}),
        ({"product": 7, "region": "CH"}, {"product"}),
        ({"product": "VPN", "region": "CH", "legal_basis": "whim"}, {"legal_basis"}),
    ]
    for body, fields in cases:
        status, _, answer = await api.call("POST", LEADS, json=body)
        assert status == 422, (body, answer)
        assert answer["error"] == "invalid_input"
        assert {e["field"] for e in answer["errors"]} >= fields, (body, answer)
    status, _, answer = await api.call(
        "POST", LEADS, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, answer["error"]) == (422, "invalid_input")
    assert await Lead.all().count() == before


async def test_a_possible_duplicate_is_held(api: Api):
    first = await api.add(email="same@customer.example")
    second = await api.add(email="same@customer.example")
    assert first["status"] == "open"
    assert second["status"] == "held" and first["ref"] in second["hold_reason"]
    again = await api.add(email="same@customer.example", allow_duplicate=True)
    assert again["status"] == "open"


async def test_idempotency_key_gives_the_first_answer_and_adds_once(api: Api):
    headers = {"Idempotency-Key": "form-42"}
    s1, h1, first = await api.call("POST", LEADS, json=FORM, headers=headers)
    s2, h2, second = await api.call("POST", LEADS, json=FORM, headers=headers)
    assert (s1, s2) == (201, 201) and first == second
    assert "Idempotent-Replayed" not in h1 and h2["Idempotent-Replayed"] == "true"
    assert await Lead.filter(tenant_id=api.world.tenant_id, email="lea@velo.example").count() == 1

    # Concurrent retries of one request: one lead.
    headers = {"Idempotency-Key": "form-43"}
    answers = await asyncio.gather(
        *(
            api.call("POST", LEADS, json={**FORM, "email": "x@y.example"}, headers=headers)
            for _ in range(5)
        )
    )
    assert {a[0] for a in answers} == {201} and len({a[2]["ref"] for a in answers}) == 1
    assert await Lead.filter(email="x@y.example").count() == 1

    # Keys are scoped per tenant: globex's "form-42" is its own.
    status, _, other = await api.call(
        "POST", LEADS, key="globex", json=FORM, headers={"Idempotency-Key": "form-42"}
    )
    assert status == 201 and other["ref"] != "" and "Idempotent-Replayed" not in other
    assert (
        await Lead.filter(tenant_id=api.world.other_tenant_id, email="lea@velo.example").count()
        == 1
    )
    assert await InboundKey.filter(key__startswith="api:").count() == 3

    # The same key with another body is refused, not taken for a retry: nothing is lost.
    status, _, answer = await api.call(
        "POST",
        LEADS,
        json={**FORM, "email": "other@velo.example"},
        headers={"Idempotency-Key": "form-42"},
    )
    assert (status, answer["error"]) == (422, "idempotency_key_reused"), answer
    assert not await Lead.filter(email="other@velo.example").exists()

    # A refused request is answered the same way again, and a bad key is refused.
    headers = {"Idempotency-Key": "form-44"}
    bad = {"product": "VPN", "region": "CH", "ref": "L-1001"}  # L-1001 is taken
    s1, _, a1 = await api.call("POST", LEADS, json=bad, headers=headers)
    s2, _, a2 = await api.call("POST", LEADS, json=bad, headers=headers)
    assert s1 == s2 == 422 and a1 == a2
    status, _, answer = await api.call(
        "POST", LEADS, json=FORM, headers={"Idempotency-Key": "with space"}
    )
    assert status == 422 and answer["errors"][0]["field"] == "Idempotency-Key"


async def test_withdraw_is_idempotent_with_a_key(api: Api):
    ref = (await api.add())["ref"]
    headers = {"Idempotency-Key": "w-1"}
    s1, _, a1 = await api.call("POST", f"{LEADS}/{ref}/withdraw", headers=headers)
    s2, h2, a2 = await api.call("POST", f"{LEADS}/{ref}/withdraw", headers=headers)
    assert (s1, s2) == (200, 200) and a1 == a2 and h2["Idempotent-Replayed"] == "true"
    lead = await Lead.get(tenant_id=api.world.tenant_id, ref=ref)
    assert await AuditEvent.filter(lead_id=lead.id, kind="lead.withdrawn").count() == 1


async def test_the_openapi_document_is_served_and_generated_from_the_models(api: Api):
    status, _, doc = await api.call("GET", "/api/v1/openapi.json", key=None)
    assert status == 200 and doc == openapi()
    assert doc["openapi"].startswith("3.")
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert operations == {(r.method.upper(), "/api/v1" + r.path) for r in ROUTES}
    lead_in = doc["components"]["schemas"]["LeadIn"]
    assert set(lead_in["properties"]) == set(LEAD_FIELDS) | {"allow_duplicate"}
    assert lead_in["required"] == ["product", "region"]
    assert lead_in["additionalProperties"] is False
    assert lead_in["properties"]["need"]["maxLength"] == 280
    create = doc["paths"]["/api/v1/leads"]["post"]
    assert {"201", "401", "413", "422", "429"} <= set(create["responses"])


async def test_requests_per_key_are_limited_with_retry_after(api: Api):
    api.services.bus.rate_limits.api = RateLimitItemPerMinute(3)
    for _ in range(3):
        status, _, _ = await api.call("GET", f"{LEADS}/{api.world.refs[0]}")
        assert status == 200
    status, headers, body = await api.call("POST", LEADS, json=FORM)
    assert status == 429 and body["error"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "3 a minute" in body["message"]
    assert not await Lead.filter(email="lea@velo.example").exists()
    # Another tenant's key has its own budget.
    status, _, _ = await api.call("GET", f"{LEADS}/{api.world.other_refs[0]}", key="globex")
    assert status == 200


def test_api_keys_from_the_cli_are_shown_once_and_stored_hashed(tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "keys.db")
    env = lyra_env(f"sqlite://{tmp_path / 'keys.db'}", tmp_path)
    cli(env, "tenant", "add", "acme", "--name", "Acme", "--owner-email", "o@acme.example")
    created = cli(env, "tenant", "api-key", "create", "acme", "--name", "CRM").stdout
    key = created.strip().splitlines()[-1]
    assert key.startswith("lyra_") and len(key) > 50
    listed = cli_json(env, "tenant", "api-key", "list", "acme")["keys"]
    assert [(k["id"], k["name"], k["revoked_at"]) for k in listed] == [(1, "CRM", None)]
    assert key not in str(listed)
    with sqlite3.connect(tmp_path / "keys.db") as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and hashlib.sha256(key.encode()).hexdigest() in dump
    cli(env, "tenant", "api-key", "revoke", "acme", "1")
    with sqlite3.connect(tmp_path / "keys.db") as db:
        [(revoked_at,)] = db.execute("SELECT revoked_at FROM api_key").fetchall()
    assert revoked_at is not None
