"""Who is speaking: a valid signed token and a From address that belongs to its person.

The token comes from our reply address (Reply-To plus-address) or, failing that, from our
Message-ID in In-Reply-To/References. The sender must be the token's person (partner user,
the lead's customer, the owner or an owner's staff); anything else is refused by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lyra_bot.adapters.email.parsing import ParsedMail

from lyra_bot import tokens
from lyra_bot.bus import Bus
from lyra_bot.commands import Actor, FindMailSender, Role, TenantProfile
from lyra_bot.config import Settings
from lyra_bot.domain import DomainError, TokenExpired
from lyra_bot.outbox import mail_domain


@dataclass(frozen=True)
class TenantView:
    id: int
    name: str
    locale: str
    timezone: str


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    name: str
    locale: str | None
    partner_id: int | None


@dataclass(frozen=True)
class PartnerView:
    id: int
    name: str
    locale: str | None


@dataclass(frozen=True)
class LeadView:
    id: int
    ref: str
    locale: str | None


@dataclass
class Identity:
    """Who wrote, as ``FindMailSender`` found them (plain values, no rows)."""

    kind: str  # "u" partner user, "c"/"k" a lead's customer, "o" the owner
    tenant: TenantView
    user: UserView | None = None
    partner: PartnerView | None = None
    lead: LeadView | None = None  # the lead the answered mail was about
    claim_id: int | None = None  # "k": the claim a contact check asked about
    staff_id: int | None = None  # "o": the owner's staff user who wrote, if not the owner
    locale: str = "en"  # the locale their answers are written in

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Identity:
        def view(kind: type, key: str) -> Any:
            value = data.get(key)
            return kind(**value) if value else None

        return cls(
            data["kind"],
            TenantView(**data["tenant"]),
            user=view(UserView, "user"),
            partner=view(PartnerView, "partner"),
            lead=view(LeadView, "lead"),
            claim_id=data.get("claim_id"),
            staff_id=data.get("staff_id"),
            locale=data.get("locale") or "en",
        )


class Identifier:
    """Finds the person behind a mail (``FindMailSender`` on the bus)."""

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.domain = mail_domain(settings).lower()
        local, _, domain = settings.inbound_address.lower().rpartition("@")
        self.inbound_local, self.inbound_domain = local, domain

    def candidates(self, parsed: ParsedMail) -> tuple[list[str], list[str]]:
        """Tokens in our reply addresses, and tokens in our Message-IDs it refers to."""
        addressed: list[str] = []
        for address in parsed.recipients:
            local, _, domain = address.rpartition("@")
            base, plus, tag = local.partition("+")
            if plus and base == self.inbound_local and domain == self.inbound_domain:
                token = tokens.token_in(tag)
                if token:
                    addressed.append(token)
        referred: list[str] = []
        for message_id in parsed.references:
            local, _, domain = message_id.strip("<>").rpartition("@")
            if domain.lower() == self.domain:
                token = tokens.token_in(local)
                if token:
                    referred.append(token)
        return list(dict.fromkeys(addressed)), list(dict.fromkeys(referred))

    def replied_to_us(self, parsed: ParsedMail) -> bool:
        """The mail answers one of ours (it went to a reply address of ours, or refers to a
        Message-ID of ours), even when no valid token survived the way back."""
        for address in parsed.recipients:
            local, _, domain = address.lower().rpartition("@")
            base, plus, _ = local.partition("+")
            if plus and base == self.inbound_local and domain == self.inbound_domain:
                return True
        return any(
            message_id.strip("<>").rpartition("@")[2].lower() == self.domain
            for message_id in parsed.references
        )

    async def identify(
        self, parsed: ParsedMail
    ) -> tuple[Identity | None, str | None, TenantView | None]:
        """The person behind the mail; else why not (an answer code) and, if known, the tenant.

        The address outranks References: when the mail went to a valid reply address, only
        the address tokens count, and each must be the sender's (a mail from A to B's reply
        address is refused, whatever A's own Message-IDs it refers to). References speak only
        when no address carries a valid token (a client that dropped the plus-address)."""
        now = self.bus.clock.now()
        error: str | None = None
        tenant_id: int | None = None
        addressed, referred = self.candidates(parsed)
        for group, strict in ((addressed, True), (referred, False)):
            found: Identity | None = None
            valid = False
            for candidate in group:
                try:
                    token = tokens.verify(self.settings, candidate, now)
                except TokenExpired:
                    error, tenant_id = "token_expired", tenant_id or _tenant_in(candidate)
                    continue
                except DomainError:
                    error = error or "token_invalid"
                    continue
                valid = True
                identity = await self.person(token, parsed.sender)
                if identity is None:
                    error, tenant_id = "wrong_sender", token.tenant_id
                    if strict:
                        found = None
                        break
                    continue
                found = found or identity
                if not strict:
                    break
            if found is not None:
                return found, None, found.tenant
            if valid:
                break  # a valid token named someone else: refused
        return None, error, await self.tenant(tenant_id)

    async def tenant(self, tenant_id: int | None) -> TenantView | None:
        """The tenant a refused mail's token named, if it exists (for the answer's words)."""
        if not tenant_id:
            return None
        reply = await self.bus.dispatch(TenantProfile(), system(tenant_id))
        if not reply.ok:
            return None
        found = reply.data["tenant"]
        return TenantView(found["id"], found["name"], found["locale"], found["timezone"])

    async def person(self, token: tokens.ReplyToken, sender: str) -> Identity | None:
        """The token's person, if ``sender`` is that person (addresses compare case-blind)."""
        if not sender:
            return None
        cmd = FindMailSender(token.kind, token.subject_id, token.lead_id, sender)
        reply = await self.bus.dispatch(cmd, system(token.tenant_id))
        return Identity.of(reply.data) if reply.ok and reply.data.get("found") else None


def system(tenant_id: int | None) -> Actor:
    """The email adapter asking the store on behalf of a mail of ``tenant_id``."""
    return Actor(Role.SYSTEM, "email", tenant_id)


def actor_of(identity: Identity) -> Actor:
    assert identity.user is not None and identity.user.partner_id is not None
    return Actor.partner_user(
        identity.tenant.id, identity.user.partner_id, identity.user.id, "email"
    )


def _tenant_in(token: str) -> int | None:
    try:
        return int(token.split(".")[1][1:], 36)
    except (IndexError, ValueError):
        return None
