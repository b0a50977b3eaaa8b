"""Tables. Every row that belongs to an owner carries ``tenant`` so queries can be scoped.

Rules about these rows (states, teasers, deadlines) live in ``domain.py``; this module
only says what is stored.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from lyra_bot.domain import ClaimState, ExtensionStatus, LeadStatus, OutboxStatus

# Each model sets ``_no_comments``: without it Tortoise parses this whole file once per model
# (inspect.getsource) looking for ``#:`` field comments, which we do not write; that was half
# a second of every CLI command's start-up.


def default_work_days() -> list[int]:
    return [0, 1, 2, 3, 4]


def default_reminder_hours() -> list[int]:
    return [24, 2]


class Tenant(Model):
    """An owner organisation (manufacturer or distributor) and its policy."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    owner_email = fields.CharField(max_length=254)
    timezone = fields.CharField(max_length=64, default="Europe/Zurich")
    locale = fields.CharField(max_length=8, default="de")
    claim_deadline_hours = fields.IntField(default=72)
    cap_open_claims = fields.IntField(default=3)
    mail_customers = fields.BooleanField(default=True)
    lapse_cooldown_hours = fields.IntField(default=72)
    currency = fields.CharField(max_length=3, default="CHF")
    require_consent = fields.BooleanField(default=False)
    retention_months = fields.IntField(default=24)
    # business time: deadlines (and reminder offsets) in working hours when chosen
    deadline_business_hours = fields.BooleanField(default=False)
    work_days = fields.JSONField(default=default_work_days)  # Monday = 0
    work_start = fields.CharField(max_length=5, default="08:00")
    work_end = fields.CharField(max_length=5, default="17:00")
    holiday_country = fields.CharField(max_length=8, default="CH")
    holiday_subdiv = fields.CharField(max_length=40, default="")
    # sweeps: reminders before the deadline, customer checks, stale leads (0 = off)
    reminder_hours = fields.JSONField(default=default_reminder_hours)
    contact_check_days = fields.IntField(default=3)
    stale_lead_days = fields.IntField(default=7)
    # extensions: the first request per claim up to this many days is approved at once
    extension_auto_days = fields.IntField(default=2)
    extension_max_days = fields.IntField(default=14)
    # reliability: lapse_limit lapses in 30 days pause a partner for lapse_pause_days
    lapse_limit = fields.IntField(default=0)
    lapse_pause_days = fields.IntField(default=14)
    # the weekly owner report: local weekday (Monday = 0, None = not sent) and time
    report_day = fields.SmallIntField(null=True, default=0)
    report_time = fields.CharField(max_length=5, default="08:00")
    slack_owner_channel = fields.CharField(max_length=32, null=True)  # the report goes here too
    # digests (mail and linked Slack channels): local time on working days
    digest_time = fields.CharField(max_length=5, default="07:00")
    # customer mails come from the owner: display name ("" = the tenant's name), From ("" =
    # LYRA_MAIL_FROM's address), Reply-To ("" = Lyra's reply address), and an imprint
    sender_name = fields.CharField(max_length=200, default="", db_default="")
    customer_from = fields.CharField(max_length=254, default="", db_default="")
    customer_reply_to = fields.CharField(max_length=254, default="", db_default="")
    imprint_company = fields.CharField(max_length=200, default="", db_default="")
    imprint_address = fields.CharField(max_length=500, default="", db_default="")
    privacy_url = fields.CharField(max_length=500, default="", db_default="")
    # which feedback outcomes the customer is told about: all, positive (won, contacted), none
    customer_feedback_mails = fields.CharField(
        max_length=16, default="positive", db_default="positive"
    )
    next_ref = fields.IntField(default=1001)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tenant"


class Partner(Model):
    """A reseller or branch. It sees leads whose product and region it is entitled to."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="partners", on_delete=fields.CASCADE
    )
    slug = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    products = fields.JSONField(default=list)
    regions = fields.JSONField(default=list)
    locale = fields.CharField(max_length=8, null=True)
    active = fields.BooleanField(default=True)
    paused_at = fields.DatetimeField(null=True)  # reliability pause: may not claim until
    paused_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    tenant_id: int

    class Meta:
        table = "partner"
        unique_together = (("tenant", "slug"),)


class User(Model):
    """A person: a partner user when ``partner`` is set, otherwise the owner's staff."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="users", on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="users", null=True, on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    name = fields.CharField(max_length=200, default="")
    locale = fields.CharField(max_length=8, null=True)
    slack_team_id = fields.CharField(max_length=32, null=True)
    slack_user_id = fields.CharField(max_length=32, null=True)
    digest_enabled = fields.BooleanField(default=True)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    tenant_id: int
    partner_id: int | None

    class Meta:
        table = "lyra_user"
        unique_together = (("tenant", "email"),)
        indexes = (Index(fields=("slack_team_id", "slack_user_id")),)


class Lead(Model):
    """A sales lead. Teaser fields may be shown in the pool, private fields may not."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="leads", on_delete=fields.CASCADE
    )
    ref = fields.CharField(max_length=32)
    # teaser
    product = fields.CharField(max_length=100)
    region = fields.CharField(max_length=32)
    industry = fields.CharField(max_length=100, default="")
    size = fields.CharField(max_length=50, default="")
    need = fields.CharField(max_length=280, default="")
    # private
    company = fields.CharField(max_length=200, default="")
    contact_name = fields.CharField(max_length=200, default="")
    email = fields.CharField(max_length=254, default="")
    phone = fields.CharField(max_length=64, default="")
    phone_key = fields.CharField(max_length=32, default="", db_index=True)
    address = fields.TextField(default="")
    notes = fields.TextField(default="")
    locale = fields.CharField(max_length=8, null=True)
    # why the customer may be contacted (nDSG / GDPR)
    legal_basis = fields.CharField(max_length=24, default="")
    consent_source = fields.CharField(max_length=200, default="")
    consent_at = fields.DatetimeField(null=True)
    legal_note = fields.CharField(max_length=500, default="")
    opted_out_at = fields.DatetimeField(null=True)
    anonymized_at = fields.DatetimeField(null=True)
    # bookkeeping
    source = fields.CharField(max_length=32, default="cli")
    status = fields.CharEnumField(LeadStatus, default=LeadStatus.OPEN, max_length=16)
    hold_reason = fields.CharField(max_length=200, default="")
    duplicate_of: fields.ForeignKeyNullableRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField()
    opened_at = fields.DatetimeField(null=True)  # last entered the pool
    pooled_at = fields.DatetimeField(null=True)  # first entered the pool (reports count from it)
    closed_at = fields.DatetimeField(null=True)
    stale_reported_at = fields.DatetimeField(null=True)  # owner told it sat unclaimed

    tenant_id: int
    duplicate_of_id: int | None

    class Meta:
        table = "lead"
        unique_together = (("tenant", "ref"),)
        indexes = (
            Index(fields=("tenant_id", "status", "opened_at")),
            Index(fields=("tenant_id", "created_at")),
            Index(fields=("tenant_id", "closed_at")),
        )


class Claim(Model):
    """One partner holding one lead, from claim until feedback, lapse, release or withdrawal."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="claims", on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name="claims", on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="claims", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="claims", on_delete=fields.CASCADE
    )
    state = fields.CharEnumField(ClaimState, default=ClaimState.ACTIVE, max_length=16)
    channel = fields.CharField(max_length=16, default="cli")
    claimed_at = fields.DatetimeField()
    due_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)
    # when the next reminder before due_at falls (the sweep finds it by this); None: no more
    next_remind_at = fields.DatetimeField(null=True)
    # when to ask the customer whether the partner called; cleared once handled
    check_due_at = fields.DatetimeField(null=True)

    tenant_id: int
    lead_id: int
    partner_id: int
    user_id: int

    class Meta:
        table = "claim"
        indexes = (
            Index(fields=("state", "due_at")),
            Index(fields=("next_remind_at",)),
            Index(fields=("check_due_at",)),
            Index(fields=("partner_id", "state")),
            Index(fields=("lead_id", "state")),
            Index(fields=("tenant_id", "claimed_at")),
            Index(fields=("tenant_id", "ended_at")),
        )


class Feedback(Model):
    """The outcome a partner reported for a claim. A claim may collect several (contacted, won)."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="feedback", on_delete=fields.CASCADE
    )
    claim: fields.ForeignKeyRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="feedback", on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name="feedback", on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="feedback", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="feedback", on_delete=fields.CASCADE
    )
    outcome = fields.CharField(max_length=16)
    amount = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    currency = fields.CharField(max_length=3, null=True)
    reason = fields.CharField(max_length=500, default="")
    note = fields.TextField(default="")
    channel = fields.CharField(max_length=16)
    on_time = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    tenant_id: int
    claim_id: int
    lead_id: int
    partner_id: int
    user_id: int

    class Meta:
        table = "feedback"
        indexes = (Index(fields=("tenant_id", "created_at")),)


class LeadHide(Model):
    """Keeps a lead out of one partner's pool until ``until`` (after that partner let it lapse)."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name="hides", on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name=False, on_delete=fields.CASCADE
    )
    until = fields.DatetimeField()

    lead_id: int
    partner_id: int

    class Meta:
        table = "lead_hide"
        indexes = (Index(fields=("partner_id", "until")),)


class AuditEvent(Model):
    """Append-only history of every transition. Reports are computed from these rows."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=40)
    lead: fields.ForeignKeyNullableRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name=False, null=True, on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    claim_id = fields.IntField(null=True)
    channel = fields.CharField(max_length=16, default="system")
    data = fields.JSONField(default=dict)
    at = fields.DatetimeField()

    tenant_id: int
    lead_id: int | None
    partner_id: int | None
    user_id: int | None

    class Meta:
        table = "audit_event"
        indexes = (Index(fields=("tenant_id", "at")), Index(fields=("tenant_id", "kind", "at")))


class OutboxMessage(Model):
    """A message to deliver, written in the same transaction as the change that caused it."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, null=True, on_delete=fields.CASCADE
    )
    lead_id = fields.IntField(null=True)
    channel = fields.CharField(max_length=16)
    kind = fields.CharField(max_length=40)
    recipient = fields.CharField(max_length=254)
    payload = fields.JSONField()
    dedupe_key = fields.CharField(max_length=200, unique=True)
    # customer data this message hands to a person: logged as a Disclosure when it is sent
    discloses = fields.JSONField(null=True)
    # the correlation id of the request, mail or job that wrote it (its delivery logs carry it)
    correlation_id = fields.CharField(max_length=64, null=True)
    message_id = fields.CharField(max_length=250)
    status = fields.CharEnumField(OutboxStatus, default=OutboxStatus.PENDING, max_length=16)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    tenant_id: int | None

    class Meta:
        table = "outbox_message"
        indexes = (Index(fields=("status", "next_attempt_at")),)


class Disclosure(Model):
    """Append-only: customer data handed to a person (who, which lead, which fields, how, when)."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name="disclosures", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    recipient = fields.CharField(max_length=254)
    fields_shown = fields.JSONField()
    channel = fields.CharField(max_length=16)
    purpose = fields.CharField(max_length=40)
    at = fields.DatetimeField()

    tenant_id: int
    lead_id: int
    user_id: int | None

    class Meta:
        table = "disclosure"
        indexes = (Index(fields=("tenant_id", "lead_id")),)


class Extension(Model):
    """A partner's request for more time on a claim, and what became of it."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    claim: fields.ForeignKeyRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="extensions", on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name=False, on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name=False, on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    days = fields.IntField()
    reason = fields.CharField(max_length=500, default="")
    status = fields.CharEnumField(ExtensionStatus, default=ExtensionStatus.PENDING, max_length=16)
    auto = fields.BooleanField(default=False)
    channel = fields.CharField(max_length=16)
    requested_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)
    decided_by_id = fields.IntField(null=True)  # owner user, when known
    old_due_at = fields.DatetimeField()
    new_due_at = fields.DatetimeField(null=True)

    tenant_id: int
    claim_id: int
    lead_id: int
    partner_id: int
    user_id: int

    class Meta:
        table = "extension"
        indexes = (
            Index(fields=("claim_id", "status")),
            Index(fields=("tenant_id", "requested_at")),
        )


class ContactCheck(Model):
    """Asking a customer, once per claim, whether the partner got in touch."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    claim: fields.OneToOneRelation[Claim] = fields.OneToOneField(
        "models.Claim", related_name="contact_check", on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name=False, on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name=False, on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    asked_at = fields.DatetimeField()
    answer = fields.CharField(max_length=8, null=True)  # "yes" or "no"
    answered_at = fields.DatetimeField(null=True)
    channel = fields.CharField(max_length=16, null=True)

    tenant_id: int
    claim_id: int
    lead_id: int
    partner_id: int

    class Meta:
        table = "contact_check"
        indexes = (Index(fields=("tenant_id", "answered_at")),)


class JobRun(Model):
    """The last and next run of each scheduler job, shared by every instance of the service."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    name = fields.CharField(max_length=64, primary_key=True)
    last_started_at = fields.DatetimeField(null=True)
    last_run_at = fields.DatetimeField(null=True)
    last_ok = fields.BooleanField(null=True)
    last_result = fields.TextField(default="")
    next_run_at = fields.DatetimeField(null=True)

    class Meta:
        table = "job_run"


class ApiKey(Model):
    """A tenant's key for the intake API. Only its SHA-256 is kept, the key is shown once."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=100, default="")
    prefix = fields.CharField(max_length=16, unique=True)  # public part, finds the row
    key_hash = fields.CharField(max_length=64)  # sha256 hex of the whole key
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)

    tenant_id: int

    class Meta:
        table = "api_key"


class InboundKey(Model):
    """An inbound message already handled, with the reply it got, so a re-delivery is a no-op."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=255, unique=True)
    command = fields.CharField(max_length=40)
    tenant_id = fields.IntField(null=True)
    reply = fields.JSONField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "inbound_key"
        indexes = (Index(fields=("created_at",)),)


class MailBounce(Model):
    """An address whose mail came back undeliverable (a hard bounce) - digests skip it.

    Cleared when a mail from that address is accepted again.
    """

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    address = fields.CharField(max_length=254)
    status = fields.CharField(max_length=16, default="")
    reason = fields.CharField(max_length=500, default="")
    kind = fields.CharField(max_length=40, default="")
    count = fields.IntField(default=1)
    first_at = fields.DatetimeField()
    last_at = fields.DatetimeField()

    tenant_id: int

    class Meta:
        table = "mail_bounce"
        unique_together = (("tenant", "address"),)


class SlackMessageStatus(StrEnum):
    PENDING = "pending"  # queued, not posted yet
    POSTED = "posted"
    FAILED = "failed"  # could not be posted
    GONE = "gone"  # deleted in Slack, or its channel is gone


class SlackChannel(Model):
    """A Slack channel linked to a partner: digests there show that partner's pool."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.IntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="slack_channels", on_delete=fields.CASCADE
    )
    team_id = fields.CharField(max_length=32, null=True)
    channel_id = fields.CharField(max_length=32, unique=True)
    active = fields.BooleanField(default=True)
    linked_at = fields.DatetimeField()

    tenant_id: int
    partner_id: int

    class Meta:
        table = "slack_channel"


class SlackMessage(Model):
    """A message Lyra posted in Slack that shows leads, kept so every change can update it.

    Recorded when it is queued (``ts`` follows when Slack accepts it), so a lead change in
    between is not missed. ``content_hash`` is what Slack shows now: unchanged renders are
    not sent again.
    """

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name=False, on_delete=fields.CASCADE
    )
    partner: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    kind = fields.CharField(max_length=16, default="digest")
    team_id = fields.CharField(max_length=32, null=True)
    channel_id = fields.CharField(max_length=32)
    ts = fields.CharField(max_length=32, null=True)
    title = fields.CharField(max_length=150, default="")
    status = fields.CharEnumField(
        SlackMessageStatus, default=SlackMessageStatus.PENDING, max_length=16
    )
    content_hash = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField()
    posted_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(null=True)

    tenant_id: int
    partner_id: int | None

    class Meta:
        table = "slack_message"
        indexes = (Index(fields=("channel_id", "ts")),)


class SlackMessageLead(Model):
    """Which leads a posted Slack message shows, in order."""

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[SlackMessage] = fields.ForeignKeyField(
        "models.SlackMessage", related_name="leads", on_delete=fields.CASCADE
    )
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "models.Lead", related_name=False, on_delete=fields.CASCADE
    )
    position = fields.IntField(default=0)

    message_id: int
    lead_id: int

    class Meta:
        table = "slack_message_lead"
        unique_together = (("message", "lead"),)
        indexes = (Index(fields=("lead_id",)),)


class Lease(Model):
    """A job only one instance may run (the IMAP poller): who holds it, and until when.

    The holder renews it well before it expires; another instance takes it over once it has.
    """

    _no_comments = True  # no '#:' field comments (see the note at the top)

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=200)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "lease"


class SlackInbox(Model):
    """A Slack request acked with an empty 200 and not handled yet (deleted once handled).

    Stored before the ack, so a process killed after it loses nothing: another instance (or
    the next start) takes over rows whose holder has not finished them in time.
    """

    _no_comments = True  # no '#:' field comments (see the note at the top)

    id = fields.UUIDField(primary_key=True)
    body = fields.TextField()
    query = fields.TextField(default="")
    headers = fields.JSONField(default=dict)
    received_at = fields.DatetimeField()
    holder = fields.CharField(max_length=200)
    taken_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)

    class Meta:
        table = "slack_inbox"
        indexes = (Index(fields=("taken_at",)),)
