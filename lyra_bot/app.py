"""Composition root: builds the bus, the transports, the outbox worker and the aiohttp app.

Channels (email in/out, Slack, the HTTP API) and the scheduler attach here; nothing else in
Lyra decides which transports exist. Adapters never import this module: what they are handed
is a ``lyra_bot.services.Services``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from lyra_bot.adapters import api, web_links, web_ops, web_privacy
from lyra_bot.adapters.email import webhook as email_web
from lyra_bot.adapters.email.imap import ImapPoller
from lyra_bot.adapters.email.processing import MailProcessor
from lyra_bot.adapters.email.smtp import FileTransport, SmtpTransport
from lyra_bot.bus import Bus, UnitOfWork
from lyra_bot.clock import Clock, clock_for
from lyra_bot.config import Settings, get_settings
from lyra_bot.db import close_db, init_db
from lyra_bot.handlers import register_all
from lyra_bot.lease import Lease, instance_id
from lyra_bot.logs import add_settings_secrets
from lyra_bot.outbox import OutboxWorker, Transport
from lyra_bot.scheduler import Scheduler
from lyra_bot.services import SERVICES, Services
from lyra_bot.wiring import build_bus

log = logging.getLogger(__name__)

SLACK = web.AppKey("slack", Any)


def imap_poller(settings: Settings, mail: MailProcessor) -> ImapPoller | None:
    """The IMAP poller when ``LYRA_IMAP_HOST`` is set; it polls while it holds the lease."""
    if not settings.imap_host:
        return None
    holder = settings.instance_id or instance_id()
    lease = Lease("imap-poller", holder, settings.imap_lease_seconds)
    return ImapPoller(settings, mail, lease)


def email_transport(settings: Settings) -> Transport:
    """SMTP when configured, else ``.eml`` files in ``LYRA_OUTBOX_DIR``."""
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings)


def transports(settings: Settings, bus: Bus) -> list[Transport]:
    """Email always; Slack when a bot token is set."""
    items = [email_transport(settings)]
    if settings.slack_enabled:
        from lyra_bot.adapters.slack.transport import SlackTransport

        items.append(SlackTransport(settings, bus))
    return items


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Services:
    settings = settings or get_settings()
    add_settings_secrets(settings)
    clock = clock or clock_for(settings.clock_start)
    register_all()  # the service answers every kind of command: import them at start
    bus = build_bus(settings, clock)
    worker = OutboxWorker(
        settings, transports(settings, bus), clock, bus.renderer, metrics=bus.metrics
    )

    def wake_worker(uow: UnitOfWork) -> None:
        if uow.queued:
            worker.wake()

    bus.after_commit.append(wake_worker)
    mail = MailProcessor(bus, settings)
    return Services(
        settings,
        clock,
        bus,
        worker,
        Scheduler(bus, clock),
        mail,
        imap_poller=lambda: imap_poller(settings, mail),
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_web_app(services: Services) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024, middlewares=[web_ops.observe])
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    web_ops.add_routes(app, services.settings, services.bus.metrics)
    web_privacy.add_routes(app, services)
    api.add_routes(app, services)
    web_links.add_routes(app, services)
    email_web.register(app, services.bus, services.mail)
    if services.settings.slack_enabled:
        mount_slack(app, services)
    return app


def mount_slack(app: web.Application, services: Services) -> None:
    """The bolt app at ``POST /slack/events`` (events, interactions and ``/lyra``)."""
    from lyra_bot.adapters.slack.app import SlackApp

    slack = SlackApp(services.bus, services.settings, services.clock)
    app[SLACK] = slack
    app.router.add_post("/slack/events", slack.handle)

    async def start(_: web.Application) -> None:
        await slack.start()

    async def stop(_: web.Application) -> None:
        await slack.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _store_text(url: str) -> str:
    """The database URL without its password (``postgres://lyra@db:5432/lyra``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def describe_instance(settings: Settings) -> str:
    """What this instance runs, in one line: operators read it before anything else."""
    if settings.smtp_host:
        mail = f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_tls})"
    else:
        folder = settings.outbox_dir
        mail = f"writing mail to {folder if folder.is_absolute() else f'./{folder}'}"
    imap = (
        f"{settings.imap_host}:{settings.imap_port} {settings.imap_folder}"
        if settings.imap_host
        else "off"
    )
    return (
        f"Lyra instance {settings.instance_id}: "
        f"http://{settings.http_host}:{settings.http_port}; "
        f"store {_store_text(settings.database_url)}; mail {mail}; IMAP {imap}; "
        f"Slack {'on' if settings.slack_enabled else 'off'}; "
        f"scheduler {'on' if settings.scheduler_enabled else 'off'}"
    )


async def serve(
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
    *,
    clock: Clock | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """``lyra-bot run``: the HTTP app, the outbox worker, the scheduler and (with
    ``LYRA_IMAP_HOST``) the IMAP poller, until SIGTERM/SIGINT.

    ``ready`` is set once the service listens and the scheduler has caught up.
    """
    settings = settings or get_settings()
    if not settings.instance_id:
        # one name for this process in the log line, the IMAP lease and the Slack inbox
        settings = settings.model_copy(update={"instance_id": instance_id()})
    await init_db(settings, migrate=True)
    services = bootstrap(settings, clock)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(build_web_app(services), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("%s", describe_instance(settings))
    worker_task = asyncio.create_task(services.worker.run_forever(stop), name="outbox")
    poller = services.imap_poller()
    poller_task = (
        asyncio.create_task(poller.run_forever(stop), name="imap") if poller is not None else None
    )
    try:
        if settings.scheduler_enabled:
            await services.scheduler.start()
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise pause the event loop for tens of
        # milliseconds in the middle of a burst of requests (bench/slack.py).
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        log.info("shutting down")
        stop.set()
        await services.scheduler.shutdown()
        await runner.cleanup()
        await worker_task
        if poller is not None and poller_task is not None:
            await poller_task
            await poller.close()
        await services.worker.close()
        await close_db()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
