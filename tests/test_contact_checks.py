"""Customer contact checks: asked once, answered once, by a one-click link over real HTTP (or
by the words of a reply), a "no" alerting the owner and counting against the partner."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.commands import Actor
from lyra_bot.domain import ClaimState
from lyra_bot.models import AuditEvent, Claim, ContactCheck, Lead, OutboxMessage, Tenant
from tests.world import build_world

LINK_RE = re.compile(r"http://\S+/check/(\S+)/(yes|no)")


async def asked(world, services, clock, ref: str = "L-1001") -> tuple[Claim, dict[str, str]]:
    """Claim ``ref`` as mia, let the tenant's 3 days pass, run the sweep: the check mail."""
    await world.ok(c.ClaimLead(ref), "mia@alpine.example")
    claim = await Claim.filter(lead__ref=ref, tenant_id=world.tenant_id).first()
    clock.set(claim.check_due_at)
    result = await services.scheduler.run_job("customer-contact-check")
    assert result.ok
    row = await OutboxMessage.get(kind="contact_check.customer", lead_id=claim.lead_id)
    links = {
        answer: f"/check/{token}/{answer}" for token, answer in LINK_RE.findall(row.payload["text"])
    }
    return claim, {**links, "reply_to": row.payload["reply_to"], "to": row.recipient}


async def test_the_customer_is_asked_once_a_few_days_after_the_claim_in_working_hours(
    services, clock
):
    world = await build_world(services.bus)  # contact_check_days defaults to 3
    clock.set(datetime(2026, 11, 2, 17, 30, tzinfo=UTC))  # Monday 18:30 in Zurich
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim = await Claim.get(lead__ref="L-1001", tenant_id=world.tenant_id)
    # Three days later is Thursday 18:30, after hours: the question waits for Friday 08:00.
    assert claim.check_due_at == datetime(2026, 11, 6, 7, 0, tzinfo=UTC)

    clock.set(claim.check_due_at - timedelta(minutes=1))
    assert (await services.scheduler.run_job("customer-contact-check")).count == 0
    clock.set(claim.check_due_at)
    assert (await services.scheduler.run_job("customer-contact-check")).count == 1
    assert (await services.scheduler.run_job("customer-contact-check")).count == 0

    [row] = await OutboxMessage.filter(kind="contact_check.customer")
    assert row.recipient == "anna@huber.example"
    text, html = row.payload["text"], row.payload["html"]
    assert "Alpine" in text and "Firewall" in text
    assert len(LINK_RE.findall(text)) == 2 and 'href="http://127.0.0.1:8080/check/' in html
    token = tokens.token_in(row.payload["reply_to"])
    parsed = tokens.verify(services.settings, token, clock.now())
    assert (parsed.kind, parsed.subject_id, parsed.tenant_id) == ("k", claim.id, world.tenant_id)
    assert await ContactCheck.filter(claim_id=claim.id).count() == 1
    assert await AuditEvent.filter(kind="contact_check.asked", claim_id=claim.id).count() == 1


async def test_no_question_for_lapsed_claims_customers_without_email_or_tenants_who_do_not_mail(
    services, clock
):
    world = await build_world(services.bus, claim_deadline_hours=24)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")  # will lapse
    await world.ok(c.ClaimLead("L-1003"), "max@alpine.example")  # feedback: still asked
    await world.ok(c.GiveFeedback("L-1003", "contacted"), "max@alpine.example")
    no_email = await world.ok(c.AddLead("VPN", "CH-BE", phone="+41 31 000 00 00"), world.owner)
    no_email_ref = no_email.data["lead"]["ref"]
    await world.ok(c.ClaimLead(no_email_ref), "max@alpine.example")
    no_email_claim = await Claim.get(lead__ref=no_email_ref, tenant_id=world.tenant_id)
    assert no_email_claim.check_due_at is None
    clock.advance(days=2)
    await services.scheduler.run_job("expire-overdue")
    clock.advance(days=2)
    assert (await services.scheduler.run_job("customer-contact-check")).count == 1
    [row] = await OutboxMessage.filter(kind="contact_check.customer")
    assert row.recipient == "sara@limmat.example"  # L-1003's customer, not L-1001's
    assert await Claim.filter(check_due_at__isnull=False).count() == 0

    await Tenant.filter(id=world.tenant_id).update(mail_customers=False)
    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
    claim = await Claim.get(lead__ref="L-1002", tenant_id=world.tenant_id)
    assert claim.check_due_at is None


async def test_no_link_alerts_the_owner_once_and_a_reused_link_changes_nothing(
    services, clock, http
):
    world = await build_world(services.bus)
    claim, links = await asked(world, services, clock)

    head = await http.head(links["no"])
    assert head.status == 405  # a link checker's HEAD is not an answer
    assert (await ContactCheck.get(claim_id=claim.id)).answer is None

    # A mail filter's GET (Safe Links, Mimecast) shows the question and changes nothing.
    for _ in range(2):
        scanned = await http.get(links["no"])
        assert scanned.status == 200
        question = await scanned.text()
        # In German: the customer's lead is in Zürich.
        assert '<form method="post">' in question
        assert "Nein, Alpine hat mich nicht kontaktiert" in question
    assert (await ContactCheck.get(claim_id=claim.id)).answer is None
    assert await OutboxMessage.filter(kind="contact_check.owner").count() == 0

    resp = await http.post(links["no"])  # the customer presses the button
    assert resp.status == 200
    page = await resp.text()
    # The customer (in Zürich) reads the page in German.
    assert "noch nicht kontaktiert" in page and "Alpine" in page
    assert resp.headers["Cache-Control"] == "no-store"
    check = await ContactCheck.get(claim_id=claim.id)
    assert (check.answer, check.channel) == ("no", "web")
    [event] = await AuditEvent.filter(kind="contact_check.denied")
    assert (event.partner_id, event.claim_id) == (claim.partner_id, claim.id)
    [alert] = await OutboxMessage.filter(kind="contact_check.owner")
    assert alert.recipient == "owner@acme.example"
    assert "Huber Maschinen AG" in alert.payload["text"] and "Alpine" in alert.payload["subject"]

    clock.advance(hours=2)
    for link in (links["no"], links["yes"]):
        for again in (await http.get(link), await http.post(link)):
            assert again.status == 409
            assert "bereits geantwortet" in await again.text()  # German: she lives in Zürich
    check = await ContactCheck.get(claim_id=claim.id)
    assert check.answer == "no" and check.answered_at == claim.check_due_at
    assert await OutboxMessage.filter(kind="contact_check.owner").count() == 1
    assert await AuditEvent.filter(kind__startswith="contact_check.").count() == 2  # asked, denied


async def test_yes_link_records_confirmed_contact_without_alerting(services, clock, http):
    world = await build_world(services.bus)
    await Lead.filter(ref="L-1001", tenant_id=world.tenant_id).update(locale="de")
    claim, links = await asked(world, services, clock)
    row = await OutboxMessage.get(kind="contact_check.customer")
    assert row.payload["subject"].startswith("Hat Alpine Sie")  # the customer's language

    question = await http.get(links["yes"])
    assert "Ja, Alpine hat mich kontaktiert" in await question.text()
    assert (await ContactCheck.get(claim_id=claim.id)).answer is None
    resp = await http.post(links["yes"])
    assert resp.status == 200
    assert "Vielen Dank" in await resp.text()
    assert (await ContactCheck.get(claim_id=claim.id)).answer == "yes"
    assert await AuditEvent.filter(
        kind="contact_check.confirmed", partner_id=claim.partner_id
    ).exists()
    assert await OutboxMessage.filter(kind="contact_check.owner").count() == 0


async def test_bad_expired_and_foreign_links_get_a_clear_page_and_change_nothing(
    services, clock, http
):
    world = await build_world(services.bus)
    claim, links = await asked(world, services, clock)
    token = links["yes"].split("/")[2]

    tampered = token[:-1] + ("a" if token[-1] != "a" else "b")
    resp = await http.get(f"/check/{tampered}/yes", headers={"Accept-Language": "fr-CH,fr;q=0.9"})
    assert resp.status == 400 and "pas valide" in await resp.text()

    user_token = tokens.issue(services.settings, "u", world.tenant_id, claim.id, None, clock.now())
    resp = await http.get(f"/check/{user_token}/yes")
    assert resp.status == 400  # signed by us, but not a contact-check link
    row = await OutboxMessage.get(kind="contact_check.customer")
    reply_token = tokens.token_in(row.payload["reply_to"])
    for method in (http.get, http.post):  # the check's reply address is not a link token
        resp = await method(f"/check/{reply_token}/yes")
        assert resp.status == 400

    resp = await http.get(f"/check/{token}/maybe")
    assert resp.status == 400 and "not valid" in await resp.text()

    clock.advance(days=31)
    for method in (http.get, http.post):
        resp = await method(links["no"])
        assert resp.status == 410 and "expired" in await resp.text()
    assert (await ContactCheck.get(claim_id=claim.id)).answer is None
    assert await OutboxMessage.filter(kind="contact_check.owner").count() == 0


@pytest.mark.parametrize(
    ("word", "answer"), [("JA", "yes"), ("nein", "no"), ("Oui.", "yes"), ("NON", "no")]
)
async def test_reply_words_answer_the_check(services, clock, word, answer):
    world = await build_world(services.bus)
    claim, _ = await asked(world, services, clock)
    customer = Actor.customer(world.tenant_id, "email")
    reply = await services.bus.dispatch(c.AnswerContactCheck(claim.id, word), customer)
    assert reply.ok and reply.data["answer"] == answer
    second = await services.bus.dispatch(c.AnswerContactCheck(claim.id, "yes"), customer)
    assert second.code == "already_answered"
    assert (await ContactCheck.get(claim_id=claim.id)).answer == answer


async def test_a_customer_of_another_tenant_cannot_answer(services, clock):
    world = await build_world(services.bus)
    claim, _ = await asked(world, services, clock)
    stranger = Actor.customer(world.other_tenant_id, "web")
    reply = await services.bus.dispatch(c.AnswerContactCheck(claim.id, "no"), stranger)
    assert reply.code == "not_found"
    partner = world.actors["mia@alpine.example"]
    reply = await services.bus.dispatch(c.AnswerContactCheck(claim.id, "yes"), partner)
    assert reply.code == "forbidden"
    assert (await ContactCheck.get(claim_id=claim.id)).answer is None
    assert (await Claim.get(id=claim.id)).state == ClaimState.ACTIVE
