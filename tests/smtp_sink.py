"""A real SMTP server (aiosmtpd on a free loopback port) that keeps every message it receives,
and a minimal SMTP transport for the outbox worker.

The transport is only what these tests need to count what really crossed SMTP; Lyra's own
SMTP transport belongs to the email channel.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import aiosmtplib
from aiosmtpd.controller import Controller
from lyra_bot.adapters.email.smtp import build_mime

from lyra_bot.config import Settings
from lyra_bot.models import OutboxMessage


@dataclass
class Sink:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server() -> Iterator[Sink]:
    """Start an SMTP server for the duration of the block (tests wrap it in a fixture)."""
    sink = Sink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


class SmtpTransport:
    """Hands each outbox row to an SMTP server, one connection per message."""

    channel = "email"

    def __init__(self, settings: Settings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink

    async def send(self, row: OutboxMessage) -> None:
        await aiosmtplib.send(
            build_mime(row, self.settings),
            hostname=self.sink.host,
            port=self.sink.port,
            start_tls=False,
            timeout=10,
        )

    async def close(self) -> None:
        return None
