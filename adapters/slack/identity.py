"""Who is clicking: a Slack user mapped to a Lyra user (a partner user or the owner's staff).

Policy, in order:

0. **Our installation only.** The workspace (and Enterprise Grid organisation) Lyra is
   installed in comes from ``auth.test`` (asked once, kept). A request from any other
   workspace is refused before anything else, however well signed: one Slack app may be
   installed in several workspaces, and they all sign with the same secret.
1. **Stored ids.** ``User.slack_team_id``/``slack_user_id`` (the user's home team and id).
2. **Verified email, own workspace only.** A member of the workspace Lyra is installed in
   (the *profile's* team, or organisation, is the installation's, not merely the
   request's), whose profile email (``users.info``, confirmed by Slack) matches a
   registered, active user that has no Slack link yet, is linked (stored through the bus)
   on first contact.
3. **Slack Connect.** People from other organisations (their home team is not the
   workspace's, or Slack marks them as strangers) are never matched by email: their profile
   is managed by another organisation, so its email proves nothing to us. They act only
   after an owner links them explicitly (``lyra-bot user link-slack``).
4. Everyone else (bots, deactivated accounts, unregistered people) is unknown: they get a
   short explanation and nothing else.

The clicking user always acts for *their own* partner, whatever channel they click in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from lyra_bot.adapters.slack.transport import MalformedAnswer, slack_error, web_answer
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from lyra_bot.bus import Bus
from lyra_bot.commands import Actor, FindSlackUser, LinkSlackUser, Role

log = logging.getLogger(__name__)

# Why a Slack user cannot act: phrases of lyra_bot.phrases, said by the Slack renderer.
UNKNOWN = "slack_unknown"
AMBIGUOUS = "slack_ambiguous"
LOOKUP_FAILED = "slack_lookup_failed"
FOREIGN = "slack_foreign"
SYSTEM = Actor(Role.SYSTEM, "slack", None)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Installation:
    """The workspace Lyra's bot token belongs to (and its Enterprise Grid organisation)."""

    team_id: str
    enterprise_id: str = ""

    def serves(self, person: SlackPerson) -> bool:
        """Whether a request comes from this installation's workspace (or organisation)."""
        if self.enterprise_id:
            return person.enterprise_id == self.enterprise_id
        return bool(person.team_id) and person.team_id == self.team_id

    def has_member(self, profile: Mapping[str, Any]) -> bool:
        """Whether a ``users.info`` profile belongs to this workspace (or organisation)."""
        if self.enterprise_id:
            grid = _text(_map(profile.get("enterprise_user")).get("enterprise_id"))
            return (grid or _text(profile.get("enterprise_id"))) == self.enterprise_id
        return _text(profile.get("team_id")) == self.team_id


class Installed:
    """``auth.test``, asked on first need and kept once it answered (the token's workspace
    does not change while the process runs)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._known: Installation | None = None
        self._lock = asyncio.Lock()

    def learn(self, installation: Installation) -> None:
        """What bolt's own ``auth.test`` found (spares a second call)."""
        if self._known is None:
            self._known = installation

    async def get(self) -> Installation | None:
        if self._known is None:
            async with self._lock:
                if self._known is None:
                    self._known = await self._ask()
        return self._known

    async def _ask(self) -> Installation | None:
        try:
            data = await web_answer(self.client.auth_test())
        except SlackApiError as exc:
            log.warning("auth.test failed: %s", slack_error(exc))
            return None
        except (MalformedAnswer, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("auth.test failed: %s", exc)
            return None
        team = _text(data.get("team_id"))
        if not team:
            log.warning("auth.test named no team")
            return None
        return Installation(team, _text(data.get("enterprise_id")))


@dataclass(frozen=True)
class SlackPerson:
    """A Slack user as a request names them."""

    team_id: str  # the workspace the request comes from
    user_id: str
    home_team_id: str  # the user's own organisation (differs in Slack Connect channels)
    enterprise_id: str = ""  # the request's Enterprise Grid organisation, if any

    @property
    def external(self) -> bool:
        return self.home_team_id != self.team_id

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SlackPerson:
        """From an interaction payload, a slash command or an event (read defensively: a
        field of the wrong shape leaves an empty id, which identifies nobody)."""
        grid = _text(_map(body.get("enterprise")).get("id")) or _text(body.get("enterprise_id"))
        grid = grid or _text(_map(body.get("team")).get("enterprise_id"))
        if isinstance(body.get("user"), Mapping):  # block_actions, view_submission
            user = body["user"]
            team = _text(_map(body.get("team")).get("id")) or _text(user.get("team_id"))
            home = _text(user.get("team_id")) or team
            return cls(team, _text(user.get("id")), home, grid or _text(user.get("enterprise_id")))
        if "event" in body:  # Events API
            event = _map(body["event"])
            team = _text(body.get("team_id"))
            return cls(team, _text(event.get("user")), _text(event.get("user_team")) or team, grid)
        team = _text(body.get("team_id"))  # slash command
        return cls(team, _text(body.get("user_id")), _text(body.get("user_team_id")) or team, grid)


def installation_guard(installed: Installed) -> Callable[..., Awaitable[BoltResponse | None]]:
    """A bolt middleware run on every request before any listener: a request from another
    workspace (or organisation) than the installation's is acknowledged and does nothing."""

    async def guard(
        context: AsyncBoltContext, body: Any, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        result = context.authorize_result
        if result is not None and result.bot_token and result.team_id:  # from auth.test
            installed.learn(Installation(result.team_id, result.enterprise_id or ""))
        installation = await installed.get()
        if installation is None:  # Slack unreachable: a 5xx, so the request is tried again
            raise RuntimeError("auth.test failed: cannot tell our workspace")
        person = SlackPerson.from_body(body if isinstance(body, Mapping) else {})
        if not installation.serves(person):
            log.warning(
                "Slack request from workspace %r (organisation %r) ignored: Lyra is "
                "installed in %r",
                person.team_id,
                person.enterprise_id,
                installation.team_id,
            )
            return BoltResponse(status=200, body="")
        return await next()

    return guard


@dataclass(frozen=True)
class Identity:
    actor: Actor | None
    problem: str = ""  # a phrase code
    email: str = ""
    locale: str = "en"  # the language the person reads


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
    person: SlackPerson,
    client: AsyncWebClient,
    bus: Bus,
    tenant_hint: int | None = None,
    installed: Installed | None = None,
) -> Identity:
    """The actor this Slack user speaks as, or why there is none.

    ``tenant_hint`` (the tenant of the message or channel clicked in) picks the tenant when
    one person is registered with several owners.
    """
    installation = await (installed or Installed(client)).get()
    if installation is None:
        return Identity(None, LOOKUP_FAILED)
    if not installation.serves(person) or not person.user_id:
        log.warning("Slack request from workspace %r refused: not ours", person.team_id)
        return Identity(None, FOREIGN)
    users, _ = await _stored(person, bus)
    if not users and not person.external:
        email, problem = await _verified_email(person, client, installation)
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
    return Identity(_actor(user), email=user["email"], locale=user.get("locale") or "en")


async def _verified_email(
    person: SlackPerson, client: AsyncWebClient, installation: Installation
) -> tuple[str, str]:
    """(email, problem): the confirmed profile email of a member of our own workspace."""
    try:
        data = await web_answer(client.users_info(user=person.user_id))
    except SlackApiError as exc:
        log.info("users.info %s failed: %s", person.user_id, slack_error(exc))
        return "", ""
    except MalformedAnswer as exc:
        log.warning("users.info %s answered with no JSON object: %s", person.user_id, exc)
        return "", LOOKUP_FAILED
    except (aiohttp.ClientError, TimeoutError):
        log.warning("users.info %s failed", person.user_id, exc_info=True)
        return "", LOOKUP_FAILED
    user = _map(data.get("user"))
    if (
        user.get("deleted")
        or user.get("is_bot")
        or user.get("is_stranger")
        or user.get("is_email_confirmed") is not True
        or not installation.has_member(user)
    ):
        return "", ""
    return _text(_map(user.get("profile")).get("email")).strip().lower(), ""
