"""The Slack renderer: what to say (a kind, the reader's locale, a context) → Block Kit.

Handlers and the Slack adapter queue *what* to tell a Slack user or channel as an outbox row
``{"method": "lyra.say", "args": {"say": {"kind", "locale", "context"}, "channel", "user"}}``;
the Slack transport calls ``render`` when it delivers the row, in the recipient's language.
"What does the partner see after Claim?" is answered here (``reply`` with code ``claimed``)
and in ``blocks`` (the Block Kit pieces).

Kinds:

- ``reply``: a command's Reply (``{"code", "ok", "data"}``) as the answer to whoever acted.
- ``problem``: a phrase of the phrasebook (``{"code", "data"}``) outside any command (an
  unknown Slack user, a button of another owner, a form that could not open).
- ``help``: ``/lyra``'s help, with an optional problem first (``{"code", "data"}``).
- ``similar``: leads like one that got away, with their Claim buttons.
- ``reminder``, ``extension_partner``, ``extension_owner``: notifications of ``handlers.notify``.
- ``owner_report``: the weekly report's summary (``handlers.reports``'s view).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.blocks import esc

from lyra_bot.i18n import pick_locale
from lyra_bot.phrases import moment, say
from lyra_bot.phrases import ntr as ngettext
from lyra_bot.phrases import tr as _
from lyra_bot.render import Renderer, slack_escape

Content = dict[str, Any]
SECTION_MAX = blocks.MAX_TEXT


def render(
    kind: str, locale: str | None, context: Mapping[str, Any], renderer: Renderer | None = None
) -> Content:
    """``{"text": …, "blocks": […]}`` of one message in ``locale``."""
    lang = pick_locale(locale)
    if kind == "owner_report":
        if renderer is None:
            raise ValueError("the owner report needs the template renderer")
        text, summary = report_summary(renderer, dict(context), lang)
        return {"text": blocks.clip(text, SECTION_MAX), "blocks": summary[: blocks.MAX_BLOCKS]}
    return KINDS[kind](lang, context)


def reply(locale: str, context: Mapping[str, Any]) -> Content:
    """A command's answer to the person who acted (ephemeral or their DM)."""
    code, data = str(context.get("code") or ""), dict(context.get("data") or {})
    text = say(code, data, locale)
    if code == "claimed":
        return blocks.claimed_answer(text, data["lead"], data.get("due_at"), locale)
    if code == "lead_taken":
        return {
            "text": blocks.fallback(text),
            "blocks": [blocks.section(f":no_entry: {esc(text)}")],
        }
    if code == "pool":
        return blocks.pool_answer(
            text, data.get("leads") or [], int(data.get("total") or 0), locale
        )
    if code == "mine":
        claims = data.get("claims") or []
        if not claims:
            return blocks.text_answer(say("mine_none", {}, locale))
        return blocks.mine_answer(text, claims, locale, data.get("tz"))
    return blocks.text_answer(text)


def problem(locale: str, context: Mapping[str, Any]) -> Content:
    return blocks.text_answer(say(str(context.get("code") or "error"), context.get("data"), locale))


def help_(locale: str, context: Mapping[str, Any]) -> Content:
    prefix = ""
    if context.get("code"):
        prefix = say(str(context["code"]), context.get("data"), locale)
    return blocks.help_answer(prefix, locale)


def similar(locale: str, context: Mapping[str, Any]) -> Content:
    return blocks.similar_answer(list(context.get("leads") or []), locale)


def reminder(locale: str, context: Mapping[str, Any]) -> Content:
    """Before the deadline, to the user holding the claim: feedback or more time."""
    lead, tz = context["lead"], context.get("tz")
    due = moment(context.get("due_at"), locale, tz)
    hours = int(context.get("hours_left") or 1)
    title = ngettext(
        ":alarm_clock: *Feedback on %(ref)s is due %(due)s* (in about %(num)d hour)",
        ":alarm_clock: *Feedback on %(ref)s is due %(due)s* (in about %(num)d hours)",
        hours,
        locale,
        ref=esc(lead["ref"]),
        due=esc(due),
    )
    facts = ", ".join(esc(part) for part in (lead.get("company"), lead.get("product")) if part) + (
        f" ({esc(lead['region'])})" if lead.get("region") else ""
    )
    body = _("After the deadline the lead returns to the pool.", locale)
    text = f"{title}\n{facts}. {body}"
    buttons = blocks.actions(
        {**blocks.feedback_button(lead["ref"], locale), "style": "primary"},
        blocks.extend_button(lead["ref"], locale),
        block_id=f"reminder:{lead['ref']}",
    )
    return {
        "text": blocks.clip(_strip(text), SECTION_MAX),
        "blocks": [blocks.section(text), buttons],
    }


def extension_partner(locale: str, context: Mapping[str, Any]) -> Content:
    """The partner learns whether it got more time."""
    ext, lead, tz = context["extension"], context["lead"], context.get("tz")
    ref, tenant = esc(lead["ref"]), esc(context.get("tenant") or "")
    due = esc(moment(context.get("due_at"), locale, tz))
    if ext.get("approved"):
        if ext.get("auto"):
            title = ngettext(
                ":white_check_mark: *%(num)d more day on %(ref)s*",
                ":white_check_mark: *%(num)d more days on %(ref)s*",
                int(ext["days"]),
                locale,
                ref=ref,
            )
        else:
            title = ngettext(
                ":white_check_mark: *%(num)d more day on %(ref)s, granted by %(tenant)s*",
                ":white_check_mark: *%(num)d more days on %(ref)s, granted by %(tenant)s*",
                int(ext["days"]),
                locale,
                ref=ref,
                tenant=tenant,
            )
        old = esc(moment(ext.get("old_due_at"), locale, tz))
        body = _("Your feedback is now due %(due)s (was %(old)s).", locale, due=due, old=old)
    else:
        title = _(
            ":no_entry: *%(tenant)s declined more time on %(ref)s*", locale, ref=ref, tenant=tenant
        )
        body = _("Your feedback stays due %(due)s.", locale, due=due)
    text = f"{title}\n{body}"
    return {"text": blocks.clip(_strip(text), SECTION_MAX), "blocks": [blocks.section(text)]}


def extension_owner(locale: str, context: Mapping[str, Any]) -> Content:
    """The owner is asked for more time on a claim: Approve / Decline."""
    ext, lead, tz = context["extension"], context["lead"], context.get("tz")
    title = ngettext(
        ":hourglass: *%(partner)s asks for %(num)d more day on %(ref)s*",
        ":hourglass: *%(partner)s asks for %(num)d more days on %(ref)s*",
        int(ext["days"]),
        locale,
        partner=esc(context.get("partner") or ""),
        ref=esc(lead["ref"]),
    )
    due = esc(moment(context.get("due_at"), locale, tz))
    line = _(
        "%(user)s: %(product)s (%(region)s), currently due %(due)s.",
        locale,
        user=esc(context.get("user") or ""),
        product=esc(lead.get("product") or ""),
        region=esc(lead.get("region") or ""),
        due=due,
    )
    text = f"{title}\n{line}"
    if ext.get("reason"):
        text += "\n" + _("Reason: %(reason)s", locale, reason=esc(ext["reason"]))
    buttons = blocks.actions(
        blocks.button(blocks.APPROVE_EXTENSION, _("Approve", locale), lead["ref"], "primary"),
        blocks.button(blocks.DECLINE_EXTENSION, _("Decline", locale), lead["ref"], "danger"),
        block_id=f"extension:{ext['id']}",
    )
    return {
        "text": blocks.clip(_strip(text), SECTION_MAX),
        "blocks": [blocks.section(text), buttons],
    }


def report_summary(
    renderer: Renderer, view: dict[str, Any], locale: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """The weekly report's summary (owner channel, ``/lyra report``, App Home): the fallback
    text and the blocks, from the formatted view (``report_context``, already in the
    tenant's words)."""
    text = renderer.slack("owner_report", locale, view)
    sections, current = [], ""
    for paragraph in text.split("\n\n"):
        if current and len(current) + len(paragraph) + 2 > SECTION_MAX:
            sections.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph[:SECTION_MAX]
    sections.append(current)
    parts = [blocks.section(part) for part in sections]
    title = f"{view['title']} · {view['tenant']['name']} · {view['period']}"
    return slack_escape(title), parts


def digest_title(partner: str, leads: int, part: int, parts: int, locale: str | None) -> str:
    """A digest message's header: "10 new leads for Alpine" (part 1/2 when split)."""
    title = ngettext(
        "%(num)d new lead for %(partner)s",
        "%(num)d new leads for %(partner)s",
        leads,
        locale,
        partner=partner,
    )
    return f"{title} ({part}/{parts})" if parts > 1 else title


def _strip(text: str) -> str:
    """A notification's plain text: mrkdwn stars and emoji codes dropped."""
    words = [
        w for w in text.replace("*", "").split(" ") if not (w.startswith(":") and w.endswith(":"))
    ]
    return " ".join(words)


KINDS: dict[str, Callable[[str, Mapping[str, Any]], Content]] = {
    "reply": reply,
    "problem": problem,
    "help": help_,
    "similar": similar,
    "reminder": reminder,
    "extension_partner": extension_partner,
    "extension_owner": extension_owner,
}
