"""Block Kit for Lyra's Slack messages, modals and App Home: pure functions, no I/O.

Pool listings show teasers only (``domain.teaser`` dicts); customer data appears only in
answers addressed to the one partner user who holds the claim (an ephemeral message, their
DM, or their own App Home). Everything that comes from a lead is escaped, so a lead cannot
mention ``@channel`` or fake a link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from lyra_bot.domain import Outcome
from lyra_bot.phrases import moment, outcome_label, say
from lyra_bot.phrases import ntr as ngettext
from lyra_bot.phrases import tr as _
from lyra_bot.render import local_time  # noqa: F401  (times in the tenant's zone)
from lyra_bot.slack_actions import (  # noqa: F401  (the adapter's names for them)
    APPROVE_EXTENSION,
    CLAIM,
    DECLINE_EXTENSION,
    EXTEND,
    FEEDBACK,
)

MAX_BLOCKS = 50  # Block Kit's limit per message
LEADS_PER_MESSAGE = MAX_BLOCKS - 1  # one header block, then one section per lead
HOME_MAX_BLOCKS = 100
MAX_TEXT = 3000  # section text limit
Block = dict[str, Any]


def help_text(locale: str | None) -> str:
    """``/lyra``'s help: the verbs (typed as they are) and what each does, in the reader's
    words."""
    lines = [
        _("*Lyra* finds you sales leads. Use `/lyra` with:", locale),
        "• `leads` — " + _("leads you may claim now", locale),
        "• `mine` — " + _("your open claims and their feedback deadlines", locale),
        "• `claim L-1042` — " + _("claim a lead", locale),
        "• `feedback L-1042` — " + _("report what came of it", locale),
        "• `release L-1042 [reason]` — " + _("give a lead back to the pool", locale),
        "• `report [week]` — "
        + _(
            "the owner report: this week so far, `last`, `2026-W48` or "
            "`2026-11-01..2026-11-30` (owner staff only)",
            locale,
        ),
        "• `help` — " + _("this text", locale),
    ]
    return "\n".join(lines)


def esc(value: Any) -> str:
    """Escape text for Slack mrkdwn: ``&``, ``<`` and ``>`` (no mentions, no links)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback(text: str) -> str:
    """A message's ``text`` (notifications, screen readers): mrkdwn too, so escaped."""
    return clip(esc(text), MAX_TEXT)


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, MAX_TEXT)}


def section(text: str, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id[:255]
    if accessory:
        block["accessory"] = accessory
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def claim_button(ref: str, locale: str | None = None) -> Block:
    return {
        "type": "button",
        "action_id": CLAIM,
        "text": plain(_("Claim", locale)),
        "value": ref,
        "style": "primary",
    }


def feedback_button(ref: str, locale: str | None = None) -> Block:
    label = _("Give feedback", locale)
    return {"type": "button", "action_id": FEEDBACK, "text": plain(label), "value": ref}


def button(action_id: str, label: str, value: str, style: str | None = None) -> Block:
    """A Block Kit button (``style``: primary, danger or None)."""
    block: Block = {"type": "button", "action_id": action_id, "text": plain(label), "value": value}
    if style:
        block["style"] = style
    return block


def actions(*buttons: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(buttons)}
    if block_id:
        block["block_id"] = block_id[:255]
    return block


def extend_button(ref: str, locale: str | None = None) -> Block:
    label = _("Ask for more time", locale)
    return {"type": "button", "action_id": EXTEND, "text": plain(label), "value": ref}


def slack_date(
    when: datetime | str | None, locale: str | None = None, tz: str | None = None
) -> str:
    """A date Slack shows in each reader's own time zone; where it cannot, the reader's
    words in the tenant's zone (never an ISO timestamp)."""
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    fallback = esc(moment(when, locale, tz))
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def teaser_text(teaser: Mapping[str, Any]) -> str:
    """Reference, product and region first, then what else the teaser says."""
    lines = [f"*{esc(teaser['ref'])}* · {esc(teaser['product'])} · {esc(teaser['region'])}"]
    details = " · ".join(esc(teaser[k]) for k in ("industry", "size") if teaser.get(k))
    if details:
        lines.append(details)
    if teaser.get("need"):
        lines.append(f"_{esc(teaser['need'])}_")
    return "\n".join(lines)


def teaser_line(teaser: Mapping[str, Any]) -> str:
    """One plain line for notification texts (no markup)."""
    return f"{teaser['ref']} {teaser['product']} {teaser['region']}"


def lead_section(teaser: Mapping[str, Any], note: str = "", button: Block | None = None) -> Block:
    text = teaser_text(teaser) + (f"\n{note}" if note else "")
    return section(text, button, block_id=f"lead:{teaser['ref']}")


# --- digests (posted in channels, kept in sync) ---------------------------------------------


def digest(title: str, items: Iterable[tuple[Mapping[str, Any], str, Block | None]]) -> dict:
    """A digest message: a header, then one section per lead with its note and button.

    ``items`` are (teaser, note, button); at most ``LEADS_PER_MESSAGE`` of them.
    """
    items = list(items)[:LEADS_PER_MESSAGE]
    blocks = [header(title)] + [lead_section(t, note, button) for t, note, button in items]
    refs = ", ".join(teaser_line(t) for t, _, _ in items)
    return {"text": fallback(f"{title}: {refs}"), "blocks": blocks}


def content_hash(message: Mapping[str, Any]) -> str:
    """What a message shows, as a short digest: an update that changes nothing is skipped."""
    raw = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


# --- answers (ephemeral, to one user) -------------------------------------------------------


def text_answer(text: str) -> dict:
    return {"text": fallback(text), "blocks": [section(esc(text))]}


def help_answer(prefix: str = "", locale: str | None = None) -> dict:
    text = (esc(prefix) + "\n\n" if prefix else "") + help_text(locale)
    summary = prefix or _("How to use /lyra", locale)
    return {"text": fallback(summary), "blocks": [section(text)]}


def customer(lead: Mapping[str, Any], locale: str | None = None) -> list[Block]:
    """The customer's contact data: only ever in an answer to the partner holding the claim."""
    labels = (
        ("company", _("Company", locale)),
        ("contact_name", _("Contact", locale)),
        ("email", _("Email", locale)),
        ("phone", _("Phone", locale)),
        ("address", _("Address", locale)),
    )
    fields = [mrkdwn(f"*{label}*\n{esc(lead[k])}") for k, label in labels if lead.get(k)]
    blocks: list[Block] = []
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if lead.get("notes"):
        blocks.append(section(f"*{_('Notes', locale)}*\n{esc(lead['notes'])}"))
    return blocks


def claimed_answer(
    message: str, lead: Mapping[str, Any], due_at: Any, locale: str | None = None
) -> dict:
    blocks = [section(f":white_check_mark: {esc(message)}"), section(teaser_text(lead))]
    blocks += customer(lead, locale)
    blocks.append(
        {
            "type": "actions",
            "block_id": f"claimed:{lead['ref']}",
            "elements": [feedback_button(lead["ref"], locale)],
        }
    )
    return {"text": fallback(message), "blocks": blocks}


def taken_answer(message: str) -> dict:
    return {"text": fallback(message), "blocks": [section(f":no_entry: {esc(message)}")]}


def similar_answer(similar: list[Mapping[str, Any]], locale: str | None = None) -> dict:
    """Leads like one that got away, each with its Claim button."""
    intro = say("similar_intro", {}, locale)
    blocks = [context(intro)]
    blocks += [lead_section(t, button=claim_button(t["ref"], locale)) for t in similar[:3]]
    refs = ", ".join(teaser_line(t) for t in similar[:3])
    return {"text": fallback(f"{intro} {refs}"), "blocks": blocks}


def pool_answer(
    message: str, leads: list[Mapping[str, Any]], total: int, locale: str | None = None
) -> dict:
    room = MAX_BLOCKS - 2
    blocks = [section(f"*{esc(message)}*")]
    blocks += [lead_section(t, button=claim_button(t["ref"], locale)) for t in leads[:room]]
    if total > min(len(leads), room):
        more = total - min(len(leads), room)
        blocks.append(context(say("pool_more", {"more": more}, locale)))
    return {"text": fallback(message), "blocks": blocks}


def claim_lines(
    claims: list[Mapping[str, Any]], locale: str | None = None, tz: str | None = None
) -> list[Block]:
    """Open claims with customer, deadline and a feedback button (for their holder only)."""
    blocks: list[Block] = []
    for item in claims:
        who = " · ".join(esc(item[k]) for k in ("company", "contact_name") if item.get(k))
        reach = " · ".join(esc(item[k]) for k in ("email", "phone") if item.get(k))
        due = slack_date(item.get("due_at"), locale, tz)
        text = teaser_text(item) + "".join(f"\n{part}" for part in (who, reach) if part)
        text += "\n:alarm_clock: " + _("Feedback due %(due)s", locale, due=due)
        button = feedback_button(item["ref"], locale)
        blocks.append(section(text, button, block_id=f"mine:{item['ref']}"))
    return blocks


def mine_answer(
    message: str,
    claims: list[Mapping[str, Any]],
    locale: str | None = None,
    tz: str | None = None,
) -> dict:
    lines = claim_lines(claims, locale, tz)[: MAX_BLOCKS - 1]
    return {"text": fallback(message), "blocks": [section(f"*{esc(message)}*"), *lines]}


# --- App Home -------------------------------------------------------------------------------


def home_partner(
    pool_total: int,
    claims: list[Mapping[str, Any]],
    locale: str | None = None,
    tz: str | None = None,
) -> dict:
    if pool_total:
        waiting = ngettext(
            "*%(num)d* lead waiting in your pool. Type `/lyra leads` to see it.",
            "*%(num)d* leads waiting in your pool. Type `/lyra leads` to see them.",
            pool_total,
            locale,
        )
    else:
        waiting = _("Your pool is empty.", locale)
    blocks = [header("Lyra"), section(waiting), {"type": "divider"}]
    if claims:
        title = _("*Your open claims (%(count)d)*", locale, count=len(claims))
        blocks.append(section(title))
        blocks += claim_lines(claims, locale, tz)
    else:
        blocks.append(section(say("mine_none", {}, locale)))
    if len(blocks) > HOME_MAX_BLOCKS:
        more = context(_("More: `/lyra mine`.", locale))
        blocks = [*blocks[: HOME_MAX_BLOCKS - 1], more]
    return {"type": "home", "blocks": blocks}


def home_owner(summary: list[Block]) -> dict:
    """The owner's App Home: this week's report so far (``slack_actions.slack_summary``)."""
    return {"type": "home", "blocks": [header("Lyra"), *summary][:HOME_MAX_BLOCKS]}


def home_unknown(problem: str) -> dict:
    return {"type": "home", "blocks": [header("Lyra"), section(esc(problem))]}


# --- the feedback modal ---------------------------------------------------------------------


def _input(block_id: str, label: str, element: Block, optional: bool, hint: str = "") -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": {**element, "action_id": "value"},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def feedback_modal(
    lead: Mapping[str, Any], currency: str, metadata: str, locale: str | None = None
) -> dict:
    """Outcome, amount + currency, reason and note. ``metadata`` carries ids only."""
    options = [
        {"text": plain(outcome_label(outcome.value, locale)), "value": outcome.value}
        for outcome in Outcome
    ]
    return {
        "type": "modal",
        "callback_id": FEEDBACK,
        "private_metadata": metadata,
        "title": plain(_("Feedback %(ref)s", locale, ref=lead["ref"]), 24),
        "submit": plain(_("Send", locale)),
        "close": plain(_("Cancel", locale)),
        "blocks": [
            section(teaser_text(lead)),
            _input(
                "outcome",
                _("Outcome", locale),
                {
                    "type": "static_select",
                    "placeholder": plain(_("Choose", locale)),
                    "options": options,
                },
                False,
            ),
            _input(
                "amount",
                _("Amount", locale),
                {"type": "plain_text_input", "placeholder": plain(_("e.g. 12000", locale))},
                True,
                _("Needed when won.", locale),
            ),
            _input(
                "currency",
                _("Currency", locale),
                {"type": "plain_text_input", "initial_value": currency, "max_length": 3},
                True,
            ),
            _input(
                "reason",
                _("Reason", locale),
                {"type": "plain_text_input", "max_length": 500},
                True,
                _("Needed when lost.", locale),
            ),
            _input(
                "note",
                _("Note", locale),
                {"type": "plain_text_input", "multiline": True, "max_length": 3000},
                True,
            ),
        ],
    }


def extension_modal(
    lead: Mapping[str, Any],
    max_days: int,
    auto_days: int,
    metadata: str,
    locale: str | None = None,
) -> dict:
    """Days and reason of an extension request. ``metadata`` carries ids only."""
    hint = _("1 to %(max)d days.", locale, max=max_days)
    if auto_days:
        hint += " " + ngettext(
            "A first request of up to %(num)d day is granted at once.",
            "A first request of up to %(num)d days is granted at once.",
            auto_days,
            locale,
        )
    return {
        "type": "modal",
        "callback_id": EXTEND,
        "private_metadata": metadata,
        "title": plain(_("More time %(ref)s", locale, ref=lead["ref"]), 24),
        "submit": plain(_("Ask", locale)),
        "close": plain(_("Cancel", locale)),
        "blocks": [
            section(teaser_text(lead)),
            _input(
                "days",
                _("Days", locale),
                {
                    "type": "number_input",
                    "is_decimal_allowed": False,
                    "min_value": "1",
                    "max_value": str(max_days),
                },
                False,
                hint,
            ),
            _input(
                "reason",
                _("Reason", locale),
                {"type": "plain_text_input", "multiline": True, "max_length": 500},
                True,
                _("The owner reads it when deciding.", locale),
            ),
        ],
    }


def decided(approved: bool, slack_user: str, message: str, locale: str | None = None) -> dict:
    """An owner's extension request once decided: the buttons give way to the outcome,
    with a mention of who decided (a Slack user id, nothing else, is put in the mention)."""
    user = "".join(ch for ch in slack_user if ch.isalnum())
    if approved:
        verdict = _("Approved by %(user)s", locale, user=f"<@{user}>")
    else:
        verdict = _("Declined by %(user)s", locale, user=f"<@{user}>")
    text = clip(f"{verdict}: {esc(message)}", MAX_TEXT)
    return {"text": text, "blocks": [section(text)]}


def modal_values(state: Mapping[str, Any]) -> dict[str, str]:
    """The submitted values of the feedback modal, by block id (missing ones empty)."""
    out: dict[str, str] = {}
    for block_id, actions in (state.get("values") or {}).items():
        element = (actions or {}).get("value") or {}
        if element.get("type") == "static_select":
            out[block_id] = ((element.get("selected_option") or {}).get("value")) or ""
        else:
            out[block_id] = (element.get("value") or "").strip()
    return out
