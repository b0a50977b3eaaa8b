"""Command handlers, one module per area. Importing this package registers them all."""

from lyra_bot.handlers import (  # noqa: F401
    admin,
    api_keys,
    claims,
    contact_checks,
    digest_cadence,
    digests,
    extensions,
    feedback,
    housekeeping,
    inbound,
    leads,
    lifecycle,
    pool,
    privacy,
    reminders,
    reports,
    slack_digests,
    slack_links,
    stale,
)
