"""Action ids of Lyra's Slack buttons and modals.

Shared by the notifications that carry buttons (``handlers.notify``, queued by handlers) and
the Slack adapter that receives the clicks (``adapters.slack``). A button's value is the
lead reference only; who clicks is looked up, never taken from the message.
"""

from __future__ import annotations

from typing import Any

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
