"""Every Slack message and modal kind, in every language, within Slack's limits.

Slack rejects a whole message for one over-long field (``invalid_blocks``), and a German
button label is longer than an English one: so each kind is rendered in de, fr, it and en,
with long values, and checked against the documented limits and slack_sdk's own models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.render import digest_title, render
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from lyra_bot.config import TEMPLATES_DIR
from lyra_bot.i18n import LOCALES
from lyra_bot.render import Renderer

DUE = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
LEAD = {
    "ref": "L-1042",
    "product": "Firewall",
    "region": "CH-ZH",
    "industry": "Retail",
    "size": "50-200",
    "need": "Firewall for 3 shops " * 20,
    "company": "Velo AG",
    "contact_name": "Lea Frei",
    "email": "lea@velo.example",
    "phone": "+41 44 000 00 00",
    "address": "Bahnhofstrasse 1\n8001 Zürich",
    "notes": "x" * 1000,
}
TEASER = {k: LEAD[k] for k in ("ref", "product", "region", "industry", "size", "need")}


def messages(locale: str) -> dict[str, dict[str, Any]]:
    """One payload of every message kind the Slack renderer makes."""
    replies = {
        "claimed": {"lead": LEAD, "due_at": DUE.isoformat(), "tz": "Europe/Zurich"},
        "lead_taken": {"ref": "L-1042"},
        "pool": {"leads": [{**TEASER, "ref": f"L-{i}"} for i in range(60)], "total": 75},
        "feedback": {"ref": "L-1042", "outcome": "no_contact"},
        "over_cap": {"ref": "L-1042", "held": 3, "cap": 3},
        "extension_requested": {"ref": "L-1", "days": 3, "due_at": DUE.isoformat()},
    }
    out = {
        f"reply.{code}": render("reply", locale, {"code": code, "ok": True, "data": data})
        for code, data in replies.items()
    }
    extension = {"id": 7, "days": 5, "reason": "<!channel> budget", "approved": True}
    context = {"lead": LEAD, "due_at": DUE.isoformat(), "tz": "Europe/Zurich"}
    out["reminder"] = render("reminder", locale, {**context, "hours_left": 2})
    for approved, auto in ((True, True), (True, False), (False, False)):
        ext = {**extension, "approved": approved, "auto": auto, "old_due_at": DUE.isoformat()}
        out[f"extension_partner.{approved}.{auto}"] = render(
            "extension_partner", locale, {**context, "extension": ext, "tenant": "Acme"}
        )
    out["extension_owner"] = render(
        "extension_owner",
        locale,
        {**context, "extension": extension, "partner": "Alpine", "user": "Mia"},
    )
    out["help"] = render("help", locale, {"code": "unknown_lead", "data": {"ref": "L-9"}})
    out["similar"] = render("similar", locale, {"leads": [TEASER] * 5})
    out["problem"] = render("problem", locale, {"code": "not_entitled", "data": {"ref": "L-1"}})
    items = [(TEASER, "", blocks.claim_button("L-1042", locale))] * 60
    out["digest"] = blocks.digest(digest_title("Alpine " * 30, 124, 1, 3, locale), items)
    out["mine"] = blocks.mine_answer("x", [{**LEAD, "due_at": DUE}] * 60, locale, "Europe/Zurich")
    out["decided"] = blocks.decided(False, "U0BOSS", "y" * 4000, locale)
    return out


def views(locale: str) -> dict[str, dict[str, Any]]:
    claims = [{**LEAD, "due_at": DUE}] * 120
    return {
        "feedback_modal": blocks.feedback_modal(TEASER, "CHF", "{}", locale),
        "extension_modal": blocks.extension_modal(TEASER, 14, 2, "{}", locale),
        "home_partner": blocks.home_partner(75, claims, locale, "Europe/Zurich"),
        "home_empty": blocks.home_partner(0, [], locale, "Europe/Zurich"),
    }


def limit_problems(payload: dict[str, Any], max_blocks: int) -> list[str]:
    found = []
    items = payload.get("blocks") or []
    if len(items) > max_blocks:
        found.append(f"{len(items)} blocks")
    if len(payload.get("text") or "") > 3000 * 13:
        found.append("text too long")
    for block in items:
        kind = block["type"]
        if kind == "header" and len(block["text"]["text"]) > 150:
            found.append("header")
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > 3000:
                found.append("section text")
            for field in block.get("fields") or []:
                if len(field["text"]) > 2000:
                    found.append("field")
        buttons = [*(block.get("elements") or []), block.get("accessory") or {}]
        ids = [b["action_id"] for b in buttons if b.get("type") == "button"]
        if len(ids) != len(set(ids)):
            found.append("action_id repeated in a block")
        for button in buttons:
            if button.get("type") != "button":
                continue
            if len(button["text"]["text"]) > 75 or len(button["value"]) > 2000:
                found.append("button")
            if len(button["action_id"]) > 255:
                found.append("action_id")
        if len(block.get("block_id") or "") > 255:
            found.append("block_id")
    return found


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_kind_fits_slack_in_every_language(locale):
    for kind, payload in messages(locale).items():
        assert limit_problems(payload, 50) == [], kind
        assert payload["text"], kind
        for block in payload["blocks"]:
            assert Block.parse(block) is not None, (kind, block)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_modal_and_home_fits_slack_in_every_language(locale):
    for kind, view in views(locale).items():
        assert limit_problems(view, 100) == [], kind
        View(**view).validate_json()  # slack_sdk's own checks (title ≤ 24, blocks ≤ 100 …)
        if view["type"] == "modal":
            assert len(view["title"]["text"]) <= 24, kind


def test_the_owner_report_summary_is_split_into_sections(tmp_path):
    view = {
        "title": "Weekly report",
        "tenant": {"name": "Acme"},
        "period": "Week 45",
        "headline": [{"label": "Claims", "value": "5", "change": "+5"}] * 3,
        "partners": [
            {
                "name": f"Partner {i} " * 20,
                "claims": 1,
                "lapses": 0,
                "late": 0,
                "not_contacted": 0,
                "reliability": "90",
                "paused": "",
            }
            for i in range(5)
        ],
        "words": {
            k: k
            for k in (
                "scorecard",
                "claims",
                "lapses",
                "feedback_late",
                "not_contacted",
                "reliability",
                "pool",
                "open_end",
                "idle",
                "none",
            )
        },
        "pool": {"open": 3, "never_claimed_label": "", "never_claimed": 0},
        "idle": ["x" * 200] * 30,
        "idle_more": "",
    }
    payload = render("owner_report", "de", view, Renderer(TEMPLATES_DIR))
    assert limit_problems(payload, 50) == []
    assert payload["text"].startswith("Weekly report · Acme · Week 45")


@pytest.mark.parametrize("locale", ["de", "fr", "it"])
def test_buttons_and_headers_speak_the_reader_s_language(locale):
    said = messages(locale)
    english = messages("en")
    claim = said["reply.claimed"]["blocks"][-1]["elements"][0]["text"]["text"]
    assert claim != english["reply.claimed"]["blocks"][-1]["elements"][0]["text"]["text"]
    assert "(s)" not in said["digest"]["blocks"][0]["text"]["text"]
    assert said["digest"]["blocks"][0]["text"]["text"].startswith("124 ")
    owner = said["extension_owner"]["blocks"][1]["elements"]
    assert [b["text"]["text"] for b in owner] != ["Approve", "Decline"]
