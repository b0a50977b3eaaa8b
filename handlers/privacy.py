"""Customer data under nDSG / GDPR: who saw it, how long it is kept, export, erasure, opt-out.

Erasure everywhere follows one rule (``_erase``): the customer's data is replaced by a
marker, while teaser fields, claims, outcomes and amounts stay, so reports do not change.
"""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers.common import lead_by_ref, require, tenant_of
from lyra_bot.handlers.lifecycle import LIVE, withdraw
from tortoise import Tortoise
from tortoise.expressions import Q

from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import (
    Actor,
    CustomerOptOut,
    EraseCustomerData,
    ExportCustomerData,
    ListDisclosures,
    PurgeExpiredPersonalData,
    RecordDisclosure,
    Role,
)
from lyra_bot.db import APP, ids_mentioning, release_erased_pages
from lyra_bot.domain import (
    PRIVATE_FIELDS,
    InvalidInput,
    LeadStatus,
    OutboxStatus,
    full_view,
)
from lyra_bot.models import (
    AuditEvent,
    Claim,
    Disclosure,
    Feedback,
    Lead,
    OutboxMessage,
    Tenant,
    User,
)
from lyra_bot.privacy import (
    CUSTOMER_DATA,
    DELETE,
    MARKER,
    Erase,
    mentions_replaced,
    months_before,
    subject_key,
)


@handles(RecordDisclosure)
async def record_disclosure(cmd: RecordDisclosure, actor: Actor, uow: UnitOfWork) -> Reply:
    """Log that an adapter showed customer data to the actor."""
    require(actor, Role.OWNER, Role.PARTNER)
    lead = await lead_by_ref(actor.tenant_id or 0, cmd.lead_ref)
    recipient = "owner"
    if actor.user_id is not None:
        user = await User.get(id=actor.user_id, tenant_id=actor.tenant_id)
        recipient = user.email
    await Disclosure.create(
        tenant_id=lead.tenant_id,
        lead_id=lead.id,
        user_id=actor.user_id,
        recipient=recipient,
        fields_shown=[f for f in cmd.fields if f in PRIVATE_FIELDS],
        channel=actor.channel,
        purpose=cmd.purpose,
        at=uow.now,
    )
    return Reply(True, "disclosed")


@handles(ListDisclosures)
async def list_disclosures(cmd: ListDisclosures, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    query = Disclosure.filter(tenant_id=actor.tenant_id).select_related("lead")
    if cmd.lead_ref:
        query = query.filter(lead_id=(await lead_by_ref(actor.tenant_id, cmd.lead_ref)).id)
    if cmd.customer_email:
        query = query.filter(lead__email=cmd.customer_email.strip().lower())
    rows = [
        {
            "at": d.at,
            "lead": d.lead.ref,
            "recipient": d.recipient,
            "fields": d.fields_shown,
            "channel": d.channel,
            "purpose": d.purpose,
        }
        for d in await query.order_by("at", "id")
    ]
    return Reply(True, "disclosures", {"disclosures": rows, "count": len(rows)})


@handles(PurgeExpiredPersonalData)
async def purge_expired(cmd: PurgeExpiredPersonalData, actor: Actor, uow: UnitOfWork) -> Reply:
    """Sweep: leads closed or withdrawn longer ago than their tenant's retention lose the
    customer's data. Safe to run twice; batches of ``batch`` leads."""
    require(actor, Role.SYSTEM, Role.OWNER)
    tenants = Tenant.all() if actor.tenant_id is None else Tenant.filter(id=actor.tenant_id)
    erased: list[str] = []
    for tenant in await tenants:
        cutoff = months_before(uow.now, tenant.retention_months)
        leads = await Lead.filter(
            tenant_id=tenant.id,
            status__in=[LeadStatus.CLOSED, LeadStatus.WITHDRAWN],
            closed_at__lt=cutoff,
            anonymized_at__isnull=True,
        ).limit(cmd.batch - len(erased))
        await _erase(uow, leads)
        erased += [lead.ref for lead in leads]
        if leads:
            uow.audit("privacy.retention", tenant.id, leads=len(leads), cutoff=cutoff)
        if len(erased) >= cmd.batch:
            break
    return Reply(
        True,
        "purged",
        {"erased": len(erased), "more": len(erased) >= cmd.batch},
    )


@handles(ExportCustomerData)
async def export_customer(cmd: ExportCustomerData, actor: Actor, uow: UnitOfWork) -> Reply:
    """Everything about one customer, for a data subject access request."""
    require(actor, Role.OWNER)
    email = _email(cmd.customer_email)
    leads = await Lead.filter(tenant_id=actor.tenant_id, email=email).order_by("id")
    ids = [lead.id for lead in leads]
    claims = await Claim.filter(lead_id__in=ids).select_related("partner", "lead").order_by("id")
    feedback = await Feedback.filter(lead_id__in=ids).select_related("lead").order_by("id")
    messages = await OutboxMessage.filter(
        Q(lead_id__in=ids) | Q(recipient=email), tenant_id=actor.tenant_id
    ).order_by("id")
    events = await AuditEvent.filter(lead_id__in=ids).select_related("lead").order_by("id")
    disclosures = await Disclosure.filter(lead_id__in=ids).select_related("lead").order_by("id")
    data = {
        "customer": email,
        "leads": [
            {
                **full_view(lead),
                "source": lead.source,
                "created_at": lead.created_at,
                "legal_basis": lead.legal_basis,
                "consent_source": lead.consent_source,
                "consent_at": lead.consent_at,
                "legal_note": lead.legal_note,
                "opted_out_at": lead.opted_out_at,
            }
            for lead in leads
        ],
        "claims": [
            {
                "lead": c.lead.ref,
                "partner": c.partner.name,
                "state": str(c.state),
                "claimed_at": c.claimed_at,
                "due_at": c.due_at,
                "ended_at": c.ended_at,
            }
            for c in claims
        ],
        "feedback": [
            {
                "lead": f.lead.ref,
                "outcome": f.outcome,
                "amount": f.amount,
                "currency": f.currency,
                "reason": f.reason,
                "note": f.note,
                "at": f.created_at,
            }
            for f in feedback
        ],
        "messages": [
            {
                "kind": m.kind,
                "to": m.recipient,
                "status": str(m.status),
                "at": m.created_at,
                "content": m.payload,
            }
            for m in messages
        ],
        "history": [
            {"lead": e.lead.ref if e.lead else None, "event": e.kind, "at": e.at, "data": e.data}
            for e in events
        ],
        "disclosures": [
            {
                "lead": d.lead.ref,
                "to": d.recipient,
                "fields": d.fields_shown,
                "channel": d.channel,
                "purpose": d.purpose,
                "at": d.at,
            }
            for d in disclosures
        ],
    }
    uow.audit("privacy.exported", actor.tenant_id or 0, subject=subject_key(email), leads=len(ids))
    return Reply(True, "export", {**data, "count": len(ids), "email": email})


@handles(EraseCustomerData)
async def erase_customer(cmd: EraseCustomerData, actor: Actor, uow: UnitOfWork) -> Reply:
    """Erase one customer everywhere. A lead still in play is withdrawn first (its partner is
    told to stop); reports keep their numbers."""
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    email = _email(cmd.customer_email)
    leads = await Lead.filter(tenant_id=tenant.id, email=email, anonymized_at__isnull=True)
    for lead in leads:
        if lead.status in LIVE:
            await withdraw(uow, tenant, lead, "the customer asked us to erase their data")
    await _erase(uow, leads)
    uow.audit("privacy.erased", tenant.id, subject=subject_key(email), leads=len(leads))
    return Reply(
        True,
        "erased",
        {"erased": [lead.ref for lead in leads], "email": email, "count": len(leads)},
    )


@handles(CustomerOptOut)
async def customer_opt_out(cmd: CustomerOptOut, actor: Actor, uow: UnitOfWork) -> Reply:
    """The customer does not want to be contacted: withdraw the lead, stop its partner."""
    require(actor, Role.CUSTOMER)
    tenant = await tenant_of(actor)
    lead = await Lead.get_or_none(id=actor.lead_id, tenant_id=tenant.id)
    if lead is None:
        raise InvalidInput("link_invalid")
    changed = await Lead.filter(id=lead.id, opted_out_at__isnull=True).update(opted_out_at=uow.now)
    if changed != 1:
        return Reply(True, "already_opted_out", {"ref": lead.ref})
    lead.opted_out_at = uow.now
    if lead.status in LIVE:
        await withdraw(uow, tenant, lead, "the customer asked not to be contacted")
    uow.audit("customer.opted_out", tenant.id, lead_id=lead.id)
    return Reply(True, "opted_out", {"ref": lead.ref})


def _email(raw: str) -> str:
    email = raw.strip().lower()
    if "@" not in email:
        raise InvalidInput("bad_email", value=raw)
    return email


async def _erase(uow: UnitOfWork, leads: list[Lead]) -> None:
    """Erase the customers of ``leads`` from every column ``CUSTOMER_DATA`` lists: their
    leads and the rows linked to them or addressed to them get each column's erased value,
    and free text or JSON anywhere in the tenant loses every mention of their address.
    Pending mails to them are cancelled first. On SQLite the log is wiped after the commit."""
    if not leads:
        return
    ids = [lead.id for lead in leads]
    addresses = sorted({lead.email.strip().lower() for lead in leads if lead.email.strip()})
    needles = sorted(
        {str(getattr(lead, f) or "").strip() for lead in leads for f in PRIVATE_FIELDS}
        - {"", MARKER},
        key=len,
        reverse=True,  # "anna@huber.example" before "Anna"
    )
    needles = [n for n in needles if len(n) >= 3]
    tenant_ids = sorted({lead.tenant_id for lead in leads})
    await OutboxMessage.filter(
        Q(lead_id__in=ids) | Q(recipient__in=addresses), status=OutboxStatus.PENDING
    ).update(status=OutboxStatus.DEAD, last_error="cancelled: customer data erased")
    for name, columns in CUSTOMER_DATA.items():
        erase = {f: rule for f, rule in columns.items() if isinstance(rule, Erase)}
        if erase:
            model = Tortoise.apps[APP][name]
            await _erase_rows(model, erase, ids, addresses, needles)
            for tenant_id in tenant_ids:
                await _erase_mentions(model, erase, addresses, needles, tenant_id)
    await Lead.filter(id__in=ids).update(anonymized_at=uow.now)
    for lead in leads:
        uow.changed_leads.add(lead.id)
    uow.post_commit.append(release_erased_pages)


async def _erase_rows(
    model: Any, erase: dict[str, Erase], ids: list[int], addresses: list[str], needles: list[str]
) -> None:
    """The customer's own rows: each listed column becomes its erased value."""
    columns = model._meta.fields_db_projection
    mine = (
        Q(id__in=ids)
        if model is Lead
        else Q(lead_id__in=ids)
        if "lead_id" in columns.values()
        else None
    )
    for column, rule in erase.items():
        if rule.address and addresses:
            by_address = Q(**{f"{column}__in": addresses})
            mine = by_address if mine is None else mine | by_address
    if mine is None:
        return
    if any(rule.to is DELETE for rule in erase.values()):
        await model.filter(mine).delete()
        return
    constants = {f: r.to for f, r in erase.items() if r.to is not None and not callable(r.to)}
    computed = {f: r.to for f, r in erase.items() if callable(r.to)}
    if computed:
        for row in await model.filter(mine).only(model._meta.pk_attr, *computed):
            values = {f: to(getattr(row, f), needles) for f, to in computed.items()}
            await model.filter(pk=row.pk).update(**values)
    if constants:
        await model.filter(mine).update(**constants)


async def _erase_mentions(
    model: Any, erase: dict[str, Erase], addresses: list[str], needles: list[str], tenant_id: int
) -> None:
    """Free text and JSON of anyone's rows that quote the customer's address."""
    for column, rule in erase.items():
        if not rule.mentions:
            continue
        for pk in await ids_mentioning(model, column, addresses, tenant_id):
            row = await model.get(pk=pk)
            value = getattr(row, column)
            cleaned = mentions_replaced(value, needles)
            if cleaned != value:
                await model.filter(pk=pk).update(**{column: cleaned})
