"""What can be asked of Lyra. Every channel turns its traffic into one of these.

A command is a frozen dataclass; it says *what* is wanted. *Who* asks travels beside it as an
``Actor``. Query commands set ``writes = False`` so the bus does not take the write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


class Role(StrEnum):
    PARTNER = "partner"  # a partner user acting for its partner
    OWNER = "owner"  # the tenant's own staff (CLI, API key, owner user)
    SYSTEM = "system"  # the scheduler; may sweep all tenants
    CUSTOMER = "customer"  # a lead's customer, identified by a signed link or reply token


@dataclass(frozen=True)
class Actor:
    """Who is speaking, through which channel. Checked before a handler reads anything."""

    role: Role
    channel: str
    tenant_id: int | None
    user_id: int | None = None
    partner_id: int | None = None
    lead_id: int | None = None  # the customer's own lead (role customer)

    @classmethod
    def owner(cls, tenant_id: int, channel: str = "cli", user_id: int | None = None) -> Actor:
        return cls(Role.OWNER, channel, tenant_id, user_id=user_id)

    @classmethod
    def partner_user(cls, tenant_id: int, partner_id: int, user_id: int, channel: str) -> Actor:
        return cls(Role.PARTNER, channel, tenant_id, user_id=user_id, partner_id=partner_id)

    @classmethod
    def system(cls, tenant_id: int | None = None) -> Actor:
        return cls(Role.SYSTEM, "scheduler", tenant_id)

    @classmethod
    def customer(cls, tenant_id: int, channel: str, lead_id: int | None = None) -> Actor:
        return cls(Role.CUSTOMER, channel, tenant_id, lead_id=lead_id)


@dataclass(frozen=True)
class Command:
    writes: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class AddLead(Command):
    product: str
    region: str
    industry: str = ""
    size: str = ""
    need: str = ""
    company: str = ""
    contact_name: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    notes: str = ""
    locale: str | None = None
    legal_basis: str = ""
    consent_source: str = ""
    consent_at: str | None = None
    legal_note: str = ""
    ref: str | None = None
    source: str = "cli"
    allow_duplicate: bool = False


@dataclass(frozen=True)
class ImportLeads(Command):
    """A file of leads: all rows are imported, or none. Either CSV text, or the rows an
    adapter read from a file (``lyra_bot.lead_files.records``: line number, field → text).
    ``dry_run``: validate and report what would happen, change nothing."""

    csv_text: str = ""
    source: str = "csv"
    allow_duplicates: bool = False
    records: tuple[tuple[int, dict[str, Any]], ...] = field(default=(), compare=False, repr=False)
    dry_run: bool = False
    progress: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ApproveLead(Command):
    """Put a held lead (e.g. a possible duplicate) into the pool."""

    lead_ref: str


@dataclass(frozen=True)
class RecordConsent(Command):
    """How the customer agreed to be contacted, recorded after intake."""

    lead_ref: str
    legal_basis: str = "consent"
    consent_source: str = ""
    consent_at: str | None = None
    legal_note: str = ""


@dataclass(frozen=True)
class WithdrawLead(Command):
    lead_ref: str
    reason: str = ""


@dataclass(frozen=True)
class ShowLead(Command):
    writes: ClassVar[bool] = False
    lead_ref: str


@dataclass(frozen=True)
class ListLeads(Command):
    """The owner's list of leads, any status."""

    writes: ClassVar[bool] = False
    status: str | None = None
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class ListPool(Command):
    """Teasers the actor may claim now, oldest first."""

    writes: ClassVar[bool] = False
    limit: int | None = None
    partner_id: int | None = None  # owners may look through a partner's eyes


@dataclass(frozen=True)
class SimilarLeads(Command):
    """Up to ``limit`` teasers from the actor's pool like ``lead_ref`` (same product or region).

    Adapters ask for these after a refused claim; computing them outside the claim's write
    transaction keeps that transaction (and the write lock) short.
    """

    writes: ClassVar[bool] = False
    lead_ref: str
    limit: int = 3


@dataclass(frozen=True)
class ListMine(Command):
    writes: ClassVar[bool] = False


@dataclass(frozen=True)
class ClaimLead(Command):
    lead_ref: str


@dataclass(frozen=True)
class GiveFeedback(Command):
    lead_ref: str
    outcome: str
    amount: str | None = None
    currency: str | None = None
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class ReleaseClaim(Command):
    lead_ref: str
    reason: str = ""


@dataclass(frozen=True)
class Sweep(Command):
    """A scheduler job: find what is due in the database and handle it.

    Idempotent and safe after downtime. On PostgreSQL the bus runs each kind of sweep under a
    transaction-scoped advisory lock, so two instances never run the same sweep at once; a
    sweep that finds the lock taken answers ``busy`` and does nothing. A handler returns
    ``data["more"] = True`` when it stopped at ``batch`` and should be called again.
    """

    batch: int = 1000


@dataclass(frozen=True)
class ExpireOverdue(Sweep):
    """Return every lapsed claim's lead to the pool (at most ``batch`` per run)."""


@dataclass(frozen=True)
class SendReminders(Sweep):
    """Remind partners of deadlines at the tenant's offsets (each once per claim and deadline)."""


@dataclass(frozen=True)
class CustomerContactCheck(Sweep):
    """Ask customers, once per claim, whether the partner has contacted them."""


@dataclass(frozen=True)
class StaleLeadAlert(Sweep):
    """Tell owners, once per lead, about leads nobody claimed for the tenant's days."""


@dataclass(frozen=True)
class AnswerContactCheck(Command):
    """A customer's answer (from a signed link or a reply): did the partner get in touch?

    ``claim_id`` comes from the verified token of kind ``k``, never from what a user typed.
    """

    claim_id: int
    answer: str  # yes/no, ja/nein, oui/non


@dataclass(frozen=True)
class ShowContactCheck(Command):
    """What the answer page shows before the customer confirms (a GET changes nothing: mail
    filters open links on their own). ``claim_id`` comes from a verified token."""

    writes: ClassVar[bool] = False
    claim_id: int


@dataclass(frozen=True)
class RequestExtension(Command):
    """A partner asks for ``days`` more on a lead it holds."""

    lead_ref: str
    days: int
    reason: str = ""


@dataclass(frozen=True)
class DecideExtension(Command):
    """The owner approves or declines the pending extension request on a lead."""

    lead_ref: str
    approve: bool
    note: str = ""


# --- administration ---------------------------------------------------------------------


@dataclass(frozen=True)
class AddTenant(Command):
    slug: str
    name: str
    owner_email: str
    timezone: str = "Europe/Zurich"
    locale: str = "de"
    claim_deadline_hours: int = 72
    cap_open_claims: int = 3
    mail_customers: bool = True
    lapse_cooldown_hours: int = 72
    currency: str = "CHF"
    deadline_business_hours: bool = False
    work_days: str = "mon-fri"
    work_hours: str = "08:00-17:00"
    holidays: str = "CH"  # country and optional subdivision: CH-ZH; "none"
    reminder_hours: str = "24,2"  # hours before the deadline; "none"
    contact_check_days: int = 3  # 0 = never ask customers
    stale_lead_days: int = 7  # 0 = never report
    extension_auto_days: int = 2  # 0 = the owner decides every request
    extension_max_days: int = 14
    lapse_limit: int = 0  # 0 = no reliability pauses
    lapse_pause_days: int = 14
    require_consent: bool = False
    retention_months: int = 24
    report_day: str = "mon"  # weekday of the weekly owner report; "none" = not sent
    report_time: str = "08:00"  # local time it is sent
    slack_owner_channel: str | None = None  # Slack channel id for the owner's report summary
    digest_time: str = "07:00"  # local time digests go out on working days
    sender_name: str = ""  # customer mails: the sender's display name ("" = the tenant's name)
    customer_from: str = ""  # customer mails: From address ("" = LYRA_MAIL_FROM)
    customer_reply_to: str = ""  # customer mails: Reply-To ("" = Lyra reads the replies)
    imprint_company: str = ""  # the imprint in the footer of every customer mail
    imprint_address: str = ""
    privacy_url: str = ""
    customer_feedback_mails: str = "positive"  # all | positive (won, contacted) | none


@dataclass(frozen=True)
class UpdateTenant(Command):
    """Change a tenant's policy; fields left ``None`` stay as they are."""

    name: str | None = None
    owner_email: str | None = None
    timezone: str | None = None
    locale: str | None = None
    claim_deadline_hours: int | None = None
    cap_open_claims: int | None = None
    mail_customers: bool | None = None
    lapse_cooldown_hours: int | None = None
    currency: str | None = None
    deadline_business_hours: bool | None = None
    work_days: str | None = None
    work_hours: str | None = None
    holidays: str | None = None
    reminder_hours: str | None = None
    contact_check_days: int | None = None
    stale_lead_days: int | None = None
    extension_auto_days: int | None = None
    extension_max_days: int | None = None
    lapse_limit: int | None = None
    lapse_pause_days: int | None = None
    require_consent: bool | None = None
    retention_months: int | None = None
    report_day: str | None = None
    report_time: str | None = None
    slack_owner_channel: str | None = None  # "none" unlinks
    digest_time: str | None = None
    sender_name: str | None = None
    customer_from: str | None = None  # "none" clears it
    customer_reply_to: str | None = None  # "none" clears it
    imprint_company: str | None = None
    imprint_address: str | None = None
    privacy_url: str | None = None  # "none" clears it
    customer_feedback_mails: str | None = None


@dataclass(frozen=True)
class ShowTenant(Command):
    """The actor's tenant with its whole policy."""

    writes: ClassVar[bool] = False


@dataclass(frozen=True)
class ListTenants(Command):
    writes: ClassVar[bool] = False


@dataclass(frozen=True)
class AddPartner(Command):
    slug: str
    name: str
    products: tuple[str, ...]
    regions: tuple[str, ...]
    locale: str | None = None


@dataclass(frozen=True)
class ListPartners(Command):
    writes: ClassVar[bool] = False


@dataclass(frozen=True)
class AddUser(Command):
    """A partner user (``partner_slug`` set) or one of the owner's staff."""

    email: str
    name: str = ""
    partner_slug: str | None = None
    locale: str | None = None
    slack_user_id: str | None = None
    slack_team_id: str | None = None


# --- intake API keys --------------------------------------------------------------------


@dataclass(frozen=True)
class CreateApiKey(Command):
    """A new API key for the actor's tenant; the reply carries the key, shown once."""

    name: str = ""


@dataclass(frozen=True)
class RevokeApiKey(Command):
    key_id: int


@dataclass(frozen=True)
class ListApiKeys(Command):
    writes: ClassVar[bool] = False


# --- privacy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordDisclosure(Command):
    """An adapter showed customer data of a lead to the actor (CLI, Slack, API)."""

    lead_ref: str
    fields: tuple[str, ...]
    purpose: str


@dataclass(frozen=True)
class ListDisclosures(Command):
    writes: ClassVar[bool] = False
    lead_ref: str | None = None
    customer_email: str | None = None


@dataclass(frozen=True)
class PurgeExpiredPersonalData(Sweep):
    """Erase customer data of leads closed longer ago than the tenant's retention."""

    batch: int = 500


@dataclass(frozen=True)
class PruneInboundKeys(Sweep):
    """Forget idempotency keys older than ``LYRA_INBOUND_KEY_DAYS`` (re-deliveries come
    within minutes or hours; the table would otherwise grow with every message)."""

    batch: int = 5000


@dataclass(frozen=True)
class ExportCustomerData(Command):
    """Everything Lyra holds about one customer (a data subject access request)."""

    customer_email: str


@dataclass(frozen=True)
class EraseCustomerData(Command):
    customer_email: str


@dataclass(frozen=True)
class CustomerOptOut(Command):
    """The customer asked not to be contacted (one-click link in their mail)."""


# --- email channel ----------------------------------------------------------------------


@dataclass(frozen=True)
class SendDigests(Command):
    """Queue today's digest mail for every partner user (of one tenant, or of all)."""

    tenant_id: int | None = None


@dataclass(frozen=True)
class SendScheduledDigests(Sweep):
    """Sweep: every tenant whose digest time has come on a working day sends its digests
    (mail per partner user, Slack per linked channel) once that day, to recipients with
    something new since their last digest. Stops after about ``batch`` digests."""

    batch: int = 2000


@dataclass(frozen=True)
class SetDigests(Command):
    """A partner user turns its digest mails off (STOP, one-click unsubscribe) or on (START)."""

    enabled: bool


@dataclass(frozen=True)
class SentText(Command):
    """The text of Lyra's own mails to ``recipient`` with these Message-IDs (none: the latest
    few), line by line: below a reply, what Lyra sent is quoted by definition, marker or not."""

    writes: ClassVar[bool] = False
    message_ids: tuple[str, ...]
    recipient: str


@dataclass(frozen=True)
class RecordMail(Command):
    """An inbound mail that carries no partner command: an auto-reply, a bounce, a refusal,
    a customer's or the owner's answer. Recorded, and acted on where useful (a hard bounce
    marks the address and alerts the owner, a customer's words go to the owner)."""

    verdict: str
    sender: str
    subject: str = ""
    reason: str = ""
    message_id: str = ""
    lead_id: int | None = None
    text: str = ""
    bounced: tuple[str, ...] = ()
    bounce_status: str = ""
    original_id: str = ""  # Message-ID of our mail that bounced


# --- Slack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSlackChannel(Command):
    """Link a Slack channel to a partner: its digests show that partner's pool."""

    partner_slug: str
    channel_id: str
    team_id: str | None = None


@dataclass(frozen=True)
class UnlinkSlackChannel(Command):
    channel_id: str


@dataclass(frozen=True)
class LinkSlackUser(Command):
    """Map a Slack user to Lyra users with this email.

    An owner links one of its users explicitly (and may replace an earlier link); the Slack
    adapter, acting as the system, links a verified profile email on first contact, and only
    users not linked yet.
    """

    email: str
    slack_team_id: str
    slack_user_id: str


@dataclass(frozen=True)
class PostSlackDigests(Command):
    """Sweep: queue a digest of new pool teasers for every linked channel (owner: its own)."""

    max_leads: int | None = None


@dataclass(frozen=True)
class DeactivateSlackChannel(Command):
    """Lyra cannot post to a linked channel any more (archived, the app removed): its digests
    stop until an owner links it again. Sent by the Slack transport as the system."""

    channel_id: str
    reason: str


# --- what the Slack adapter asks of the store (the adapter holds no query) -----------------


@dataclass(frozen=True)
class LocateSlackRequest(Command):
    """Where a Slack request happened as Lyra knows it: the tenant of the active channel
    link, the tenant whose owner channel it is, and the digest message clicked in (by
    ``message_ts``). A hint for who is speaking, never a permission."""

    writes: ClassVar[bool] = False
    channel_id: str | None = None
    message_ts: str | None = None


@dataclass(frozen=True)
class FindSlackUser(Command):
    """Active Lyra users linked to a Slack user (in any of ``team_ids``), and whether
    ``email`` belongs to an active user with no Slack link yet."""

    writes: ClassVar[bool] = False
    slack_user_id: str
    team_ids: tuple[str, ...]
    email: str = ""


@dataclass(frozen=True)
class LeadForm(Command):
    """What a form about one of the tenant's leads shows: its teaser and the tenant's rules
    (currency, days of more time). Whether the actor may act on it is the command's check
    when the form is sent."""

    writes: ClassVar[bool] = False
    lead_ref: str


@dataclass(frozen=True)
class TenantProfile(Command):
    """The actor's tenant as a channel presents it: name, locale, time zone, currency."""

    writes: ClassVar[bool] = False


@dataclass(frozen=True)
class SlackMessageView(Command):
    """A recorded digest message as it should look now: each lead's teaser and its state
    from the point of view of the channel's partner (the transport renders it)."""

    writes: ClassVar[bool] = False
    message_id: int


@dataclass(frozen=True)
class RecordSlackDelivery(Command):
    """What became of a recorded digest message in Slack: ``posted`` (with its ``ts``),
    ``updated``, ``gone`` (deleted, or nothing left to offer) or ``failed``."""

    message_id: int
    outcome: str
    ts: str | None = None
    team_id: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class StoreSlackRequests(Command):
    """Keep verified Slack requests that were acked before they were handled (the durable
    inbox): each a dict with id, body, query, headers, received_at, holder."""

    requests: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class TakeSlackRequests(Command):
    """Take over stored requests nobody finished since ``stale_before`` (not those in
    ``exclude``): at most ``limit``, marked as held by ``holder``. Those already tried
    ``max_attempts`` times are dropped instead."""

    holder: str
    now: datetime
    stale_before: datetime
    exclude: tuple[str, ...] = ()
    limit: int = 100
    max_attempts: int = 5


@dataclass(frozen=True)
class DeleteSlackRequests(Command):
    """Stored requests handled: forget them."""

    ids: tuple[str, ...]


# --- what the email adapter asks of the store ---------------------------------------------


@dataclass(frozen=True)
class FindMailSender(Command):
    """The person a valid reply token names (kind ``u`` partner user, ``c``/``k`` a lead's
    customer, else the owner's side), if ``sender`` is that person; with the locale their
    answer is written in. Asked as the system of the token's tenant."""

    writes: ClassVar[bool] = False
    token_kind: str
    subject_id: int
    lead_id: int | None
    sender: str


@dataclass(frozen=True)
class DigestRecipient(Command):
    """The partner user an unsubscribe link names (asked as the system of its tenant)."""

    writes: ClassVar[bool] = False
    user_id: int


@dataclass(frozen=True)
class SendPoolDigest(Command):
    """LEADS by mail: the partner user's pool as a digest mail, threaded on their mail
    (``headers``) and deduplicated by ``dedupe_key``; ``pool_empty`` when there is none."""

    dedupe_key: str
    headers: tuple[tuple[str, str], ...] = ()


# --- what the web adapters ask of the store -----------------------------------------------


@dataclass(frozen=True)
class AuthenticateApiKey(Command):
    """The tenant of a live API key (its bearer token), else ``unauthorized``. Notes the
    key's last use, at most once a minute (no audit event, outside any transaction)."""

    writes: ClassVar[bool] = False
    token: str


@dataclass(frozen=True)
class ShowOptOut(Command):
    """What the customer's opt-out page shows about their own lead (role customer)."""

    writes: ClassVar[bool] = False


# --- owner reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowReport(Command):
    """The owner report of a week (``2026-W48``, ``this``, ``last``) or of local days
    ``first``..``last``; without either, this week so far."""

    writes: ClassVar[bool] = False
    week: str | None = None
    first: str | None = None
    last: str | None = None


@dataclass(frozen=True)
class SendOwnerReports(Sweep):
    """Send each tenant's weekly report (mail with chart; Slack when linked) once its report
    day and time have come, for the last complete week; at most ``batch`` tenants per run."""

    batch: int = 2


# --- the admin's listings (CLI) ------------------------------------------------------------


@dataclass(frozen=True)
class ShowPartner(Command):
    """One partner: entitlements, users, open claims, pool size."""

    writes: ClassVar[bool] = False
    slug: str


@dataclass(frozen=True)
class ListUsers(Command):
    """The tenant's users (all, or one partner's)."""

    writes: ClassVar[bool] = False
    partner_slug: str | None = None


@dataclass(frozen=True)
class ShowUser(Command):
    writes: ClassVar[bool] = False
    email: str


@dataclass(frozen=True)
class ListOutbox(Command):
    """Outbox rows, newest first (an owner sees its tenant's; the system sees all)."""

    writes: ClassVar[bool] = False
    status: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ShowOutboxMessage(Command):
    writes: ClassVar[bool] = False
    message_id: int


@dataclass(frozen=True)
class RetryOutbox(Command):
    """Dead letters back to pending, to be delivered again: the ones given, or every one."""

    message_ids: tuple[int, ...] = ()
