"""Outbound email: an outbox row becomes a MIME message; transports hand it on.

``FileTransport`` (the default when no SMTP server is configured) writes each mail as an
``.eml`` file, so Lyra runs with no accounts at all.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from lyra_bot.config import Settings
from lyra_bot.models import OutboxMessage

# Headers every machine-written mail carries (RFC 3834; Outlook's auto-reply suppression).
AUTOMATED_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}


def build_mime(row: OutboxMessage, settings: Settings) -> EmailMessage:
    """multipart/alternative (plain text + HTML), UTF-8, with a Message-ID stable across retries."""
    payload = row.payload
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = row.message_id
    if payload.get("reply_to"):
        message["Reply-To"] = payload["reply_to"]
    for name, value in AUTOMATED_HEADERS.items():
        message[name] = value
    for name, value in (payload.get("headers") or {}).items():
        message[name] = value
    message.set_content(payload["text"], charset="utf-8")
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html", charset="utf-8")
    return message


class FileTransport:
    """Writes ``<dir>/<tenant>/<id>-<kind>.eml``; a retry overwrites the same file."""

    channel = "email"

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.directory = Path(directory or settings.outbox_dir)

    async def send(self, row: OutboxMessage) -> None:
        data = build_mime(row, self.settings).as_bytes()
        folder = self.directory / str(row.tenant_id or "system")
        path = folder / f"{row.id:06d}-{row.kind.replace('.', '-')}.eml"
        await asyncio.to_thread(_write, path, data)

    async def close(self) -> None:
        return None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
