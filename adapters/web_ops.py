"""Operations endpoints and the HTTP middleware: ``/readyz``, ``/metrics``, request ids.

``/healthz`` (in ``lyra_bot.app``) says the process runs. ``/readyz`` says it can work: the
database answers and its schema is the one this code expects (no migration pending, and the
models match the committed migration). Each configured transport's last success and failure
is reported with it, but does not decide readiness: an SMTP or Slack outage hits every
instance alike, the outbox keeps the messages, and taking instances out of a load balancer
would only stop Slack clicks and API calls too.

The middleware binds a correlation id to every request (the caller's ``X-Request-ID`` when it
looks like one, else a new id), echoes it in the response, and times the request by route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from lyra_bot import db
from lyra_bot.config import Settings
from lyra_bot.logs import accept_id, correlation, new_id, redact
from lyra_bot.metrics import Metrics

log = logging.getLogger(__name__)
# One line per request, with its correlation id and the route (never the raw path, which may
# hold a token); replaces aiohttp's access log (``lyra_bot.logs`` silences that one).
access = logging.getLogger("lyra.access")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: DEBUG

METRICS = web.AppKey("ops_metrics", Metrics)
OPS = web.AppKey("ops", "Ops")
DB_TIMEOUT = 3.0


class Ops:
    """What ``/readyz`` needs: the settings, the metrics with transport health, and the
    (per process) result of comparing the models with the committed migration."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._model_changes: list[str] | None = None

    def transports(self) -> list[str]:
        """The transports this process is configured to use."""
        names = ["smtp" if self.settings.smtp_host else "file"]
        if self.settings.slack_enabled:
            names.append("slack")
        if self.settings.imap_host:
            names.append("imap")
        return names

    async def model_changes(self) -> list[str]:
        """Computed once: the code does not change while the process runs (~0.1 s)."""
        if self._model_changes is None:
            config = db.tortoise_config(self.settings.database_url, 1)
            self._model_changes = await db.pending_model_changes(config)
        return self._model_changes

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        reasons: list[str] = []
        checks: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            await asyncio.wait_for(db.ping(), DB_TIMEOUT)
            checks["database"] = {
                "ok": True,
                "dialect": db.dialect(),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        except Exception as exc:  # any failure means "not ready", with the reason
            error = redact(f"{type(exc).__name__}: {exc}")[:300]
            checks["database"] = {"ok": False, "error": error}
            reasons.append(f"database: {error}")
        if checks["database"]["ok"]:
            try:
                pending = await asyncio.wait_for(db.pending_migrations(), DB_TIMEOUT)
                changes = await self.model_changes()
                checks["migrations"] = {
                    "ok": not pending and not changes,
                    "pending": pending,
                    "model_changes": changes,
                }
                if pending:
                    reasons.append(f"migrations not applied: {', '.join(pending)}")
                if changes:
                    reasons.append(f"models differ from the migrations: {', '.join(changes)}")
            except Exception as exc:
                error = redact(f"{type(exc).__name__}: {exc}")[:300]
                checks["migrations"] = {"ok": False, "error": error}
                reasons.append(f"migrations: {error}")
        health = self.metrics.transports
        transports = {
            name: health[name].to_json() if name in health else _never()
            for name in self.transports()
        }
        ready = not reasons
        body = {
            "status": "ready" if ready else "not ready",
            "reasons": reasons,
            "checks": checks,
            "transports": transports,
        }
        return ready, body


def _never() -> dict[str, Any]:
    return {"last_success": None, "last_failure": None, "last_error": None, "ok": None}


def add_routes(app: web.Application, settings: Settings, metrics: Metrics) -> None:
    app[METRICS] = metrics
    app[OPS] = Ops(settings, metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)


async def readyz(request: web.Request) -> web.Response:
    ready, body = await request.app[OPS].readiness()
    if not ready:
        log.warning("not ready: %s", "; ".join(body["reasons"]))
    return web.json_response(body, status=200 if ready else 503)


async def metrics_page(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        await asyncio.wait_for(metrics.refresh_outbox(), DB_TIMEOUT)
    except Exception as exc:  # the database is down: still serve the counters (and no
        # stale queue figures; /readyz says why)
        metrics.clear_outbox()
        log.warning("outbox gauges not refreshed: %s", f"{type(exc).__name__}: {exc}"[:300])
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """A correlation id and a timing for every request."""
    cid = accept_id(request.headers.get("X-Request-ID")) or new_id("req-")
    with correlation(cid):
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = cid
            raise
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            metrics = request.app.get(METRICS)
            if metrics is not None:
                metrics.http.labels(route, request.method, str(status)).observe(elapsed)
            access.log(
                logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                "%s %s -> %s in %.1f ms",
                request.method,
                route,
                status,
                elapsed * 1000,
            )
        response.headers["X-Request-ID"] = cid
        return response
