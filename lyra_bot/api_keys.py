"""Intake API keys: made of a public prefix (finds the row) and 256 random bits.

Only the key's SHA-256 is stored; a key that leaks from a backup of the database is useless.
A plain hash is enough because the key is high-entropy (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "lyra"
_KEY_RE = re.compile(r"^lyra_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def new_key() -> tuple[str, str, str]:
    """A fresh key: ``(prefix, key, sha256 hex)``. Show ``key`` once, store the rest."""
    prefix = secrets.token_hex(6)
    key = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return prefix, key, digest(key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    """The public prefix of a well-formed key, else None (nothing is looked up)."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def matches(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of the key's hash with the stored one."""
    return hmac.compare_digest(digest(key).encode(), stored_hash.encode())
