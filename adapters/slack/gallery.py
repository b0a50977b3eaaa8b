"""Every Slack message, modal and App Home Lyra shows, from one sample story, in one language.

``lyra-bot gallery`` writes them as JSON beside the mails (``OUT/<lang>/slack/<name>.json``),
so anyone can review the Slack wording without a workspace; ``tests/test_slack_render.py``
checks each against Slack's limits. Paste one into Slack's Block Kit Builder to see it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lyra_bot.adapters.slack import blocks
from lyra_bot.adapters.slack.render import digest_title, render

from lyra_bot.render import Renderer

DUE = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
TZ = "Europe/Zurich"
CUSTOMER = {
    "company": "Velo Huber AG",
    "contact_name": "Anna Huber",
    "email": "anna@huber.example",
    "phone": "+41 44 000 00 00",
    "address": "Bahnhofstrasse 1\n8001 Zürich",
    "notes": "Three shops; IT by a nephew.",
}
TEASERS = [
    {"ref": "L-1001", "product": "Firewall", "region": "CH-ZH", "industry": "Retail",
     "size": "10-50", "need": "Firewall for 3 shops"},
    {"ref": "L-1002", "product": "VPN", "region": "CH-BE", "industry": "Health",
     "size": "50-200", "need": "Remote access for 40 staff"},
    {"ref": "L-1003", "product": "Firewall", "region": "CH-GE", "industry": "Hotel",
     "size": "10-50", "need": ""},
]  # fmt: skip
LEAD = {**TEASERS[0], **CUSTOMER}


def _reply(locale: str, code: str, data: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    return render("reply", locale, {"code": code, "ok": ok, "data": data})


def messages(locale: str, renderer: Renderer | None = None) -> dict[str, dict[str, Any]]:
    """Each message kind (``{"text", "blocks"}``), named as the gallery files are."""
    due = {"due_at": DUE.isoformat(), "tz": TZ}
    extension = {"id": 7, "days": 3, "reason": "Board decides next week"}
    out: dict[str, dict[str, Any]] = {
        "digest": blocks.digest(
            digest_title("Alpine IT", 3, 1, 1, locale),
            [(t, "", blocks.claim_button(t["ref"], locale)) for t in TEASERS],
        ),
        "answer.claimed": _reply(locale, "claimed", {"lead": LEAD, **due}),
        "answer.taken": _reply(locale, "lead_taken", {"ref": "L-1001"}, ok=False),
        "answer.similar": render("similar", locale, {"leads": TEASERS[1:]}),
        "answer.pool": _reply(locale, "pool", {"leads": TEASERS, "total": 5}),
        "answer.mine": _reply(
            locale, "mine", {"claims": [{**LEAD, "due_at": DUE.isoformat()}], "count": 1, "tz": TZ}
        ),
        "answer.feedback": _reply(locale, "feedback", {"ref": "L-1001", "outcome": "won"}),
        "answer.over_cap": _reply(
            locale, "over_cap", {"ref": "L-1002", "held": 3, "cap": 3}, ok=False
        ),
        "answer.extension_requested": _reply(
            locale,
            "extension_requested",
            {"ref": "L-1001", "days": 3, "tenant": "Acme", **due},
        ),
        "answer.help": render("help", locale, {}),
        "answer.unknown_verb": render(
            "help", locale, {"code": "slack_unknown_verb", "data": {"verb": "claimz"}}
        ),
        "reminder": render("reminder", locale, {"lead": LEAD, "hours_left": 2, **due}),
        "extension.partner.granted": render(
            "extension_partner",
            locale,
            {
                "lead": LEAD,
                "tenant": "Acme",
                "extension": {
                    **extension,
                    "approved": True,
                    "auto": False,
                    "old_due_at": DUE.isoformat(),
                },
                **due,
            },
        ),
        "extension.partner.declined": render(
            "extension_partner",
            locale,
            {"lead": LEAD, "tenant": "Acme", "extension": {**extension, "approved": False}, **due},
        ),
        "extension.owner": render(
            "extension_owner",
            locale,
            {"lead": LEAD, "partner": "Alpine IT", "user": "Mia", "extension": extension, **due},
        ),
        "extension.owner.decided": blocks.decided(
            True,
            "U0BOSS",
            render(
                "reply", locale, {"code": "extension_approved", "data": {"ref": "L-1001", **due}}
            )["text"],
            locale,
        ),
    }
    return out


def views(locale: str) -> dict[str, dict[str, Any]]:
    """The modals and App Home tabs."""
    claims = [{**LEAD, "due_at": DUE}]
    return {
        "modal.feedback": blocks.feedback_modal(TEASERS[0], "CHF", "{}", locale),
        "modal.extension": blocks.extension_modal(TEASERS[0], 14, 2, "{}", locale),
        "home.partner": blocks.home_partner(5, claims, locale, TZ),
        "home.partner.empty": blocks.home_partner(0, [], locale, TZ),
    }


def write(folder: Path, locale: str) -> list[Path]:
    """``folder/<name>.json`` for every message, modal and home tab in ``locale``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, payload in {**messages(locale), **views(locale)}.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", "utf-8")
        written.append(path)
    return written
