"""Action ids of Lyra's Slack buttons and modals, and the report's summary in Block Kit.

Shared by the notifications that carry buttons (``handlers.notify``, queued by handlers) and
the Slack adapter that receives the clicks (``adapters.slack``). A button's value is the
lead reference only; who clicks is looked up, never taken from the message.
"""

from __future__ import annotations

from typing import Any

from lyra_bot.render import Renderer, slack_escape

CLAIM = "lyra.claim"  # Claim buttons in digests
FEEDBACK = "lyra.feedback"  # Give feedback buttons, and the feedback modal's callback_id
EXTEND = "lyra.extend"  # Ask for more time buttons, and the extension modal's callback_id
APPROVE_EXTENSION = "lyra.extension.approve"  # the owner's decision buttons
DECLINE_EXTENSION = "lyra.extension.decline"


def button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A Block Kit button (``style``: primary, danger or None)."""
    block: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label[:75], "emoji": True},
        "value": value,
    }
    if style:
        block["style"] = style
    return block


def actions(*buttons: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(buttons)}
    if block_id:
        block["block_id"] = block_id[:255]
    return block


SLACK_SECTION_MAX = 3000  # characters of mrkdwn one section block may hold


def slack_summary(
    renderer: Renderer, view: dict[str, Any], locale: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """The report's summary for Slack (the owner channel, ``/lyra report``): the fallback
    text and the blocks, from the formatted view (``report_context``)."""
    text = renderer.slack("owner_report", locale, view)
    sections, current = [], ""
    for paragraph in text.split("\n\n"):
        if current and len(current) + len(paragraph) + 2 > SLACK_SECTION_MAX:
            sections.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph[:SLACK_SECTION_MAX]
    sections.append(current)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in sections]
    title = f"{view['title']} · {view['tenant']['name']} · {view['period']}"
    return slack_escape(title), blocks
