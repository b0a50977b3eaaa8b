"""Owners put leads in: one at a time, or a CSV file that imports completely or not at all."""

from __future__ import annotations

from typing import Any

from lyra_bot.handlers.common import lead_by_ref, require, tenant_of
from lyra_bot.handlers.pool import pool_query
from tortoise.expressions import F, Q

from lyra_bot import lead_files
from lyra_bot.bus import Reply, UnitOfWork, handles
from lyra_bot.commands import (
    Actor,
    AddLead,
    ApproveLead,
    ImportLeads,
    ListLeads,
    RecordConsent,
    Role,
    ShowLead,
)
from lyra_bot.domain import (
    LEAD_FIELDS,
    LIVE_STATUSES,
    REF_PREFIX,
    ClaimState,
    InvalidInput,
    InvalidTransition,
    LeadStatus,
    LegalBasis,
    NotYourLead,
    clean_lead,
    full_view,
    phone_key,
    teaser,
)
from lyra_bot.models import AuditEvent, Claim, Feedback, Lead, Partner, Tenant

MAX_IMPORT_ROWS = 50_000


@handles(AddLead)
async def add_lead(cmd: AddLead, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    fields = {name: getattr(cmd, name) for name in LEAD_FIELDS}
    row = clean_lead(fields)
    [lead] = await _insert(uow, tenant, [row], cmd.source, cmd.allow_duplicate)
    if lead.status == LeadStatus.HELD:
        return Reply(
            True,
            "lead_held",
            {
                "lead": full_view(lead),
                "hold_reason": lead.hold_reason,
                "hold": lead.hold_reason,
                "hint": _hint(lead),
            },
        )
    return Reply(True, "lead_added", {"lead": full_view(lead)})


@handles(ImportLeads)
async def import_leads(cmd: ImportLeads, actor: Actor, uow: UnitOfWork) -> Reply:
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    found = (
        list(cmd.records)
        if cmd.records
        else lead_files.records(lead_files.read_csv_text(cmd.csv_text))
    )
    rows = _validate(found, cmd.progress)
    if cmd.dry_run:
        return await _preview(tenant, rows, cmd.allow_duplicates)
    leads = await _insert(uow, tenant, rows, cmd.source, cmd.allow_duplicates, cmd.progress)
    held = [lead for lead in leads if lead.status == LeadStatus.HELD]
    return Reply(
        True,
        "imported",
        {
            "phrase": "imported_held" if held else "imported",
            "count": len(leads),
            "refs": [lead.ref for lead in leads],
            "held": [lead.ref for lead in held],
        },
    )


def _validate(found: list[tuple[int, dict[str, Any]]], progress: Any) -> list[dict[str, Any]]:
    """Validate every row; any bad row fails the whole file, naming each line."""
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen_refs: dict[str, int] = {}
    total = len(found)
    for line, raw in found:
        if lead_files.EXTRA in raw:
            problems.append({"phrase": "extra_values", "line": line})
            continue
        try:
            row = clean_lead(raw)
        except InvalidInput as exc:
            problems += [{**p, "line": line} for p in exc.data.get("problems") or [exc.data]]
            continue
        if not row["email"] and not row["phone"]:
            problems.append({"phrase": "no_way_to_reach", "line": line, "field": "email"})
            continue
        if row["ref"] and row["ref"] in seen_refs:
            problems.append(
                {
                    "phrase": "ref_repeated",
                    "line": line,
                    "ref": row["ref"],
                    "first": seen_refs[row["ref"]],
                }
            )
        seen_refs.setdefault(row["ref"], line)
        row["line"] = line
        rows.append(row)
        if progress and len(rows) % 500 == 0:
            progress(len(rows), total)
    if len(rows) > MAX_IMPORT_ROWS:
        problems.append({"phrase": "too_many_rows", "count": len(rows), "max": MAX_IMPORT_ROWS})
    if problems:
        raise InvalidInput("import_failed", problems=problems)
    if not rows:
        raise InvalidInput("import_no_rows")
    return rows


async def _preview(tenant: Tenant, rows: list[dict[str, Any]], allow_duplicates: bool) -> Reply:
    """What an import would do, changing nothing: how many leads go into the pool, which
    would be held and why (line by line)."""
    await _check_refs_free(tenant, [r["ref"] for r in rows if r["ref"]])
    names = [r["ref"] or f"line {r['line']}" for r in rows]
    plans = await _plan(tenant, rows, allow_duplicates, names)
    held = [
        {"line": row["line"], "reason": "; ".join(reasons)}
        for row, (reasons, _) in zip(rows, plans, strict=True)
        if reasons
    ]
    pooled = len(rows) - len(held)
    return Reply(
        True,
        "import_preview",
        {
            "phrase": "import_preview_held" if held else "import_preview",
            "count": len(rows),
            "pool": pooled,
            "held": held,
            "held_count": len(held),
            "dry_run": True,
        },
    )


async def _plan(
    tenant: Tenant, rows: list[dict[str, Any]], allow_duplicates: bool, names: list[str]
) -> list[tuple[list[str], int | None]]:
    """For each row: why it would be held (none: into the pool) and the live lead it
    duplicates. ``names[i]`` names row ``i`` when a later row repeats its contact."""
    existing = await _live_contacts(tenant, rows)
    in_file: dict[str, str] = {}
    plans: list[tuple[list[str], int | None]] = []
    for row, name in zip(rows, names, strict=True):
        keys = [k for k in (row["email"], "tel:" + phone_key(row["phone"])) if k and k != "tel:"]
        dup_ref, dup_id = None, None
        for k in keys:
            if k in existing:
                dup_ref, dup_id = existing[k]
                break
            if k in in_file:
                dup_ref = in_file[k]
                break
        for k in keys:
            in_file.setdefault(k, name)
        reasons = []
        if tenant.require_consent and row["legal_basis"] != LegalBasis.CONSENT:
            reasons.append(NO_CONSENT)
        if dup_ref is not None and not allow_duplicates:
            reasons.append(f"possible duplicate of {dup_ref}")
        plans.append((reasons, dup_id))
    return plans


async def _insert(
    uow: UnitOfWork,
    tenant: Tenant,
    rows: list[dict[str, Any]],
    source: str,
    allow_duplicates: bool,
    progress: Any = None,
) -> list[Lead]:
    """Give each row a reference, flag possible duplicates, insert in bulk, audit."""
    await _check_refs_free(tenant, [r["ref"] for r in rows if r["ref"]])
    fresh = await _allocate_refs(tenant, sum(1 for r in rows if not r["ref"]))
    refs = [row["ref"] or fresh.pop(0) for row in rows]
    plans = await _plan(tenant, rows, allow_duplicates, refs)
    leads: list[Lead] = []
    for row, ref, (reasons, dup_id) in zip(rows, refs, plans, strict=True):
        held = bool(reasons)
        leads.append(
            Lead(
                tenant_id=tenant.id,
                ref=ref,
                **{k: row[k] for k in LEAD_FIELDS if k != "ref"},
                phone_key=phone_key(row["phone"]),
                source=source,
                status=LeadStatus.HELD if held else LeadStatus.OPEN,
                hold_reason="; ".join(reasons),
                duplicate_of_id=dup_id,
                created_at=uow.now,
                opened_at=None if held else uow.now,
                pooled_at=None if held else uow.now,
            )
        )
    for start in range(0, len(leads), 500):
        await Lead.bulk_create(leads[start : start + 500])
        if progress:
            progress(min(start + 500, len(leads)), len(leads))
    ids = (
        dict(
            await Lead.filter(
                tenant_id=tenant.id, ref__in=[lead.ref for lead in leads]
            ).values_list("ref", "id")
        )
        if len(leads) <= 500
        else await _ids_by_ref(tenant, [lead.ref for lead in leads])
    )
    for lead in leads:
        lead.id = ids[lead.ref]
        uow.audit(
            "lead.held" if lead.status == LeadStatus.HELD else "lead.added",
            tenant.id,
            lead_id=lead.id,
            ref=lead.ref,
            product=lead.product,
            region=lead.region,
            source=source,
            reason=lead.hold_reason,
        )
    return leads


async def _ids_by_ref(tenant: Tenant, refs: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        ids.update(await Lead.filter(tenant_id=tenant.id, ref__in=chunk).values_list("ref", "id"))
    return ids


async def _check_refs_free(tenant: Tenant, refs: list[str]) -> None:
    for start in range(0, len(refs), 500):
        taken = await Lead.filter(
            tenant_id=tenant.id, ref__in=refs[start : start + 500]
        ).values_list("ref", flat=True)
        if taken:
            raise InvalidInput("refs_taken", refs=sorted(taken))


async def _allocate_refs(tenant: Tenant, count: int) -> list[str]:
    """Take ``count`` fresh numbers from the tenant's counter, skipping any used explicitly."""
    refs: list[str] = []
    while len(refs) < count:
        need = count - len(refs)
        await Tenant.filter(id=tenant.id).update(next_ref=F("next_ref") + need)
        end = (await Tenant.get(id=tenant.id)).next_ref
        candidates = [f"{REF_PREFIX}{n}" for n in range(end - need, end)]
        used: set[str] = set()
        for start in range(0, len(candidates), 500):
            used.update(
                await Lead.filter(
                    tenant_id=tenant.id, ref__in=candidates[start : start + 500]
                ).values_list("ref", flat=True)
            )
        refs.extend(ref for ref in candidates if ref not in used)
    return refs


async def _live_contacts(tenant: Tenant, rows: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    """Email / phone keys of live leads that match any row: key → (ref, id)."""
    emails = sorted({r["email"] for r in rows if r["email"]})
    phones = sorted({phone_key(r["phone"]) for r in rows} - {""})
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, max(len(emails), len(phones)), 500):
        condition = Q(email__in=emails[start : start + 500]) | Q(
            phone_key__in=phones[start : start + 500]
        )
        for ref, lead_id, email, key in await Lead.filter(
            Q(tenant_id=tenant.id), Q(status__in=LIVE_STATUSES), condition
        ).values_list("ref", "id", "email", "phone_key"):
            if email:
                found.setdefault(email, (ref, lead_id))
            if key:
                found.setdefault("tel:" + key, (ref, lead_id))
    return found


NO_CONSENT = "no consent recorded"
LEGAL_FIELDS = ("legal_basis", "consent_source", "consent_at", "legal_note")


def _hint(lead: Lead) -> str:
    """Which phrase tells the owner how to let a held lead into the pool."""
    return "hint_consent" if NO_CONSENT in lead.hold_reason else "hint_approve"


@handles(ApproveLead)
async def approve_lead(cmd: ApproveLead, actor: Actor, uow: UnitOfWork) -> Reply:
    """Release a lead held as a possible duplicate into the pool (never one without consent)."""
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    if lead.status == LeadStatus.HELD and NO_CONSENT in lead.hold_reason:
        raise InvalidTransition("held_no_consent", ref=lead.ref, hold=lead.hold_reason)
    changed = await Lead.filter(id=lead.id, status=LeadStatus.HELD).update(
        status=LeadStatus.OPEN, opened_at=uow.now, pooled_at=uow.now, hold_reason=""
    )
    if changed != 1:
        raise InvalidTransition("not_held", ref=lead.ref, status=str(lead.status))
    uow.audit("lead.approved", tenant.id, lead_id=lead.id)
    return Reply(True, "lead_approved", {"ref": lead.ref})


@handles(RecordConsent)
async def record_consent(cmd: RecordConsent, actor: Actor, uow: UnitOfWork) -> Reply:
    """Record how the customer agreed to be contacted; a lead held only for that opens."""
    require(actor, Role.OWNER)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    row = clean_lead(
        {
            "product": lead.product,
            "region": lead.region,
            "legal_basis": cmd.legal_basis,
            "consent_source": cmd.consent_source,
            "consent_at": cmd.consent_at,
            "legal_note": cmd.legal_note,
        }
    )
    if not row["legal_basis"]:
        raise InvalidInput("which_legal_basis")
    legal = {k: row[k] for k in ("legal_basis", "consent_source", "consent_at", "legal_note")}
    await Lead.filter(id=lead.id).update(**legal)
    uow.audit(
        "lead.legal_basis",
        tenant.id,
        lead_id=lead.id,
        legal_basis=row["legal_basis"],
        consent_source=row["consent_source"],
        consent_at=row["consent_at"],
    )
    said = {"ref": lead.ref, "basis": row["legal_basis"]}
    if lead.status == LeadStatus.HELD and NO_CONSENT in lead.hold_reason:
        if row["legal_basis"] != LegalBasis.CONSENT and tenant.require_consent:
            return Reply(True, "legal_basis", {**said, "phrase": "legal_basis_held"})
        rest = "; ".join(r for r in lead.hold_reason.split("; ") if r != NO_CONSENT)
        opened = not rest
        await Lead.filter(id=lead.id, status=LeadStatus.HELD).update(
            hold_reason=rest,
            status=LeadStatus.OPEN if opened else LeadStatus.HELD,
            opened_at=uow.now if opened else None,
            pooled_at=uow.now if opened else None,
        )
        if opened:
            uow.audit("lead.approved", tenant.id, lead_id=lead.id)
            said["phrase"] = "legal_basis_opened"
    return Reply(True, "legal_basis", said)


@handles(ShowLead)
async def show_lead(cmd: ShowLead, actor: Actor, uow: UnitOfWork) -> Reply:
    """Owner: everything. Partner: full data while it holds (or held to the end) the claim;
    the teaser while the lead is in its pool; nothing otherwise."""
    require(actor, Role.OWNER, Role.PARTNER)
    tenant = await tenant_of(actor)
    lead = await lead_by_ref(tenant, cmd.lead_ref)
    if actor.role == Role.OWNER:
        claims = (
            await Claim.filter(lead_id=lead.id).select_related("partner").order_by("claimed_at")
        )
        feedback = await Feedback.filter(lead_id=lead.id).order_by("created_at")
        events = (
            await AuditEvent.filter(lead_id=lead.id, tenant_id=tenant.id)
            .select_related("partner")
            .order_by("at", "id")
        )
        return Reply(
            True,
            "lead",
            {
                "status": str(lead.status),
                "lead": {
                    **full_view(lead),
                    "hold_reason": lead.hold_reason,
                    "source": lead.source,
                    **{k: getattr(lead, k) for k in LEGAL_FIELDS},
                },
                "claims": [_claim_row(c) for c in claims],
                "feedback": [_feedback_row(f) for f in feedback],
                "history": [_event_row(e) for e in events],
            },
        )
    holds = await Claim.filter(
        lead_id=lead.id,
        partner_id=actor.partner_id,
        state__in=[ClaimState.ACTIVE, ClaimState.CLOSED],
    ).exists()
    if holds:
        return Reply(True, "lead", {"lead": full_view(lead), "status": str(lead.status)})
    partner = await Partner.get(id=actor.partner_id, tenant_id=tenant.id)
    if await pool_query(tenant.id, partner, uow.now).filter(id=lead.id).exists():
        return Reply(True, "lead_teaser", {"lead": teaser(lead)})
    raise NotYourLead("not_available", ref=lead.ref)


def _claim_row(claim: Claim) -> dict[str, Any]:
    return {
        "partner": claim.partner.name,
        "state": str(claim.state),
        "claimed_at": claim.claimed_at,
        "due_at": claim.due_at,
        "ended_at": claim.ended_at,
    }


def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "event": event.kind,
        "at": event.at,
        "channel": event.channel,
        "partner": event.partner.name if event.partner else None,
        "data": event.data,
    }


def _feedback_row(feedback: Feedback) -> dict[str, Any]:
    return {
        "outcome": feedback.outcome,
        "amount": feedback.amount,
        "currency": feedback.currency,
        "reason": feedback.reason,
        "on_time": feedback.on_time,
        "at": feedback.created_at,
    }


@handles(ListLeads)
async def list_leads(cmd: ListLeads, actor: Actor, uow: UnitOfWork) -> Reply:
    """The owner's list: teaser, status and current holder (details via ShowLead)."""
    require(actor, Role.OWNER)
    query = Lead.filter(tenant_id=actor.tenant_id)
    if cmd.status:
        try:
            query = query.filter(status=LeadStatus(cmd.status))
        except ValueError:
            raise InvalidInput(
                "bad_status", value=cmd.status, choices=[s.value for s in LeadStatus]
            ) from None
    total = await query.count()
    leads = await query.order_by("-id").offset(cmd.offset).limit(cmd.limit)
    holders = dict(
        await Claim.filter(
            lead_id__in=[lead.id for lead in leads], state=ClaimState.ACTIVE
        ).values_list("lead_id", "partner__name")
    )
    items = [
        {**teaser(lead), "status": str(lead.status), "holder": holders.get(lead.id, "")}
        for lead in leads
    ]
    page = {"leads": items, "total": total, "offset": cmd.offset, "limit": cmd.limit}
    return Reply(True, "leads", {**page, "count": len(items)})
