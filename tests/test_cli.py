"""The admin CLI as a real process: the whole flow, clear errors, and concurrent processes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cli_helpers import LYRA, cli, cli_json, lyra_env
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A database set up through the CLI once; each test works on its own copy."""
    folder = tmp_path_factory.mktemp("seeded")
    _setup(lyra_env(f"sqlite://{folder / 'cli.db'}", folder), folder)
    return folder / "cli.db"


@pytest.fixture
def env(tmp_path, seeded):
    shutil.copy(seeded, tmp_path / "cli.db")
    return lyra_env(f"sqlite://{tmp_path / 'cli.db'}", tmp_path)


def _setup(env, tmp_path, partners=("alpine",)):
    cli(env, "db", "upgrade")
    cli(
        env,
        "tenant",
        "add",
        "acme",
        "--name",
        "Acme AG",
        "--owner-email",
        "owner@acme.example",
        "--cap",
        "2",
        "--locale",
        "en",
    )
    for slug in partners:
        cli(
            env,
            "partner",
            "add",
            slug,
            "--name",
            slug.title(),
            "--products",
            "Firewall,VPN",
            "--regions",
            "CH",
        )
        cli(env, "user", "add", f"u@{slug}.example", "--name", slug, "--partner", slug)
    csv = tmp_path / "leads.csv"
    csv.write_text(
        "product,region,need,company,contact_name,email,phone\n"
        "Firewall,CH-ZH,Two firewalls,Huber AG,Anna Huber,anna@huber.example,+41 44 555 01 01\n"
        "VPN,CH-BE,Remote access,Keller GmbH,Marc Keller,marc@keller.example,+41 31 555 02 02\n",
        encoding="utf-8-sig",
    )
    assert "Imported 2 leads." in cli(env, "lead", "import", str(csv)).stdout


def test_admin_flow_from_import_to_delivered_mail(env, tmp_path):
    pool = cli_json(env, "pool", "--as", "u@alpine.example")
    assert [lead["ref"] for lead in pool["leads"]] == ["L-1001", "L-1002"]
    assert "anna" not in str(pool).lower() and "huber" not in str(pool).lower()
    table = cli(env, "pool", "--as", "u@alpine.example").stdout
    assert "L-1001" in table and "Huber" not in table

    assert (
        "You have claimed L-1001"
        in cli(env, "lead", "claim", "l1001", "--as", "u@alpine.example").stdout
    )
    mine = cli_json(env, "claims", "--as", "u@alpine.example")
    assert mine["claims"][0]["email"] == "anna@huber.example"
    out = cli(
        env, "lead", "feedback", "L-1001", "won", "--amount", "12'000", "--as", "u@alpine.example"
    )
    assert "recorded as won" in out.stdout

    queued = cli_json(env, "outbox", "list")["messages"]
    assert sorted(m["kind"] for m in queued) == sorted(
        [
            "claim.owner",
            "claim.partner",
            "claim.customer",
            "feedback.owner",
            "feedback.partner",
            "feedback.customer",
        ]
    )
    assert "Delivered 6 messages." in cli(env, "outbox", "deliver").stdout
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 6
    leads = cli_json(env, "lead", "list")["leads"]
    assert {lead["ref"]: lead["status"] for lead in leads} == {"L-1001": "closed", "L-1002": "open"}
    shown = cli(env, "lead", "show", "L-1001").stdout  # a panel, times in Zurich time
    assert "anna@huber.example" in shown and "Feedback (1)" in shown and " won " in shown
    assert "CET" in shown or "CEST" in shown
    data = cli_json(env, "lead", "show", "L-1001")
    assert data["feedback"][0]["outcome"] == "won" and data["lead"]["ref"] == "L-1001"
    partners = cli_json(env, "partner", "list")["partners"]
    assert partners[0]["active_claims"] == 0 and partners[0]["pool"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("tenant", "add", "beta", "--name", "B", "--owner-email", "nope"),
            "'nope' is not an email address",
        ),
        (
            ("tenant", "add", "acme", "--name", "A", "--owner-email", "a@b.example"),
            "already exists",
        ),
        (
            ("partner", "add", "x", "--name", "X", "--products", "", "--regions", "CH"),
            "at least one product",
        ),
        (("lead", "add", "--product", "VPN", "--region", "Zurich city"), "not a region code"),
        (("lead", "claim", "L-1001", "--as", "nobody@x.example"), "not a partner user"),
        (("lead", "claim", "L-9999", "--as", "u@alpine.example"), "There is no lead L-9999"),
        (("lead", "feedback", "L-1001", "perhaps", "--as", "u@alpine.example"), "not an outcome"),
        (("lead", "withdraw", "foo"), "not a lead reference"),
        (("pool", "--tenant", "nosuch"), "There is no tenant 'nosuch'"),
        (("lead", "import", "/nonexistent/leads.csv"), "cannot read"),
        (("outbox", "list", "--status", "lost"), "not a status"),
    ],
)
def test_bad_input_prints_one_line_and_exits_1(env, args, message):
    proc = cli(env, *args, ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("Error:")


def test_bad_import_names_the_line_and_imports_nothing(env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("product,region,email\nVPN,CH,a@x.example\nVPN,,b@x.example\n")
    proc = cli(env, "lead", "import", str(bad), ok=False)
    assert proc.returncode == 1 and "line 3: region is missing" in proc.stderr
    assert len(cli_json(env, "lead", "list")["leads"]) == 2


def test_excel_export_with_semicolons_imports_after_a_dry_run(env, tmp_path):
    export = tmp_path / "Excel export.csv"
    export.write_bytes(
        "Produkt;Region;Firma;Contact Name;E-Mail;Telefon\r\n"
        "Firewall;CH-ZH;Bäckerei AG;Jürg Meier;jm@baeckerei.example;\r\n"
        "VPN;CH-VD;Société SA;Luc Favre;;+41 21 555 00 00\r\n".encode("utf-8-sig")
    )
    dry = cli(env, "lead", "import", str(export), "--dry-run").stdout
    assert "Dry run: would import 2 leads, 2 into the pool" in dry
    assert len(cli_json(env, "lead", "list")["leads"]) == 2
    assert "Imported 2 leads." in cli(env, "lead", "import", str(export)).stdout
    leads = cli_json(env, "lead", "list")["leads"]
    assert [lead["region"] for lead in leads[:2]] == ["CH-VD", "CH-ZH"]


def test_listings_page_with_a_total_and_records_show_as_panels_or_json(env):
    page = cli(env, "lead", "list", "--limit", "1").stdout
    assert "1 of 2 leads" in page and "Showing 1–1 of 2 leads; next: --offset 1." in page
    rest = cli_json(env, "lead", "list", "--limit", "1", "--offset", "1")
    assert (rest["total"], [lead["ref"] for lead in rest["leads"]]) == (2, ["L-1001"])
    assert "Showing" not in cli(env, "lead", "list").stdout  # everything shown: no caption

    policy = cli_json(env, "tenant", "show", "acme")["policy"]
    assert (policy["cap_open_claims"], policy["locale"]) == (2, "en")
    partner = cli_json(env, "partner", "show", "alpine")["partner"]
    assert [u["email"] for u in partner["users"]] == ["u@alpine.example"]
    assert partner["pool"] == 2 and partner["products"] == ["Firewall", "VPN"]
    assert "u@alpine.example" in cli(env, "partner", "show", "alpine").stdout
    users = cli_json(env, "user", "list")["users"]
    assert [(u["email"], u["partner"]) for u in users] == [("u@alpine.example", "alpine")]
    user = cli_json(env, "user", "show", "U@alpine.example")["user"]
    assert (user["partner"], user["active_claims"]) == ("alpine", 0)
    missing = cli(env, "user", "show", "nobody@x.example", ok=False)
    assert missing.returncode == 1 and "There is no user nobody@x.example" in missing.stderr

    cli(env, "lead", "claim", "L-1001", "--as", "u@alpine.example")
    claims = cli(env, "claims", "--as", "u@alpine.example").stdout
    due = cli_json(env, "claims", "--as", "u@alpine.example")["claims"][0]["due_at"]
    assert due.endswith("+00:00")  # JSON keeps UTC
    assert ("CET" in claims or "CEST" in claims) and due[:10] in claims  # the table: Zurich


def test_dead_letters_are_shown_and_sent_again(env, tmp_path):
    cli(env, "lead", "claim", "L-1001", "--as", "u@alpine.example")
    queued = cli_json(env, "outbox", "list", "--status", "pending")["total"]
    assert queued >= 3  # the claim's mails to owner, partner and customer at least
    nowhere = {**env, "LYRA_SMTP_HOST": "127.0.0.1", "LYRA_SMTP_PORT": "9"}
    nowhere["LYRA_OUTBOX_MAX_ATTEMPTS"] = "1"
    cli(nowhere, "outbox", "deliver")
    dead = cli_json(env, "outbox", "list", "--status", "dead")
    # each dead letter is also told to the owner, in a notice that died the same way
    total = dead["total"]
    assert total >= queued and {m["status"] for m in dead["messages"]} == {"dead"}
    first = dead["messages"][0]["id"]
    shown = cli_json(env, "outbox", "show", str(first))["message"]
    assert shown["status"] == "dead" and shown["last_error"] and shown["payload"]
    assert f"Message {first}: dead" in cli(env, "outbox", "show", str(first)).stdout
    refused = cli(env, "outbox", "retry", ok=False)
    assert refused.returncode == 1 and "--all" in refused.stderr
    assert "1 dead message queued again" in cli(env, "outbox", "retry", str(first)).stdout
    again = cli(env, "outbox", "retry", str(first), ok=False)
    assert again.returncode == 1 and f"Not a dead message: {first}" in again.stderr
    retried = cli(env, "outbox", "retry", "--all").stdout
    assert f"{total - 1} dead messages queued again" in retried
    assert cli_json(env, "outbox", "list", "--status", "dead")["total"] == 0
    assert f"Delivered {total} messages." in cli(env, "outbox", "deliver").stdout


def test_store_problems_exit_2(tmp_path):
    fresh = lyra_env(f"sqlite://{tmp_path / 'new.db'}", tmp_path)
    proc = cli(fresh, "lead", "list", ok=False)
    assert proc.returncode == 2 and "lyra-bot db upgrade" in proc.stderr
    nowhere = lyra_env("postgres://postgres@127.0.0.1:1/none", tmp_path)
    proc = cli(nowhere, "lead", "list", ok=False)
    assert proc.returncode == 2 and "cannot open the database" in proc.stderr


async def _seed_partners(settings, partners):
    from lyra_bot import commands as c
    from lyra_bot.bus import Bus
    from lyra_bot.commands import Actor
    from lyra_bot.db import close_db, init_db

    await init_db(settings)
    try:
        bus = Bus(settings)
        owner = Actor.owner(1)
        for slug in partners:
            assert (await bus.dispatch(c.AddPartner(slug, slug, ("*",), ("CH",)), owner)).ok
            assert (await bus.dispatch(c.AddUser(f"u@{slug}.example", slug, slug), owner)).ok
    finally:
        await close_db()


def test_concurrent_processes_on_sqlite_claim_one_lead_once(env, tmp_path):
    partners = [f"p{i}" for i in range(6)]
    asyncio.run(_seed_partners(make_settings(env["LYRA_DATABASE_URL"], tmp_path), partners))

    def claim(slug):
        return subprocess.run(
            [LYRA, "lead", "claim", "L-1001", "--as", f"u@{slug}.example"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with ThreadPoolExecutor(len(partners)) as pool:
        results = list(pool.map(claim, partners))
    assert sorted(r.returncode for r in results) == [0, 1, 1, 1, 1, 1], [r.stderr for r in results]
    assert all(
        "already been taken" in r.stderr or "just been taken" in r.stderr
        for r in results
        if r.returncode
    )
    assert not any("locked" in r.stderr for r in results)
    claims = [
        m for m in cli_json(env, "outbox", "list")["messages"] if m["kind"] == "claim.partner"
    ]
    assert len(claims) == 1


def test_privacy_commands(env, tmp_path):
    cli(env, "lead", "claim", "L-1001", "--as", "u@alpine.example")
    cli(env, "outbox", "deliver")
    cli(env, "lead", "show", "L-1001")  # the owner looks: one more disclosure
    log = cli_json(env, "privacy", "log", "acme", "--lead", "L-1001")["disclosures"]
    assert [d["purpose"] for d in log] == ["claim.owner", "claim.partner", "lead show"]
    assert log[2]["channel"] == "cli" and "email" in log[2]["fields"]

    out = tmp_path / "anna.json"
    cli(env, "privacy", "export", "acme", "--customer", "anna@huber.example", "--out", str(out))
    exported = json.loads(out.read_text())
    assert exported["leads"][0]["phone"] == "+41 44 555 01 01" and len(exported["messages"]) == 3

    refused = cli(env, "privacy", "erase", "acme", "--customer", "anna@huber.example", ok=False)
    assert refused.returncode == 1  # no --yes and no terminal to confirm
    erased = cli(env, "privacy", "erase", "acme", "--customer", "anna@huber.example", "--yes")
    assert "Erased anna@huber.example from 1 lead." in erased.stdout
    shown = cli(env, "lead", "show", "L-1001").stdout
    assert "anna@huber.example" not in shown and "[erased]" in shown
    assert "Erased the customer data of 0 leads." in cli(env, "privacy", "purge").stdout
