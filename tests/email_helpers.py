"""Building reply mails and tokens for the email tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.message import EmailMessage

from lyra_bot import tokens
from lyra_bot.config import Settings
from lyra_bot.models import Lead, OutboxMessage, Tenant, User
from tests.world import World


def reply_mail(
    sender: str,
    to: str,
    body: str,
    *,
    subject: str = "Re: your leads",
    message_id: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@client.example>"
    if references:
        msg["In-Reply-To"] = references.split()[-1]
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


async def user(email: str) -> User:
    return await User.get(email=email)


async def lead(world: World, ref: str) -> Lead:
    return await Lead.get(tenant_id=world.tenant_id, ref=ref)


async def address_for(
    settings: Settings, clock, email: str, lead_ref: str | None = None, world: World | None = None
) -> str:
    """The reply address Lyra would give ``email`` (bound to a lead when ``lead_ref``)."""
    u = await user(email)
    lead_id = None
    if lead_ref and world is not None:
        lead_id = (await lead(world, lead_ref)).id
    token = tokens.issue(settings, "u", u.tenant_id, u.id, lead_id, clock.now())
    return tokens.reply_address(settings, token)


async def corpus_tokens(world: World, settings: Settings, clock) -> dict[str, str]:
    """Real tokens for the corpus placeholders (longest names first)."""
    now = clock.now()
    mia, eve = await user("mia@alpine.example"), await user("eve@romandie.example")
    l1001 = await lead(world, "L-1001")
    tenant = await Tenant.get(id=world.tenant_id)
    digest = await OutboxMessage.filter(kind="digest", recipient="max@alpine.example").first()
    return {
        "TOKEN_MIA_L1001": tokens.issue(settings, "u", tenant.id, mia.id, l1001.id, now),
        "TOKEN_CUSTOMER_L1001": tokens.issue(settings, "c", tenant.id, l1001.id, l1001.id, now),
        "TOKEN_EXPIRED": tokens.issue(
            settings, "u", tenant.id, mia.id, None, now - timedelta(days=90), days=30
        ),
        "TOKEN_OWNER": tokens.issue(settings, "o", tenant.id, tenant.id, l1001.id, now),
        "TOKEN_MIA": tokens.issue(settings, "u", tenant.id, mia.id, None, now),
        "TOKEN_EVE": tokens.issue(settings, "u", tenant.id, eve.id, None, now),
        "BOUNCED_DIGEST_ID": digest.message_id if digest else "<none@lyra.test>",
    }


def fill(raw: bytes, values: dict[str, str]) -> bytes:
    for name, value in values.items():
        raw = raw.replace(name.encode(), value.encode())
    return raw
