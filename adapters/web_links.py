"""One-click links in mails, served by Lyra's aiohttp app.

``/check/<token>/<yes|no>``: a customer answers the contact check. The token is signed for
this purpose (kind ``k``, purpose ``check``, bound to tenant and claim, with an expiry).
Corporate mail filters (Safe Links, Mimecast, Proofpoint) fetch every link in a mail, so a
GET only shows the question with a button (a plain form: no JavaScript needed) and changes
nothing; the button POSTs, and only the POST records the answer, once, through
``AnswerContactCheck``. A later click, on either link, gets a page that says it was already
answered and changes nothing. HEAD requests are not routed at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from lyra_bot import tokens
from lyra_bot.commands import Actor, AnswerContactCheck, ShowContactCheck
from lyra_bot.domain import DomainError, TokenExpired, TokenInvalid, parse_yes_no
from lyra_bot.render import pick_locale

if TYPE_CHECKING:
    from lyra_bot.services import Services

STATUS = {
    "contact_check_question": 200,
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
    async def show(request: web.Request) -> web.Response:
        return await contact_check(request, services, confirm=False)

    async def confirm(request: web.Request) -> web.Response:
        return await contact_check(request, services, confirm=True)

    app.router.add_get("/check/{token}/{answer}", show, allow_head=False)
    app.router.add_post("/check/{token}/{answer}", confirm)


def _browser_locale(request: web.Request) -> str:
    """The first language the browser asks for (for pages where we know nothing else)."""
    header = request.headers.get("Accept-Language", "")
    return pick_locale(*(part.split(";")[0].strip() for part in header.split(",")))


async def contact_check(request: web.Request, services: Services, confirm: bool) -> web.Response:
    """GET: the question and a button; POST (the button): the answer."""
    token, answer = request.match_info["token"], request.match_info["answer"]
    try:
        parsed = tokens.verify(services.settings, token, services.clock.now(), purpose="check")
    except TokenExpired:
        return _page(services, "expired", _browser_locale(request), {})
    except TokenInvalid:
        return _page(services, "invalid", _browser_locale(request), {})
    try:
        contacted = parse_yes_no(answer)
    except DomainError:
        return _page(services, "invalid", _browser_locale(request), {})
    customer = Actor.customer(parsed.tenant_id, "web")
    if confirm:
        reply = await services.bus.dispatch(AnswerContactCheck(parsed.subject_id, answer), customer)
    else:
        reply = await services.bus.dispatch(ShowContactCheck(parsed.subject_id), customer)
        if reply.ok:
            reply.data = {**reply.data, "answer": "yes" if contacted else "no"}
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
