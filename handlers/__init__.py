"""Command handlers, one module per area. Importing this package registers them all."""

from handlers import admin, claims, digests, feedback, inbound, leads, lifecycle, pool  # noqa: F401
