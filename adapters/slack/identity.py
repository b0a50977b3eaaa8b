"""Who is clicking: a Slack user mapped to a Lyra user (a partner user or the owner's staff).

Policy, in order:

1. **Stored ids.** ``User.slack_team_id``/``slack_user_id`` (the user's home team and id).
2. **Verified email, own workspace only.** A member of the workspace Lyra is installed in,
   whose profile email (``users.info``, confirmed by Slack) matches a registered, active
   user that has no Slack link yet, is linked (stored through the bus) on first contact.
3. **Slack Connect.** People from other organisations (their home team is not the
   workspace's, or Slack marks them as strangers) are never matched by email: their profile
   is managed by another organisation, so its email proves nothing to us. They act only
   after an owner links them explicitly (``lyra-bot user link-slack``).
4. Everyone else (bots, deactivated accounts, unregistered people) is unknown: they get a
   short explanation and nothing else.

The clicking user always acts for *their own* partner, whatever channel they click in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from lyra_bot.bus import Bus
from lyra_bot.commands import Actor, FindSlackUser, LinkSlackUser, Role

log = logging.getLogger(__name__)

UNKNOWN = (
    "Lyra does not know you yet. Ask the channel manager who works with your company to "
    "register your email address (the one in your Slack profile) in Lyra."
)
AMBIGUOUS = (
    "You are registered with several owners in Lyra. Use this in a Slack channel that is "
    "linked to your partner, so Lyra knows which one you mean."
)
LOOKUP_FAILED = "Lyra could not look you up in Slack just now. Please try again in a minute."
SYSTEM = Actor(Role.SYSTEM, "slack", None)


@dataclass(frozen=True)
class SlackPerson:
    """A Slack user as a request names them."""

    team_id: str  # the workspace the request comes from
    user_id: str
    home_team_id: str  # the user's own organisation (differs in Slack Connect channels)

    @property
    def external(self) -> bool:
        return self.home_team_id != self.team_id

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SlackPerson:
        """From an interaction payload, a slash command or an event."""
        if isinstance(body.get("user"), Mapping):  # block_actions, view_submission
            user = body["user"]
            team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
            return cls(team, user["id"], user.get("team_id") or team)
        if "event" in body:  # Events API
            event = body["event"]
            team = body.get("team_id") or ""
            return cls(team, event["user"], event.get("user_team") or team)
        team = body.get("team_id") or ""  # slash command
        return cls(team, body["user_id"], body.get("user_team_id") or team)


@dataclass(frozen=True)
class Identity:
    actor: Actor | None
    problem: str = ""
    email: str = ""


def _actor(user: Mapping[str, Any]) -> Actor:
    if user["partner_id"] is not None:
        return Actor.partner_user(user["tenant_id"], user["partner_id"], user["id"], "slack")
    return Actor.owner(user["tenant_id"], "slack", user_id=user["id"])


async def _stored(person: SlackPerson, bus: Bus, email: str = "") -> tuple[list[dict], bool]:
    """The Lyra users linked to this Slack user, and whether ``email`` could be linked."""
    teams = tuple(sorted({person.home_team_id, person.team_id}))
    reply = await bus.dispatch(FindSlackUser(person.user_id, teams, email), SYSTEM)
    return list(reply.data.get("users") or []), bool(reply.data.get("linkable"))


async def identify(
    person: SlackPerson, client: AsyncWebClient, bus: Bus, tenant_hint: int | None = None
) -> Identity:
    """The actor this Slack user speaks as, or why there is none.

    ``tenant_hint`` (the tenant of the message or channel clicked in) picks the tenant when
    one person is registered with several owners.
    """
    users, _ = await _stored(person, bus)
    if not users and not person.external:
        email, problem = await _verified_email(person, client)
        if problem:
            return Identity(None, problem)
        if email and (await _stored(person, bus, email))[1]:
            reply = await bus.dispatch(
                LinkSlackUser(email, person.home_team_id, person.user_id), SYSTEM
            )
            if reply.ok:
                log.info("linked Slack user %s to %s", person.user_id, reply.data.get("users"))
            users, _ = await _stored(person, bus)
    if not users:
        return Identity(None, UNKNOWN)
    tenants = {u["tenant_id"] for u in users}
    if tenant_hint in tenants:
        users = [u for u in users if u["tenant_id"] == tenant_hint]
    elif len(tenants) > 1:
        return Identity(None, AMBIGUOUS)
    user = next((u for u in users if u["partner_id"] is not None), users[0])
    return Identity(_actor(user), email=user["email"])


async def _verified_email(person: SlackPerson, client: AsyncWebClient) -> tuple[str, str]:
    """(email, problem): the confirmed profile email of a member of our own workspace."""
    try:
        response = await client.users_info(user=person.user_id)
    except SlackApiError as exc:
        log.info("users.info %s failed: %s", person.user_id, exc.response.get("error"))
        return "", ""
    except (aiohttp.ClientError, TimeoutError):
        log.warning("users.info %s failed", person.user_id, exc_info=True)
        return "", LOOKUP_FAILED
    user = response.get("user") or {}
    if (
        user.get("deleted")
        or user.get("is_bot")
        or user.get("is_stranger")
        or user.get("is_email_confirmed") is False
        or (user.get("team_id") and user["team_id"] != person.team_id)
    ):
        return "", ""
    email = ((user.get("profile") or {}).get("email") or "").strip().lower()
    return email, ""
