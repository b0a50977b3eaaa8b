"""Reply tokens: signed, short, case-proof, expiring, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lyra_bot import tokens
from lyra_bot.config import Settings
from lyra_bot.domain import TokenExpired, TokenInvalid

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _settings(**kw) -> Settings:
    kw.setdefault("secret_key", "s3cret")
    return Settings(_env_file=None, inbound_address="leads@lyra.example", **kw)  # type: ignore[call-arg]


def test_round_trip_binds_tenant_person_and_lead():
    settings = _settings()
    token = tokens.issue(settings, "u", 7, 123456, 98765, NOW)
    got = tokens.verify(settings, token.upper(), NOW)  # a gateway may change case
    assert (got.kind, got.tenant_id, got.subject_id, got.lead_id) == ("u", 7, 123456, 98765)
    assert got.expires_at == NOW + timedelta(days=30)
    address = tokens.reply_address(settings, token)
    assert address.startswith("leads+") and address.endswith("@lyra.example")
    assert len(address.split("@")[0]) <= 64
    assert tokens.token_in(f"Re: <{token}.abc@x>") == token


def test_tampering_foreign_keys_and_garbage_are_refused():
    settings = _settings()
    token = tokens.issue(settings, "u", 7, 12, None, NOW)
    body, mac = token.rsplit(".", 1)
    forged = (
        body.replace(".c.", ".d.")
        if ".c." in body
        else body[:-1] + ("a" if body[-1] != "a" else "b")
    )
    for bad in (f"{forged}.{mac}", f"{body}.{'a' * len(mac)}", "hello", ""):
        with pytest.raises(TokenInvalid):
            tokens.verify(settings, bad, NOW)
    with pytest.raises(TokenInvalid):
        tokens.verify(_settings(secret_key="other"), token, NOW)


def test_expiry_and_key_rotation():
    old = _settings()
    token = tokens.issue(old, "c", 1, 5, 5, NOW, days=1)
    with pytest.raises(TokenExpired):
        tokens.verify(old, token, NOW + timedelta(days=1, hours=1))
    rotated = _settings(secret_key="new", secret_key_id="k2", old_secret_keys={"k1": "s3cret"})
    assert tokens.verify(rotated, token, NOW).subject_id == 5
    retired = _settings(secret_key="new", secret_key_id="k2")
    with pytest.raises(TokenInvalid):
        tokens.verify(retired, token, NOW)


def test_a_token_works_only_for_its_purpose():
    """The purpose is inside the MAC: a reply address cannot unsubscribe, a contact check's
    reply address cannot answer through the links, and no link is a reply address."""
    settings = _settings()
    made = {
        "reply": tokens.issue(settings, "u", 7, 12, None, NOW),
        "unsubscribe": tokens.issue(settings, "u", 7, 12, None, NOW, purpose="unsubscribe"),
        "check": tokens.issue(settings, "k", 7, 3, 5, NOW, purpose="check"),
        "opt-out": tokens.issue(settings, "c", 7, 5, 5, NOW, days=365, purpose="opt-out"),
        "reply-k": tokens.issue(settings, "k", 7, 3, 5, NOW),
        "reply-c": tokens.issue(settings, "c", 7, 5, 5, NOW),
    }
    for name, token in made.items():
        own = name.split("-")[0] if name.startswith("reply") else name
        for purpose in tokens.PURPOSES:
            if purpose == own:
                assert tokens.verify(settings, token, NOW, purpose).tenant_id == 7
            else:
                with pytest.raises(TokenInvalid):
                    tokens.verify(settings, token, NOW, purpose)
    assert made["unsubscribe"].rsplit(".", 1)[0] == made["reply"].rsplit(".", 1)[0]
    with pytest.raises(ValueError):
        tokens.issue(settings, "c", 7, 5, 5, NOW, purpose="unsubscribe")
