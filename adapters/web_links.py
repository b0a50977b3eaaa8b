"""One-click links in mails, served by Lyra's aiohttp app.

``GET /check/<token>/<yes|no>``: a customer answers the contact check with one click. The
token is signed (kind ``k``, bound to tenant and claim, with an expiry); the answer is
recorded once by ``AnswerContactCheck``, and a second click, on either link, gets a page that
says it was already answered and changes nothing. HEAD requests (link checkers, previews)
are not answers, so they are not routed to the handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from lyra_bot import tokens
from lyra_bot.commands import Actor, AnswerContactCheck
from lyra_bot.domain import TokenExpired, TokenInvalid
from lyra_bot.render import pick_locale

if TYPE_CHECKING:
    from lyra_bot.services import Services

STATUS = {
    "contact_confirmed": 200,
    "contact_denied": 200,
    "already_answered": 409,
    "invalid_input": 400,
    "not_found": 404,
    "expired": 410,
    "invalid": 400,
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}


def add_routes(app: web.Application, services: Services) -> None:
    async def contact_check(request: web.Request) -> web.Response:
        return await answer_contact_check(request, services)

    app.router.add_get("/check/{token}/{answer}", contact_check, allow_head=False)


def _browser_locale(request: web.Request) -> str:
    """The first language the browser asks for (for pages where we know nothing else)."""
    header = request.headers.get("Accept-Language", "")
    return pick_locale(*(part.split(";")[0].strip() for part in header.split(",")))


async def answer_contact_check(request: web.Request, services: Services) -> web.Response:
    token, answer = request.match_info["token"], request.match_info["answer"]
    try:
        parsed = tokens.verify(services.settings, token, services.clock.now())
        if parsed.kind != "k":
            raise TokenInvalid("This link is not valid.")
    except TokenExpired:
        return _page(services, "expired", _browser_locale(request), {})
    except TokenInvalid:
        return _page(services, "invalid", _browser_locale(request), {})
    reply = await services.bus.dispatch(
        AnswerContactCheck(parsed.subject_id, answer), Actor.customer(parsed.tenant_id, "web")
    )
    locale = reply.data.get("locale") or _browser_locale(request)
    return _page(services, reply.code, locale, reply.data)


def _page(services: Services, state: str, locale: str, data: dict[str, Any]) -> web.Response:
    html = services.bus.renderer.page("contact_check", locale, {"state": state, **data})
    return web.Response(
        text=html,
        status=STATUS.get(state, 400),
        content_type="text/html",
        charset="utf-8",
        headers=HEADERS,
    )
