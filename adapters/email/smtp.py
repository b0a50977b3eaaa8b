"""Outbound email: an outbox row becomes a MIME message; transports hand it on.

``SmtpTransport`` delivers over one reused SMTP connection (aiosmtplib) when
``LYRA_SMTP_HOST`` is set; ``FileTransport`` (the default otherwise) writes each mail as an
``.eml`` file, so Lyra runs with no accounts at all.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from email import charset as email_charset
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
import css_inline

from lyra_bot.config import Settings
from lyra_bot.outbox import PermanentError
from lyra_bot.render import one_line

if TYPE_CHECKING:  # the row the outbox worker hands a transport (read, never queried here)
    from lyra_bot.outbox import OutboxMessage

log = logging.getLogger(__name__)

# Headers every machine-written mail carries (RFC 3834; Outlook's auto-reply suppression).
AUTOMATED_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
_INLINER = css_inline.CSSInliner(keep_style_tags=False)


class _Unfolded(Compat32):
    """compat32 that writes a header as given when it is plain ASCII on one line (ours are:
    ``one_line`` and RFC 2047 encoding happen before): no refolding, which some clients get
    wrong for a Message-ID, and which costs more than the rest of the message."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:  # type: ignore[override]
        if isinstance(value, str) and value.isascii() and "\r" not in value:
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_POLICY = _Unfolded(max_line_length=998)
# base64 bodies: encoded in C (quoted-printable is pure Python and costs more than the send)
_UTF8 = email_charset.Charset("utf-8")
_UTF8.body_encoding = email_charset.BASE64


def inline_css(html: str) -> str:
    """Move the layout's ``<style>`` rules into ``style`` attributes (Outlook, old webmail)."""
    try:
        return _INLINER.inline(html)
    except ValueError:  # css_inline refuses markup it cannot parse; send it as written
        log.warning("could not inline CSS; sending the HTML part unchanged")
        return html


def _header(value: str) -> str:
    """One line (no CR/LF from user data); RFC 2047-encoded when it is not ASCII."""
    value = one_line(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(value: str) -> str:
    name, addr = parseaddr(one_line(value))
    return formataddr((name, addr), charset="utf-8") if name else addr


def build_mime(row: OutboxMessage, settings: Settings) -> EmailMessage:
    """The mail of an outbox row as an ``EmailMessage`` (for tests and other senders);
    transports send ``mime_bytes`` directly."""
    return BytesParser(policy=policy.default).parsebytes(mime_bytes(row, settings))  # type: ignore[return-value]


def mime_bytes(row: OutboxMessage, settings: Settings) -> bytes:
    """multipart/alternative (plain text + HTML), UTF-8 base64, with a Message-ID stable
    across retries, as the bytes that go on the wire. With inline parts (``payload["inline"]``,
    see ``outbox.Inline``) the HTML and its images form a multipart/related inside the
    alternative, each image carrying the Content-ID the HTML refers to (RFC 2387, RFC 2392).

    Built with the classic ``email.mime`` classes: four times faster than ``EmailMessage``
    with the default policy, which matters when the worker sends thousands of mails. Header
    lines are not folded (some clients keep the fold's space in a folded Message-ID). Every
    header value passes through ``one_line``, so nothing from user data can start a header.
    """
    payload = row.payload
    # A boundary of our own: "-" never occurs in base64, so no scan of the body is needed
    # (the generator's own check compiles a regular expression per message).
    message = MIMEMultipart("alternative", boundary=f"lyra-{uuid.uuid4().hex}", policy=_POLICY)
    # Customer mails come from the owner (its name, and its address where it set one).
    message["From"] = _address(payload.get("from") or settings.mail_from)
    message["To"] = _address(payload["to"])
    message["Subject"] = _header(payload["subject"])
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = one_line(row.message_id)
    if payload.get("reply_to"):
        message["Reply-To"] = _address(payload["reply_to"])
    for name, value in AUTOMATED_HEADERS.items():
        message[name] = value
    automated = {h.lower() for h in AUTOMATED_HEADERS}
    for name, value in (payload.get("headers") or {}).items():
        name = one_line(name).replace(":", "")
        if name and name.lower() not in automated:
            message[name] = _header(value)
    message.attach(MIMEText(payload["text"], "plain", _UTF8))
    if payload.get("html"):
        html = MIMEText(inline_css(payload["html"]), "html", _UTF8)
        inline = payload.get("inline") or []
        if inline:
            related = MIMEMultipart(
                "related", boundary=f"lyra-{uuid.uuid4().hex}", policy=_POLICY, type="text/html"
            )
            related.attach(html)
            for part in inline:
                related.attach(_inline_part(part))
            message.attach(related)
        else:
            message.attach(html)
    return message.as_bytes()


def _inline_part(part: dict[str, str]) -> MIMENonMultipart:
    """One inline file: base64 body, ``Content-ID: <cid>``, ``Content-Disposition: inline``."""
    maintype, _, subtype = part["content_type"].partition("/")
    mime = MIMENonMultipart(maintype, subtype, policy=_POLICY)
    raw = base64.b64decode(part["data"])
    mime.set_payload(base64.encodebytes(raw).decode("ascii"))
    mime["Content-Transfer-Encoding"] = "base64"
    mime["Content-ID"] = f"<{one_line(part['cid'])}>"
    if part.get("filename"):
        mime.add_header("Content-Disposition", "inline", filename=one_line(part["filename"]))
    else:
        mime["Content-Disposition"] = "inline"
    return mime


def envelope_sender(settings: Settings) -> str:
    """Bounces go to the envelope sender: the inbound address, so the poller sees them."""
    return parseaddr(settings.inbound_address)[1] or parseaddr(settings.mail_from)[1]


class SmtpTransport:
    """One SMTP connection, opened on first use, reused for every mail, reopened if it drops.

    A 5xx answer (unknown recipient, message refused) is permanent; everything else
    (4xx, a dropped or refused connection, a timeout) is retried by the outbox worker.
    """

    channel = "email"
    name = "smtp"  # in /readyz and the transport metrics

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is None or not self._client.is_connected:
            self._client = self._new_client()
            await self._client.connect()
        return self._client

    async def send(self, row: OutboxMessage) -> None:
        data = mime_bytes(row, self.settings)
        async with self._lock:
            for attempt in (1, 2):
                client = await self._connected()
                try:
                    await client.sendmail(envelope_sender(self.settings), [row.recipient], data)
                    return
                except aiosmtplib.SMTPServerDisconnected:
                    # The server closed an idle connection; one fresh try, then let the
                    # worker's backoff take over.
                    self._client = None
                    if attempt == 2:
                        raise
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    codes = [r.code for r in exc.recipients]
                    if codes and all(code >= 500 for code in codes):
                        raise PermanentError(str(exc)) from exc
                    raise
                except aiosmtplib.SMTPResponseException as exc:
                    await self._reset(client)
                    if exc.code >= 500:
                        raise PermanentError(f"{exc.code} {exc.message}") from exc
                    raise

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """After a refused message, RSET so the next one starts a clean transaction."""
        try:
            await client.rset()
        except aiosmtplib.SMTPException:
            self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()


class FileTransport:
    """Writes ``<dir>/<tenant>/<id>-<kind>.eml``; a retry overwrites the same file."""

    channel = "email"
    name = "file"

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.directory = Path(directory or settings.outbox_dir)

    async def send(self, row: OutboxMessage) -> None:
        data = mime_bytes(row, self.settings)
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
