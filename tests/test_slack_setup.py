"""Slack set-up: off without a token, linking channels and users from the CLI, escaping."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from lyra_bot.adapters.slack import blocks
from typer.testing import CliRunner

from lyra_bot import commands as c
from lyra_bot.app import SLACK, bootstrap, build_web_app
from lyra_bot.cli import app as cli
from lyra_bot.config import get_settings
from lyra_bot.domain import OutboxStatus
from lyra_bot.models import OutboxMessage, SlackChannel, User
from tests.conftest import make_settings
from tests.slack_harness import ALPINE_CHANNEL, slack  # noqa: F401
from tests.world import build_world


async def test_without_a_token_slack_is_off_and_everything_else_works(services, tmp_path):
    assert not services.settings.slack_enabled
    assert set(services.worker.transports) == {"email"}
    app = build_web_app(services)
    assert SLACK not in app
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/slack/events", data="x") as resp:
                assert resp.status == 404
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()
    world = await build_world(services.bus)
    await world.ok(c.LinkSlackChannel("alpine", "C0ALPINE"), world.owner)
    await world.ok(c.PostSlackDigests(), c.Actor.system())
    await world.ok(c.ClaimLead("L-1001"), "mia@alpine.example")
    assert await services.worker.run_once() == 3  # the claim's mails; Slack rows wait
    assert await OutboxMessage.filter(channel="slack", status=OutboxStatus.PENDING).count() == 2


def test_a_token_without_signing_secret_is_refused(tmp_path):
    settings = make_settings("sqlite://:memory:", tmp_path, slack_bot_token="xoxb-1")
    with pytest.raises(ValueError, match="LYRA_SLACK_SIGNING_SECRET"):
        build_web_app(bootstrap(settings))


async def test_linking_checks_ids_and_tenants(bus):
    world = await build_world(bus)
    bad = await world.do(c.LinkSlackChannel("alpine", "#leads"), world.owner)
    assert bad.code == "invalid_input" and "channel id" in bad.message
    unknown = await world.do(c.LinkSlackChannel("nobody", "C0ALPINE"), world.owner)
    assert unknown.code == "not_found"
    await world.ok(c.LinkSlackChannel("alpine", "c0alpine", "t0lyra"), world.owner)
    taken = await world.do(c.LinkSlackChannel("gamma", "C0ALPINE"), world.other_owner)
    assert taken.code == "invalid_input"
    moved = await world.ok(c.LinkSlackChannel("lakeside", "C0ALPINE"), world.owner)
    assert moved.data["partner"] == "lakeside"
    link = await SlackChannel.get(channel_id="C0ALPINE")
    assert (link.partner_id, link.team_id) == (
        world.actors["tom@lakeside.example"].partner_id,
        "T0LYRA",
    )
    await world.ok(c.UnlinkSlackChannel("C0ALPINE"), world.owner)
    assert (await world.do(c.UnlinkSlackChannel("C0ALPINE"), world.owner)).code == "not_found"

    await world.ok(c.LinkSlackUser("mia@alpine.example", "T0LYRA", "U0MIA"), world.owner)
    clash = await world.do(c.LinkSlackUser("max@alpine.example", "T0LYRA", "U0MIA"), world.owner)
    assert clash.code == "invalid_input"
    foreign = await world.do(c.LinkSlackUser("gus@gamma.example", "T0LYRA", "U0GUS"), world.owner)
    assert foreign.code == "not_found"  # another tenant's user
    system = await world.do(
        c.LinkSlackUser("mia@alpine.example", "T0LYRA", "U0OTHER"), c.Actor.system()
    )
    assert system.code == "not_found"  # the system never replaces a stored link
    assert (await User.get(email="mia@alpine.example")).slack_user_id == "U0MIA"


def test_cli_links_a_channel_and_queues_digests(tmp_path: Path, monkeypatch):
    database = f"sqlite://{tmp_path / 'cli.db'}"
    monkeypatch.setenv("LYRA_DATABASE_URL", database)
    monkeypatch.setenv("LYRA_OUTBOX_DIR", str(tmp_path / "outbox"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    try:
        run("db", "upgrade")
        run("tenant", "add", "acme", "--name", "Acme", "--owner-email", "o@acme.example")
        run("partner", "add", "alpine", "--name", "Alpine", "--products", "*", "--regions", "CH")
        run("user", "add", "mia@alpine.example", "--partner", "alpine")
        run("lead", "add", "--product", "VPN", "--region", "CH-ZH", "--company", "Secret AG")
        assert "C0ALPINE" in run("partner", "link-slack", "alpine", "C0ALPINE")
        assert "U0MIA" in run(
            "user",
            "link-slack",
            "mia@alpine.example",
            "--slack-user",
            "U0MIA",
            "--slack-team",
            "T0LYRA",
        )
        assert "Slack messages queued: 1 (leads: 1, channels: 1)." in run("digest", "send")
        assert "Slack messages queued: 0 (leads: 0, channels: 0)." in run("digest", "send")
        run("lead", "withdraw", "L-1001")  # the CLI's bus queues the update of the message too
        kinds = run("outbox", "list", "--json")
        assert '"slack.digest"' in kinds and '"slack.update"' in kinds
        bad = runner.invoke(cli, ["partner", "link-slack", "alpine", "general"])
        assert bad.exit_code == 1 and "is not a Slack channel id" in bad.output
    finally:
        get_settings.cache_clear()


def test_lead_text_cannot_mention_or_link():
    teaser = {
        "ref": "L-1",
        "product": "<!channel>",
        "region": "CH",
        "industry": "<https://evil.example|bank>",
        "size": "",
        "need": "a & b",
    }
    rendered = json.dumps(blocks.digest("t", [(teaser, "", blocks.claim_button("L-1"))]))
    assert "<!channel>" not in rendered and "<https://" not in rendered
    assert "&lt;!channel&gt;" in rendered and "a &amp; b" in rendered


async def test_digest_blocks_escape_lead_text_end_to_end(slack):  # noqa: F811
    world = slack.world
    await world.ok(c.AddLead("VPN", "CH-ZH", need="<!here> call now <@U0BOSS>"), world.owner)
    await slack.digests()
    [alpine] = [m for m in slack.fake.of("chat.postMessage") if m["channel"] == ALPINE_CHANNEL]
    assert "<!here>" not in json.dumps(alpine) and "&lt;!here&gt;" in json.dumps(alpine)


async def test_url_verification_is_answered_with_the_challenge(slack):  # noqa: F811
    body = json.dumps({"token": "legacy", "challenge": "c-123", "type": "url_verification"})
    status, answer = await slack.send(body, json_body=True)
    assert status == 200 and json.loads(answer)["challenge"] == "c-123"
    status, _ = await slack.send(body, json_body=True, headers={"X-Slack-Signature": "v0=0"})
    assert status == 401
