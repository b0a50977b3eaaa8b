"""Faults injected into real processes: nothing accepted is lost, nothing is done twice.

Every test starts real ``lyra-bot run`` processes (their own ``LYRA_*`` environment, a
throwaway PostgreSQL database), with aiosmtpd, Dovecot and the fake Slack Web API on loopback,
sends what partners send (signed reply mails through IMAP and the ``/inbound/email`` webhook,
signed Claim clicks to ``/slack/events``), breaks something in the middle, and then checks
what a user would notice: each accepted command took effect once, no lead went to two
partners, and every notification reached aiosmtpd (by Message-ID) and the fake Slack.

"Exactly once" at the receiver: a message is marked sent right after its transport took it
(one UPDATE for those delivered while the previous one ran), so only a process killed
between the two leaves rows that are sent again by the next worker, with the same Message-ID
(a receiver dedupes on it). Those re-sends are counted and bounded by the outbox batch; every
Message-ID arrives, and none that no row has. A database that cuts connections re-sends
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from lyra_bot.db import close_db, init_db
from lyra_bot.models import (
    Claim,
    InboundKey,
    JobRun,
    Lead,
    OutboxMessage,
    Partner,
    SlackInbox,
)
from lyra_bot.models import Lease as LeaseRow
from tests.fleet import (
    FleetWorld,
    Instance,
    build_fleet_world,
    click,
    deliveries,
    lyra_env,
    outbox_settled,
    reply_mail,
    send_until_accepted,
    settings_of,
    slack_send,
    wait_for,
    webhook_send,
)
from tests.mailservers import Dovecot, SmtpSink, free_port
from tests.slack_fake import SECRET, TOKEN, FakeSlack, SlackSender

pytestmark = [pytest.mark.faults, pytest.mark.pg_only]

BATCH = 10  # outbox rows a worker takes at once: bounds what a kill can make it re-send
LEASE = 2  # seconds: IMAP lease, and how long a dead worker's outbox rows stay taken


@dataclass
class Rig:
    """Servers, a world, and the service processes of one test."""

    database_url: str
    workdir: Path
    smtp: SmtpSink
    slack: FakeSlack
    dovecot: Dovecot | None
    world: FleetWorld | None = None
    instances: list[Instance] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def env(self, **extra: object) -> dict[str, str]:
        imap: dict[str, object] = {}
        if self.dovecot is not None:
            imap = {
                "imap_host": self.dovecot.host,
                "imap_port": self.dovecot.port,
                "imap_username": self.dovecot.user,
                "imap_password": self.dovecot.password,
                "imap_tls": "none",
                "imap_lease_seconds": LEASE * 1.5,
                "imap_poll_seconds": 1,
                "imap_timeout": 5,
            }
        return lyra_env(
            self.database_url,
            self.workdir,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            smtp_timeout=3,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=self.slack.url,
            outbox_batch=BATCH,
            outbox_lease_seconds=LEASE,
            outbox_backoff_initial=0.3,
            outbox_backoff_max=1,
            outbox_max_attempts=30,
            slack_recover_seconds=LEASE,
            **imap,
            **{**self.extra, **extra},
        )

    @property
    def settings(self):
        return settings_of(self.env())

    async def start(self, name: str, **extra: object) -> Instance:
        instance = Instance(name, self.env(**extra), self.workdir).start()
        self.instances.append(instance)
        await instance.ready()
        return instance

    def bases(self) -> list[str]:
        return [i.base for i in self.instances if i.alive]

    def logs(self) -> str:
        return "\n".join(f"--- {i.name}\n{i.tail(60)}" for i in self.instances)


@contextlib.asynccontextmanager
async def rig(
    database_url: str, tmp_path: Path, dovecot: Dovecot | None, partners: int, leads: int
) -> AsyncIterator[Rig]:
    smtp = SmtpSink(port=free_port())
    smtp.start()
    slack = FakeSlack()
    await slack.start()
    r = Rig(database_url, tmp_path / "run", smtp, slack, dovecot)
    await init_db(r.settings, migrate=True)
    try:
        r.world = await build_fleet_world(r.settings, partners, leads)
        yield r
    except BaseException:
        print(r.logs())
        raise
    finally:
        for instance in r.instances:
            instance.stop(5)
        await close_db()
        smtp.stop()
        await slack.stop()


def received(smtp: SmtpSink) -> list[str]:
    return [str(e.message["Message-ID"]) for e in smtp.envelopes]


async def assert_delivered_once(r: Rig, kills: int = 0) -> None:
    """Nothing left to send, every mail and Slack answer arrived, re-sends bounded."""
    await wait_for(outbox_settled, 30, "the outbox to drain")
    d = await deliveries(received(r.smtp), r.slack)
    assert d.not_sent == [], d.not_sent
    assert d.mail_missing == [] and d.mail_unknown == [], d
    assert d.slack_missing == [], d.slack_missing
    assert d.mail_resent <= kills * BATCH and d.slack_resent <= kills * BATCH, d
    assert d.mail_rows > 0
    print(
        f"delivered: {d.mail_rows} mails ({d.mail_resent} re-sent), "
        f"{d.slack_answers} Slack answers ({d.slack_resent} re-sent)"
    )


async def claims_by_ref() -> dict[str, list[int]]:
    """Each lead's claims (partner ids), live or lapsed: a lead claimed twice shows two."""
    out: dict[str, list[int]] = {}
    for ref, partner in await Claim.all().values_list("lead__ref", "partner_id"):
        out.setdefault(ref, []).append(partner)
    return out


async def partner_ids() -> dict[str, int]:
    return dict(await Partner.all().values_list("slug", "id"))


# --- kill -9 in the middle of a stream ------------------------------------------------------


async def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    database_url, tmp_path, dovecot
):
    web_n, imap_n, slack_n, contested = 20, 10, 20, 6
    async with rig(database_url, tmp_path, dovecot, web_n + imap_n + slack_n + contested, 50) as r:
        w, settings = r.world, r.settings
        assert w is not None
        # Partner i claims lead i: webhook 0..19, IMAP 20..29, Slack 30..49; partners 50..55
        # click on leads 0..5 too (each of those leads has two claimants: one must win).
        mails = [reply_mail(settings, w, i, f"Claim {w.refs[i]}") for i in range(web_n)]
        imap = [
            reply_mail(settings, w, i, f"Claim {w.refs[i]}") for i in range(web_n, web_n + imap_n)
        ]
        sender = SlackSender("")
        clicks = [(i, click(sender, w, i, w.refs[i])) for i in range(web_n + imap_n, 50)]
        clicks += [(50 + k, click(sender, w, 50 + k, w.refs[k])) for k in range(contested)]
        random.Random(7).shuffle(clicks)
        for _, raw in imap[: imap_n // 2]:
            await asyncio.to_thread(r.dovecot.append, raw)  # type: ignore[union-attr]

        first = await r.start("a")
        killed_at: list[float] = []
        accepted: dict[str, tuple[int, float]] = {}  # request -> (status, when)

        async def stream(name: str, sends: list, pause: float) -> None:
            async with aiohttp.ClientSession() as session:
                for n, send in enumerate(sends):
                    accepted[f"{name}{n}"] = await send_until_accepted(session, send, r.bases)
                    await asyncio.sleep(pause)

        async def killer() -> None:
            await wait_for(lambda: _async(len(accepted) >= 14), 30, "the first requests")
            first.kill()
            killed_at.append(time.monotonic())
            for _, raw in imap[imap_n // 2 :]:
                await asyncio.to_thread(r.dovecot.append, raw)  # type: ignore[union-attr]
            await r.start("b")

        await asyncio.gather(
            stream("mail", [webhook_send(raw) for _, raw in mails], 0.03),
            stream("click", [slack_send(body) for _, body in clicks], 0.03),
            killer(),
        )
        assert all(status == 200 for status, _ in accepted.values()), accepted
        await wait_for(
            lambda: asyncio.to_thread(lambda: r.dovecot.count("INBOX") == 0),  # type: ignore[union-attr]
            30,
            "the IMAP inbox to empty",
        )
        assert r.dovecot.count("Processed") == imap_n  # type: ignore[union-attr]
        # Clicks the killed process acked but had not finished are taken over by "b".
        await wait_for(lambda: _async_not(SlackInbox.exists()), 30, "stored clicks handled")
        await assert_delivered_once(r, kills=1)

        # Every accepted reply mail (webhook and IMAP) took effect exactly once.
        ids = await partner_ids()
        claims = await claims_by_ref()
        for i in range(web_n + imap_n):
            claimants = {ids[f"p{i}"]} | ({ids[f"p{50 + i}"]} if i < contested else set())
            assert len(claims.get(w.refs[i], [])) == 1, (w.refs[i], claims.get(w.refs[i]))
            assert claims[w.refs[i]][0] in claimants
        message_ids = [mid for mid, _ in mails + imap]
        assert await InboundKey.filter(key__in=message_ids).count() <= len(message_ids)
        # No lead went to two partners, and no lead is "claimed" without its one claim.
        assert all(len(partners) == 1 for partners in claims.values()), claims
        assert await Lead.filter(status="claimed").count() == len(claims)

        # Clicks: every acked click took effect exactly once, those acked in the last moments
        # before the kill too (stored before the ack, taken over after the restart): each
        # clicker without a rival holds their lead, each got one answer.
        for i, _body in clicks:
            if web_n + imap_n <= i < 50:
                assert claims.get(w.refs[i]) == [ids[f"p{i}"]], (w.refs[i], claims.get(w.refs[i]))
        answers = OutboxMessage.filter(kind="slack.answer", dedupe_key__endswith=":answer").exclude(
            dedupe_key__endswith=":similar:answer"
        )  # leads like one taken: a second answer
        answered = [p["args"]["user"] for p in await answers.values_list("payload", flat=True)]
        assert sorted(answered) == sorted(w.slack_ids[i] for i, _ in clicks), answered
        late = [n for n in range(len(clicks)) if 0 <= killed_at[0] - accepted[f"click{n}"][1] < 1]
        print(f"clicks acked in the last second before the kill, all handled: {len(late)}")


async def _async(value: bool) -> bool:
    return value


async def _async_not(value: Awaitable[bool]) -> bool:
    return not await value


async def reply_all(r: Rig, users: range, via: str = "webhook") -> list[str]:
    """Each user claims its own lead; returns the mails' Message-IDs once all were accepted."""
    w, settings = r.world, r.settings
    assert w is not None
    mails = [reply_mail(settings, w, i, f"Claim {w.refs[i]}") for i in users]
    if via == "imap":
        for _, raw in mails:
            await asyncio.to_thread(r.dovecot.append, raw)  # type: ignore[union-attr]
        return [mid for mid, _ in mails]
    async with aiohttp.ClientSession() as session:
        for _, raw in mails:
            status, _ = await send_until_accepted(session, webhook_send(raw), r.bases)
            assert status == 200
    return [mid for mid, _ in mails]


async def assert_claimed_once(r: Rig, users: range) -> None:
    """Lead i claimed exactly once, by partner i."""
    assert r.world is not None
    ids, claims = await partner_ids(), await claims_by_ref()
    for i in users:
        assert claims.get(r.world.refs[i]) == [ids[f"p{i}"]], (i, claims.get(r.world.refs[i]))


async def processed(dovecot: Dovecot, n: int) -> bool:
    counts = await asyncio.to_thread(lambda: (dovecot.count("INBOX"), dovecot.count("Processed")))
    return counts == (0, n)


# --- SMTP server down -----------------------------------------------------------------------


async def test_smtp_down_mails_queue_and_all_arrive_when_it_returns(database_url, tmp_path):
    async with rig(database_url, tmp_path, None, 8, 8) as r:
        await r.start("a")
        r.smtp.stop()
        await reply_all(r, range(8))

        async def retrying() -> bool:  # every mail has failed at least once: queued, not lost
            rows = await OutboxMessage.filter(channel="email").values_list("status", "attempts")
            return bool(rows) and all(s == "pending" and a >= 1 for s, a in rows)

        await wait_for(retrying, 20, "the mails to fail and queue")
        assert r.smtp.envelopes == []
        r.smtp.start()  # back on the same port
        await assert_delivered_once(r)
        await assert_claimed_once(r, range(8))


# --- Dovecot restarted ----------------------------------------------------------------------


async def test_dovecot_restart_poller_reconnects_and_processes_the_rest_once(
    database_url, tmp_path, dovecot
):
    async with rig(database_url, tmp_path, dovecot, 12, 12) as r:
        instance = await r.start("a")
        await reply_all(r, range(6), via="imap")
        await wait_for(lambda: processed(dovecot, 6), 20, "the first mails")
        await asyncio.to_thread(dovecot.restart)
        await reply_all(r, range(6, 12), via="imap")
        await wait_for(lambda: processed(dovecot, 12), 30, "the mails after the restart")
        assert "reconnecting" in instance.log.read_text()
        await assert_claimed_once(r, range(12))
        await assert_delivered_once(r)


# --- one of two instances killed ------------------------------------------------------------


async def lease_holder() -> str:
    row = await LeaseRow.get_or_none(name="imap-poller")
    return row.holder if row else ""


async def test_one_of_two_instances_killed_other_takes_over_imap_and_sweeps(
    database_url, tmp_path, dovecot
):
    async with rig(database_url, tmp_path, dovecot, 10, 10) as r:
        r.extra["scheduler_tick_seconds"] = 1
        a = await r.start("a")
        await wait_for(lambda: _async_holder("a-"), 10, "a to take the IMAP lease")
        b = await r.start("b")
        await reply_all(r, range(3), via="imap")
        await wait_for(lambda: processed(dovecot, 3), 20, "a to read the first mails")
        assert (await lease_holder()).startswith("a-")  # b waits while a holds the lease

        a.kill()
        killed = datetime.now(UTC)
        await reply_all(r, range(3, 10), via="imap")
        await wait_for(lambda: processed(dovecot, 10), LEASE * 3 + 15, "b to take over IMAP")
        assert (await lease_holder()).startswith("b-")
        await assert_claimed_once(r, range(10))

        # Sweeps: a claim whose deadline has passed lapses, run by b (a is dead).
        assert r.world is not None
        overdue = await Claim.get(lead__ref=r.world.refs[0])
        await Claim.filter(id=overdue.id).update(due_at=killed - timedelta(hours=1))

        async def lapsed() -> bool:
            return (await Claim.get(id=overdue.id)).state == "expired"

        await wait_for(lapsed, 15, "b's expiry sweep")
        run = await JobRun.get(name="expire-overdue")
        assert run.last_run_at is not None and run.last_run_at > killed
        assert b.alive
        await assert_delivered_once(r, kills=1)


async def _async_holder(prefix: str) -> bool:
    return (await lease_holder()).startswith(prefix)


# --- PostgreSQL restarted -------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL server of this test's own (initdb + pg_ctl on a free port), so restarting
    it disturbs nobody else's tests. As root, its processes run as the ``postgres`` user."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = found[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lyra-pg-"))  # not pytest's 0700 tmp
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start a private PostgreSQL")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/lyra"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        self.start()
        self._run(
            str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-c", "CREATE DATABASE lyra",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "pg.log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
    except (subprocess.SubprocessError, OSError) as exc:
        pg.remove()
        pytest.skip(f"could not start a private PostgreSQL: {exc}")
    yield pg
    pg.remove()


async def test_postgres_restart_service_recovers_without_its_own_restart(private_pg, tmp_path):
    async with rig(private_pg.url, tmp_path, None, 15, 15) as r:
        instance = await r.start("a")
        pid = instance.proc.pid  # type: ignore[union-attr]
        await reply_all(r, range(5))
        await wait_for(outbox_settled, 20, "the first mails")

        await asyncio.to_thread(private_pg.stop)  # every connection of the service is cut
        during = asyncio.create_task(reply_all(r, range(5, 10)))  # retried while it is down
        await asyncio.sleep(1.0)
        assert not during.done()  # nothing was accepted without its database
        await asyncio.to_thread(private_pg.start)
        await asyncio.wait_for(during, 30)
        await reply_all(r, range(10, 15))

        await close_db()  # the test's own connections died with the server too
        await init_db(r.settings)
        await assert_claimed_once(r, range(15))
        await assert_delivered_once(r)
        assert instance.alive and instance.proc.pid == pid  # type: ignore[union-attr]


# --- database connections terminated -------------------------------------------------------


async def terminate_backends(database_url: str) -> int:
    """``pg_terminate_backend`` on every connection to the test database but this one (the
    instances' pools and the test's own): the server itself keeps answering."""
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


async def delivered_counts(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """``lyra_outbox_delivered_total`` per channel, as this instance's ``/metrics`` shows it."""
    async with session.get(base + "/metrics") as response:
        text = await response.text()
    found = re.findall(r'^lyra_outbox_delivered_total\{channel="(\w+)"\} (\S+)$', text, re.M)
    return {channel: float(value) for channel, value in found}


@pytest.mark.parametrize("count", [1, 2], ids=["one-instance", "two-instances"])
async def test_database_connections_terminated_mid_load_lose_and_double_nothing(
    database_url, tmp_path, count
):
    """Twice during a stream of reply mails and Slack clicks every connection to the database
    is terminated. Each instance's mail lane and Slack lane deliver again within 10 s (its own
    ``/metrics`` counters move: the other instance's poll cannot stand in for a dead lane),
    every accepted request took effect once, and nothing was delivered twice."""
    mails_n, clicks_n = 20, 20
    load = mails_n + clicks_n
    users = load + 2 * count  # then a probe mail and a probe click per instance
    async with rig(database_url, tmp_path, None, users, users) as r:
        w, settings = r.world, r.settings
        assert w is not None
        instances = [await r.start(name) for name in "ab"[:count]]
        bases = [i.base for i in instances]
        sender = SlackSender("")
        sends = [webhook_send(reply_mail(settings, w, i, f"Claim {w.refs[i]}")[1]) for i in
                 range(mails_n)]  # fmt: skip
        sends += [slack_send(click(sender, w, i, w.refs[i])) for i in range(mails_n, load)]
        random.Random(18).shuffle(sends)
        accepted: list[int] = []
        cut_at: list[float] = []

        async def stream() -> None:
            async with aiohttp.ClientSession() as session:
                for n, send in enumerate(sends):
                    rotate = bases[n % count :] + bases[: n % count]  # each instance in turn
                    status, _ = await send_until_accepted(session, send, lambda r=rotate: r)
                    accepted.append(status)
                    await asyncio.sleep(0.03)

        async def cutter() -> None:
            for after in (load // 3, 2 * load // 3):
                await wait_for(lambda n=after: _async(len(accepted) >= n), 60, f"{after} requests")
                terminated = await terminate_backends(database_url)
                cut_at.append(time.monotonic())
                print(f"terminated {terminated} connections after {after} requests")

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(stream(), cutter())
            # Right after the second cut (the database answers again at once): each instance
            # gets a probe mail and a probe click, and must deliver on both lanes itself.
            before = [await delivered_counts(session, base) for base in bases]
            for k, base in enumerate(bases):
                probe_mail = reply_mail(settings, w, load + 2 * k, f"Claim {w.refs[load + 2 * k]}")
                probe_click = click(sender, w, load + 2 * k + 1, w.refs[load + 2 * k + 1])
                for send in (webhook_send(probe_mail[1]), slack_send(probe_click)):
                    status, _ = await send_until_accepted(session, send, lambda b=base: [b])
                    assert status == 200
            recovered: dict[tuple[str, str], float] = {}
            deadline = cut_at[-1] + 10
            while len(recovered) < 2 * count and time.monotonic() < deadline:
                for k, base in enumerate(bases):
                    now = await delivered_counts(session, base)
                    for channel in ("email", "slack"):
                        if now.get(channel, 0) > before[k].get(channel, 0):
                            recovered.setdefault((base, channel), time.monotonic() - cut_at[-1])
                await asyncio.sleep(0.1)
        print(f"lanes delivering again after the cut: {sorted(recovered.values())} s")
        assert len(recovered) == 2 * count, (recovered, r.logs())
        assert all(status == 200 for status in accepted), accepted

        await close_db()  # the test's own connections were terminated too
        await init_db(r.settings)
        await wait_for(lambda: _async_not(SlackInbox.exists()), 30, "stored clicks handled")
        await assert_delivered_once(r)
        d = await deliveries(received(r.smtp), r.slack)
        assert (d.mail_resent, d.slack_resent) == (0, 0), d
        await assert_claimed_once(r, range(users))
        answers = OutboxMessage.filter(kind="slack.answer", dedupe_key__endswith=":answer").exclude(
            dedupe_key__endswith=":similar:answer"
        )
        answered = [p["args"]["user"] for p in await answers.values_list("payload", flat=True)]
        clickers = [*range(mails_n, load), *(load + 2 * k + 1 for k in range(count))]
        assert sorted(answered) == sorted(w.slack_ids[i] for i in clickers), answered
        for instance in instances:
            assert instance.alive
