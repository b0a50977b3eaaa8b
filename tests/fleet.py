"""Real ``lyra-bot run`` processes and the traffic partners send them (fault tests, load bench).

``Instance`` starts one service process with its own ``LYRA_*`` environment (its log goes to
a file in its work folder) and can stop it cleanly or ``kill -9`` it. ``build_fleet_world``
fills a database with a tenant, partners whose users have Slack ids, and open leads;
``reply_mail`` and ``click`` build what those users send: signed reply mails (for IMAP or the
``/inbound/email`` webhook) and signed Claim clicks. ``send_until_accepted`` retries like a
mail provider or Slack do while no instance answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.bus import Bus
from lyra_bot.config import Settings
from lyra_bot.domain import OutboxStatus
from lyra_bot.models import OutboxMessage
from tests.slack_fake import SECRET, TEAM, TOKEN, FakeSlack, SlackSender

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "fleet-webhook-secret"
SECRET_KEY = "fleet-secret-0123456789abcdefghijklmnopqrstuv"
CHANNEL = "C0FLEET"
RUN = "from lyra_bot.cli import main; main(['run'])"


def lyra_env(database_url: str, workdir: Path, **settings: object) -> dict[str, str]:
    """The environment of a service process: ``LYRA_*`` only from here, none inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(
        {
            "LYRA_DATABASE_URL": database_url,
            "LYRA_SECRET_KEY": SECRET_KEY,
            "LYRA_MAIL_FROM": "Lyra <lyra@lyra.test>",
            "LYRA_INBOUND_ADDRESS": "leads@lyra.test",
            "LYRA_OUTBOX_DIR": str(workdir / "outbox"),
            "LYRA_INBOUND_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LYRA_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"LYRA_{k.upper()}": str(v) for k, v in settings.items() if v is not None})
    return env


def settings_of(env: dict[str, str]) -> Settings:
    """The Settings a process with ``env`` reads (for the test's own view of the store)."""
    lyra = {k[5:].lower(): v for k, v in env.items() if k.startswith("LYRA_")}
    return Settings(_env_file=None, **lyra)  # type: ignore[call-arg]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Instance:
    """One ``lyra-bot run`` process."""

    name: str
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> Instance:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            "LYRA_HTTP_PORT": str(self.port),
            "LYRA_INSTANCE_ID": f"{self.name}-{uuid.uuid4().hex[:6]}",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUN],
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def ready(self, limit: float = 30) -> None:
        """Until ``/healthz`` answers; fails with the log's tail if the process died."""
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as session:
            while True:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                try:
                    async with session.get(self.base + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, in-flight work is cut off."""
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --- the world and its traffic ------------------------------------------------------------


@dataclass
class FleetWorld:
    tenant_id: int
    emails: list[str]  # user i belongs to partner i
    user_ids: list[int]
    slack_ids: list[str]
    refs: list[str]


async def build_fleet_world(settings: Settings, partners: int, leads: int) -> FleetWorld:
    """One tenant (no cap to speak of), ``partners`` partners with one Slack-linked user each,
    ``leads`` open Firewall leads in CH-ZH that every partner may claim."""
    bus = Bus(settings)

    async def ok(cmd: c.Command, actor: c.Actor) -> dict[str, Any]:
        reply = await bus.dispatch(cmd, actor)
        if not reply.ok:
            raise RuntimeError(f"{cmd.kind}: {reply.message}")
        return reply.data

    tenant = await ok(
        c.AddTenant("fleet", "Fleet", "owner@fleet.example", locale="en", cap_open_claims=1000),
        c.Actor.system(),
    )
    owner = c.Actor.owner(tenant["id"])
    emails, user_ids, slack_ids = [], [], []
    for i in range(partners):
        await ok(c.AddPartner(f"p{i}", f"Partner {i}", ("*",), ("CH",)), owner)
        email = f"u{i}@p{i}.example"
        user = await ok(c.AddUser(email, f"User {i}", f"p{i}"), owner)
        await ok(c.LinkSlackUser(email, TEAM, f"U{i:07d}X"), owner)
        emails.append(email)
        user_ids.append(user["id"])
        slack_ids.append(f"U{i:07d}X")
    await ok(c.LinkSlackChannel("p0", CHANNEL), owner)
    rows = "".join(f"Firewall,CH-ZH,Company {n},c{n}@customer.example\n" for n in range(leads))
    imported = await ok(c.ImportLeads("product,region,company,email\n" + rows), owner)
    return FleetWorld(tenant["id"], emails, user_ids, slack_ids, list(imported["refs"]))


def reply_mail(settings: Settings, world: FleetWorld, user: int, text: str) -> tuple[str, bytes]:
    """(Message-ID, raw mail) of a reply by user ``user`` to its signed reply address."""
    token = tokens.issue(
        settings, "u", world.tenant_id, world.user_ids[user], None, datetime.now(UTC)
    )
    message_id = f"<{uuid.uuid4().hex}@client.example>"
    raw = (
        f"From: {world.emails[user]}\r\nTo: {tokens.reply_address(settings, token)}\r\n"
        f"Subject: Re: new leads\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n"
    ).encode()
    return message_id, raw


def click(
    sender: SlackSender, world: FleetWorld, user: int, ref: str, channel: str = CHANNEL
) -> str:
    """The form body of a Claim click (its trigger id is the click's idempotency key)."""
    return sender.action_body(world.slack_ids[user], "lyra.claim", ref, channel=channel)


Send = Callable[[aiohttp.ClientSession, str], Awaitable[int]]


def webhook_send(raw: bytes) -> Send:
    async def send(session: aiohttp.ClientSession, base: str) -> int:
        headers = {"Authorization": f"Bearer {WEBHOOK_SECRET}", "Content-Type": "message/rfc822"}
        async with session.post(base + "/inbound/email", data=raw, headers=headers) as response:
            await response.read()
            return response.status

    return send


def slack_send(body: str) -> Send:
    """A click as Slack sends it: signed anew at each try, a retry marked as one."""
    tries = 0

    async def send(session: aiohttp.ClientSession, base: str) -> int:
        nonlocal tries
        headers = SlackSender(base + "/slack/events").headers(body)
        if tries:
            headers["X-Slack-Retry-Num"] = str(tries)
            headers["X-Slack-Retry-Reason"] = "http_error"
        tries += 1
        async with session.post(base + "/slack/events", data=body, headers=headers) as response:
            await response.read()
            return response.status

    return send


async def send_until_accepted(
    session: aiohttp.ClientSession,
    send: Send,
    bases: Callable[[], list[str]],
    limit: float = 60,
) -> tuple[int, float]:
    """Send to the first live base until one answers below 500; (status, monotonic time).

    Connection errors and 5xx are retried after a short pause, as a mail provider or Slack
    would, so a request cut off by a dying instance reaches the next one.
    """
    deadline = time.monotonic() + limit
    attempt = 0
    while True:
        targets = bases()
        base = targets[attempt % len(targets)] if targets else ""
        attempt += 1
        if base:
            try:
                status = await send(session, base)
                if status < 500:
                    return status, time.monotonic()
            except (TimeoutError, aiohttp.ClientError):
                pass
        if time.monotonic() > deadline:
            raise TimeoutError("no instance accepted the request")
        await asyncio.sleep(0.1)


# --- what was delivered ---------------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[bool]], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def outbox_settled() -> bool:
    return not await OutboxMessage.filter(status=OutboxStatus.PENDING).exists()


@dataclass
class Deliveries:
    """Every outbox row held against what the SMTP server and the fake Slack received."""

    mail_rows: int
    mail_missing: list[str]  # Message-IDs of sent rows aiosmtpd never got
    mail_unknown: list[str]  # Message-IDs aiosmtpd got that no row has
    mail_resent: int  # extra copies (a row re-sent after its sender died mid-batch)
    slack_answers: int
    slack_missing: list[Any]
    slack_resent: int
    not_sent: list[tuple[str, str, str]]  # (channel, kind, status) of rows not sent


async def deliveries(message_ids: list[str], fake: FakeSlack | None) -> Deliveries:
    rows = await OutboxMessage.all().values("channel", "kind", "status", "message_id", "payload")
    not_sent = [
        (r["channel"], r["kind"], str(r["status"]))
        for r in rows
        if r["status"] != OutboxStatus.SENT
    ]
    got = Counter(message_ids)
    mail = {r["message_id"] for r in rows if r["channel"] == "email"}
    answers = [
        r["payload"]["args"]
        for r in rows
        if r["channel"] == "slack" and r["payload"]["method"] == "chat.postEphemeral"
    ]
    posted: Counter[tuple[str, str, str]] = Counter()
    if fake is not None:
        for args in fake.of("chat.postEphemeral"):
            posted[(args.get("channel"), args.get("user"), args.get("text"))] += 1
    wanted = [(a.get("channel"), a.get("user"), a.get("text")) for a in answers]
    return Deliveries(
        mail_rows=len(mail),
        mail_missing=sorted(mail - set(got)),
        mail_unknown=sorted(set(got) - mail),
        mail_resent=sum(n - 1 for n in got.values()),
        slack_answers=len(wanted),
        slack_missing=[w for w in wanted if not posted[w]],
        slack_resent=sum(max(0, posted[w] - 1) for w in set(wanted)),
        not_sent=not_sent,
    )


__all__ = ["SECRET", "TOKEN", "FakeSlack", "SlackSender"]
