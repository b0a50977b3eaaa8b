"""App Home: what a partner user holds and may claim, or the owner's week, on Lyra's tab."""

from __future__ import annotations

import logging
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.answers import Answers, request_key
from lyra_bot.adapters.slack.identity import SlackPerson
from lyra_bot.adapters.slack.render import report_summary
from lyra_bot.adapters.slack.transport import slack_error
from slack_sdk.errors import SlackApiError

from lyra_bot.commands import Actor, ListMine, ListPool, Role, ShowReport, TenantProfile

log = logging.getLogger(__name__)


class Home:
    """Publishes a user's App Home when they open it, and after they acted from it."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.bus, self.client = answers.bus, answers.client

    async def opened(self, body: dict[str, Any]) -> None:
        if not await self.answers.first_delivery(request_key(body)):
            return
        person = SlackPerson.from_body(body)
        identity = await self.answers.identify(person)
        if identity.actor is None:
            await self._views_publish(person.user_id, blocks.home_unknown(identity.problem))
            return
        await self.publish(person.user_id, identity.actor)

    async def publish(self, slack_user: str, actor: Actor) -> None:
        await self._views_publish(slack_user, await self._view(actor))

    async def _views_publish(self, slack_user: str, view: dict[str, Any]) -> None:
        try:
            await self.client.views_publish(user_id=slack_user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", slack_user, slack_error(exc))

    async def _view(self, actor: Actor) -> dict[str, Any]:
        if actor.role == Role.PARTNER:
            pool = await self.bus.dispatch(ListPool(limit=1), actor)
            mine = await self.bus.dispatch(ListMine(), actor)
            if not (pool.ok and mine.ok):
                return blocks.home_unknown(pool.message if not pool.ok else mine.message)
            claims = mine.data["claims"]
            profile = await self.bus.dispatch(TenantProfile(), actor)
            tenant = profile.data["tenant"]
            locale = tenant.get("locale")
            await self.bus.disclosed(mine, actor, "slack App Home")
            return blocks.home_partner(pool.data["total"], claims, locale, tenant.get("timezone"))
        week = await self.bus.dispatch(ShowReport(), actor)
        if not week.ok:
            return blocks.home_unknown(week.message)
        _, summary = report_summary(self.bus.renderer, week.data["view"], week.data.get("locale"))
        return blocks.home_owner(summary)
