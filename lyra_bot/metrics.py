"""Prometheus metrics and transport health for one Lyra app (``GET /metrics``, ``/readyz``).

Each ``Metrics`` owns its ``CollectorRegistry`` (never prometheus_client's global one), so
several apps in one process (tests, the benchmarks) count separately. The bus, the outbox
worker, the mail processor and the Slack app update it as things happen; the outbox gauges
are read from the database when ``/metrics`` is scraped, so every instance reports the
shared queue as it is now.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3)
CHANNELS = frozenset({"email", "slack"})  # always reported, 0 when empty
FAST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass
class TransportHealth:
    """When a transport (smtp, file, slack, imap) last worked and last failed."""

    last_success: float | None = None
    last_failure: float | None = None
    last_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "last_error": self.last_error or None,
            "ok": self.last_failure is None
            or (self.last_success is not None and self.last_success > self.last_failure),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.commands = Counter(
            "lyra_commands",
            "Commands dispatched through the bus, by kind and result "
            "(ok, refused, duplicate, busy, error).",
            ["kind", "result"],
            registry=r,
        )
        self.command_seconds = Histogram(
            "lyra_command_duration_seconds",
            "Time to dispatch one command (its whole transaction).",
            ["kind"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.claims = Counter(
            "lyra_claims", "Leads claimed (committed), by channel.", ["channel"], registry=r
        )
        self.lapses = Counter(
            "lyra_lapses", "Claims whose deadline passed; the lead went back.", registry=r
        )
        self.outbox_pending = Gauge(
            "lyra_outbox_pending", "Outbox messages waiting for delivery.", ["channel"], registry=r
        )
        self.outbox_dead = Gauge(
            "lyra_outbox_dead",
            "Outbox messages given up on (dead letters).",
            ["channel"],
            registry=r,
        )
        self.outbox_oldest = Gauge(
            "lyra_outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox message (0 when none).",
            ["channel"],
            registry=r,
        )
        self.delivered = Counter(
            "lyra_outbox_delivered", "Outbox messages delivered.", ["channel"], registry=r
        )
        self.delivery_failures = Counter(
            "lyra_outbox_delivery_failures",
            "Failed delivery attempts, by channel and outcome (retry, dead).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "lyra_outbox_delivery_latency_seconds",
            "From the commit that queued a message to its delivery.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inbound_mails = Counter(
            "lyra_inbound_mails",
            "Inbound mails by outcome (accepted, rejected, auto_reply, bounce, duplicate) "
            "and reason.",
            ["source", "outcome", "reason"],
            registry=r,
        )
        self.slack_ack = Histogram(
            "lyra_slack_ack_seconds",
            "From receiving a Slack request to answering it (Slack gives up after 3 s).",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.slack_recovered = Counter(
            "lyra_slack_recovered",
            "Stored Slack requests taken over after their holder did not finish them "
            "(queued again, or dropped after too many attempts).",
            ["outcome"],
            registry=r,
        )
        self.http = Histogram(
            "lyra_http_request_duration_seconds",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.transport_success = Gauge(
            "lyra_transport_last_success_timestamp_seconds",
            "Unix time a transport last worked.",
            ["transport"],
            registry=r,
        )
        self.transport_failure = Gauge(
            "lyra_transport_last_failure_timestamp_seconds",
            "Unix time a transport last failed.",
            ["transport"],
            registry=r,
        )
        self.transports: dict[str, TransportHealth] = {}
        self._command_children: dict[tuple[str, str], Any] = {}
        self._timer_children: dict[str, Any] = {}

    # --- updates ---------------------------------------------------------------------

    def command(self, kind: str, result: str, seconds: float) -> None:
        # Every dispatch counts here: the labelled children are looked up once, not per call.
        counter = self._command_children.get((kind, result))
        if counter is None:
            counter = self._command_children[kind, result] = self.commands.labels(kind, result)
        timer = self._timer_children.get(kind)
        if timer is None:
            timer = self._timer_children[kind] = self.command_seconds.labels(kind)
        counter.inc()
        timer.observe(seconds)

    def committed(self, events: Tally[str], channel: str) -> None:
        """Audit events of one committed transaction: claims and lapses."""
        if claimed := events.get("lead.claimed"):
            self.claims.labels(channel).inc(claimed)
        if lapsed := events.get("lead.lapsed"):
            self.lapses.inc(lapsed)

    def transport_ok(self, name: str) -> None:
        now = time.time()
        self.transports.setdefault(name, TransportHealth()).last_success = now
        self.transport_success.labels(name).set(now)

    def transport_failed(self, name: str, error: BaseException | str) -> None:
        from lyra_bot.logs import redact

        now = time.time()
        health = self.transports.setdefault(name, TransportHealth())
        health.last_failure = now
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        health.last_error = redact(text)[:300]
        self.transport_failure.labels(name).set(now)

    async def refresh_outbox(self) -> None:
        """Set the outbox gauges from the database (at scrape time)."""
        from lyra_bot.outbox import outbox_stats

        stats = await outbox_stats()
        for gauge, values in (
            (self.outbox_pending, stats["pending"]),
            (self.outbox_dead, stats["dead"]),
            (self.outbox_oldest, stats["oldest_pending_seconds"]),
        ):
            gauge.clear()
            for channel in CHANNELS | set(values):
                gauge.labels(channel).set(values.get(channel, 0))

    def clear_outbox(self) -> None:
        for gauge in (self.outbox_pending, self.outbox_dead, self.outbox_oldest):
            gauge.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)
