"""HTTP routes of the email channel: the inbound webhook and one-click unsubscribe.

``POST /inbound/email`` takes one raw RFC 822 mail from a provider that pushes mail
(``Authorization: Bearer <LYRA_INBOUND_WEBHOOK_SECRET>``) and runs it through the same
``MailProcessor`` as the IMAP poller. ``/email/unsubscribe/<token>`` serves RFC 8058: a POST
turns the digests off at once; a GET (a person, or a link scanner) only shows a button.
"""

from __future__ import annotations

import hmac
import html
import logging
from typing import Any

from aiohttp import web
from lyra_bot.adapters.email.processing import MailProcessor

from lyra_bot import commands as c
from lyra_bot import tokens
from lyra_bot.bus import Bus
from lyra_bot.commands import Actor, Role
from lyra_bot.config import Settings
from lyra_bot.domain import DomainError

log = logging.getLogger(__name__)

PROCESSOR = web.AppKey("mail_processor", MailProcessor)
BUS = web.AppKey("mail_bus", Bus)
SETTINGS = web.AppKey("mail_settings", Settings)


def register(app: web.Application, bus: Bus, processor: MailProcessor) -> None:
    app[PROCESSOR] = processor
    app[BUS] = bus
    app[SETTINGS] = bus.settings
    app.router.add_post("/inbound/email", inbound_email)
    app.router.add_get("/email/unsubscribe/{token}", unsubscribe_page)
    app.router.add_post("/email/unsubscribe/{token}", unsubscribe)


def _authorized(request: web.Request, settings: Settings) -> bool:
    secret = settings.inbound_webhook_secret
    if secret is None or not secret.get_secret_value():
        return False
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {secret.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


async def inbound_email(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if (
        not settings.inbound_webhook_secret
        or not settings.inbound_webhook_secret.get_secret_value()
    ):
        return web.json_response({"error": "the mail webhook is not enabled"}, status=404)
    if not _authorized(request, settings):
        return web.json_response({"error": "unauthorized"}, status=401)
    limit = settings.inbound_max_bytes
    raw = bytearray()
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if len(raw) <= limit:
            raw.extend(chunk)  # past the limit only the size is counted
    if size == 0:
        return web.json_response({"error": "empty body; send the raw mail"}, status=400)
    body = bytes(raw)
    if size > limit:
        body = body.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]  # the headers are enough
    outcome = await request.app[PROCESSOR].process(body, "webhook", size=size)
    return web.json_response(
        {
            "status": outcome.status,
            "verdict": outcome.verdict,
            "duplicate": outcome.duplicate,
            "results": [
                {"command": name, "ok": r.ok, "code": r.code} for name, r in outcome.results
            ],
        },
        status=413 if outcome.verdict == "oversize" else 200,
    )


async def _user_of(request: web.Request) -> dict[str, Any] | None:
    """The partner user an unsubscribe link names (``DigestRecipient``), if it is valid."""
    settings = request.app[SETTINGS]
    bus = request.app[BUS]
    try:
        token = tokens.verify(
            settings, request.match_info["token"], bus.clock.now(), purpose="unsubscribe"
        )
    except DomainError:
        return None
    if token.kind != "u":
        return None
    actor = Actor(Role.SYSTEM, "email", token.tenant_id)
    reply = await bus.dispatch(c.DigestRecipient(token.subject_id), actor)
    return reply.data.get("user") if reply.ok else None


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Lyra</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">{body}</body></html>"""


async def unsubscribe_page(request: web.Request) -> web.Response:
    user = await _user_of(request)
    if user is None:
        return web.Response(
            text=_PAGE.format(body="<p>This link is not valid.</p>"),
            content_type="text/html",
            status=404,
        )
    form = (
        f"<p>Stop digest mails to {html.escape(user['email'])}?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return web.Response(text=_PAGE.format(body=form), content_type="text/html")


async def unsubscribe(request: web.Request) -> web.Response:
    user = await _user_of(request)
    if user is None or user["partner_id"] is None:
        return web.Response(text="This link is not valid.", status=404)
    actor = Actor.partner_user(user["tenant_id"], user["partner_id"], user["id"], "email")
    reply = await request.app[BUS].dispatch(c.SetDigests(False), actor)
    if not reply.ok:
        return web.Response(text=reply.message, status=403)
    log.info("%s unsubscribed from digests (one-click)", user["email"])
    return web.Response(
        text=_PAGE.format(body="<p>Done: you will get no more digest mails.</p>"),
        content_type="text/html",
    )
