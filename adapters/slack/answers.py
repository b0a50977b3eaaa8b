"""Answers to the person who acted, and commands run on their behalf.

Commands go through the bus with the request's idempotency key (``slack:<team>:<trigger
id>``, or the event id), and the answer is queued through the bus's ``respond`` in the same
transaction: a request Slack delivers again (``X-Slack-Retry-Num``) finds its key and does
nothing. Answers go to the clicking user only: ``chat.postEphemeral`` with their user id in
the channel clicked in, or their DM with the bot.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.identity import SYSTEM, Identity, Installed, SlackPerson, identify
from lyra_bot.adapters.slack.render import report_summary
from slack_sdk.web.async_client import AsyncWebClient

from lyra_bot.bus import Bus, Reply, UnitOfWork
from lyra_bot.clock import Clock
from lyra_bot.commands import Actor, ClaimLead, Command, LocateSlackRequest, SimilarLeads
from lyra_bot.config import Settings
from lyra_bot.outbox import slack, slack_update

NOT_OFFERED = "This lead is offered by an owner you do not work with in Lyra."
PARTNERS_ONLY = "Only partner users can do this."


@dataclass(frozen=True)
class Where:
    """Where an answer for one user goes: ephemeral in a channel, else their DM with Lyra."""

    user: str
    channel: str | None = None

    def call(self, content: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(recipient, method, args) of the Web API call that shows ``content`` to the user."""
        if self.channel:
            args = {"channel": self.channel, "user": self.user, **content}
            return self.channel, "chat.postEphemeral", args
        return self.user, "chat.postMessage", {"channel": self.user, **content}


def request_key(body: Mapping[str, Any]) -> str:
    """The idempotency key of one Slack request: the same on every retry of it."""
    team = body.get("team")
    team_id = team.get("id") if isinstance(team, Mapping) else body.get("team_id")
    ident = body.get("trigger_id") or body.get("event_id")
    if not ident and body.get("actions"):
        user = (body.get("user") or {}).get("id")
        ident = f"{user}:{body['actions'][0].get('action_ts')}"
    return f"slack:{team_id}:{ident or uuid.uuid4().hex}"


def channel_of(body: Mapping[str, Any]) -> str | None:
    """The channel an interaction happened in (None on App Home)."""
    channel = body.get("channel")
    if isinstance(channel, Mapping) and channel.get("id"):
        return str(channel["id"])
    container = body.get("container") or {}
    return container.get("channel_id") or None


@dataclass(frozen=True)
class Clicked:
    """The recorded digest message a button was pressed in."""

    id: int
    channel_id: str
    tenant_id: int


@dataclass(frozen=True)
class Place:
    """Where a request happened, as Lyra knows it (hints for who is speaking)."""

    channel_tenant: int | None = None
    owner_tenant: int | None = None
    clicked: Clicked | None = None


class Answers:
    """Who is asking, the command through the bus, and the answer queued in its outbox."""

    def __init__(self, bus: Bus, settings: Settings, clock: Clock, client: AsyncWebClient):
        self.bus, self.settings, self.clock, self.client = bus, settings, clock, client
        self.installed = Installed(client)  # auth.test, once: the only workspace we serve

    async def identify(self, person: SlackPerson, hint: int | None = None) -> Identity:
        return await identify(person, self.client, self.bus, hint, self.installed)

    def queue_answer(
        self,
        uow: UnitOfWork,
        key: str,
        where: Where,
        content: Mapping[str, Any],
        tenant_id: int | None,
        lead_id: int | None = None,
    ) -> None:
        """Queue the answer; ``lead_id`` marks one that shows that lead's customer, so that
        erasing the customer's data also cancels or empties it."""
        recipient, method, args = where.call(content)
        slack(
            uow,
            tenant_id=tenant_id,
            kind="slack.answer",
            recipient=recipient,
            method=method,
            args=args,
            dedupe_key=f"{key}:answer",
            lead_id=lead_id,
        )

    def queue_claims_answer(self, uow: UnitOfWork, key: str, where: Where, actor: Actor) -> None:
        """The user's open claims, rendered when delivered: no customer data is stored in the
        outbox for an answer that shows several leads."""
        slack(
            uow,
            tenant_id=actor.tenant_id,
            kind="slack.answer",
            recipient=where.channel or where.user,
            method="lyra.claims_answer",
            args={
                "user": where.user,
                "channel": where.channel,
                "partner": actor.partner_id,
                "lyra_user": actor.user_id,
            },
            dedupe_key=f"{key}:answer",
        )

    async def answer_alone(
        self, key: str, where: Where, content: Mapping[str, Any], tenant_id: int | None = None
    ) -> None:
        """An answer outside any command (unknown user, help): queued once per request."""
        await self.bus.send(
            SYSTEM, lambda uow: self.queue_answer(uow, key, where, content, tenant_id)
        )

    async def say(self, key: str, where: Where, text: str, tenant_id: int | None = None) -> None:
        await self.answer_alone(key, where, blocks.text_answer(text), tenant_id)

    async def first_delivery(self, key: str) -> bool:
        """Record a request that changes nothing in Lyra, so a retry of it is ignored."""
        return await self.bus.remember(key, command="slack")

    def content(self, reply: Reply) -> dict[str, Any]:
        """The Block Kit answer to a command's reply (rendered inside its transaction)."""
        data = reply.data
        if reply.code == "claimed":
            return blocks.claimed_answer(reply.message, data["lead"], data.get("due_at"))
        if reply.code == "lead_taken":
            return blocks.taken_answer(reply.message)
        if reply.code == "pool":
            return blocks.pool_answer(reply.message, data["leads"], data["total"])
        if reply.code == "report":
            text, summary = report_summary(self.bus.renderer, data["view"], data.get("locale"))
            return {
                "text": blocks.clip(text, blocks.MAX_TEXT),
                "blocks": summary[: blocks.MAX_BLOCKS],
            }
        return blocks.text_answer(reply.message)

    async def run(
        self,
        cmd: Command,
        person: SlackPerson,
        where: Where,
        key: str,
        hint: int | None,
        clicked: Clicked | None = None,
    ) -> Reply | None:
        """Who is asking, then the command through the bus, answered in its transaction."""
        identity = await self.identify(person, hint)
        actor = await self.checked(identity, key, where, clicked)
        if actor is None:
            return None

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.code == "mine":
                self.queue_claims_answer(uow, key, where, actor)
            else:
                lead_id = reply.data.get("lead_id") if reply.code == "claimed" else None
                content = self.content(reply)
                self.queue_answer(uow, key, where, content, actor.tenant_id, lead_id)
            if clicked is not None and not reply.ok:
                # Whatever the button showed was out of date: show what is true now.
                slack_update(uow, clicked.id, clicked.channel_id, clicked.tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if reply.data.get("duplicate"):
            return reply
        await self.bus.disclosed(reply, actor, f"slack {cmd.kind}")
        if reply.code == "lead_taken" and isinstance(cmd, ClaimLead):
            await self.offer_similar(cmd.lead_ref, actor, key, where)
        return reply

    async def offer_similar(self, ref: str, actor: Actor, key: str, where: Where) -> None:
        """After "taken": leads like it, in a second answer (outside the claim's transaction,
        which stays short; the "taken" answer itself is queued with the refusal)."""
        similar = await self.bus.dispatch(SimilarLeads(ref), actor)
        leads = (similar.data.get("leads") or []) if similar.ok else []
        if leads:
            content = blocks.similar_answer(leads)
            await self.answer_alone(f"{key}:similar", where, content, actor.tenant_id)

    async def checked(
        self, identity: Identity, key: str, where: Where, clicked: Clicked | None
    ) -> Actor | None:
        """The actor, or None after telling the user why not."""
        if identity.actor is None:
            await self.say(key, where, identity.problem)
            return None
        if clicked is not None and clicked.tenant_id != identity.actor.tenant_id:
            await self.say(key, where, NOT_OFFERED)
            return None
        return identity.actor

    async def place(self, body: Mapping[str, Any], channel: str | None) -> Place:
        """Where the request happened: the tenant of the channel (linked to a partner, or an
        owner's channel) and the recorded digest message clicked in, if any."""
        if not channel:
            return Place()
        container = body.get("container") or {}
        message_ts = None
        if container.get("type") == "message" and not container.get("is_ephemeral"):
            message_ts = container.get("message_ts") or None
        reply = await self.bus.dispatch(LocateSlackRequest(channel, message_ts), SYSTEM)
        found = reply.data.get("message")
        return Place(
            reply.data.get("channel_tenant"),
            reply.data.get("owner_tenant"),
            Clicked(int(found["id"]), found["channel_id"], int(found["tenant_id"]))
            if found
            else None,
        )

    def hint(self, place: Place) -> int | None:
        """The tenant a click most likely speaks for (a person with several owners)."""
        return place.clicked.tenant_id if place.clicked else place.channel_tenant
