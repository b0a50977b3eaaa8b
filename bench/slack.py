"""Ack latency of signed Claim button requests against the real Lyra server.

    python bench/slack.py [--concurrency 200] [--rounds 5] [--store sqlite|postgres]

Starts, as separate processes, a fake Slack Web API, ``lyra-bot run`` (Slack on; a fresh
SQLite file, or a throwaway PostgreSQL database at ``LYRA_TEST_POSTGRES_URL``) and a bare
aiohttp server that answers 200. Each round sends ``concurrency`` signed Claim clicks at
once, each by another partner's user on another lead, and times every HTTP answer; the bare
server gets the same requests the same way, rounds interleaved. Lyra keeps working after
each ack (claims, mails, answers, digest updates); the next round starts when all of that
is done. The last line is one JSON object: ``lyra_p50_ms``, ``lyra_p99_ms``,
``bare_p50_ms``, ``bare_p99_ms``, ``p99_ratio`` (target: at most 3) and facts about the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from lyra_bot import commands as c  # noqa: E402
from lyra_bot.bus import Bus  # noqa: E402
from lyra_bot.config import Settings  # noqa: E402
from lyra_bot.db import close_db, init_db  # noqa: E402
from lyra_bot.domain import OutboxStatus  # noqa: E402
from lyra_bot.models import (  # noqa: E402
    Claim,
    OutboxMessage,
    SlackMessage,
    SlackMessageLead,
    SlackMessageStatus,
)
from tests.slack_fake import SECRET, TEAM, TOKEN, SlackSender  # noqa: E402

CHANNEL = "C0BENCH1"
THIS = str(Path(__file__).resolve())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- the bare baseline ----------------------------------------------------------------------


async def bare_handler(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


def serve_bare(port: int) -> None:
    app = web.Application()
    app.router.add_post("/slack/events", bare_handler)
    app.router.add_get("/healthz", bare_handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


# --- setting up Lyra ------------------------------------------------------------------------


async def prepare(settings: Settings, users: int, leads: int) -> None:
    """A tenant, ``users`` partners with one Slack user each, ``leads`` leads, one channel."""
    await init_db(settings)
    try:
        bus = Bus(settings)

        async def ok(cmd: c.Command, actor: c.Actor) -> dict[str, Any]:
            reply = await bus.dispatch(cmd, actor)
            if not reply.ok:
                raise RuntimeError(f"{cmd.kind}: {reply.message}")
            return reply.data

        tenant = await ok(
            c.AddTenant("bench", "Bench", "owner@bench.example", cap_open_claims=1000),
            c.Actor.system(),
        )
        owner = c.Actor.owner(tenant["id"])
        for i in range(users):
            await ok(c.AddPartner(f"p{i}", f"Partner {i}", ("*",), ("CH",)), owner)
            await ok(c.AddUser(f"u{i}@p{i}.example", f"User {i}", f"p{i}"), owner)
            await ok(c.LinkSlackUser(f"u{i}@p{i}.example", TEAM, f"U{i:07d}X"), owner)
        rows = "".join(
            f"Firewall,CH-ZH,Company {n},need {n},c{n}@customer.example\n" for n in range(leads)
        )
        await ok(c.ImportLeads("product,region,company,need,email\n" + rows), owner)
        await ok(c.LinkSlackChannel("p0", CHANNEL), owner)
        await ok(c.PostSlackDigests(max_leads=leads), owner)
    finally:
        await close_db()


async def wait_until(check: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def outbox_empty() -> bool:
    return not await OutboxMessage.filter(status=OutboxStatus.PENDING).exists()


def settled(claims: int) -> Any:
    """Every click so far has been handled (its claim exists) and every message delivered."""

    async def check() -> bool:
        return await Claim.all().count() >= claims and await outbox_empty()

    return check


async def digests_posted() -> bool:
    return not await SlackMessage.filter(status=SlackMessageStatus.PENDING).exists()


async def up(session: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with session.get(base + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


# --- measuring ------------------------------------------------------------------------------


async def burst(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> list[float]:
    """Send all requests at once; the latency of each, in milliseconds.

    The client's own garbage collector is held off during the burst, so that its pauses are
    not counted as the server's latency.
    """
    start = asyncio.Event()

    async def one(body: bytes, headers: dict[str, str]) -> float:
        await start.wait()
        began = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        return (time.perf_counter() - began) * 1000

    tasks = [asyncio.create_task(one(body, headers)) for body, headers in requests]
    await asyncio.sleep(0)
    gc.collect()
    gc.disable()
    try:
        start.set()
        return list(await asyncio.gather(*tasks))
    finally:
        gc.enable()


def signed_clicks(
    sender: SlackSender, round_no: int, concurrency: int, where: dict[str, str]
) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(concurrency):
        ref = f"L-{1001 + round_no * concurrency + i}"
        body = sender.action_body(
            f"U{i:07d}X", "lyra.claim", ref, channel=CHANNEL, message_ts=where.get(ref, "1.0")
        )
        out.append((body.encode(), sender.headers(body)))
    return out


async def spawn(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the three servers on a throwaway store, measure, stop everything."""
    processes: list[asyncio.subprocess.Process] = []
    async with throwaway_database(args.store) as database_url:
        try:
            with tempfile.TemporaryDirectory(prefix="lyra-bench-") as folder:
                tmp = Path(folder)
                fake = await spawn([sys.executable, "-m", "tests.slack_fake", "--port", "0"], ROOT)
                processes.append(fake)
                api_url = (await fake.stdout.readline()).decode().strip()  # type: ignore[union-attr]
                lyra_port, bare_port = free_port(), free_port()
                env = {
                    **os.environ,
                    "LYRA_DATABASE_URL": database_url,
                    "LYRA_HTTP_PORT": str(lyra_port),
                    "LYRA_SLACK_BOT_TOKEN": TOKEN,
                    "LYRA_SLACK_SIGNING_SECRET": SECRET,
                    "LYRA_SLACK_API_URL": api_url,
                    "LYRA_OUTBOX_DIR": str(tmp / "outbox"),
                    "LYRA_LOG_LEVEL": "WARNING",
                    "LYRA_SECRET_KEY": "bench-secret-0123456789abcdefghijklmnopqrstuv",
                    # scripted users click faster than people: count claims, never refuse
                    "LYRA_CLAIMS_PER_MINUTE": "1000000",
                    "LYRA_SCHEDULER_ENABLED": "false" if args.no_scheduler else "true",
                }
                lyra_env = {k[5:].lower(): v for k, v in env.items() if k.startswith("LYRA_")}
                settings = Settings(_env_file=None, **lyra_env)  # type: ignore[call-arg]
                total_leads = args.concurrency * (args.rounds + 1)
                log(f"preparing {args.concurrency} partners and {total_leads} leads …")
                await prepare(settings, args.concurrency, total_leads)
                server = [sys.executable, "-c", "from lyra_bot.cli import main; main(['run'])"]
                processes.append(await spawn(server, tmp, env))
                bare = [sys.executable, THIS, "--serve-bare", str(bare_port)]
                processes.append(await spawn(bare, ROOT))
                return await measure(
                    args,
                    settings,
                    f"http://127.0.0.1:{lyra_port}",
                    f"http://127.0.0.1:{bare_port}",
                )
        finally:
            for process in reversed(processes):
                if process.returncode is None:
                    process.terminate()
            for process in processes:
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()


async def measure(
    args: argparse.Namespace, settings: Settings, lyra: str, bare: str
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for base in (lyra, bare):
            await wait_until(lambda base=base: up(session, base), 30, base)
        await init_db(settings)
        try:
            await wait_until(digests_posted, 60, "the digests")
            await wait_until(outbox_empty, 60, "the outbox")
            where = dict(
                await SlackMessageLead.filter(message__channel_id=CHANNEL).values_list(
                    "lead__ref", "message__ts"
                )
            )
            lyra_url, bare_url = lyra + "/slack/events", bare + "/slack/events"
            sender, bare_sender = SlackSender(lyra_url), SlackSender(bare_url)
            n = args.concurrency
            # Warm up: connections, auth.test, first queries (round 0 is not measured).
            await burst(session, lyra_url, signed_clicks(sender, 0, n, where))
            await burst(session, bare_url, signed_clicks(bare_sender, 0, n, where))
            await wait_until(settled(n), 120, "the warm-up round")
            lyra_ms: list[float] = []
            bare_ms: list[float] = []
            for round_no in range(1, args.rounds + 1):
                bare_ms += await burst(
                    session, bare_url, signed_clicks(bare_sender, round_no, n, where)
                )
                lyra_ms += await burst(session, lyra_url, signed_clicks(sender, round_no, n, where))
                acked = time.perf_counter()
                await wait_until(settled((round_no + 1) * n), 300, "the round")
                log(
                    f"round {round_no}: lyra p99 {percentile(lyra_ms[-n:], 99):.1f} ms, "
                    f"bare p99 {percentile(bare_ms[-n:], 99):.1f} ms, "
                    f"all handled {time.perf_counter() - acked:.2f} s after the acks"
                )
            claims = await Claim.all().count()
            answers = await OutboxMessage.filter(
                kind="slack.answer", status=OutboxStatus.SENT
            ).count()
        finally:
            await close_db()
    result: dict[str, Any] = {
        "lyra_p50_ms": round(statistics.median(lyra_ms), 2),
        "lyra_p99_ms": round(percentile(lyra_ms, 99), 2),
        "bare_p50_ms": round(statistics.median(bare_ms), 2),
        "bare_p99_ms": round(percentile(bare_ms, 99), 2),
    }
    result["p99_ratio"] = round(result["lyra_p99_ms"] / result["bare_p99_ms"], 2)
    result.update(
        {
            "target_met": result["p99_ratio"] <= 3.0 and result["lyra_p99_ms"] < 3000,
            "concurrency": n,
            "rounds": args.rounds,
            "samples": len(lyra_ms),
            "store": settings.database_url.split(":", 1)[0],
            "scheduler": settings.scheduler_enabled,
            "claims": claims,
            "claims_expected": n * (args.rounds + 1),
            "answers_sent": answers,
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        help="run lyra-bot without its sweeps (isolates the clicks from the minute ticks)",
    )
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
