"""Bolt's listeners: which click, slash command or event does what.

Clicks, commands and events reach these after the endpoint sent the HTTP answer: their
``ack()`` only satisfies bolt (it is the answer when the endpoint could not ack early).
Modal submissions are answered in their ack (field errors).
"""

from __future__ import annotations

from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.answers import Answers, Where, channel_of, request_key
from lyra_bot.adapters.slack.home import Home
from lyra_bot.adapters.slack.identity import SlackPerson
from lyra_bot.adapters.slack.modals import Modals
from slack_bolt.async_app import AsyncApp

from lyra_bot.bus import Reply, UnitOfWork
from lyra_bot.commands import (
    ClaimLead,
    Command,
    DecideExtension,
    ListMine,
    ListPool,
    ReleaseClaim,
    Role,
    ShowReport,
)
from lyra_bot.outbox import slack

POOL_LIMIT = 20
OWNERS_ONLY = "Only the owner's staff can see the report."
OWNERS_DECIDE = "Only the owner's staff can decide on more time."


class Listeners:
    """The work behind each listener; ``register`` attaches them to a bolt app."""

    def __init__(self, answers: Answers, modals: Modals, home: Home) -> None:
        self.answers, self.modals, self.home = answers, modals, home

    def register(self, bolt: AsyncApp) -> None:
        modals, home = self.modals, self.home

        @bolt.action(blocks.CLAIM)
        async def claim_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.claim_clicked(body)

        @bolt.action(blocks.FEEDBACK)
        async def feedback_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await modals.feedback_clicked(body)

        @bolt.command("/lyra")
        async def lyra_command(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.command(body)

        @bolt.view(blocks.FEEDBACK)
        async def feedback_submitted(ack: Any, body: dict[str, Any]) -> None:
            await modals.feedback_submitted(ack, body)

        @bolt.action(blocks.EXTEND)
        async def extend_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await modals.extend_clicked(body)

        @bolt.view(blocks.EXTEND)
        async def extend_submitted(ack: Any, body: dict[str, Any]) -> None:
            await modals.extend_submitted(ack, body)

        @bolt.action(blocks.APPROVE_EXTENSION)
        async def approve_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.decision(body, approve=True)

        @bolt.action(blocks.DECLINE_EXTENSION)
        async def decline_clicked(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.decision(body, approve=False)

        @bolt.event("app_home_opened")
        async def home_opened(ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
            await ack()
            if event.get("tab", "home") == "home":
                await home.opened(body)

    async def claim_clicked(self, body: dict[str, Any]) -> None:
        answers = self.answers
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, channel_of(body))
        place = await answers.place(body, where.channel)
        ref = str(action.get("value") or "")
        key = request_key(body)
        await answers.run(ClaimLead(ref), person, where, key, answers.hint(place), place.clicked)

    async def decision(self, body: dict[str, Any], approve: bool) -> None:
        """Approve / Decline on an owner's extension request: ``DecideExtension`` as the
        clicking owner; the clicked message then shows the outcome instead of the buttons."""
        answers = self.answers
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, channel_of(body))
        key = request_key(body)
        place = await answers.place(body, where.channel)
        identity = await answers.identify(person, place.owner_tenant)
        actor = await answers.checked(identity, key, where, None)
        if actor is None:
            return
        if actor.role != Role.OWNER:
            if await answers.first_delivery(key):
                await answers.say(key, where, OWNERS_DECIDE, actor.tenant_id)
            return
        container = body.get("container") or {}
        message_ts = container.get("message_ts")

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            content = blocks.text_answer(reply.message)
            answers.queue_answer(uow, key, where, content, actor.tenant_id)
            if reply.ok and where.channel and message_ts:
                content = blocks.decided(approve, person.user_id, reply.message)
                slack(
                    uow,
                    tenant_id=actor.tenant_id,
                    kind="slack.update",
                    recipient=where.channel,
                    method="chat.update",
                    args={"channel": where.channel, "ts": message_ts, **content},
                    dedupe_key=f"{key}:decided",
                )

        ref = str(action.get("value") or "")
        await answers.bus.dispatch(DecideExtension(ref, approve), actor, key=key, respond=respond)

    async def command(self, body: dict[str, Any]) -> None:
        """``/lyra <verb> …``: help, a listing, a claim, a release, a report, a modal."""
        answers = self.answers
        person = SlackPerson.from_body(body)
        key = request_key(body)
        where = Where(person.user_id, body.get("channel_id") or None)
        verb, _, rest = (body.get("text") or "").strip().partition(" ")
        verb, rest = verb.lower(), rest.strip()
        hint = (await answers.place(body, where.channel)).channel_tenant
        if verb in ("", "help"):
            if await answers.first_delivery(key):
                await answers.answer_alone(key, where, blocks.help_answer())
            return
        if verb not in ("leads", "mine", "claim", "feedback", "release", "report"):
            await answers.answer_alone(key, where, blocks.help_answer(f"I do not know '{verb}'."))
            return
        ref, _, reason = rest.partition(" ")
        if verb in ("claim", "feedback", "release") and not ref:
            prompt = f"Say which lead, e.g. `/lyra {verb} L-1042`."
            await answers.answer_alone(key, where, blocks.help_answer(prompt))
            return
        if verb == "feedback":
            await self.modals.open_feedback(body, person, ref, where, hint, None)
            return
        if verb == "report":
            identity = await answers.identify(person, hint)
            if identity.actor is not None and identity.actor.role != Role.OWNER:
                await answers.say(key, where, OWNERS_ONLY, identity.actor.tenant_id)
                return
        commands: dict[str, Command] = {
            "leads": ListPool(limit=POOL_LIMIT),
            "mine": ListMine(),
            "claim": ClaimLead(ref),
            "release": ReleaseClaim(ref, reason.strip()),
            "report": report_command(rest),
        }
        await answers.run(commands[verb], person, where, key, hint)


def report_command(text: str) -> ShowReport:
    """``/lyra report`` (this week so far), ``report last``, ``report 2026-W48``, or a
    range of local days ``report 2026-11-01..2026-11-30``."""
    text = text.strip()
    if ".." in text:
        first, _, last = text.partition("..")
        return ShowReport(first=first.strip(), last=last.strip() or None)
    return ShowReport(week=text or None)
