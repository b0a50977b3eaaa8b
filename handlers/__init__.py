"""Command handlers, one module per area. Importing this package registers them all."""

from handlers import (  # noqa: F401
    admin,
    claims,
    feedback,
    leads,
    lifecycle,
    pool,
    privacy,
    reports,
    slack_digests,
    slack_links,
)
