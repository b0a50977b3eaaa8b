"""End to end against real servers: aiosmtpd for SMTP, Dovecot for IMAP, aiohttp over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from lyra_bot.adapters.email.smtp import mime_bytes

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.app import bootstrap, build_web_app, serve
from lyra_bot.domain import OutboxStatus
from lyra_bot.models import Claim, Lead, OutboxMessage, User
from lyra_bot.outbox import thread_root
from tests.email_helpers import reply_mail
from tests.mailservers import Dovecot, SmtpSink, free_port
from tests.world import build_world

ROOT = Path(__file__).resolve().parent.parent


def mail_settings(store, smtp: SmtpSink | None = None, imap: Dovecot | None = None, **extra):
    update: dict = {"inbound_webhook_secret": "hook-secret", **extra}
    if smtp is not None:
        update.update(smtp_host=smtp.host, smtp_port=smtp.port, smtp_tls="none")
    if imap is not None:
        update.update(
            imap_host=imap.host,
            imap_port=imap.port,
            imap_username=imap.user,
            imap_password=imap.password,
            imap_tls="none",
            imap_poll_seconds=0.2,
        )
    return store.model_validate({**store.model_dump(), **update})


def gmail_reply(digest: EmailMessage, body: str, sender: str = "Mia <mia@alpine.example>") -> bytes:
    """How Gmail answers: new text on top, the digest quoted with '>' below."""
    quoted = digest.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    text = f"{body}\n\nOn Mon, Nov 2, 2026 at 10:00 AM Lyra <lyra@lyra.test> wrote:\n\n"
    text += "".join(f"> {line}\n" for line in quoted.splitlines())
    return reply_mail(
        sender,
        str(digest["Reply-To"]),
        text,
        subject=f"Re: {digest['Subject']}",
        references=str(digest["Message-ID"]),
    )


async def test_smtp_delivery_headers_threading_and_css(store, clock, smtp_server):
    services = bootstrap(mail_settings(store, smtp_server), clock)
    try:
        world = await build_world(services.bus)
        await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
        await world.ok(c.GiveFeedback("L-1001", "contacted"), "mia@alpine.example")
        assert await services.worker.run_once() == 6
    finally:
        await services.worker.close()

    rows = {r.message_id: r for r in await OutboxMessage.all()}
    assert all(r.status == OutboxStatus.SENT for r in rows.values())
    partner = smtp_server.to("mia@alpine.example")
    assert len(partner) == 2
    claim = await Claim.get(lead__ref="L-1001", lead__tenant_id=world.tenant_id)
    root = thread_root(services.settings, world.tenant_id, f"claim:{claim.id}:partner")
    for msg in partner:
        assert msg["Message-ID"] in rows
        assert msg["In-Reply-To"] == root and msg["References"] == root
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Auto-Response-Suppress"] == "All"
        assert msg["Date"] and msg.get_content_type() == "multipart/alternative"
        html = msg.get_body(preferencelist=("html",))
        assert html.get_content_charset() == "utf-8"
        assert "<style" not in html.get_content() and 'style="' in html.get_content()
    assert {e.sender for e in smtp_server.envelopes} == {"leads@lyra.test"}  # bounces come back


async def test_smtp_reconnects_when_the_server_drops_and_refusals_are_dead(
    store, clock, smtp_server
):
    services = bootstrap(mail_settings(store, smtp_server), clock)
    try:
        world = await build_world(services.bus)
        await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
        assert await services.worker.run_once() == 3
        # The server goes away and comes back on the same port: the next mail still goes out.
        await asyncio.to_thread(smtp_server.restart)
        smtp_server.refuse.add("marc@keller.example")
        await world.ok(c.ClaimLead("L-1002"), "mia@alpine.example")
        await services.worker.run_once()
    finally:
        await services.worker.close()
    assert smtp_server.to("mia@alpine.example") and len(smtp_server.to("mia@alpine.example")) == 2
    dead = await OutboxMessage.get(recipient="marc@keller.example")
    assert dead.status == OutboxStatus.DEAD and "550" in dead.last_error
    assert await OutboxMessage.filter(kind="outbox.dead", recipient="owner@acme.example").exists()


def test_header_values_never_carry_line_breaks(settings):
    row = OutboxMessage(
        id=1,
        tenant_id=1,
        kind="x",
        recipient="a@b.example",
        message_id="<m@lyra.test>",
        payload={
            "to": "a@b.example",
            "subject": "Hello\r\nBcc: victim@evil.example",
            "text": "t",
            "html": "",
            "reply_to": None,
            "headers": {"In-Reply-To": "<x@y>\r\nBcc: victim@evil.example"},
        },
    )
    from datetime import UTC, datetime

    row.created_at = datetime(2026, 11, 2, tzinfo=UTC)
    data = mime_bytes(row, settings)
    assert b"\nBcc:" not in data and b"\rBcc:" not in data


async def test_digest_reply_claim_over_imap_end_to_end(store, clock, smtp_server, dovecot):
    services = bootstrap(mail_settings(store, smtp_server, dovecot), clock)
    poller = services.imap_poller()
    assert poller is not None
    try:
        world = await build_world(services.bus)
        await world.ok(c.SendDigests(world.tenant_id), world.owner)
        await services.worker.run_once()
        [digest] = smtp_server.to("mia@alpine.example")
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        smtp_server.envelopes.clear()

        raw = gmail_reply(digest, "Claim L-1003")
        await asyncio.to_thread(dovecot.append, raw)
        result = await poller.poll_once()
        assert (result.processed, result.failed) == (1, 0)
        lead = await Lead.get(tenant_id=world.tenant_id, ref="L-1003")
        assert lead.status == "claimed"
        assert await Claim.filter(lead_id=lead.id).count() == 1
        assert await Lead.filter(tenant_id=world.tenant_id, status="claimed").count() == 1

        await services.worker.run_once()
        by_kind = {e.message["To"]: e.message for e in smtp_server.envelopes}
        owner, partner, customer = (
            by_kind["owner@acme.example"],
            by_kind["mia@alpine.example"],
            by_kind["sara@limmat.example"],
        )
        assert "sara@limmat.example" in partner.get_body(preferencelist=("plain",)).get_content()
        assert "Limmat" not in digest.get_body(preferencelist=("plain",)).get_content()
        for msg in (owner, partner, customer):
            assert msg["In-Reply-To"] and msg["In-Reply-To"] == msg["References"]
            assert msg["Auto-Submitted"] == "auto-generated"
        assert partner["Reply-To"].startswith("leads+")
        assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 1)

        # The same reply delivered again: moved to Processed, nothing else happens.
        sent = len(smtp_server.envelopes)
        await asyncio.to_thread(dovecot.append, raw)
        await poller.poll_once()
        await services.worker.run_once()
        assert len(smtp_server.envelopes) == sent
        assert await Claim.filter(lead_id=lead.id).count() == 1
        assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 2)

        # A spoofed reply is refused and parked in Failed with the reason logged.
        spoof = gmail_reply(digest, "claim L-1001", sender="Tom <tom@lakeside.example>")
        await asyncio.to_thread(dovecot.append, spoof)
        result = await poller.poll_once()
        assert result.failed == 1 and dovecot.count("Failed") == 1
        assert await Claim.filter(lead__ref="L-1001").count() == 0
    finally:
        await poller.close()
        await services.worker.close()


async def test_poller_waits_with_idle_and_stops_promptly(store, clock, smtp_server, dovecot):
    services = bootstrap(mail_settings(store, smtp_server, dovecot), clock)
    poller = services.imap_poller()
    assert poller is not None
    world = await build_world(services.bus)
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(services.settings, "u", world.tenant_id, mia.id, None, clock.now())
    stop, waiting = asyncio.Event(), asyncio.Event()
    wait = poller._wait

    async def wait_and_tell(stop: asyncio.Event) -> None:
        waiting.set()  # polled the empty inbox; from here on only IDLE can bring the mail
        await wait(stop)

    poller._wait = wait_and_tell  # type: ignore[method-assign]
    task = asyncio.create_task(poller.run_forever(stop))
    try:
        await asyncio.wait_for(waiting.wait(), 10)
        raw = reply_mail(
            "mia@alpine.example", tokens.reply_address(services.settings, token), "claim L-1002"
        )
        await asyncio.to_thread(dovecot.append, raw)
        # IDLE answers at once; a 300 s IDLE timeout and a 10 s lease renewal would not.
        await until(lambda: Claim.filter(lead__ref="L-1002").exists(), limit=5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await poller.close()
        await services.worker.close()


async def test_webhook_over_http_same_path_into_the_bus(store, clock, smtp_server):
    services = bootstrap(mail_settings(store, smtp_server), clock)
    world = await build_world(services.bus)
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(services.settings, "u", world.tenant_id, mia.id, None, clock.now())
    raw = reply_mail(
        "Mia <mia@alpine.example>",
        tokens.reply_address(services.settings, token),
        "claim L-1001\n\n-- \nMia",
    )
    server = TestServer(build_web_app(services))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/inbound/email"))
            denied = await http.post(url, data=raw, headers={"Authorization": "Bearer nope"})
            assert denied.status == 401
            auth = {"Authorization": "Bearer hook-secret", "Content-Type": "message/rfc822"}
            first = await http.post(url, data=raw, headers=auth)
            body = await first.json()
            assert first.status == 200 and body["results"][0]["code"] == "claimed"
            again = await (await http.post(url, data=raw, headers=auth)).json()
            assert again["duplicate"] is True
            big = await http.post(url, data=raw + b"x" * 11 * 1024 * 1024, headers=auth)
            assert big.status == 413
        await services.worker.run_once()
    finally:
        await server.close()
        await services.worker.close()
    assert await Claim.filter(lead__ref="L-1001", lead__tenant_id=world.tenant_id).count() == 1
    assert len(smtp_server.to("mia@alpine.example")) == 2  # the claim mail and the size answer


async def test_one_click_unsubscribe(store, clock):
    services = bootstrap(mail_settings(store), clock)
    world = await build_world(services.bus)
    await world.ok(c.SendDigests(world.tenant_id), world.owner)
    digest = await OutboxMessage.get(kind="digest", recipient="mia@alpine.example")
    url = digest.payload["headers"]["List-Unsubscribe"].split(">")[0].strip("<")
    path = url.split("8080", 1)[1]
    server = TestServer(build_web_app(services))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            page = await http.get(str(server.make_url(path)))
            assert page.status == 200 and "<form" in await page.text()
            assert (await User.get(email="mia@alpine.example")).digest_enabled
            done = await http.post(
                str(server.make_url(path)), data={"List-Unsubscribe": "One-Click"}
            )
            assert done.status == 200
            bad = await http.post(str(server.make_url("/email/unsubscribe/k1.x.y.z.a.b")))
            assert bad.status == 404
    finally:
        await server.close()
        await services.worker.close()
    assert not (await User.get(email="mia@alpine.example")).digest_enabled


async def test_lyra_bot_run_polls_imap_and_sends_over_smtp(
    store, smtp_server, dovecot, instant, instant_clock
):
    """``serve`` as ``lyra-bot run`` runs it, scheduler on, at each shared instant: the
    claim mailed in over IMAP is answered once, whatever the start-up sweeps also send."""
    clock = instant_clock
    settings = mail_settings(store, smtp_server, dovecot, http_port=free_port())
    services = bootstrap(settings, clock)
    world = await build_world(services.bus)
    await services.worker.close()
    mia = await User.get(email="mia@alpine.example")
    token = tokens.issue(settings, "u", world.tenant_id, mia.id, None, clock.now())
    raw = reply_mail("mia@alpine.example", tokens.reply_address(settings, token), "claim L-1004")
    await asyncio.to_thread(dovecot.append, raw)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, clock=clock, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await until(lambda: Claim.filter(lead__ref="L-1004").exists())
        await until(delivered)
        rows = {r.message_id: r for r in await OutboxMessage.filter(recipient="mia@alpine.example")}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    to_mia = [str(m["Message-ID"]) for m in smtp_server.to("mia@alpine.example")]
    assert sorted(to_mia) == sorted(rows)  # each row once, nothing else
    digests = [r for r in rows.values() if r.kind == "digest"]
    assert len(digests) == int(instant.digests_due())  # the start-up sweep, only when due
    [claim_mail] = [
        m for m in smtp_server.to("mia@alpine.example") if rows[m["Message-ID"]].kind != "digest"
    ]
    assert "L-1004" in claim_mail["Subject"]


async def delivered() -> bool:
    """Every queued row sent (the claim's mails and whatever the start-up sweeps queued)."""
    return not await OutboxMessage.filter(status=OutboxStatus.PENDING).exists()


async def until(check, limit: float = 10.0) -> None:
    """Wait for a condition (polled), not for a guessed time."""
    for _ in range(int(limit / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {limit} s")


def test_cli_mail_poll_once_and_digest_send(tmp_path, dovecot, smtp_server, sqlite_template):
    import shutil

    db = tmp_path / "cli.db"
    shutil.copy(sqlite_template, db)
    env = {
        **os.environ,
        "LYRA_DATABASE_URL": f"sqlite://{db}",
        "LYRA_IMAP_HOST": dovecot.host,
        "LYRA_IMAP_PORT": str(dovecot.port),
        "LYRA_IMAP_USERNAME": dovecot.user,
        "LYRA_IMAP_PASSWORD": dovecot.password,
        "LYRA_IMAP_TLS": "none",
        "LYRA_OUTBOX_DIR": str(tmp_path / "outbox"),
        "LYRA_SECRET_KEY": "cli-secret-0123456789abcdefghijklmnopqrstuv",
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "lyra-bot"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert (
        cli("tenant", "add", "acme", "--name", "Acme", "--owner-email", "o@acme.example").returncode
        == 0
    )
    assert (
        cli(
            "partner", "add", "alp", "--name", "Alp", "--products", "*", "--regions", "CH"
        ).returncode
        == 0
    )
    assert cli("user", "add", "mia@alp.example", "--partner", "alp").returncode == 0
    assert cli("lead", "add", "--product", "VPN", "--region", "CH-ZH").returncode == 0
    sent = cli("digest", "send")
    assert sent.returncode == 0 and "Digests queued: 1;" in sent.stdout
    dovecot.append(
        b"From: x@y.example\r\nTo: leads@localhost\r\nSubject: hi\r\n\r\nclaim L-1001\r\n"
    )
    polled = cli("mail", "poll", "--once")
    assert polled.returncode == 0, polled.stderr
    assert "Processed 0 mails, 1 refused" in polled.stdout
    assert dovecot.count("Failed") == 1
