"""Faults injected into real processes: nothing accepted is lost, nothing is done twice.

Every test starts real ``lyra-bot run`` processes (their own ``LYRA_*`` environment, a
throwaway PostgreSQL database), with aiosmtpd, Dovecot and the fake Slack Web API on loopback,
sends what partners send (signed reply mails through IMAP and the ``/inbound/email`` webhook,
signed Claim clicks to ``/slack/events``), breaks something in the middle, and then checks
what a user would notice: each accepted command took effect once, no lead went to two
partners, and every notification reached aiosmtpd (by Message-ID) and the fake Slack.

"Exactly once" at the receiver: a message is marked sent after its transport took it, in
batches, so a process killed between the two leaves rows that are sent again by the next
worker, with the same Message-ID (a receiver dedupes on it). Those re-sends are counted and
bounded by the outbox batch; every Message-ID arrives, and none that no row has.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from lyra_bot.db import close_db, init_db
from lyra_bot.models import Claim, InboundKey, JobRun, Lead, Partner
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
    await init_db(r.settings)
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
            reply_mail(settings, w, i, f"Claim {w.refs[i]}")
            for i in range(web_n, web_n + imap_n)
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

        # Clicks: each took effect at most once; one acked well before the kill, exactly once.
        # (A click is acked before its transaction; one acked in the last moments before the
        # kill may be lost with the process: Slack does not re-send an acked request.)
        lost = []
        for n, (i, _body) in enumerate(clicks):
            ref = w.refs[i] if i < 50 else w.refs[i - 50]
            mine = [p for p in claims.get(ref, []) if p == ids[f"p{i}"]]
            assert len(mine) <= 1
            _, at = accepted[f"click{n}"]
            won_elsewhere = ref in claims and not mine
            if not mine and not won_elsewhere:
                lost.append((ref, round(killed_at[0] - at, 3)))
        assert all(0 <= before < 1.0 for _, before in lost), lost
        print(f"clicks acked just before the kill and lost with it: {lost}")


async def _async(value: bool) -> bool:
    return value
