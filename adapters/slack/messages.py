"""Slack content rendered as it should look right now: recorded digest messages, and answers
that show several customers (nothing of them is stored in the outbox).

The store's side comes through the bus: ``SlackMessageView`` says each lead's state from the
point of view of the partner whose channel it is in (claimable, held by that partner — who,
until when —, taken by someone else, withdrawn …); this module only says it in Block Kit.
The message never says which other partner holds a lead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lyra_bot.adapters.slack import blocks

from lyra_bot.bus import Reply

_NOTES = {
    "hidden": ":hourglass: _Back in the pool for other partners for now._",
    "not_entitled": "_No longer in your products or regions._",
    "withdrawn": ":no_entry_sign: _Withdrawn by the owner._",
    "held": "_Not available right now._",
    "taken": ":lock: _Taken._",
}


def render_message(view: Mapping[str, Any]) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` of a digest message, from ``SlackMessageView``."""
    timezone = view["tenant"]["timezone"]
    items = [(item["lead"], *_state(item, timezone)) for item in view["items"]]
    return blocks.digest(view["message"]["title"], items)


def _state(item: Mapping[str, Any], timezone: str) -> tuple[str, blocks.Block | None]:
    state, ref = item["state"], item["lead"]["ref"]
    if state == "open":
        return "", blocks.claim_button(ref)
    if state == "ours":
        who = blocks.esc(item["who"])
        due = blocks.slack_date(item["due_at"], blocks.local_time(timezone, item["due_at"]))
        return f":white_check_mark: *Claimed by {who}* · feedback due {due}", (
            blocks.feedback_button(ref)
        )
    if state == "ours_closed":
        who = blocks.esc(item["who"])
        return f":white_check_mark: _Claimed by {who} · feedback given._", None
    return _NOTES.get(state, _NOTES["taken"]), None


def render_claims(mine: Reply, timezone: str) -> dict[str, Any]:
    """A partner's open claims with their customers and deadlines (``ListMine``), for an
    answer to one of its users, rendered when it is delivered."""
    items = mine.data.get("claims") or []
    due = {c["ref"]: blocks.local_time(timezone, c["due_at"]) for c in items}
    return blocks.mine_answer(mine.message, items, due)
