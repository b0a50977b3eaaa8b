"""Command handlers, one module per area. Importing this package registers them all."""

from handlers import admin, claims, feedback, leads, lifecycle, pool, privacy  # noqa: F401
