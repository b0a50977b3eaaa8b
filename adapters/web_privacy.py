"""The customer's "do not contact me" link, served by Lyra's aiohttp app.

GET shows a confirmation page and changes nothing (mail scanners open links on their own);
the button POSTs, which dispatches ``CustomerOptOut``. The link is a signed customer token,
so it works for that lead only, and a second use changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from lyra_bot import tokens
from lyra_bot.commands import Actor, CustomerOptOut
from lyra_bot.domain import DomainError, customer_language
from lyra_bot.models import Lead, Tenant
from lyra_bot.render import pick_locale

if TYPE_CHECKING:
    from lyra_bot.app import Services


def add_routes(app: web.Application, services: Services) -> None:
    async def lookup(request: web.Request) -> tuple[Tenant, Lead] | None:
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
        lead = await Lead.get_or_none(id=token.lead_id, tenant_id=token.tenant_id)
        tenant = await Tenant.get_or_none(id=token.tenant_id)
        return (tenant, lead) if tenant and lead else None

    def page(found: tuple[Tenant, Lead] | None, state: str, status: int = 200) -> web.Response:
        tenant, lead = found if found else (None, None)
        html = services.bus.renderer.page(
            "opt_out",
            customer_language(lead.locale, lead.region, tenant and tenant.locale)
            if lead
            else pick_locale(tenant and tenant.locale),
            {
                "state": state,
                "tenant_name": tenant.name if tenant else "Lyra",
                "product": lead.product if lead else "",
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
        return page(found, "already" if found[1].opted_out_at else "confirm")

    async def confirm(request: web.Request) -> web.Response:
        found = await lookup(request)
        if found is None:
            return page(None, "invalid", 404)
        tenant, lead = found
        reply = await services.bus.dispatch(
            CustomerOptOut(),
            Actor.customer(tenant.id, "web", lead_id=lead.id),
            key=f"opt-out:{lead.id}",
        )
        done = reply.code == "opted_out" and not reply.data.get("duplicate")
        return page(found, "done" if done else "already")

    app.router.add_get("/privacy/opt-out/{token}", show)
    app.router.add_post("/privacy/opt-out/{token}", confirm)
