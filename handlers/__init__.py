"""Command handlers, one module per area.

A module registers its handlers when imported. The bus imports only the module of the
command it dispatches (``HANDLER_MODULES``), so a CLI listing does not pay for importing
every handler (and what they import: reports, Slack, outbox, templates); ``register_all``
imports them all (the service, and any command missing from the map)."""

from __future__ import annotations

import importlib

MODULES = (
    "admin",
    "api_keys",
    "claims",
    "contact_checks",
    "digest_cadence",
    "digests",
    "directory",
    "extensions",
    "feedback",
    "housekeeping",
    "inbound",
    "leads",
    "lifecycle",
    "mail_lookups",
    "outbox_admin",
    "pool",
    "privacy",
    "reminders",
    "reports",
    "slack_delivery",
    "slack_digests",
    "slack_inbox",
    "slack_links",
    "slack_lookups",
    "stale",
    "web_lookups",
)

HANDLER_MODULES: dict[str, str] = {
    # command class name -> module of this package that handles it (tests/test_bus.py checks)
    "AddPartner": "admin",
    "AddTenant": "admin",
    "AddUser": "admin",
    "ListPartners": "admin",
    "ListTenants": "admin",
    "ShowTenant": "admin",
    "UpdateTenant": "admin",
    "CreateApiKey": "api_keys",
    "ListApiKeys": "api_keys",
    "RevokeApiKey": "api_keys",
    "ClaimLead": "claims",
    "ReleaseClaim": "claims",
    "AnswerContactCheck": "contact_checks",
    "CustomerContactCheck": "contact_checks",
    "ShowContactCheck": "contact_checks",
    "SendScheduledDigests": "digest_cadence",
    "SendDigests": "digests",
    "SetDigests": "digests",
    "ListUsers": "directory",
    "ShowPartner": "directory",
    "ShowUser": "directory",
    "DecideExtension": "extensions",
    "RequestExtension": "extensions",
    "GiveFeedback": "feedback",
    "PruneInboundKeys": "housekeeping",
    "RecordMail": "inbound",
    "SentText": "inbound",
    "AddLead": "leads",
    "ApproveLead": "leads",
    "ImportLeads": "leads",
    "ListLeads": "leads",
    "RecordConsent": "leads",
    "ShowLead": "leads",
    "ExpireOverdue": "lifecycle",
    "WithdrawLead": "lifecycle",
    "DigestRecipient": "mail_lookups",
    "FindMailSender": "mail_lookups",
    "SendPoolDigest": "mail_lookups",
    "ListOutbox": "outbox_admin",
    "RetryOutbox": "outbox_admin",
    "ShowOutboxMessage": "outbox_admin",
    "ListMine": "pool",
    "ListPool": "pool",
    "SimilarLeads": "pool",
    "CustomerOptOut": "privacy",
    "EraseCustomerData": "privacy",
    "ExportCustomerData": "privacy",
    "ListDisclosures": "privacy",
    "PurgeExpiredPersonalData": "privacy",
    "RecordDisclosure": "privacy",
    "SendReminders": "reminders",
    "SendOwnerReports": "reports",
    "ShowReport": "reports",
    "DeactivateSlackChannel": "slack_delivery",
    "RecordSlackDelivery": "slack_delivery",
    "PostSlackDigests": "slack_digests",
    "DeleteSlackRequests": "slack_inbox",
    "StoreSlackRequests": "slack_inbox",
    "TakeSlackRequests": "slack_inbox",
    "LinkSlackChannel": "slack_links",
    "LinkSlackUser": "slack_links",
    "UnlinkSlackChannel": "slack_links",
    "FindSlackUser": "slack_lookups",
    "LeadForm": "slack_lookups",
    "LocateSlackRequest": "slack_lookups",
    "SlackMessageView": "slack_lookups",
    "TenantProfile": "slack_lookups",
    "StaleLeadAlert": "stale",
    "AuthenticateApiKey": "web_lookups",
    "ShowOptOut": "web_lookups",
}


def load(command_name: str) -> None:
    """Import the module handling ``command_name``, or every module when it is not mapped."""
    module = HANDLER_MODULES.get(command_name)
    if module is None:
        register_all()
    else:
        importlib.import_module(f"{__name__}.{module}")


def register_all() -> None:
    """Import (and so register) every handler module."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
