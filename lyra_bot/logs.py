"""Logging for every Lyra process: one set-up, a correlation id, and redaction.

``configure()`` installs one root handler writing JSON lines (``LYRA_LOG_FORMAT=json``,
python-json-logger) or text (``text``) at ``LYRA_LOG_LEVEL``. Every line carries the
correlation id bound while it was logged: ``correlation()`` binds one per HTTP request,
inbound mail, Slack request and scheduler job run (a ``contextvars`` variable, so it follows
the task and anything it awaits).

Redaction happens in the formatter, after the message and the traceback are formatted, so
it covers our lines, library lines and exception texts alike: email addresses (with their
display names, and so the reply tokens inside ``leads+TOKEN@…``), phone numbers, reply
tokens, Slack tokens, bearer secrets and every secret value of the settings are replaced.
Libraries that dump whole payloads at DEBUG (SQL with its values, Slack Web API bodies) are
held at INFO: no pattern can find a customer's name in an arbitrary payload, so those
payloads are never written at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from lyra_bot.config import Settings

CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lyra_correlation_id", default=None
)

# Loggers that write request/response payloads or SQL with its parameters at DEBUG.
PAYLOAD_LOGGERS = (
    "tortoise",
    "tortoise.db_client",
    "aiosqlite",
    "asyncpg",
    "slack_sdk",
    "slack_bolt",
    "lyra.slack.bolt",
    "aiosmtplib",
    "imap_tools",
    "apscheduler",
)

REDACTED = "[redacted]"
# a display name: quoted, or up to three capitalised words right before the <address>
_DISPLAY_NAME = r"(?:\"[^\"\n]{0,200}\"|(?:[A-ZÀ-ÖØ-Þ][^\s<>,;:\"@()\[\]{}=]* ){1,3})"
_EMAIL = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_PATTERNS = (
    # credentials in URLs: postgres://lyra:PASSWORD@db/lyra, async+redis://:PASSWORD@cache
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]*):[^@\s/]+@"), r"\1:" + REDACTED + "@"),
    # "Anna Huber" <anna@huber.example> and Anna Huber <anna@…>: the name goes too
    (re.compile(rf"{_DISPLAY_NAME}\s*<\s*{_EMAIL}\s*>"), "[email]"),
    (re.compile(_EMAIL), "[email]"),
    # reply tokens (tokens.py: key id, four base36 fields, a base32 MAC) anywhere: URLs, ids
    (re.compile(r"(?i)\b[a-z0-9]+(?:\.[a-z0-9]+){4}\.[a-z2-7]{16,}\b"), "[token]"),
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), "[slack-token]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=([^\s&,;]+)"),
        r"\1=" + REDACTED,
    ),
    # international (+41 44 555 01 01, +41445550101) and national (044 555 01 01) numbers
    (re.compile(r"(?<![\w+])\+\d[\d ()./-]{6,18}\d\b"), "[phone]"),
    (re.compile(r"(?<![\w.:-])0\d{1,3}[ /.-]\d{2,4}(?:[ .-]\d{2,4}){1,3}\b"), "[phone]"),
)

_secrets: set[str] = set()


def add_secrets(*values: str | None) -> None:
    """Literal values that never appear in a log line (at least 6 characters long)."""
    for value in values:
        if value and len(value) >= 6:
            _secrets.add(value)


def add_settings_secrets(settings: Settings) -> None:
    """Every secret of ``settings``: signing keys, passwords, tokens, webhook secrets."""
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, dict):
            add_secrets(*(_secret_text(v) for v in value.values()))
        else:
            add_secrets(_secret_text(value))


def _secret_text(value: Any) -> str | None:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else None


def redact(text: str) -> str:
    """``text`` without secrets and contact data."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# --- correlation ids --------------------------------------------------------------------


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def current() -> str | None:
    return CORRELATION_ID.get()


@contextlib.contextmanager
def correlation(cid: str | None = None, *, prefix: str = "", keep: bool = False) -> Iterator[str]:
    """Bind a correlation id for the block. ``keep``: reuse the one already bound, if any
    (a mail that arrives through an HTTP request keeps the request's id)."""
    existing = CORRELATION_ID.get()
    if keep and existing:
        yield existing
        return
    value = cid or new_id(prefix)
    token = CORRELATION_ID.set(value)
    try:
        yield value
    finally:
        CORRELATION_ID.reset(token)


_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def accept_id(header: str | None) -> str | None:
    """A caller's ``X-Request-ID`` when it looks like an id (nothing else is trusted)."""
    return header if header and _SAFE_ID.match(header) else None


# --- formatting --------------------------------------------------------------------------


class _Context(logging.Filter):
    """Stamps every record with the bound correlation id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = CORRELATION_ID.get()
        return True


class _Redacting(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(_redacted_record(record))

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


class TextFormatter(_Redacting):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
        )

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = CORRELATION_ID.get()
        # Another handler may have cached the traceback's text unredacted: format it anew.
        copy = logging.makeLogRecord(record.__dict__)
        copy.exc_text = None
        return super().format(copy)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, correlation_id, extras."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = CORRELATION_ID.get()
        return redact_json(super().format(_redacted_record(record)))

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


def redact_json(line: str) -> str:
    """Extras (``log.info(..., extra={...})``) are redacted in the finished line too; the
    patterns never match JSON punctuation, so the line stays valid JSON."""
    return redact(line)


def _redacted_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy whose message is formatted and redacted (the original stays untouched for
    other handlers, e.g. pytest's capture)."""
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg = redact(record.getMessage())
    copy.args = None
    copy.message = copy.msg
    return copy


_handler: logging.Handler | None = None


def configure(
    settings: Settings | None = None,
    *,
    fmt: str | None = None,
    level: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install Lyra's one log handler on the root logger (replacing an earlier one)."""
    global _handler
    if settings is not None:
        add_settings_secrets(settings)
    fmt = (fmt or (settings.log_format if settings else "text")).lower()
    level_name = (level or (settings.log_level if settings else "INFO")).upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level_name)
    floor = max(logging.INFO, logging.getLevelName(level_name))
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(floor)
    # aiohttp's access log has neither the correlation id nor a safe path: lyra.access
    # (adapters.web_ops) writes the request line instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _handler = handler
    return handler


def unconfigure() -> None:
    """Remove the handler ``configure`` installed (tests)."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
