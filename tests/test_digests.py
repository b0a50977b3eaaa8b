"""Digests and the mail templates: teasers only, newest first, bounded, once a day, and no
line a parser would take for a command."""

from __future__ import annotations

from pathlib import Path

import pytest
from lyra_bot.adapters.email.grammar import parse_line
from lyra_bot.adapters.email.parsing import html_to_text

from lyra_bot import commands as c
from lyra_bot.models import OutboxMessage, User
from lyra_bot.render import LOCALES, Renderer
from tests.world import build_world

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"


def test_one_template_per_mail_kind_not_one_per_language():
    kinds = {p.name.removesuffix(".subject.j2") for p in TEMPLATES.glob("*.subject.j2")}
    assert {"claim_partner", "digest", "owner_report"} <= kinds
    for kind in kinds:
        assert (TEMPLATES / f"{kind}.txt.j2").is_file() and (
            TEMPLATES / f"{kind}.html.j2"
        ).is_file()
    # Only the answer to a reply still has a copy per language (its words move to the
    # phrasebook); nothing else may grow one again.
    for folder in (p for p in TEMPLATES.iterdir() if p.is_dir()):
        assert {p.name.split(".")[0] for p in folder.iterdir()} <= {"reply", "_answers"}, folder


async def test_digest_per_partner_user_teasers_only_newest_first(bus, clock):
    world = await build_world(bus)
    clock.advance(hours=1)
    newest = await world.ok(c.AddLead("VPN", "CH-LU", need="Newest need"), world.owner)
    reply = await world.ok(c.SendDigests(world.tenant_id), world.owner)

    rows = {r.recipient: r for r in await OutboxMessage.filter(kind="digest")}
    # alpine (mia, max), lakeside (tom), romandie (eve); globex's gus is another tenant
    assert set(rows) == {
        "mia@alpine.example",
        "max@alpine.example",
        "tom@lakeside.example",
        "eve@romandie.example",
    }
    assert reply.data["queued"] == 4
    mia = rows["mia@alpine.example"].payload
    text = mia["text"]
    assert text.index(newest.data["lead"]["ref"]) < text.index("L-1001")
    for private in ("Huber", "anna@huber.example", "+41 44", "Street 1", "private note"):
        assert private not in text and private not in mia["html"]
    assert "L-1005" not in text  # DE-BY: not alpine's region
    assert "mailto:leads+" in text and "subject=CLAIM%20L-1001" in text
    assert mia["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mia["headers"]["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/email/unsub")
    assert mia["reply_to"].startswith("leads+")
    assert rows["eve@romandie.example"].payload["subject"].startswith("1 nouveau lead")


async def test_digest_is_bounded_and_counts_the_rest(bus, clock, settings):
    world = await build_world(bus)
    for i in range(12):
        await world.ok(c.AddLead("VPN", "CH-LU", need=f"need {i}"), world.owner)
    bus.settings = settings.model_copy(update={"digest_max_leads": 5})
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    mia = (await OutboxMessage.get(kind="digest", recipient="mia@alpine.example")).payload
    assert mia["text"].count("mailto:") == 5 + 0  # five leads (help and footer have none)
    assert "and 11 more" in mia["text"]  # 16 open for alpine: 4 of the world + 12


async def test_digests_once_a_day_and_not_when_stopped(bus, clock):
    world = await build_world(bus)
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    again = await world.ok(c.SendDigests(world.tenant_id), world.owner)
    assert again.data["queued"] == 0
    await world.ok(c.SetDigests(False), "tom@lakeside.example")
    assert not (await User.get(email="tom@lakeside.example")).digest_enabled
    clock.advance(days=1)
    reply = await world.ok(c.SendDigests(None), c.Actor.system())
    recipients = await OutboxMessage.filter(kind="digest", created_at=clock.now()).values_list(
        "recipient", flat=True
    )
    assert "tom@lakeside.example" not in recipients
    assert "gus@gamma.example" in recipients  # all tenants when none is named
    assert reply.data["queued"] == len(recipients)


def _contexts() -> dict[str, dict]:
    lead = {
        "ref": "L-1042",
        "product": "Firewall",
        "region": "CH-ZH",
        "industry": "Retail",
        "size": "10-50",
        "need": "Claim: a firewall",
        "new": True,
        "claim_url": "mailto:leads+k1.u1.2.0.abc.def@lyra.test?subject=CLAIM%20L-1042",
    }
    base = {
        "tenant": {"name": "Acme"},
        "partner": {"name": "Alpine"},
        "user": {"name": "Mia", "email": "mia@alpine.example"},
    }
    return {
        "digest": {
            **base,
            "leads": [lead, {**lead, "ref": "L-1043", "new": False}],
            "total": 7,
            "new": 1,
            "more": 5,
            "reply_address": "leads+x@lyra.test",
            "in_reply": False,
            "unsubscribe_url": "http://x/email/unsubscribe/t",
            "today": "2026-11-02",
        },
        "reply": {
            **base,
            "subject": "Re: leads",
            "results": [
                {
                    "wrote_text": "You wrote: CLAIM L-1042",
                    "text": "Sorry, L-1042 has already been taken by another partner.",
                    "lead": None,
                    "similar": [lead],
                    "similar_text": "Similar leads you can claim now:",
                }
            ],
            "show_help": True,
            "token": True,
        },
    }


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", ["digest", "reply"])
def test_no_line_of_a_digest_or_answer_reads_as_a_command(locale, template):
    """Quoted without '>' (Outlook) or pasted by an auto-reply, a digest commands nothing."""
    rendered = Renderer(TEMPLATES.parent).mail(template, locale, _contexts()[template])
    lines = rendered.text.splitlines() + html_to_text(rendered.html).splitlines()
    lines += [rendered.subject]
    offenders = [line for line in lines if any(p.command for p in parse_line(line, "L-1"))]
    assert offenders == []
    if template == "digest":
        assert "##- Lyra -##" in rendered.text.splitlines()[0]


@pytest.mark.parametrize("locale", LOCALES)
def test_bounce_alert_renders_and_escapes(locale):
    renderer = Renderer(TEMPLATES.parent)
    bounce = renderer.mail(
        "bounce_owner",
        locale,
        {
            "tenant": {"name": "Acme"},
            "address": "x@y.z",
            "kind": "digest",
            "status": "5.1.1",
            "reason": "<b>user unknown</b>",
            "who": "",
        },
    )
    assert "x@y.z" in bounce.subject and "&lt;b&gt;" in bounce.html  # autoescaped


def test_no_line_of_a_partner_mail_template_reads_as_a_command():
    """Partners answer these mails; a client that quotes without '>' must not turn the
    mail's own words into commands (owner and customer mails have other grammars)."""
    offenders = []
    for path in sorted(TEMPLATES.glob("*/*.txt.j2")):
        if path.name.startswith("_") or "_owner" in path.name or "customer" in path.name:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.command for p in parse_line(line, "L-1")):
                offenders.append(f"{path.parent.name}/{path.name}:{number}: {line}")
    assert offenders == []
