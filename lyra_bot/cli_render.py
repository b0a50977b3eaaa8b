"""The CLI's renderer: replies as rich tables and panels, times in the tenant's zone.

Reply data carries UTC ISO timestamps (JSON output keeps them); a person reading a table
gets them in the tenant's time zone, like the mails they are sent (``2026-11-27 14:00 CET``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)?$")
UTC_ZONE = ZoneInfo("UTC")


def local_time(value: str, zone: ZoneInfo | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM ZONE`` in ``zone`` (UTC when none is known)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC_ZONE)
    return when.astimezone(zone or UTC_ZONE).strftime("%Y-%m-%d %H:%M %Z")


def cell(value: Any, zone: ZoneInfo | None = None) -> str:
    """One value as table text: lists joined, times local, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v, zone) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v, zone)}" for k, v in value.items())
    if isinstance(value, str) and _ISO.match(value):
        return local_time(value, zone)
    return str(value)


def table(
    title: str,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    zone: ZoneInfo | None = None,
    caption: str | None = None,
) -> Table:
    result = Table(
        *columns,
        title=Text(title),
        title_justify="left",
        caption=Text(caption) if caption else None,
    )
    result.caption_justify = "left"
    for row in rows:
        # Text, not str: a value like "[erased]" is data, never rich markup
        result.add_row(*(Text(cell(row.get(col), zone)) for col in columns))
    return result


def fields(data: Mapping[str, Any], zone: ZoneInfo | None, skip: Iterable[str] = ()) -> Table:
    """``name  value`` lines for one record."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    hidden = set(skip)
    for key, value in data.items():
        if key not in hidden and value not in (None, "", [], {}):
            grid.add_row(key.replace("_", " "), Text(cell(value, zone)))
    return grid


def record(title: str, data: Mapping[str, Any], zone: ZoneInfo | None = None) -> Panel:
    """One record (a partner, a user, an outbox message) as a panel: its plain values as
    ``name  value`` lines, then each list of rows as a table and each mapping as JSON."""
    from rich.json import JSON

    nested = {
        k: v
        for k, v in data.items()
        if (isinstance(v, list) and v and isinstance(v[0], dict))
        or (isinstance(v, dict) and any(isinstance(x, dict | list) for x in v.values()))
    }
    parts: list[RenderableType] = [fields(data, zone, skip=nested)]
    for key, value in nested.items():
        parts.append(Text(""))
        if isinstance(value, list):
            parts.append(
                table(f"{key.replace('_', ' ')} ({len(value)})", value, list(value[0]), zone)
            )
        else:
            parts.extend((Text(key.replace("_", " "), style="bold"), JSON.from_data(value)))
    return Panel(Group(*parts), title=Text(title), title_align="left", expand=False)


def lead_panel(data: Mapping[str, Any], zone: ZoneInfo | None) -> Panel:
    """``lead show``: the lead, its claims, feedback and history, readable at a glance."""
    lead = dict(data["lead"])
    title = Text.assemble((str(lead.get("ref", "")), "bold"), "  ", str(lead.get("status", "")))
    parts: list[RenderableType] = [fields(lead, zone, skip=("ref", "status"))]
    for key, columns in (
        ("claims", ("partner", "state", "claimed_at", "due_at", "ended_at")),
        ("feedback", ("outcome", "amount", "currency", "reason", "on_time", "at")),
        ("history", ("at", "event", "channel", "partner")),
    ):
        rows = data.get(key) or []
        parts.append(Text(""))
        if rows:
            parts.append(table(f"{key.title()} ({len(rows)})", rows, columns, zone))
        else:
            parts.append(Text(f"{key.title()}: none", style="dim"))
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def page_caption(shown: int, total: int, offset: int, noun: str) -> str | None:
    """Says when a listing shows only part of what there is, and how to see the rest."""
    if total <= shown and offset == 0:
        return None
    if shown == 0:
        return f"No {noun} at offset {offset}; there are {total}."
    first, last = offset + 1, offset + shown
    more = f"; next: --offset {last}" if last < total else ""
    return f"Showing {first}–{last} of {total} {noun}{more}."
