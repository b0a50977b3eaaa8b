"""Rules about customer data (Swiss nDSG, EU GDPR) that do no I/O.

Which private values a text shows, what a stored copy may keep, when retention ends, and
``CUSTOMER_DATA``: the one registry of every column that can hold customer data.
"""

from __future__ import annotations

import hashlib
import re
from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass
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


# --- what erasure covers: one registry of every column that can hold customer data ---------

_ERASED_JSON = {"erased": True}
FREE_TEXT_KEYS = ("reason", "note", "subject", "text")
"""Keys of audit-event data written in someone's own words (they may name the customer)."""


@dataclass(frozen=True)
class Erase:
    """How one column that can hold customer data is erased.

    A row *belongs to* the customer when it is one of their leads or linked to one
    (``lead_id``), or when one of its ``address`` columns holds their address. In those rows
    the column becomes ``to`` (a function of the old value and the customer's values, or a
    constant; ``None`` keeps it). ``mentions`` columns are free text or JSON that may quote
    the customer in anyone's rows: every occurrence of the customer's values is replaced.
    """

    to: Any = MARKER
    address: bool = False
    mentions: bool = False


DELETE = object()
"""``Erase(to=DELETE)``: the customer's rows are deleted (a row that says nothing once the
value is gone, and whose value is unique, so a marker in two rows would collide)."""


def _keep(why: str) -> str:
    return why


TEASER = _keep("teaser or lead facts every partner may see")
SETTINGS = _keep("the owner's configuration")
STAFF = _keep("partner users and owner staff, not customers")
OURS = _keep("ids, keys, codes and names Lyra makes")
TRANSIENT = _keep("a Slack request kept only until it is handled (seconds)")


def mentions_replaced(value: Any, needles: Sequence[str]) -> Any:
    """``value`` (text or JSON) with every occurrence of ``needles`` replaced by the marker."""
    if isinstance(value, str):
        for needle in needles:
            if needle and needle.casefold() in value.casefold():
                value = re.sub(re.escape(needle), MARKER, value, flags=re.IGNORECASE)
        return value
    if isinstance(value, dict):
        return {k: mentions_replaced(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [mentions_replaced(v, needles) for v in value]
    return value


def event_erased(data: Any, needles: Sequence[str]) -> Any:
    """An audit event of the customer's lead: free text gone, their values replaced, the
    facts (kinds, ids, amounts, times) kept for reports."""
    if not isinstance(data, dict):
        return data
    kept = {k: (MARKER if k in FREE_TEXT_KEYS and v else v) for k, v in data.items()}
    return mentions_replaced(kept, needles)


CUSTOMER_DATA: dict[str, dict[str, Erase | str]] = {
    "Tenant": {
        **dict.fromkeys(("slug", "name", "owner_email", "timezone", "locale"), SETTINGS),
        **dict.fromkeys(("currency", "work_days", "work_start", "work_end"), SETTINGS),
        **dict.fromkeys(("holiday_country", "holiday_subdiv", "reminder_hours"), SETTINGS),
        **dict.fromkeys(("report_time", "slack_owner_channel", "digest_time"), SETTINGS),
        **dict.fromkeys(("sender_name", "customer_from", "customer_reply_to"), SETTINGS),
        **dict.fromkeys(("imprint_company", "imprint_address", "privacy_url"), SETTINGS),
        "customer_feedback_mails": SETTINGS,
    },
    "Partner": dict.fromkeys(("slug", "name", "products", "regions", "locale"), STAFF),
    "User": dict.fromkeys(("email", "name", "locale", "slack_team_id", "slack_user_id"), STAFF),
    "Lead": {
        **dict.fromkeys(("ref", "product", "region", "industry", "size", "need"), TEASER),
        **dict.fromkeys(("locale", "legal_basis", "source", "hold_reason"), TEASER),
        "consent_source": _keep("how consent was given (a channel such as 'web form')"),
        **{f: Erase() for f in PRIVATE_FIELDS if f not in ("email", "notes")},
        "notes": Erase(mentions=True),
        "email": Erase("", address=True),
        "phone_key": Erase(""),
        "legal_note": Erase(mentions=True),
    },
    "Claim": {"channel": OURS},
    "Feedback": {
        **dict.fromkeys(("outcome", "currency", "channel"), TEASER),
        "reason": Erase(mentions=True),
        "note": Erase(mentions=True),
    },
    "AuditEvent": {"kind": OURS, "channel": OURS, "data": Erase(event_erased, mentions=True)},
    "OutboxMessage": {
        **dict.fromkeys(("channel", "kind", "dedupe_key", "discloses"), OURS),
        **dict.fromkeys(("correlation_id", "message_id"), OURS),
        "recipient": Erase(address=True),
        "payload": Erase(_ERASED_JSON, mentions=True),
        "last_error": Erase(None, mentions=True),
    },
    "Disclosure": {
        "recipient": STAFF,
        **dict.fromkeys(("fields_shown", "channel", "purpose"), OURS),
    },
    "Extension": {"reason": Erase(mentions=True), "channel": OURS},
    "ContactCheck": {
        "email": Erase(address=True),
        **dict.fromkeys(("answer", "channel"), OURS),
    },
    "JobRun": dict.fromkeys(("name", "last_result"), OURS),
    "ApiKey": dict.fromkeys(("name", "prefix", "key_hash"), SETTINGS),
    "InboundKey": {
        **dict.fromkeys(("key", "command"), OURS),
        "reply": Erase(None, mentions=True),  # e.g. "Mail from <address> recorded."
    },
    "MailBounce": {
        "address": Erase(DELETE, address=True),  # unique per tenant
        "reason": Erase(mentions=True),
        **dict.fromkeys(("status", "kind"), OURS),
    },
    "SlackChannel": dict.fromkeys(("team_id", "channel_id"), OURS),
    "SlackMessage": dict.fromkeys(("kind", "team_id", "channel_id", "ts", "title"), OURS)
    | {"content_hash": OURS},
    "Lease": dict.fromkeys(("name", "holder"), OURS),
    "SlackInbox": dict.fromkeys(("body", "query", "headers"), TRANSIENT) | {"holder": OURS},
}
"""Every text and JSON column of every table: how it is erased, or why it never holds
customer data. ``tests/test_privacy.py`` fails when a model gains a column not listed here."""
