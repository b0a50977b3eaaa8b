"""The customer's "do not contact me" link, served by Lyra's aiohttp app.

GET shows a confirmation page and changes nothing (mail scanners open links on their own);
the button POSTs, which dispatches ``CustomerOptOut``. The link is a signed customer token,
so it works for that lead only, and a second use changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from lyra_bot import tokens
from lyra_bot.commands import Actor, CustomerOptOut, ShowOptOut
from lyra_bot.domain import DomainError
from lyra_bot.render import pick_locale

if TYPE_CHECKING:
    from lyra_bot.services import Services


def add_routes(app: web.Application, services: Services) -> None:
    async def lookup(request: web.Request) -> tuple[Actor, dict[str, Any]] | None:
        """The customer the signed link names, and what the page shows of their lead."""
        try:
            token = tokens.verify(
                services.settings,
                request.match_info["token"],
                services.clock.now(),
                purpose="opt-out",
            )
        except DomainError:
            return None
        if token.kind != "c" or token.lead_id is None:
            return None
        customer = Actor.customer(token.tenant_id, "web", lead_id=token.lead_id)
        reply = await services.bus.dispatch(ShowOptOut(), customer)
        return (customer, reply.data) if reply.ok else None

    def page(
        found: tuple[Actor, dict[str, Any]] | None, state: str, status: int = 200
    ) -> web.Response:
        view = found[1] if found else {}
        html = services.bus.renderer.page(
            "opt_out",
            pick_locale(view.get("locale"), view.get("tenant_locale")),
            {
                "state": state,
                "tenant_name": view.get("tenant_name") or "Lyra",
                "product": view.get("product") or "",
            },
        )
        return web.Response(
            text=html,
            content_type="text/html",
            status=status,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def show(request: web.Request) -> web.Response:
        found = await lookup(request)
        if found is None:
            return page(None, "invalid", 404)
        return page(found, "already" if found[1]["opted_out"] else "confirm")

    async def confirm(request: web.Request) -> web.Response:
        found = await lookup(request)
        if found is None:
            return page(None, "invalid", 404)
        customer = found[0]
        reply = await services.bus.dispatch(
            CustomerOptOut(), customer, key=f"opt-out:{customer.lead_id}"
        )
        done = reply.code == "opted_out" and not reply.data.get("duplicate")
        return page(found, "done" if done else "already")

    app.router.add_get("/privacy/opt-out/{token}", show)
    app.router.add_post("/privacy/opt-out/{token}", confirm)
