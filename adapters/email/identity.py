"""Who is speaking: a valid signed token and a From address that belongs to its person.

The token comes from our reply address (Reply-To plus-address) or, failing that, from our
Message-ID in In-Reply-To/References. The sender must be the token's person (partner user,
the lead's customer, the owner or an owner's staff); anything else is refused by the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lyra_bot.adapters.email.parsing import ParsedMail

from lyra_bot import tokens
from lyra_bot.bus import Bus
from lyra_bot.commands import Actor
from lyra_bot.config import Settings
from lyra_bot.domain import DomainError, TokenExpired
from lyra_bot.models import Claim, Lead, Partner, Tenant, User
from lyra_bot.outbox import mail_domain
from lyra_bot.prepared import Prepared

TENANT_CACHE_SECONDS = 60.0
# Every reply's identity lookups, built once (see lyra_bot.prepared).
_USER = Prepared(lambda p: User.filter(id=p.id, tenant_id=p.tenant_id).limit(1))
_LEAD = Prepared(lambda p: Lead.filter(id=p.id, tenant_id=p.tenant_id).limit(1))


@dataclass
class Identity:
    kind: str  # "u" partner user, "c"/"k" a lead's customer, "o" the owner
    tenant: Tenant
    user: User | None = None
    partner: Partner | None = None
    lead: Lead | None = None  # the lead the answered mail was about
    claim_id: int | None = None  # "k": the claim a contact check asked about



class Identifier:
    """Finds the person behind a mail; keeps a short cache of tenants."""

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.domain = mail_domain(settings).lower()
        local, _, domain = settings.inbound_address.lower().rpartition("@")
        self.inbound_local, self.inbound_domain = local, domain
        self._tenants: dict[int, tuple[float, Tenant]] = {}

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

    async def identify(
        self, parsed: ParsedMail
    ) -> tuple[Identity | None, str | None, Tenant | None]:
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
        tenant = await Tenant.get_or_none(id=tenant_id) if tenant_id else None
        return None, error, tenant

    async def _tenant(self, tenant_id: int) -> Tenant:
        """Tenants change rarely (name, language, time zone): a minute's
        cache spares every reply a query."""
        now = time.monotonic()
        cached = self._tenants.get(tenant_id)
        if cached is not None and now - cached[0] < TENANT_CACHE_SECONDS:
            return cached[1]
        tenant = await Tenant.get(id=tenant_id)
        self._tenants[tenant_id] = (now, tenant)
        return tenant

    async def person(self, token: tokens.ReplyToken, sender: str) -> Identity | None:
        """The token's person, if ``sender`` is that person (addresses compare case-blind)."""
        if not sender:
            return None
        if token.kind == "u":
            # Plain lookups (no joins): this runs for every reply. The partner row is read
            # only when an answer needs its name or language (``answers.complete``).
            user = await _USER.first(id=token.subject_id, tenant_id=token.tenant_id)
            if user is None or user.email.lower() != sender or user.partner_id is None:
                return None
            tenant = await self._tenant(token.tenant_id)
            lead = None
            if token.lead_id is not None:
                lead = await _LEAD.first(id=token.lead_id, tenant_id=tenant.id)
            return Identity("u", tenant, user=user, lead=lead)
        tenant = await Tenant.get_or_none(id=token.tenant_id)
        if tenant is None:
            return None
        if token.kind == "k":
            claim = (
                await Claim.filter(id=token.subject_id, tenant_id=tenant.id)
                .select_related("lead")
                .first()
            )
            if claim is None or claim.lead.email.lower() != sender:
                return None
            return Identity("k", tenant, lead=claim.lead, claim_id=claim.id)
        if token.kind == "c":
            lead = await Lead.get_or_none(id=token.subject_id, tenant_id=tenant.id)
            if lead is None or lead.email.lower() != sender:
                return None
            return Identity("c", tenant, lead=lead)
        lead = None
        if token.lead_id is not None:
            lead = await Lead.get_or_none(id=token.lead_id, tenant_id=tenant.id)
        owners = {tenant.owner_email.lower()}
        owners.update(
            e.lower()
            for e in await User.filter(
                tenant_id=tenant.id, partner_id__isnull=True, active=True
            ).values_list("email", flat=True)
        )
        if sender in owners:
            return Identity("o", tenant, lead=lead)
        return None


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
