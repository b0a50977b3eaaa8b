"""Slack content rendered as it should look right now: recorded digest messages, and answers
that show several customers (nothing of them is stored in the outbox).

The store's side comes through the bus: ``SlackMessageView`` says each lead's state from the
point of view of the partner whose channel it is in (claimable, held by that partner — who,
until when —, taken by someone else, withdrawn …); this module only says it in Block Kit, in
the channel's language (its partner's, else the tenant's). The message never says which
other partner holds a lead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.render import digest_title

from lyra_bot.bus import Reply
from lyra_bot.i18n import pick_locale
from lyra_bot.phrases import N_, say
from lyra_bot.phrases import tr as _

_NOTES = {
    "hidden": (":hourglass: _", N_("Back in the pool for other partners for now.")),
    "not_entitled": ("_", N_("No longer in your products or regions.")),
    "withdrawn": (":no_entry_sign: _", N_("Withdrawn by the owner.")),
    "held": ("_", N_("Not available right now.")),
    "taken": (":lock: _", N_("Taken.")),
}


def render_message(view: Mapping[str, Any]) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` of a digest message, from ``SlackMessageView``."""
    tenant, partner = view["tenant"], view.get("partner") or {}
    locale = pick_locale(partner.get("locale"), tenant.get("locale"))
    timezone = tenant["timezone"]
    items = [(item["lead"], *_state(item, locale, timezone)) for item in view["items"]]
    return blocks.digest(_title(view["message"]["title"], partner, locale), items)


def _title(recorded: str, partner: Mapping[str, Any], locale: str) -> str:
    """The header, from what the digest recorded (``{"leads", "part", "parts"}``)."""
    try:
        said = json.loads(recorded)
    except ValueError:
        return recorded  # a message recorded before headers were worded here
    name = str(partner.get("name") or "")
    return digest_title(name, int(said["leads"]), int(said["part"]), int(said["parts"]), locale)


def _state(item: Mapping[str, Any], locale: str, timezone: str) -> tuple[str, blocks.Block | None]:
    state, ref = item["state"], item["lead"]["ref"]
    if state == "open":
        return "", blocks.claim_button(ref, locale)
    if state == "ours":
        who = blocks.esc(item["who"])
        due = blocks.slack_date(item["due_at"], locale, timezone)
        note = _("*Claimed by %(who)s* · feedback due %(due)s", locale, who=who, due=due)
        return f":white_check_mark: {note}", blocks.feedback_button(ref, locale)
    if state == "ours_closed":
        who = blocks.esc(item["who"])
        note = _("Claimed by %(who)s · feedback given.", locale, who=who)
        return f":white_check_mark: _{note}_", None
    mark, text = _NOTES.get(state, _NOTES["taken"])
    return f"{mark}{_(text, locale)}_", None


def render_claims(mine: Reply, timezone: str, locale: str | None = None) -> dict[str, Any]:
    """A partner's open claims with their customers and deadlines (``ListMine``), for an
    answer to one of its users, rendered when it is delivered."""
    items = mine.data.get("claims") or []
    if not items:
        return blocks.text_answer(say("mine_none", {}, locale))
    return blocks.mine_answer(say(mine.code, mine.data, locale), items, locale, timezone)
