"""``lyra-bot run`` and ``lyra-bot demo`` as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lyra_bot import commands as c
from lyra_bot.app import describe_instance
from lyra_bot.bus import Bus
from lyra_bot.clock import FrozenClock
from lyra_bot.commands import Actor
from lyra_bot.config import Settings
from lyra_bot.db import close_db, init_db
from tests.cli_helpers import LYRA, cli, lyra_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


async def _set_up(db: Path, when: datetime) -> None:
    """What an admin did before the service started: a tenant, a partner, a user, a lead."""
    settings = Settings(_env_file=None, database_url=f"sqlite://{db}")  # type: ignore[call-arg]
    await init_db(settings, migrate=True)
    try:
        bus = Bus(settings, FrozenClock(when))
        tenant = await bus.dispatch(c.AddTenant("acme", "Acme", "o@acme.example"), Actor.system())
        owner = Actor.owner(tenant.data["id"])
        for cmd in (
            c.AddPartner("alpine", "Alpine", ("*",), ("CH",)),
            c.AddUser("mia@alpine.example", "Mia", "alpine"),
            c.AddLead("VPN", "CH-ZH", email="c@x.example"),
        ):
            assert (await bus.dispatch(cmd, owner)).ok
    finally:
        await close_db()


def test_run_serves_health_delivers_mail_from_other_processes_and_stops_on_sigterm(
    tmp_path, instant
):
    """At each shared instant (``LYRA_CLOCK_START``: every process's clock starts there): the
    admin set things up an hour before; the service starts, catches up (the day's digest only
    when it is due), and delivers what another process queues while it runs."""
    port = free_port()
    env = lyra_env(
        f"sqlite://{tmp_path / 'run.db'}",
        tmp_path,
        LYRA_HTTP_PORT=str(port),
        LYRA_LOG_FORMAT="json",
        LYRA_CLOCK_START=instant.at.isoformat(),
    )
    asyncio.run(_set_up(tmp_path / "run.db", instant.at - timedelta(hours=1)))
    service = subprocess.Popen(
        [LYRA, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    mails = tmp_path / "outbox"
    digests = int(instant.digests_due())
    try:
        wait_for(lambda: _healthy(port) or service.poll() is not None)
        assert service.poll() is None, service.stdout.read()
        # an admin works in another process while the service runs (same SQLite file)
        cli(env, "lead", "claim", "L-1001", "--as", "mia@alpine.example")
        wait_for(lambda: len(list(mails.rglob("*.eml"))) == 3 + digests)
        assert len([m for m in mails.rglob("*.eml") if "digest" in m.name]) == digests
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            ready = json.load(resp)
            assert resp.status == 200 and ready["status"] == "ready", ready
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert f'lyra_outbox_delivered_total{{channel="email"}} {3.0 + digests}' in metrics
        assert 'lyra_commands_total{kind="ExpireOverdue",result="ok"}' in metrics
    finally:
        service.send_signal(signal.SIGTERM)
        output = service.communicate(timeout=20)[0]
    assert service.returncode == 0, output
    assert "shutting down" in output and "Traceback" not in output
    records = [json.loads(line) for line in output.splitlines()]  # LYRA_LOG_FORMAT=json
    assert records and all("correlation_id" in r for r in records)
    assert not [r for r in records if r["logger"] == "lyra.access"]  # probes: DEBUG only
    started = [r["message"] for r in records if r["message"].startswith("Lyra instance ")]
    assert len(started) == 1, output
    for part in (f"store sqlite://{tmp_path}", "mail writing mail to ", "IMAP off", "Slack off"):
        assert part in started[0], started[0]
    assert "scheduler on" in started[0]


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "is not set"),
        ("change-me-in-production", "placeholder"),
        ("short-but-not-empty", "too short (19 characters, at least 32)"),
    ],
)
def test_run_refuses_a_missing_default_or_short_secret_key_in_one_line(tmp_path, key, says):
    env = lyra_env(f"sqlite://{tmp_path / 'run.db'}", tmp_path, LYRA_HTTP_PORT=str(free_port()))
    env.pop("LYRA_SECRET_KEY")
    if key is not None:
        env["LYRA_SECRET_KEY"] = key
    proc = cli(env, "run", ok=False, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert 'python -c "import secrets; print(secrets.token_urlsafe(48))"' in lines[0]
    assert not (tmp_path / "run.db").exists()  # refused before touching the store


def test_the_start_up_line_names_the_store_without_its_password_and_the_transports():
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgres://lyra:hunter2secret@db.internal:5432/lyra",
        smtp_host="mail.example",
        smtp_port=587,
        smtp_tls="starttls",
        imap_host="imap.example",
        slack_bot_token="xoxb-1",  # type: ignore[arg-type]
        scheduler_enabled=False,
        instance_id="web-1",
    )
    line = describe_instance(settings)
    assert "hunter2secret" not in line
    assert line.startswith("Lyra instance web-1: ")
    for part in (
        "store postgres://lyra@db.internal:5432/lyra",
        "mail SMTP mail.example:587 (starttls)",
        "IMAP imap.example:993 INBOX",
        "Slack on",
        "scheduler off",
    ):
        assert part in line, line


def test_demo_tells_the_whole_story(tmp_path):
    env = lyra_env(f"sqlite://{tmp_path / 'unused.db'}", tmp_path)
    proc = cli(
        env,
        "demo",
        "--database",
        str(tmp_path / "demo.db"),
        "--outbox-dir",
        str(tmp_path / "mails"),
    )
    out = proc.stdout
    for expected in (
        "Imported 5 leads.",
        "You have claimed L-1001",
        "L-1001 has already been taken",
        "the limit is 2",
        "recorded as won",
        "1 claim lapsed: L-1001",
        "others get a turn",
        "recorded as contacted",
        "Weekly reports sent (1): acme 2026-W45.",
        "Partner scorecard",
    ):
        assert expected in out, expected
    mails = list((tmp_path / "mails").rglob("*.eml"))
    assert len(mails) == 18 and f"{len(mails)} emails were written" in out
    assert [m.name for m in mails if "report-owner" in m.name]
    assert "Huber Maschinen AG" not in out.split("teasers only")[1].split("claims L-1001")[0]
    # a second run starts afresh
    again = cli(
        env,
        "demo",
        "--database",
        str(tmp_path / "demo.db"),
        "--outbox-dir",
        str(tmp_path / "mails"),
    )
    assert "18 emails were written" in again.stdout
