"""``lyra-bot gallery OUT/``: every mail kind in every language, from one seeded story.

The demo's story runs (on a throw-away SQLite file, told in each language, so that the
owner's own words, such as a lead's need, match) with a renderer that remembers the context
of the first mail of each kind; a few more steps bring out the kinds the demo does not reach
(digest, reminder, extensions, contact check, release, withdrawal, stale leads, a pause).
Each remembered context is then rendered in that language, whoever the recipient:
``OUT/<lang>/<kind>.subject.txt``, ``.txt``, ``.html`` (inline images beside it), and with
``--png`` a screenshot of the HTML by headless Chromium, so anyone can review all wording in
one folder. The weekly report is built again per language, chart included.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console

from lyra_bot import commands as c
from lyra_bot import phrases
from lyra_bot.adapters.slack import gallery as slack_gallery
from lyra_bot.app import bootstrap
from lyra_bot.clock import FrozenClock
from lyra_bot.commands import Actor
from lyra_bot.config import Settings, get_settings
from lyra_bot.db import close_db, init_db
from lyra_bot.demo import play_story
from lyra_bot.i18n import LOCALES
from lyra_bot.models import ContactCheck, Tenant, User
from lyra_bot.render import RenderedMail, Renderer
from lyra_bot.reports.chart import chart_png
from lyra_bot.reports.periods import parse_week
from lyra_bot.reports.report import build_report
from lyra_bot.reports.view import report_context

CHROMIUM = "/usr/bin/chromium"
CHART_CID = "chart.gallery@lyra.example"


class RecordingRenderer(Renderer):
    """Renders as usual and keeps the first context of every mail kind."""

    def __init__(self, templates_dir: Path) -> None:
        super().__init__(templates_dir)
        self.contexts: dict[str, dict[str, Any]] = {}

    def mail(self, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMail:
        self.contexts.setdefault(name, dict(context))
        return super().mail(name, locale, context)


def run_gallery(out: Path, png: bool, console: Console) -> list[Path]:
    """Write the gallery to ``out``; returns the HTML files written."""
    pages: list[Path] = []
    slack: list[Path] = []
    for lang in LOCALES:
        with tempfile.TemporaryDirectory(prefix="lyra-gallery-") as tmp:
            settings = get_settings().model_copy(
                update={
                    "database_url": f"sqlite://{Path(tmp) / 'gallery.db'}",
                    "outbox_dir": Path(tmp) / "outbox",
                }
            )
            contexts, (report, chart) = asyncio.run(_collect(settings, lang))
        renderer = Renderer(settings.templates_dir)
        folder = out / lang
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for kind, context in sorted({**contexts, "owner_report": report}.items()):
            inline = {CHART_CID: chart} if kind == "owner_report" else {}
            pages.append(_write(folder, kind, renderer.mail(kind, lang, context), inline))
        slack += slack_gallery.write(folder / "slack", lang)
    console.print(f"{len(pages)} mails in {len(LOCALES)} languages written to {out}")
    console.print(f"{len(slack)} Slack messages, modals and App Home tabs (JSON) in */slack/")
    if png:
        for page in pages:
            screenshot(page)
        console.print(f"{len(pages)} screenshots (PNG) beside them")
    return pages


def _write(folder: Path, kind: str, mail: RenderedMail, inline: dict[str, bytes]) -> Path:
    (folder / f"{kind}.subject.txt").write_text(mail.subject + "\n", encoding="utf-8")
    (folder / f"{kind}.txt").write_text(mail.text, encoding="utf-8")
    html = mail.html
    for cid, data in inline.items():
        name = f"{kind}.{cid.split('.')[0]}.png"
        (folder / name).write_bytes(data)
        html = html.replace(f"cid:{cid}", name)
    page = folder / f"{kind}.html"
    page.write_text(html, encoding="utf-8")
    return page


def screenshot(page: Path) -> Path:
    """The HTML as a mail client at 800 px shows it (Debian's headless Chromium)."""
    target = page.with_suffix(".png")
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            f"--screenshot={target}",
            "--window-size=800,1400",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


async def _collect(
    settings: Settings, lang: str
) -> tuple[dict[str, dict[str, Any]], tuple[dict[str, Any], bytes]]:
    await init_db(settings, migrate=True)
    try:
        services = bootstrap(settings, FrozenClock())
        recorder = RecordingRenderer(settings.templates_dir)
        services.bus.renderer = recorder
        quiet = Console(file=io.StringIO())
        story = await play_story(services, quiet, lang)
        await _more(services, story.tenant_id, lang)
        contexts = {**recorder.contexts, **_adapter_kinds(recorder.contexts, lang)}
        contexts.pop("owner_report", None)
        tenant = await Tenant.get(id=story.tenant_id)
        now = services.clock.now()
        week = parse_week("2026-W45", ZoneInfo(tenant.timezone), now)
        report = await build_report(tenant, week, now)
        view = report_context(report, settings.report_max_partners)
        return contexts, ({**view, "chart_cid": CHART_CID}, await chart_png(report))
    finally:
        await close_db()


# What partners, owner and customer type in the extra steps, in the story's language.
SAID: dict[str, tuple[str, str, str, str, str]] = {
    "en": (
        "Customer on holiday",
        "Board decides next week",
        "Customer chose a competitor",
        "Customer bought directly",
        "Please call me after 2 pm.",
    ),
    "de": (
        "Kunde in den Ferien",
        "Geschäftsleitung entscheidet nächste Woche",
        "Kunde hat sich für einen Mitbewerber entschieden",
        "Kunde hat direkt gekauft",
        "Bitte rufen Sie mich nach 14 Uhr an.",
    ),
    "fr": (
        "Client en vacances",
        "La direction décide la semaine prochaine",
        "Le client a choisi un concurrent",
        "Le client a acheté en direct",
        "Merci de m'appeler après 14 h.",
    ),
    "it": (
        "Cliente in vacanza",
        "La direzione decide la settimana prossima",
        "Il cliente ha scelto un concorrente",
        "Il cliente ha acquistato direttamente",
        "Mi chiami dopo le 14, per favore.",
    ),
}


async def _more(services: Any, tenant_id: int, lang: str) -> None:
    """The kinds the demo does not reach, in the same world."""
    holiday, board, competitor, direct, _ = SAID[lang]
    bus, clock, system = services.bus, services.clock, Actor.system()
    owner = Actor.owner(tenant_id, "gallery")

    async def as_user(email: str) -> Actor:
        user = await User.get(tenant_id=tenant_id, email=email)
        return Actor.partner_user(tenant_id, user.partner_id, user.id, "gallery")  # type: ignore[arg-type]

    async def do(cmd: c.Command, actor: Actor) -> None:
        await bus.dispatch(cmd, actor)

    mia, eve = await as_user("mia@alpine-it.example"), await as_user("eve@romandie.example")
    await do(c.UpdateTenant(lapse_limit=2, lapse_pause_days=7), owner)
    await do(c.SendDigests(tenant_id), owner)
    await do(c.ClaimLead("L-1002"), mia)
    await do(c.ClaimLead("L-1004"), eve)
    clock.advance(hours=1)
    await do(c.RequestExtension("L-1002", 1, holiday), mia)
    await do(c.RequestExtension("L-1002", 5, board), mia)
    await do(c.DecideExtension("L-1002", False), owner)
    clock.advance(hours=48)
    await do(c.SendReminders(), system)
    await do(c.CustomerContactCheck(), system)
    check = await ContactCheck.filter(tenant_id=tenant_id).first()
    if check is not None:
        await do(c.AnswerContactCheck(check.claim_id, "no"), Actor.customer(tenant_id, "web"))
    await do(c.ReleaseClaim("L-1002", competitor), mia)
    await do(c.WithdrawLead("L-1004", direct), owner)
    for ref in ("L-1002", "L-1005"):
        await do(c.ClaimLead(ref), mia)
    clock.advance(days=8)
    await do(c.ExpireOverdue(), system)
    await do(c.StaleLeadAlert(), system)
    await services.worker.close()


def _adapter_kinds(seen: dict[str, dict[str, Any]], lang: str) -> dict[str, dict[str, Any]]:
    """Mails the email adapter writes (answers, bounces, customer replies, dead letters):
    their contexts from the story's own data."""
    claim = seen.get("claim_partner") or next(iter(seen.values()))
    base = {k: claim[k] for k in ("tenant", "tz", "partner", "user", "lead") if k in claim}
    lead = base.get("lead", {})
    tz = base.get("tz")

    def result(code: str, data: dict[str, Any], line: str, **extra: Any) -> dict[str, Any]:
        return {
            "wrote_text": phrases.say("you_wrote", {"line": line}, lang),
            "text": phrases.say(code, data, lang, tz),
            "lead": None,
            "similar": [],
            "similar_text": phrases.say("similar_intro", {}, lang),
            **extra,
        }

    claim_word, won_word = phrases.command("claim", lang), phrases.command("won", lang)
    teaser = {k: lead.get(k, "") for k in ("ref", "product", "region", "need")}
    reply = {
        **base,
        "subject": f"Re: {lead.get('ref', '')}",
        "token": True,
        "show_help": False,
        "results": [
            result(
                "claimed",
                {"ref": lead.get("ref"), "due_at": claim.get("due")},
                f"{claim_word} {lead.get('ref')}",
                lead=lead,
            ),
            result(
                "lead_taken",
                {"ref": "L-1006"},
                f"{claim_word} L-1006",
                similar=[{**teaser, "claim_url": "mailto:leads@lyra.example"}],
            ),
            result(
                "feedback",
                {"ref": "L-1003", "outcome": "won", "amount": "12000", "currency": "CHF"},
                f"{won_word} L-1003 12000",
            ),
        ],
    }
    return {
        "reply": reply,
        "mine": {**base, "claims": [{**lead, "due_at": claim.get("due")}]},
        "bounce_owner": {
            **base,
            "address": "tom@lakeside.example",
            "kind": "digest",
            "status": "5.1.1",
            "reason": "550 5.1.1 mailbox unavailable",
            "who": "Tom, Lakeside Systems",
        },
        "customer_reply_owner": {
            **base,
            "sender": lead.get("email", ""),
            "subject": f"Re: {lead.get('product', '')}",
            "text": SAID[lang][4],
            "holder": base.get("partner", {}).get("name", ""),
        },
        "delivery_failed": {
            **base,
            "kind": "claim.partner",
            "channel": "email",
            "recipient": "mia@alpine-it.example",
            "error": "550 5.1.1 mailbox unavailable",
        },
    }
