"""Email channel benchmark: ``python bench/email.py [--n 300]``; last line is one JSON object.

(a) ``smtp_ratio``: outbox delivery over SMTP (the worker: take rows, build MIME, inline CSS,
    send over one reused aiosmtplib connection, mark sent) to a local aiosmtpd, divided by a
    bare aiosmtplib loop sending the same messages (``send_message``) over one connection.
    ``smtp_ratio_vs_bytes`` compares with a loop that sends the already serialized bytes.
(b) ``inbound_ratio``: reply mails processed per second from raw bytes to a committed claim
    (parse, identify, claim, answer bookkeeping) divided by dispatching the same
    ``ClaimLead`` commands directly on the bus.

Both baselines run in the same process, on the same SQLite store, in the same run, in
alternating slices; each ratio is the median of the per-slice ratios (a burst of load from
another process then spoils one slice, not the figure). Totals are reported too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from email import message_from_bytes  # noqa: E402

import aiosmtplib  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from lyra_bot.adapters.email.smtp import envelope_sender, mime_bytes  # noqa: E402

from lyra_bot import commands as c  # noqa: E402
from lyra_bot import tokens  # noqa: E402
from lyra_bot.app import bootstrap  # noqa: E402
from lyra_bot.clock import FrozenClock  # noqa: E402
from lyra_bot.commands import Actor  # noqa: E402
from lyra_bot.config import Settings  # noqa: E402
from lyra_bot.db import close_db, init_db  # noqa: E402
from lyra_bot.domain import OutboxStatus  # noqa: E402
from lyra_bot.models import OutboxMessage, User  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reply(sender: str, address: str, ref: str, n: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: {address}\r\nSubject: Re: new leads\r\n"
        f"Message-ID: <bench-{n}@client.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Claim {ref}\r\n\r\nOn Mon, 2 Nov 2026 at 10:00, Lyra <lyra@lyra.test> wrote:\r\n"
        f"> CLAIM L-9999\r\n> reply above this line\r\n"
    ).encode()


async def setup(services, n: int) -> tuple[int, list[Actor], list[str], list[str]]:
    """One tenant, 2n partner users (one partner each), 2n open leads."""
    bus = services.bus
    reply_ = await bus.dispatch(
        c.AddTenant("bench", "Bench", "owner@bench.example", locale="en", cap_open_claims=5),
        Actor.system(),
    )
    tenant_id = reply_.data["id"]
    owner = Actor.owner(tenant_id)
    actors, emails, refs = [], [], []
    for i in range(2 * n):
        await bus.dispatch(c.AddPartner(f"p{i}", f"P{i}", ("*",), ("CH",)), owner)
        email = f"u{i}@p{i}.example"
        user_reply = await bus.dispatch(c.AddUser(email, f"U{i}", f"p{i}"), owner)
        user = await User.get(id=user_reply.data["id"])
        actors.append(Actor.partner_user(tenant_id, user.partner_id or 0, user.id, "bench"))
        emails.append(email)
    csv = "product,region,company,email\n" + "".join(
        f"Firewall,CH-ZH,Company {i},c{i}@cust.example\n" for i in range(2 * n)
    )
    imported = await bus.dispatch(c.ImportLeads(csv), owner)
    refs = imported.data["refs"]
    return tenant_id, actors, emails, refs


async def bench_inbound(services, n: int, rounds: int) -> tuple[float, float]:
    """Alternating blocks of direct claims and reply mails, so drift hits both alike."""
    tenant_id, actors, emails, refs = await setup(services, n)
    settings, now = services.settings, services.clock.now()
    mails = []
    for i in range(n):
        user = await User.get(email=emails[i])
        token = tokens.issue(settings, "u", tenant_id, user.id, None, now)
        mails.append(reply(emails[i], tokens.reply_address(settings, token), refs[i], i))
    block = max(1, n // rounds)
    direct_time = inbound_time = 0.0
    ratios = []

    async def run_direct(chunk: range) -> float:
        start = time.perf_counter()
        for i in chunk:
            result = await services.bus.dispatch(c.ClaimLead(refs[n + i]), actors[n + i])
            assert result.ok, result.message
        return time.perf_counter() - start

    async def run_inbound(chunk: range) -> float:
        start = time.perf_counter()
        for i in chunk:
            outcome = await services.mail.process(mails[i], "bench")
            assert outcome.results and outcome.results[0][1].ok, outcome
        return time.perf_counter() - start

    for slice_no, start_at in enumerate(range(0, n, block)):
        chunk = range(start_at, min(n, start_at + block))
        if slice_no % 2:  # alternate which side goes first
            inbound = await run_inbound(chunk)
            direct = await run_direct(chunk)
        else:
            direct = await run_direct(chunk)
            inbound = await run_inbound(chunk)
        direct_time, inbound_time = direct_time + direct, inbound_time + inbound
        ratios.append(direct / inbound)
    return n / inbound_time, n / direct_time, statistics.median(ratios)


async def bench_smtp(
    services, sink: Sink, port: int, rounds: int
) -> tuple[float, float, float, float, float]:
    """The pending mails in ``rounds`` slices; per slice the bare loops and the worker.

    Two bare loops: ``send_message`` of the same messages as objects (what a hand-written
    sender does: it serializes each one), and ``sendmail`` of the same, already serialized
    bytes (the SMTP exchange alone).
    """
    rows = await OutboxMessage.filter(status=OutboxStatus.PENDING).order_by("id")
    sender = envelope_sender(services.settings)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    block = max(1, len(rows) // rounds)
    times = {"objects": 0.0, "bytes": 0.0, "outbox": 0.0}
    ratios: dict[str, list[float]] = {"objects": [], "bytes": []}
    delivered = 0

    async def run_objects(chunk: list, data: list[bytes]) -> float:
        messages = [message_from_bytes(d) for d in data]
        start = time.perf_counter()
        for row, message in zip(chunk, messages, strict=True):
            await client.send_message(message, sender=sender, recipients=[row.recipient])
        return time.perf_counter() - start

    async def run_bytes(chunk: list, data: list[bytes]) -> float:
        start = time.perf_counter()
        for row, raw in zip(chunk, data, strict=True):
            await client.sendmail(sender, [row.recipient], raw)
        return time.perf_counter() - start

    async def run_outbox(chunk: list) -> tuple[float, int]:
        # Only this slice is due for the worker.
        await OutboxMessage.filter(id__in=[r.id for r in chunk]).update(
            next_attempt_at=services.clock.now()
        )
        start = time.perf_counter()
        count = await services.worker.run_once()
        return time.perf_counter() - start, count

    for slice_no, start_at in enumerate(range(0, len(rows), block)):
        chunk = rows[start_at : start_at + block]
        data = [mime_bytes(row, services.settings) for row in chunk]
        if slice_no % 2:
            outbox, count = await run_outbox(chunk)
            objects = await run_objects(chunk, data)
            raw = await run_bytes(chunk, data)
        else:
            raw = await run_bytes(chunk, data)
            objects = await run_objects(chunk, data)
            outbox, count = await run_outbox(chunk)
        delivered += count
        times["objects"] += objects
        times["bytes"] += raw
        times["outbox"] += outbox
        ratios["objects"].append(objects / outbox)
        ratios["bytes"].append(raw / outbox)
    await client.quit()
    assert delivered == len(rows) and sink.count == 3 * len(rows)
    n = len(rows)
    return (
        n / times["outbox"],
        n / times["objects"],
        n / times["bytes"],
        statistics.median(ratios["objects"]),
        statistics.median(ratios["bytes"]),
    )


async def main(n: int) -> dict:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite://{tmp}/bench.db",
            secret_key="bench-secret",  # type: ignore[arg-type]
            mail_from="Lyra <lyra@lyra.test>",
            inbound_address="leads@lyra.test",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls="none",
            outbox_dir=Path(tmp) / "outbox",
            outbox_batch=200,
        )
        await init_db(settings, migrate=True)
        services = bootstrap(settings, FrozenClock())
        try:
            inbound, direct, inbound_ratio = await bench_inbound(
                services, n, rounds=max(1, n // 10)
            )
            # Park every pending mail in the future; each slice is made due in turn.
            await OutboxMessage.filter(status=OutboxStatus.PENDING).update(
                next_attempt_at=services.clock.now() + timedelta(days=1)
            )
            smtp_outbox, smtp_raw, smtp_raw_bytes, smtp_ratio, smtp_ratio_bytes = await bench_smtp(
                services, sink, port, rounds=max(1, n // 25)
            )
        finally:
            await services.worker.close()
            await close_db()
            controller.stop()
    return {
        "smtp_ratio": round(smtp_ratio, 3),
        "inbound_ratio": round(inbound_ratio, 3),
        "smtp_ratio_vs_bytes": round(smtp_ratio_bytes, 3),
        "smtp_ratio_of_totals": round(smtp_outbox / smtp_raw, 3),
        "inbound_ratio_of_totals": round(inbound / direct, 3),
        "smtp_outbox_per_s": round(smtp_outbox, 1),
        "smtp_raw_per_s": round(smtp_raw, 1),
        "smtp_raw_bytes_per_s": round(smtp_raw_bytes, 1),
        "inbound_per_s": round(inbound, 1),
        "direct_claims_per_s": round(direct, 1),
        "replies": n,
        "mails": 6 * n,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="replies (and direct claims) per side")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.n))))
