"""``lyra-bot demo``: the whole story on a fresh SQLite file, through the real bus.

The demo's clock is a ``FrozenClock`` so that "two days later" happens at once; everything
else (store, handlers, outbox, file transport) is what ``lyra-bot run`` uses.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from lyra_bot import commands as c
from lyra_bot.app import Services, bootstrap
from lyra_bot.bus import Bus, Reply
from lyra_bot.clock import FrozenClock
from lyra_bot.commands import Actor
from lyra_bot.config import Settings, get_settings
from lyra_bot.db import close_db, init_db
from lyra_bot.models import Tenant, User
from lyra_bot.reports.periods import parse_week
from lyra_bot.reports.report import build_report
from lyra_bot.reports.table import print_report

LEADS = [
    # product, region, industry, size, need, company, contact, email, phone, address
    (
        "Firewall X200",
        "CH-ZH",
        "Manufacturing",
        "50-200",
        "Replace two old firewalls by March",
        "Huber Maschinen AG",
        "Anna Huber",
        "anna.huber@huber-maschinen.example",
        "+41 44 555 01 01",
        "Industriestrasse 5, 8005 Zürich",
    ),
    (
        "Firewall X200",
        "CH-BE",
        "Healthcare",
        "10-50",
        "Firewall for a new practice",
        "Praxis am Bärenplatz",
        "Dr. Marc Keller",
        "m.keller@praxis-baeren.example",
        "+41 31 555 02 02",
        "Bärenplatz 2, 3011 Bern",
    ),
    (
        "VPN Gateway",
        "CH-ZH",
        "Finance",
        "200-1000",
        "Remote access for 300 staff",
        "Limmat Treuhand",
        "Sara Meier",
        "s.meier@limmat-treuhand.example",
        "+41 44 555 03 03",
        "Bahnhofstrasse 10, 8001 Zürich",
    ),
    (
        "Firewall X200",
        "CH-GE",
        "Retail",
        "10-50",
        "Secure 12 shops",
        "Boutiques du Lac SA",
        "Luc Favre",
        "luc.favre@boutiques-lac.example",
        "+41 22 555 04 04",
        "Rue du Rhône 30, 1204 Genève",
    ),
    (
        "Firewall X200",
        "CH-ZH",
        "Education",
        "50-200",
        "Campus network refresh",
        "Schule Seefeld",
        "Peter Brunner",
        "p.brunner@schule-seefeld.example",
        "+41 44 555 05 05",
        "Seefeldstrasse 50, 8008 Zürich",
    ),
]
COLUMNS = (
    "product",
    "region",
    "industry",
    "size",
    "need",
    "company",
    "contact_name",
    "email",
    "phone",
    "address",
)


# What an owner writing in that language would type: industry and need of each lead above.
WORDS: dict[str, list[tuple[str, str]]] = {
    "de": [
        ("Industrie", "Zwei alte Firewalls bis März ersetzen"),
        ("Gesundheitswesen", "Firewall für eine neue Praxis"),
        ("Finanzen", "Fernzugriff für 300 Mitarbeitende"),
        ("Detailhandel", "12 Filialen absichern"),
        ("Bildung", "Erneuerung des Campus-Netzwerks"),
    ],
    "fr": [
        ("Industrie", "Remplacer deux anciens pare-feu d'ici mars"),
        ("Santé", "Pare-feu pour un nouveau cabinet"),
        ("Finance", "Accès à distance pour 300 collaborateurs"),
        ("Commerce de détail", "Sécuriser 12 boutiques"),
        ("Formation", "Renouvellement du réseau du campus"),
    ],
    "it": [
        ("Industria", "Sostituire due vecchi firewall entro marzo"),
        ("Sanità", "Firewall per un nuovo studio medico"),
        ("Finanza", "Accesso remoto per 300 collaboratori"),
        ("Commercio al dettaglio", "Proteggere 12 negozi"),
        ("Formazione", "Rinnovo della rete del campus"),
    ],
}
NOTE = {
    "en": "Meeting next Tuesday",
    "de": "Termin am nächsten Dienstag",
    "fr": "Rendez-vous mardi prochain",
    "it": "Incontro martedì prossimo",
}


def leads_csv(locale: str = "en") -> str:
    """The demo's leads as the CSV file an owner writing in ``locale`` would import."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row, words in zip(LEADS, WORDS.get(locale) or [row[2:5:2] for row in LEADS], strict=True):
        product, region, _, size, _, *customer = row
        writer.writerow((product, region, words[0], size, words[1], *customer))
    return buffer.getvalue()


class Story:
    def __init__(self, bus: Bus, console: Console, tenant_id: int) -> None:
        self.bus, self.console, self.tenant_id = bus, console, tenant_id
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        self.console.rule(f"[bold]{self.step}. {text}", align="left")

    async def actor(self, email: str) -> Actor:
        user = await User.get(tenant_id=self.tenant_id, email=email)
        assert user.partner_id is not None
        return Actor.partner_user(self.tenant_id, user.partner_id, user.id, "demo")

    async def do(self, cmd: c.Command, actor: Actor) -> Reply:
        reply = await self.bus.dispatch(cmd, actor)
        colour = "green" if reply.ok else "yellow"
        self.console.print(
            f"  [{colour}]{'✓' if reply.ok else '✗'} {reply.message}[/{colour}]", highlight=False
        )
        return reply

    def teasers(self, reply: Reply) -> None:
        table = Table(
            "ref", "product", "region", "industry", "size", "need", box=None, padding=(0, 2)
        )
        for lead in reply.data["leads"]:
            table.add_row(
                *(str(lead[k]) for k in ("ref", "product", "region", "industry", "size", "need"))
            )
        self.console.print(table)


def run_demo(database: Path, outbox_dir: Path, console: Console, locale: str = "en") -> None:
    """Fresh files, the story in ``locale`` (owner and partners; each customer reads the
    language of their own region), then where the mails went."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    outbox_dir.mkdir(parents=True, exist_ok=True)
    for old in outbox_dir.rglob("*.eml"):
        old.unlink()
    settings = get_settings().model_copy(
        # a key of its own: the demo's links must not be forgeable with the shipped placeholder
        update={
            "database_url": f"sqlite://{database}",
            "outbox_dir": outbox_dir,
            "secret_key": SecretStr(secrets.token_urlsafe(48)),
        }
    )
    asyncio.run(_run(settings, console, locale))
    mails = sorted(outbox_dir.rglob("*.eml"))
    console.rule("[bold]Done", align="left")
    console.print(f"{len(mails)} emails were written to {outbox_dir.resolve()}:", highlight=False)
    for path in mails:
        console.print(f"  {path.relative_to(outbox_dir)}", highlight=False)
    console.print(
        f"The database is {database.resolve()}; look around with "
        f"'LYRA_DATABASE_URL=sqlite://{database} lyra-bot lead list'.",
        highlight=False,
    )


async def _run(settings: Settings, console: Console, locale: str) -> None:
    await init_db(settings, migrate=True)
    try:
        await play_story(bootstrap(settings, FrozenClock()), console, locale)
    finally:
        await close_db()


async def play_story(services: Services, console: Console, locale: str = "en") -> Story:
    """The demo's story on ``services`` (whose clock must be a ``FrozenClock``)."""
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    bus, system = services.bus, Actor.system()

    async def deliver() -> None:
        sent = await services.worker.run_once()
        console.print(f"  [dim]outbox: {sent} {'email' if sent == 1 else 'emails'} written[/dim]")

    console.print("[bold]Lyra demo[/bold]: Acme Security sells firewalls through three partners.\n")
    reply = await bus.dispatch(
        c.AddTenant(
            "acme",
            "Acme Security AG",
            "channel@acme.example",
            cap_open_claims=2,
            claim_deadline_hours=48,
            locale=locale,
            sender_name="Acme Security",
            imprint_company="Acme Security AG",
            imprint_address="Seestrasse 1, 8002 Zürich",
            privacy_url="https://acme.example/privacy",
        ),
        system,
    )
    owner = Actor.owner(reply.data["id"], "demo")
    story = Story(bus, console, owner.tenant_id)  # type: ignore[arg-type]
    story.title("The owner sets up partners and imports five leads from a CSV file")
    for slug, name, products, regions, email in (
        (
            "alpine",
            "Alpine IT GmbH",
            ("Firewall X200", "VPN Gateway"),
            ("CH",),
            "mia@alpine-it.example",
        ),
        (
            "lakeside",
            "Lakeside Systems",
            ("Firewall X200",),
            ("CH-ZH", "CH-ZG"),
            "tom@lakeside.example",
        ),
        (
            "romandie",
            "Romandie Réseaux",
            ("Firewall X200",),
            ("CH-GE", "CH-VD"),
            "eve@romandie.example",
        ),
    ):
        await story.do(c.AddPartner(slug, name, products, regions, locale), owner)
        await story.do(c.AddUser(email, email.split("@")[0].title(), slug), owner)
    await story.do(c.ImportLeads(leads_csv(locale)), owner)

    mia = await story.actor("mia@alpine-it.example")
    tom = await story.actor("tom@lakeside.example")
    eve = await story.actor("eve@romandie.example")

    story.title(
        "Alpine (products: Firewall, VPN; region: all of CH) looks at its pool: teasers only"
    )
    story.teasers(await story.do(c.ListPool(), mia))
    story.title("Romandie (Geneva and Vaud only) sees a different pool")
    story.teasers(await story.do(c.ListPool(), eve))

    story.title("Alpine claims L-1001: owner, partner and customer are mailed")
    reply = await story.do(c.ClaimLead("L-1001"), mia)
    lead = reply.data["lead"]
    console.print(
        f"  Alpine now sees the customer: {lead['company']}, {lead['contact_name']}, "
        f"{lead['email']}",
        highlight=False,
    )
    await deliver()

    story.title("Lakeside tries the same lead a moment later")
    await story.do(c.ClaimLead("L-1001"), tom)

    story.title("Alpine claims two more; the tenant's cap is two open leads without feedback")
    await story.do(c.ClaimLead("l1003"), mia)
    await story.do(c.ClaimLead("L-1005"), mia)

    story.title("Alpine reports on L-1003: won, CHF 12'000; its slot is free again")
    await story.do(c.GiveFeedback("L-1003", "won", "12000"), mia)
    await deliver()

    story.title("49 hours pass without feedback on L-1001: the scheduler's sweep lapses it")
    clock.advance(hours=49)
    await story.do(c.ExpireOverdue(), system)
    await deliver()

    story.title("L-1001 is back in the pool: Alpine may not re-claim it for 72 hours, Lakeside may")
    await story.do(c.ClaimLead("L-1001"), mia)
    await story.do(c.ClaimLead("L-1001"), tom)
    await story.do(c.GiveFeedback("L-1001", "contacted", note=NOTE.get(locale, NOTE["en"])), tom)
    await deliver()

    story.title("Monday 08:00 in Zurich: the owner's weekly report, by mail with its chart")
    clock.set(datetime(2026, 11, 9, 7, 0, tzinfo=UTC))
    await story.do(c.SendOwnerReports(), system)
    await deliver()
    tenant = await Tenant.get(id=story.tenant_id)
    week = parse_week("last", ZoneInfo(tenant.timezone), clock.now())
    print_report(console, await build_report(tenant, week, clock.now()), "partner")
    return story
