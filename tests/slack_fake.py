"""A local fake of the Slack Web API (aiohttp), and a signer of requests shaped like Slack's.

The fake records every call as ``(method, args)``, keeps the messages it was asked to post so
tests can read what a channel shows *now*, and can be told to fail: answer 429 with
``Retry-After``, or return a Slack error for a method.

``python -m tests.slack_fake --port N`` runs it alone (the benchmark does).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
TEAM = "T0LYRA"
BOT_USER = "U0BOT"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float


@dataclass
class FakeSlack:
    """Answers ``/api/<method>`` like Slack does, for the methods Lyra uses."""

    token: str = TOKEN
    team: str = TEAM
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    rate_limits: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    channels_gone: set[str] = field(default_factory=set)
    raw: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    url: str = ""
    _runner: web.AppRunner | None = None
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    # --- setup ------------------------------------------------------------------------------

    def add_user(
        self, user_id: str, email: str, *, team: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        user = {
            "id": user_id,
            "team_id": team or self.team,
            "name": email.split("@")[0],
            "deleted": False,
            "is_bot": False,
            "is_email_confirmed": True,
            "profile": {"email": email, "real_name": email.split("@")[0].title()},
            **extra,
        }
        self.users[user_id] = user
        return user

    def fail_next(self, method: str, error: str) -> None:
        """The next call of ``method`` answers ``{"ok": false, "error": error}``."""
        self.errors[method].append(error)

    def answer_raw_next(self, method: str, body: str, content_type: str) -> None:
        """The next call of ``method`` answers ``body`` as is (a proxy's page, broken JSON)."""
        self.raw[method].append((body, content_type))

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """The next call of ``method`` answers HTTP 429 with ``Retry-After``."""
        self.rate_limits[method].append(retry_after)

    # --- reading what happened --------------------------------------------------------------

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        return self.messages[(channel, ts)]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        return [m for (ch, _), m in sorted(self.messages.items()) if ch == channel]

    # --- serving ----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{bound}/api/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        self.calls.append(Call(method, args, time.monotonic()))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self.rate_limits[method]:
            retry_after = self.rate_limits[method].pop(0)
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if self.errors[method]:
            return web.json_response({"ok": False, "error": self.errors[method].pop(0)})
        if self.raw[method]:
            body, content_type = self.raw[method].pop(0)
            return web.Response(body=body.encode(), headers={"Content-Type": content_type})
        return web.json_response(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if method == "auth.test":
            return {"ok": True, "team_id": self.team, "user_id": BOT_USER, "bot_id": "B0BOT"}
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if channel in self.channels_gone:
            return {"ok": False, "error": "channel_not_found"}
        if method == "chat.postMessage":
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            self.messages[(channel, ts)] = {"text": args.get("text"), "blocks": args.get("blocks")}
            return {"ok": True, "channel": channel, "ts": ts, "message": {"team": self.team}}
        if method == "chat.update":
            key = (channel, str(args.get("ts")))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {"text": args.get("text"), "blocks": args.get("blocks")}
            return {"ok": True, "channel": channel, "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method in ("views.open", "views.publish"):
            return {"ok": True, "view": {"id": f"V{next(self._ts)}", **(args.get("view") or {})}}
        return {"ok": False, "error": "unknown_method"}


# --- the other direction: requests from Slack to Lyra ---------------------------------------


class SlackSender:
    """Sends signed requests to Lyra's ``/slack/events`` the way Slack does."""

    def __init__(self, url: str, secret: str = SECRET, team: str = TEAM) -> None:
        self.url, self.secret, self.team = url, secret, team
        self.verifier = SignatureVerifier(secret)
        self._ids = itertools.count(1)

    def headers(self, body: str, ts: int | None = None, content_type: str = "") -> dict[str, str]:
        ts = int(time.time()) if ts is None else ts
        return {
            "Content-Type": content_type or "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=str(ts), body=body),
        }

    def trigger(self) -> str:
        return f"{next(self._ids)}.{int(time.time() * 1000)}.fake{next(self._ids)}"

    def action_body(
        self,
        user: str,
        action_id: str,
        value: str,
        *,
        channel: str | None = "C0DIGEST",
        message_ts: str | None = None,
        ephemeral: bool = False,
        home: bool = False,
        user_team: str | None = None,
    ) -> str:
        container: dict[str, Any]
        if home:
            container = {"type": "view", "view_id": "V0HOME"}
        else:
            container = {
                "type": "message",
                "message_ts": message_ts or "1.0",
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            }
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": user_team or self.team},
            "api_app_id": "A0LYRA",
            "token": "legacy",
            "container": container,
            "trigger_id": self.trigger(),
            "team": {"id": self.team, "domain": "acme"},
            "is_enterprise_install": False,
            "response_url": "https://hooks.slack.invalid/actions/1",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"lead:{value}",
                    "text": {"type": "plain_text", "text": "Claim"},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if home:
            payload["view"] = {"id": "V0HOME", "type": "home"}
        else:
            payload["channel"] = {"id": channel, "name": "leads"}
            payload["message"] = {"ts": message_ts or "1.0", "type": "message"}
        return urlencode({"payload": json.dumps(payload)})

    def command_body(self, user: str, text: str, channel: str = "C0DIGEST") -> str:
        return urlencode(
            {
                "token": "legacy",
                "team_id": self.team,
                "team_domain": "acme",
                "channel_id": channel,
                "channel_name": "leads",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/lyra",
                "text": text,
                "api_app_id": "A0LYRA",
                "response_url": "https://hooks.slack.invalid/commands/1",
                "trigger_id": self.trigger(),
            }
        )

    def submission_body(
        self,
        user: str,
        private_metadata: str,
        values: dict[str, str],
        callback_id: str = "lyra.feedback",
    ) -> str:
        state: dict[str, Any] = {}
        for block_id, value in values.items():
            if block_id == "outcome":
                option = {"value": value} if value else None
                state[block_id] = {"value": {"type": "static_select", "selected_option": option}}
            else:
                state[block_id] = {"value": {"type": "plain_text_input", "value": value or None}}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team, "domain": "acme"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team},
            "api_app_id": "A0LYRA",
            "token": "legacy",
            "trigger_id": self.trigger(),
            "view": {
                "id": "V0MODAL",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": state},
                "hash": "h1",
            },
        }
        return urlencode({"payload": json.dumps(payload)})

    def event_body(self, user: str, event_type: str = "app_home_opened") -> str:
        return json.dumps(
            {
                "token": "legacy",
                "team_id": self.team,
                "api_app_id": "A0LYRA",
                "event": {"type": event_type, "user": user, "channel": "D0HOME", "tab": "home"},
                "type": "event_callback",
                "event_id": f"Ev{next(self._ids)}",
                "event_time": int(time.time()),
            }
        )

    async def post(
        self,
        session: aiohttp.ClientSession,
        body: str,
        *,
        json_body: bool = False,
        retry: int | None = None,
        ts: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        sent = self.headers(body, ts, "application/json" if json_body else "")
        if retry is not None:
            sent["X-Slack-Retry-Num"] = str(retry)
            sent["X-Slack-Retry-Reason"] = "http_timeout"
        sent.update(headers or {})
        async with session.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status, await response.text()


async def _serve(port: int) -> None:
    fake = FakeSlack()
    await fake.start(port)
    print(fake.url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(_serve(parser.parse_args().port))
