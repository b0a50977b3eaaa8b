"""``lyra-bot run`` and ``lyra-bot demo`` as real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request

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


def test_run_serves_health_delivers_mail_from_other_processes_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = lyra_env(
        f"sqlite://{tmp_path / 'run.db'}",
        tmp_path,
        LYRA_HTTP_PORT=str(port),
        LYRA_LOG_FORMAT="json",
    )
    service = subprocess.Popen(
        [LYRA, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: _healthy(port) or service.poll() is not None)
        assert service.poll() is None, service.stdout.read()
        # an admin works in another process while the service runs (same SQLite file)
        cli(env, "tenant", "add", "acme", "--name", "Acme", "--owner-email", "o@acme.example")
        cli(
            env,
            "partner",
            "add",
            "alpine",
            "--name",
            "Alpine",
            "--products",
            "*",
            "--regions",
            "CH",
        )
        cli(env, "user", "add", "mia@alpine.example", "--partner", "alpine")
        cli(env, "lead", "add", "--product", "VPN", "--region", "CH-ZH", "--email", "c@x.example")
        cli(env, "lead", "claim", "L-1001", "--as", "mia@alpine.example")
        wait_for(lambda: len(list((tmp_path / "outbox").rglob("*.eml"))) == 3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            ready = json.load(resp)
            assert resp.status == 200 and ready["status"] == "ready", ready
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'lyra_outbox_delivered_total{channel="email"} 3.0' in metrics
        assert 'lyra_commands_total{kind="ExpireOverdue",result="ok"}' in metrics
    finally:
        service.send_signal(signal.SIGTERM)
        output = service.communicate(timeout=20)[0]
    assert service.returncode == 0, output
    assert "shutting down" in output and "Traceback" not in output
    records = [json.loads(line) for line in output.splitlines()]  # LYRA_LOG_FORMAT=json
    assert records and all("correlation_id" in r for r in records)
    assert not [r for r in records if r["logger"] == "lyra.access"]  # probes: DEBUG only


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
