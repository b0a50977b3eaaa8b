"""The partner's modals: feedback on a lead, and asking for more time.

A modal opens from a button or ``/lyra feedback`` (``views.open`` needs the trigger within
3 s of the click); its submission is a command through the bus whose refusals show in the
modal itself, field by field, and whose success is answered like any other command.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.answers import (
    NOT_OFFERED,
    PARTNERS_ONLY,
    Answers,
    Clicked,
    Where,
    channel_of,
    request_key,
)
from lyra_bot.adapters.slack.home import Home
from lyra_bot.adapters.slack.identity import SlackPerson
from lyra_bot.adapters.slack.transport import slack_error
from slack_sdk.errors import SlackApiError

from lyra_bot.bus import Reply, UnitOfWork
from lyra_bot.commands import GiveFeedback, LeadForm, RequestExtension, Role
from lyra_bot.domain import TEASER_FIELDS, InvalidInput, parse_amount, parse_currency, parse_outcome
from lyra_bot.phrases import say as phrase

log = logging.getLogger(__name__)

Spawn = Callable[[Callable[[], Awaitable[Any]]], None]
View = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
"""A modal's view from the tenant's profile and the lead's teaser (``LeadForm``)."""


def validate_feedback(values: Mapping[str, str], locale: str | None = None) -> dict[str, str]:
    """Field errors of a feedback modal, by block id (the rules that need no database)."""
    errors: dict[str, str] = {}
    checks = (
        ("outcome", lambda v: parse_outcome(v)),
        ("amount", lambda v: parse_amount(v)),
        ("currency", lambda v: parse_currency(v, "XXX")),  # checked only when filled in
    )
    if not values.get("outcome"):
        errors["outcome"] = phrase("choose_outcome", {}, locale)
    for block_id, check in checks:
        if values.get(block_id) and block_id not in errors:
            try:
                check(values[block_id])
            except InvalidInput as exc:
                errors[block_id] = blocks.clip(phrase(exc.code, exc.data, locale), 150)
    return errors


class Modals:
    """Opens the modals and takes their submissions."""

    def __init__(self, answers: Answers, home: Home, spawn: Spawn) -> None:
        self.answers, self.home, self._spawn = answers, home, spawn
        self.bus, self.client = answers.bus, answers.client

    # --- feedback ------------------------------------------------------------------------

    async def feedback_clicked(self, body: dict[str, Any]) -> None:
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, channel_of(body))
        place = await self.answers.place(body, where.channel)
        hint, clicked = self.answers.hint(place), place.clicked
        from_home = (body.get("view") or {}).get("type") == "home"
        await self.open_feedback(
            body, person, str(action.get("value") or ""), where, hint, clicked, from_home
        )

    async def open_feedback(
        self,
        body: Mapping[str, Any],
        person: SlackPerson,
        raw_ref: str,
        where: Where,
        hint: int | None,
        clicked: Clicked | None,
        from_home: bool = False,
    ) -> None:
        def view(tenant: Mapping[str, Any], lead: Mapping[str, Any]) -> dict[str, Any]:
            meta = {
                "t": tenant["id"],
                "r": lead["ref"],
                "c": where.channel or "",
                "h": int(from_home),
                "l": tenant.get("reader_locale") or "en",
            }
            locale = tenant.get("reader_locale")
            return blocks.feedback_modal(
                _teaser(lead), tenant["currency"], json.dumps(meta), locale
            )

        failed = "slack_feedback_form_failed"
        await self._open_lead_modal(body, person, raw_ref, where, hint, clicked, view, failed)

    async def feedback_submitted(self, ack: Any, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "")
            tenant_id, ref = int(meta["t"]), str(meta["r"])
            channel, from_home = str(meta.get("c") or "") or None, bool(meta.get("h"))
            locale = str(meta.get("l") or "en")
        except (ValueError, KeyError, TypeError):
            await _errors(ack, {"outcome": phrase("form_out_of_date", {}, "en")})
            return
        values = blocks.modal_values(view.get("state") or {})
        errors = validate_feedback(values, locale)
        if errors:
            await _errors(ack, errors)
            return
        person = SlackPerson.from_body(body)
        identity = await self.answers.identify(person, tenant_id)
        actor = identity.actor
        if actor is None or actor.tenant_id != tenant_id:
            await _errors(ack, {"outcome": phrase(identity.problem or NOT_OFFERED, {}, locale)})
            return
        key, where = request_key(body), Where(person.user_id, channel)
        cmd = GiveFeedback(
            ref,
            values["outcome"],
            values.get("amount") or None,
            values.get("currency") or None,
            values.get("reason", ""),
            values.get("note", ""),
        )

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.ok:  # errors are shown in the modal itself
                said = {"code": reply.code, "ok": True, "data": reply.data}
                self.answers.queue_say(uow, key, where, "reply", locale, said, tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if not reply.ok:
            field = str(reply.data.get("field") or "outcome")
            await _errors(ack, {field: blocks.clip(phrase(reply.code, reply.data, locale), 150)})
            return
        await ack()
        if from_home and not reply.data.get("duplicate"):
            self._spawn(lambda: self.home.publish(person.user_id, actor))

    # --- more time: the partner asks ------------------------------------------------------

    async def extend_clicked(self, body: dict[str, Any]) -> None:
        """Ask for more time: open the modal (days, reason) for a lead the clicker holds."""
        person = SlackPerson.from_body(body)
        action = (body.get("actions") or [{}])[0]
        where = Where(person.user_id, channel_of(body))
        hint = (await self.answers.place(body, where.channel)).channel_tenant

        def view(tenant: Mapping[str, Any], lead: Mapping[str, Any]) -> dict[str, Any]:
            meta = {
                "t": tenant["id"],
                "r": lead["ref"],
                "c": where.channel or "",
                "l": tenant.get("reader_locale") or "en",
            }
            return blocks.extension_modal(
                _teaser(lead),
                tenant["extension_max_days"],
                tenant["extension_auto_days"],
                json.dumps(meta),
                tenant.get("reader_locale"),
            )

        failed = "slack_extension_form_failed"
        raw_ref = str(action.get("value") or "")
        await self._open_lead_modal(body, person, raw_ref, where, hint, None, view, failed)

    async def extend_submitted(self, ack: Any, body: dict[str, Any]) -> None:
        """The modal sent: ``RequestExtension`` through the bus; refusals show in the modal."""
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "")
            tenant_id, ref = int(meta["t"]), str(meta["r"])
            channel = str(meta.get("c") or "") or None
            locale = str(meta.get("l") or "en")
        except (ValueError, KeyError, TypeError):
            await _errors(ack, {"days": phrase("form_out_of_date", {}, "en")})
            return
        values = blocks.modal_values(view.get("state") or {})
        raw_days = values.get("days", "")
        if not raw_days.isdigit() or int(raw_days) < 1:
            await _errors(ack, {"days": phrase("whole_days", {}, locale)})
            return
        person = SlackPerson.from_body(body)
        identity = await self.answers.identify(person, tenant_id)
        actor = identity.actor
        if actor is None or actor.tenant_id != tenant_id:
            await _errors(ack, {"days": phrase(identity.problem or NOT_OFFERED, {}, locale)})
            return
        key, where = request_key(body), Where(person.user_id, channel)
        cmd = RequestExtension(ref, int(raw_days), values.get("reason", ""))

        async def respond(reply: Reply, uow: UnitOfWork) -> None:
            if reply.ok:  # errors are shown in the modal itself
                said = {"code": reply.code, "ok": True, "data": reply.data}
                self.answers.queue_say(uow, key, where, "reply", locale, said, tenant_id)

        reply = await self.bus.dispatch(cmd, actor, key=key, respond=respond)
        if not reply.ok:
            await _errors(ack, {"days": blocks.clip(phrase(reply.code, reply.data, locale), 150)})
            return
        await ack()

    # --- opening ---------------------------------------------------------------------------

    async def _open_lead_modal(
        self,
        body: Mapping[str, Any],
        person: SlackPerson,
        raw_ref: str,
        where: Where,
        hint: int | None,
        clicked: Clicked | None,
        view: View,
        failed: str,
    ) -> None:
        """Open a partner's modal about one lead (``views.open`` needs the trigger within 3 s
        of the click); ``failed`` (with ``{ref}``) answers when Slack will not open it."""
        answers = self.answers
        key = request_key(body)
        if not await answers.first_delivery(key):
            return
        identity = await answers.identify(person, hint)
        actor = await answers.checked(identity, key, where, clicked)
        if actor is None:
            return
        locale = identity.locale
        if actor.role != Role.PARTNER:
            await answers.say(key, where, PARTNERS_ONLY, actor.tenant_id, locale)
            return
        form = await self.bus.dispatch(LeadForm(raw_ref), actor)
        if not form.ok:
            await answers.say(key, where, form.code, actor.tenant_id, locale, form.data)
            return
        tenant, lead = {**form.data["tenant"], "reader_locale": locale}, form.data["lead"]
        try:
            await self.client.views_open(trigger_id=body["trigger_id"], view=view(tenant, lead))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", slack_error(exc))
            await answers.say(key, where, failed, tenant["id"], locale, {"ref": lead["ref"]})


def _teaser(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The teaser fields of a ``LeadForm`` lead (its id stays out of the view)."""
    return {field: lead.get(field) for field in TEASER_FIELDS}


async def _errors(ack: Any, errors: dict[str, str]) -> None:
    await ack(response_action="errors", errors=errors)
