"""The bus as every process builds it: its own module, so a CLI command that only dispatches
does not import the web app, the adapters and the transports that ``lyra_bot.app`` wires."""

from __future__ import annotations

from lyra_bot.bus import Bus, UnitOfWork
from lyra_bot.clock import Clock
from lyra_bot.config import Settings


async def queue_message_updates(uow: UnitOfWork) -> None:
    """``handlers.slack_digests.queue_message_updates``, imported by the first command that
    changes a lead: a listing never runs ``before_commit`` hooks and so never imports it."""
    if not uow.changed_leads:
        return
    from lyra_bot.handlers.slack_digests import queue_message_updates as queue

    await queue(uow)


def build_bus(settings: Settings | None = None, clock: Clock | None = None) -> Bus:
    """The bus with its hooks: every process (service, CLI, demo) changes state through one
    built here, so posted Slack messages follow every change, whoever made it."""
    bus = Bus(settings, clock)
    bus.before_commit.append(queue_message_updates)
    return bus
