"""Signed reply tokens: who may answer a mail, for which tenant and lead, until when.

A token rides in the Reply-To address (``leads+TOKEN@domain``) and in our Message-IDs, so it
must be short (an address's local part is at most 64 characters) and survive gateways that
change case. It is lower-case base36 fields plus a truncated HMAC-SHA256, prefixed by the id
of the key that signed it, so keys can be rotated without breaking mails already sent.

Each token has one **purpose**: ``reply`` (a reply address or Message-ID), ``unsubscribe``
(the digest's one-click link), ``check`` (the contact check's answer links) or ``opt-out``
(the customer's "do not contact me" link). The purpose is inside the MAC but not in the
token's text, so a token made for one purpose fails verification for any other: whoever sees
a partner's reply address cannot unsubscribe it, and a contact check's reply address cannot
answer through the links (where no From address is checked). Reply tokens MAC the bare body,
as before purposes existed, so reply addresses in mails already sent keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lyra_bot.config import Settings
from lyra_bot.domain import TokenExpired, TokenInvalid

KINDS = {"u": "user", "c": "customer", "o": "owner", "k": "contact check"}
PURPOSES: dict[str, frozenset[str]] = {  # purpose -> the kinds a token of it may carry
    "reply": frozenset(KINDS),
    "unsubscribe": frozenset("u"),
    "check": frozenset("k"),
    "opt-out": frozenset("c"),
}
_MAC_BYTES = 12
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+){5}")


@dataclass(frozen=True)
class ReplyToken:
    # "u" a user, "c" a lead's customer (subject: lead), "o" the owner (subject: tenant),
    # "k" a customer answering a contact check (subject: claim; links and replies)
    kind: str
    tenant_id: int
    subject_id: int  # user id, lead id for a customer, claim id for a contact check
    lead_id: int | None
    expires_at: datetime


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _keys(settings: Settings) -> dict[str, bytes]:
    keys = {
        kid.lower(): key.get_secret_value().encode()
        for kid, key in settings.old_secret_keys.items()
    }
    keys[settings.secret_key_id.lower()] = settings.secret_key.get_secret_value().encode()
    return keys


def _mac(key: bytes, body: str, purpose: str) -> str:
    # The body is [a-z0-9.] only, so "purpose:" can never be a prefix of a bare body.
    signed = body if purpose == "reply" else f"{purpose}:{body}"
    digest = hmac.new(key, signed.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def issue(
    settings: Settings,
    kind: str,
    tenant_id: int,
    subject_id: int,
    lead_id: int | None,
    now: datetime,
    days: int | None = None,
    purpose: str = "reply",
) -> str:
    if kind not in PURPOSES[purpose]:
        raise ValueError(f"a {purpose} token cannot be of kind {kind!r}")
    kid = settings.secret_key_id.lower()
    if not re.fullmatch(r"[a-z0-9]+", kid):
        raise ValueError("LYRA_SECRET_KEY_ID must be letters and digits")
    expires = int((now + timedelta(days=days or settings.reply_token_days)).timestamp()) // 3600
    fields = [kid, kind + _b36(tenant_id), _b36(subject_id), _b36(lead_id or 0), _b36(expires)]
    body = ".".join(fields)
    return f"{body}.{_mac(_keys(settings)[kid], body, purpose)}"


def verify(settings: Settings, token: str, now: datetime, purpose: str = "reply") -> ReplyToken:
    """Check signature (for ``purpose``) and expiry; raise ``TokenInvalid`` or ``TokenExpired``."""
    allowed = PURPOSES[purpose]
    token = token.strip().lower()
    if not _TOKEN_RE.fullmatch(token):
        raise TokenInvalid("token_foreign")
    body, mac = token.rsplit(".", 1)
    kid, kind_tenant, subject, lead, expires = body.split(".")
    key = _keys(settings).get(kid)
    if key is None or not hmac.compare_digest(_mac(key, body, purpose), mac):
        raise TokenInvalid("token_mangled")
    kind = kind_tenant[:1]
    if kind not in allowed:
        raise TokenInvalid("token_mangled")
    expires_at = datetime.fromtimestamp(int(expires, 36) * 3600, UTC)
    if now >= expires_at:
        raise TokenExpired()
    lead_id = int(lead, 36)
    return ReplyToken(kind, int(kind_tenant[1:], 36), int(subject, 36), lead_id or None, expires_at)


def reply_address(settings: Settings, token: str) -> str:
    """``leads@example.com`` + token → ``leads+TOKEN@example.com``."""
    local, _, domain = settings.inbound_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_in(text: str) -> str | None:
    """Find a token in an address or Message-ID (``leads+TOKEN@…``, ``<…TOKEN…@…>``)."""
    match = _TOKEN_RE.search(text.lower())
    return match.group(0) if match else None
