"""The bus as every process builds it: its own module, so a CLI command that only dispatches
does not import the web app, the adapters and the transports that ``lyra_bot.app`` wires."""

from __future__ import annotations

from lyra_bot.bus import Bus
from lyra_bot.clock import Clock
from lyra_bot.config import Settings


def build_bus(settings: Settings | None = None, clock: Clock | None = None) -> Bus:
    """The bus with its hooks: every process (service, CLI, demo) changes state through one
    built here, so posted Slack messages follow every change, whoever made it."""
    from lyra_bot.handlers.slack_digests import queue_message_updates

    bus = Bus(settings, clock)
    bus.before_commit.append(queue_message_updates)
    return bus
