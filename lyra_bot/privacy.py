"""Rules about customer data (Swiss nDSG, EU GDPR) that do no I/O.

Which private values a text shows, what a stored copy may keep, when retention ends.
"""

from __future__ import annotations

import hashlib
from calendar import monthrange
from datetime import datetime
from typing import Any

from lyra_bot.domain import PRIVATE_FIELDS

MARKER = "[erased]"
"""What replaces a customer's data once it is erased; teaser fields, outcomes and amounts stay."""


def fields_shown(lead: Any, *texts: str) -> list[str]:
    """The private fields of ``lead`` whose (non-trivial) values appear in any of ``texts``."""
    haystack = "\n".join(texts).casefold()
    shown = []
    for field in PRIVATE_FIELDS:
        value = str(getattr(lead, field, "") or "").strip()
        if len(value) >= 3 and value != MARKER and value.casefold() in haystack:
            shown.append(field)
    return shown


def private_views(data: Any) -> list[dict[str, Any]]:
    """Lead views in a reply's data that carry customer data (a ``ref`` and a private field)."""
    found: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if "ref" in data and any(data.get(f) for f in PRIVATE_FIELDS):
            found.append(data)
        for value in data.values():
            found += private_views(value)
    elif isinstance(data, list):
        for value in data:
            found += private_views(value)
    return found


def scrub(data: Any) -> Any:
    """A copy of reply data without customer data, for storing (idempotency keys)."""
    if isinstance(data, dict):
        return {k: scrub(v) for k, v in data.items() if k not in PRIVATE_FIELDS}
    if isinstance(data, list):
        return [scrub(v) for v in data]
    return data


def months_before(when: datetime, months: int) -> datetime:
    """The same moment ``months`` calendar months earlier (day clamped to the month's end)."""
    year, month = divmod(when.year * 12 + when.month - 1 - months, 12)
    month += 1
    return when.replace(year=year, month=month, day=min(when.day, monthrange(year, month)[1]))


def subject_key(email: str) -> str:
    """A stable pseudonym of a customer's email for the audit trail of their own requests."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:16]
