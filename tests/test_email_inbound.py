"""Replies by email through the real bus and store: who may speak, what happens, what is
answered, and that nothing is done twice."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from lyra_bot import commands as c
from lyra_bot.domain import ClaimState, LeadStatus
from lyra_bot.models import Claim, Feedback, InboundKey, Lead, MailBounce, OutboxMessage, User
from tests.email_helpers import address_for, corpus_tokens, fill, reply_mail
from tests.world import build_world

CORPUS = Path(__file__).parent / "email_corpus"
MIA = "Mia <mia@alpine.example>"


async def answers_to(address: str) -> list[OutboxMessage]:
    return await OutboxMessage.filter(recipient=address, kind__startswith="answer").order_by("id")


async def test_corpus_through_the_bus(services, clock):
    """Every corpus mail, processed for real: the right commands run, machines get nothing."""
    world = await build_world(services.bus)
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    values = await corpus_tokens(world, services.settings, clock)
    expected = json.loads((CORPUS / "expected.json").read_text())
    machine_senders = set()
    for name, case in sorted(expected.items()):
        outcome = await services.mail.process(fill((CORPUS / name).read_bytes(), values))
        ran = [desc for desc, _ in outcome.results if desc]
        wanted = case["outcome"]
        if wanted == "commands":
            assert outcome.verdict == "commands", name
            assert ran == case["commands"], name
        elif wanted.startswith("refused:"):
            assert (outcome.verdict, outcome.reason) == ("refused", wanted.split(":")[1]), name
            assert outcome.status == "failed" and not ran, name
        else:
            assert outcome.verdict == wanted, (name, outcome.verdict, outcome.reason)
            assert not ran, name
        if wanted in {"auto_reply", "bounce", "receipt", "own", "list"}:
            sender = (CORPUS / name).read_bytes().split(b"From:", 1)[1].split(b"\r\n")[0]
            machine_senders.add(sender.decode().strip().split("<")[-1].rstrip(">").lower())
    answered = {r.recipient for r in await OutboxMessage.filter(kind__startswith="answer")}
    assert answered.isdisjoint(machine_senders - {"mia@alpine.example", "eve@romandie.example"})
    assert "lyra@lyra.test" not in answered and "postmaster@alpine.example" not in answered
    # the hard bounce marked max's address and told the owner
    assert await MailBounce.filter(address="max@alpine.example").count() == 1
    assert await OutboxMessage.filter(kind="bounce.owner", recipient="owner@acme.example").exists()


async def test_claim_by_reply_runs_once_however_often_it_arrives(services, clock):
    world = await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    raw = reply_mail(
        MIA, to, "Claim L-1001\n\nOn Mon, Lyra <lyra@lyra.test> wrote:\n> CLAIM L-1002"
    )

    first = await services.mail.process(raw)
    rows = await OutboxMessage.all().count()
    second = await services.mail.process(raw)

    assert [d for d, _ in first.results] == ["ClaimLead L-1001"] and first.results[0][1].ok
    assert second.duplicate and await OutboxMessage.all().count() == rows
    assert await Claim.filter(lead__ref="L-1001").count() == 1
    assert (await Lead.get(tenant_id=world.tenant_id, ref="L-1002")).status == LeadStatus.OPEN
    claim_mail = await OutboxMessage.get(kind="claim.partner")
    assert claim_mail.recipient == "mia@alpine.example"
    assert await answers_to("mia@alpine.example") == []  # the claim mail is the answer
    assert await InboundKey.filter(key__startswith="mail:").count() == 1


async def test_reply_to_a_claim_mail_may_omit_the_reference(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim_mail = await OutboxMessage.get(kind="claim.partner")
    raw = reply_mail(MIA, claim_mail.payload["reply_to"], "won 12'000 CHF\n\nSent from my iPhone")

    outcome = await services.mail.process(raw)

    assert [d for d, _ in outcome.results] == ["GiveFeedback L-1001 won 12000.00 CHF"]
    feedback = await Feedback.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    assert feedback.outcome == "won" and feedback.channel == "email"
    assert (await Claim.get(id=feedback.claim_id)).state == ClaimState.CLOSED


async def test_token_recovered_from_references_when_the_plus_part_is_lost(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    token = to.split("+", 1)[1].split("@")[0]
    raw = reply_mail(MIA, "leads@lyra.test", "claim L-1001", references=f"<{token}.abc@lyra.test>")
    outcome = await services.mail.process(raw)
    assert outcome.results and outcome.results[0][1].ok


async def test_lead_taken_is_answered_with_similar_leads_threaded_to_the_reply(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "tom@lakeside.example")
    to = await address_for(services.settings, clock, "mia@alpine.example")
    raw = reply_mail(MIA, to, "CLAIM L-1001", message_id="<taken-1@client.example>")

    await services.mail.process(raw)

    [answer] = await answers_to("mia@alpine.example")
    assert answer.kind == "answer.error"
    payload = answer.payload
    assert payload["headers"]["In-Reply-To"] == "<taken-1@client.example>"
    assert payload["subject"] == "Re: your leads"
    assert "L-1001 has already been taken" in payload["text"]
    assert "mailto:leads+" in payload["text"] and "CLAIM%20L-1003" in payload["text"]
    assert "Huber" not in payload["text"] and "anna@" not in payload["text"]
    assert payload["reply_to"].startswith("leads+")


async def test_a_known_user_is_always_answered_strangers_once_a_day(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    for n in range(3):  # the same mistake three times: told three times
        await services.mail.process(
            reply_mail(MIA, to, "hello there, any news?", message_id=f"<m{n}@x>")
        )
    assert len(await answers_to("mia@alpine.example")) == 3
    stranger, inbound = "Sam <sam@nowhere.example>", services.settings.inbound_address
    for n in range(3):  # an unknown sender (or a robot) gets one error answer a day
        await services.mail.process(reply_mail(stranger, inbound, "hello?", message_id=f"<s{n}@x>"))
    assert len(await answers_to("sam@nowhere.example")) == 1
    clock.advance(days=1)
    await services.mail.process(reply_mail(stranger, inbound, "hello again", message_id="<s9@x>"))
    assert len(await answers_to("sam@nowhere.example")) == 2


async def test_quoted_commands_only_get_a_help_answer_and_do_nothing(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    body = "Thanks!\n\nOn Mon, 2 Nov 2026, Lyra <lyra@lyra.test> wrote:\n> claim L-1001\n"
    outcome = await services.mail.process(reply_mail(MIA, to, body))
    assert outcome.verdict == "quoted_only"
    assert await Claim.all().count() == 0
    [answer] = await answers_to("mia@alpine.example")
    assert "only in the quoted part" in answer.payload["text"]
    assert "How to answer" in answer.payload["text"]


async def test_several_commands_each_answered_in_order(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1004"), "eve@romandie.example")
    to = await address_for(services.settings, clock, "mia@alpine.example")
    body = "claim L-1001\nclaim L-1004\nrelease L-1001\nmine\n"
    mail = reply_mail(MIA, to, body, message_id="<four@client.example>")
    outcome = await services.mail.process(mail)
    assert [(d, r.code) for d, r in outcome.results] == [
        ("ClaimLead L-1001", "claimed"),
        ("ClaimLead L-1004", "lead_taken"),
        ("ReleaseClaim L-1001", "released"),
        ("ListMine", "mine"),
    ]
    mine, answer = await answers_to("mia@alpine.example")  # one answer; MINE is a listing
    text = answer.payload["text"]
    assert answer.payload["headers"]["In-Reply-To"] == "<four@client.example>"
    said = [
        "You wrote: claim L-1001",
        "You have claimed L-1001.",
        "anna@huber.example",  # the claimed lead's customer
        "You wrote: claim L-1004",
        "L-1004 has already been taken",
        "You wrote: release L-1001",
        "L-1001 is back in the pool",
    ]
    assert [text.find(part) for part in said] == sorted(text.find(part) for part in said)
    assert all(part in text for part in said), text
    assert "holds no leads" in mine.payload["text"] and "holds no leads" not in text


async def test_leads_and_mine_answers(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
    to = await address_for(services.settings, clock, "mia@alpine.example")
    await services.mail.process(reply_mail(MIA, to, "LEADS\nMINE"))
    pool, mine = await answers_to("mia@alpine.example")
    assert pool.payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "L-1001" in pool.payload["text"] and "anna@huber.example" not in pool.payload["text"]
    assert "marc@keller.example" in mine.payload["text"]  # mia's partner holds L-1002


async def test_colleague_answering_a_forwarded_digest_is_refused(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    outcome = await services.mail.process(
        reply_mail("Max <max@alpine.example>", to, "claim L-1001")
    )
    assert (outcome.status, outcome.reason) == ("failed", "wrong_sender")
    assert await Claim.all().count() == 0
    [answer] = await answers_to("max@alpine.example")
    assert "sent to someone else" in answer.payload["text"]
    assert answer.payload["reply_to"] is None


async def test_foreign_key_and_other_tenants_tokens_are_refused(services, clock):
    world = await build_world(services.bus)
    other = services.settings.model_copy(update={"secret_key": SecretStr("another-secret")})
    gus = await User.get(email="gus@gamma.example")
    from lyra_bot import tokens

    forged = tokens.reply_address(
        other, tokens.issue(other, "u", world.tenant_id, gus.id, None, clock.now())
    )
    outcome = await services.mail.process(reply_mail(MIA, forged, "claim L-1001"))
    assert outcome.reason == "token_invalid"
    gus_address = await address_for(services.settings, clock, "gus@gamma.example")
    outcome = await services.mail.process(reply_mail(MIA, gus_address, "claim L-1001"))
    assert outcome.reason == "wrong_sender"
    assert await Claim.all().count() == 0


async def test_auto_reply_is_recorded_never_answered(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    raw = reply_mail(MIA, to, "I am away.\nclaim L-1001", subject="Automatic reply: your leads")
    outcome = await services.mail.process(raw)
    assert outcome.verdict == "auto_reply"
    assert await Claim.all().count() == 0
    assert await OutboxMessage.all().count() == 0
    key = await InboundKey.get(key__startswith="mail:")
    assert key.reply and key.reply["code"] == "auto_reply"


async def test_customer_reply_goes_to_the_owner(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    customer_mail = await OutboxMessage.get(kind="claim.customer")
    raw = reply_mail(
        "Anna Huber <anna@huber.example>",
        customer_mail.payload["reply_to"],
        "Please call after 2 pm.\n\nOn Mon, Lyra <lyra@lyra.test> wrote:\n> quoted",
    )
    outcome = await services.mail.process(raw)
    assert outcome.verdict == "customer"
    forward = await OutboxMessage.get(kind="customer.owner")
    assert forward.recipient == "owner@acme.example"
    assert "Please call after 2 pm." in forward.payload["text"]
    assert "quoted" not in forward.payload["text"]
    assert forward.payload["reply_to"] == "anna@huber.example"
    assert "Alpine" in forward.payload["text"]  # who holds the lead
    [ack] = await answers_to("anna@huber.example")
    # Anna's lead is in Zürich: she is answered in German, whatever the tenant's language.
    assert "weitergeleitet" in ack.payload["text"]


async def test_owner_reply_gets_a_short_answer(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    owner_mail = await OutboxMessage.get(kind="claim.owner")
    raw = reply_mail("owner@acme.example", owner_mail.payload["reply_to"], "withdraw it")
    outcome = await services.mail.process(raw)
    assert outcome.verdict == "owner"
    [answer] = await answers_to("owner@acme.example")
    assert "APPROVE and DECLINE" in answer.payload["text"]
    assert "lyra-bot" not in answer.payload["text"]  # no shell command in a mail


async def test_stop_and_start_digests(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    await services.mail.process(reply_mail(MIA, to, "STOP"))
    assert not (await User.get(email="mia@alpine.example")).digest_enabled
    await services.mail.process(reply_mail(MIA, to, "start"))
    assert (await User.get(email="mia@alpine.example")).digest_enabled


async def test_hard_bounce_marks_the_address_and_a_later_reply_clears_it(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    values = await corpus_tokens(world, services.settings, clock)
    raw = fill((CORPUS / "bounce_hard_with_digest.eml").read_bytes(), values)
    await services.mail.process(raw)
    assert await MailBounce.filter(tenant_id=world.tenant_id, address="max@alpine.example").exists()
    alert = await OutboxMessage.get(kind="bounce.owner")
    assert "max@alpine.example" in alert.payload["subject"] and "Max" in alert.payload["text"]

    clock.advance(days=1)
    reply = await world.ok(c.SendDigests(world.tenant_id), world.owner)
    assert not await OutboxMessage.filter(
        kind="digest", recipient="max@alpine.example", created_at=clock.now()
    ).exists()
    assert reply.data["queued"] >= 1

    # Max acts by email again: the next digest sweep clears the bounce and includes him.
    to = await address_for(services.settings, clock, "max@alpine.example")
    await services.mail.process(reply_mail("max@alpine.example", to, "claim L-1003"))
    clock.advance(days=1)
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    assert not await MailBounce.filter(address="max@alpine.example").exists()
    assert await OutboxMessage.filter(
        kind="digest", recipient="max@alpine.example", created_at=clock.now()
    ).exists()


async def test_oversize_mail_gets_a_clear_answer(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    raw = reply_mail(MIA, to, "claim L-1001\n" + "x" * 2000)
    services.mail.settings = services.settings.model_copy(update={"inbound_max_bytes": 1000})
    outcome = await services.mail.process(raw)
    assert outcome.verdict == "oversize"
    assert await Claim.all().count() == 0
    [answer] = await answers_to("mia@alpine.example")
    assert "too large" in answer.payload["text"]


async def test_partner_asks_for_more_time_and_the_owner_approves_by_reply(services, clock):
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    claim_mail = await OutboxMessage.get(kind="claim.partner")
    before = (await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)).due_at

    outcome = await services.mail.process(
        reply_mail(MIA, claim_mail.payload["reply_to"], "Extend 5 customer on holiday")
    )
    assert [d for d, _ in outcome.results] == ["RequestExtension L-1001 5 | customer on holiday"]
    [answer] = await answers_to("mia@alpine.example")
    assert "L-1001" in answer.payload["text"] and "hear back" in answer.payload["text"]

    ask = await OutboxMessage.filter(recipient="owner@acme.example").order_by("-id").first()
    assert ask is not None and ask.payload["reply_to"].startswith("leads+")
    outcome = await services.mail.process(
        reply_mail("Owner <owner@acme.example>", ask.payload["reply_to"], "approve\n\nThanks")
    )
    assert [d for d, _ in outcome.results] == ["DecideExtension L-1001 approve"]
    claim = await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    assert claim.due_at > before
    [owner_answer] = await answers_to("owner@acme.example")
    assert "Approved: L-1001 is now due" in owner_answer.payload["text"]


async def test_customer_answers_the_contact_check_by_reply(services, clock):
    world = await build_world(services.bus, contact_check_days=1)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    clock.advance(days=4)
    await world.ok(c.CustomerContactCheck(), c.Actor.system())
    check = await OutboxMessage.get(kind="contact_check.customer")
    raw = reply_mail(
        "Anna Huber <anna@huber.example>",
        check.payload["reply_to"],
        "Yes, they called me on Tuesday.\n\nOn Fri, Lyra <lyra@lyra.test> wrote:\n> No",
    )
    outcome = await services.mail.process(raw)
    assert [(d, r.code) for d, r in outcome.results] == [
        ("AnswerContactCheck", "contact_confirmed")
    ]
    from lyra_bot.models import ContactCheck

    assert (await ContactCheck.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)).answer == (
        "yes"
    )
    [ack] = await answers_to("anna@huber.example")
    assert "Alpine" in ack.payload["text"]
    again = await services.mail.process(raw)
    assert again.duplicate


async def test_three_commands_get_one_answer_listing_three_results(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    body = "CLAIM L-1001\nWON L-1002 12000\nRELEASE L-1001\n"
    await services.mail.process(reply_mail(MIA, to, body, message_id="<three@client.example>"))
    [answer] = await answers_to("mia@alpine.example")
    text = answer.payload["text"]
    wrote = ["You wrote: CLAIM L-1001", "You wrote: WON L-1002 12000", "You wrote: RELEASE L-1001"]
    assert [text.find(w) for w in wrote] == sorted(text.find(w) for w in wrote) and -1 not in [
        text.find(w) for w in wrote
    ]
    assert "You have claimed L-1001" in text and "anna@huber.example" in text
    assert "You do not hold L-1002." in text  # the refusal, with its reason
    assert "L-1001 is back in the pool" in text
    assert answer.payload["headers"]["In-Reply-To"] == "<three@client.example>"
    assert "<three@client.example>" in answer.payload["headers"]["References"]


async def test_a_changed_or_expired_reply_address_is_answered_as_such(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    local, _, domain = to.partition("@")
    mangled = f"{local[:-3]}{'abc' if not local.endswith('abc') else 'xyz'}@{domain}"
    outcome = await services.mail.process(reply_mail(MIA, mangled, "CLAIM L-1001"))
    assert (outcome.status, outcome.reason) == ("failed", "token_invalid")
    [answer] = await answers_to("mia@alpine.example")
    assert "reply address arrived changed" in answer.payload["text"]
    assert "new one" not in answer.payload["text"]  # they did reply: not "a new mail"

    clock.advance(days=services.settings.reply_token_days + 1)
    outcome = await services.mail.process(reply_mail(MIA, to, "CLAIM L-1001"))
    assert outcome.reason == "token_expired"
    assert "too old" in (await answers_to("mia@alpine.example"))[-1].payload["text"]
    assert await Claim.all().count() == 0


async def test_lyra_s_own_text_below_a_reply_is_quoted_even_without_marker(services, clock):
    """A client that dropped the marker and the quote marks: the answer Lyra sent is still
    known as Lyra's, so nothing from its first lines on is obeyed."""
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    await services.mail.process(reply_mail(MIA, to, "help"))
    [answer] = await answers_to("mia@alpine.example")
    pasted = "\n".join(
        line for line in answer.payload["text"].splitlines() if "##- Lyra -##" not in line
    )
    body = f"mine\n\n{pasted}\nclaim L-1004"
    outcome = await services.mail.process(reply_mail(MIA, to, body, references=answer.message_id))
    assert [d for d, _ in outcome.results] == ["ListMine"]
    # No References at all (a client that drops them): the latest mails Lyra sent Mia count.
    outcome = await services.mail.process(reply_mail(MIA, to, body))
    assert [d for d, _ in outcome.results] == ["ListMine"]
    assert await Claim.all().count() == 0


async def test_a_command_in_doubt_stops_the_whole_mail_and_the_answer_asks(services, clock):
    await build_world(services.bus)
    to = await address_for(services.settings, clock, "mia@alpine.example")
    body = "claim L-1004\n\nLyra <lyra@lyra.test> Mon, 2 Nov 2026 10:00\nclaim L-1003"
    outcome = await services.mail.process(reply_mail(MIA, to, body))
    assert (outcome.verdict, outcome.results[0][0]) == ("unsure", "")
    assert await Claim.all().count() == 0
    [answer] = await answers_to("mia@alpine.example")
    assert "so I did nothing" in answer.payload["text"]


async def test_a_euro_sign_sent_as_windows_1252_under_an_iso_8859_1_label_is_eur(services, clock):
    """Windows clients label windows-1252 text iso-8859-1: byte 0x80 is "€", not CHF."""
    world = await build_world(services.bus)
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    to = await address_for(services.settings, clock, "mia@alpine.example")
    raw = reply_mail(MIA, to, "placeholder").split(b"\n\n")[0].replace(b"utf-8", b"iso-8859-1")
    raw = raw.replace(b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: 8bit")
    await services.mail.process(raw + b"\n\nWON L-1001 12000 \x80\n")
    feedback = await Feedback.get()
    assert (str(feedback.amount), feedback.currency) == ("12000.00", "EUR")
