"""A report as data: the JSON document (schema ``lyra.report/1``, docs/reports.md), flat
rows per partner, product or region, and CSV that spreadsheets cannot mistake for formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from lyra_bot.domain import Outcome
from lyra_bot.reports.metrics import AGE_BANDS, Metrics
from lyra_bot.reports.periods import Period
from lyra_bot.reports.report import PartnerCard, Report

SCHEMA = "lyra.report/1"
Dimension = Literal["partner", "product", "region"]
DIMENSIONS: tuple[Dimension, ...] = ("partner", "product", "region")

CLAIM_KEYS = (
    "claims",
    "median_hours_to_claim",
    "feedback_on_time",
    "feedback_late",
    "median_hours_to_feedback",
    "lapses",
    "releases",
    "outcomes",
    "won",
    "revenue",
    "final_outcomes",
    "conversion",
    "checks_answered",
    "checks_confirmed",
    "contact_rate",
    "not_contacted",
    "extensions_asked",
    "extensions_granted",
    "reliability",
)
LEAD_KEYS = ("added", "withdrawn", "offered", "open_end", "never_claimed_stale", "age_bands")
HEADLINE = (
    "added",
    "claims",
    "open_end",
    "withdrawn",
    "feedback_on_time",
    "feedback_late",
    "lapses",
    "won",
    "conversion",
    "median_hours_to_claim",
    "not_contacted",
    "reliability",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def metric(m: Metrics, key: str) -> Any:
    """One metric as JSON data (rates as fractions, money as decimal strings)."""
    if key == "outcomes":
        return {o.value: m.outcomes.get(o.value, 0) for o in Outcome}
    if key == "revenue":
        return {cur: str(amount) for cur, amount in sorted(m.revenue.items())}
    if key == "age_bands":
        return {name: m.age_bands.get(name, 0) for name, _ in AGE_BANDS}
    return getattr(m, key)


def metrics_json(m: Metrics, keys: Iterable[str]) -> dict[str, Any]:
    return {key: metric(m, key) for key in keys}


def _when(value: datetime) -> str:
    return value.isoformat()


def period_json(period: Period) -> dict[str, Any]:
    return {
        "kind": period.kind,
        "label": period.label,
        "first_day": period.first.isoformat(),
        "last_day": period.last.isoformat(),
        "start": _when(period.start),
        "end": _when(period.end),
    }


def _change(now: Any, before: Any) -> Any:
    if now is None or before is None:
        return None
    if isinstance(now, float) or isinstance(before, float):
        return round(now - before, 4)
    return now - before


def headline(report: Report) -> dict[str, dict[str, Any]]:
    """The headline figures with last period's value and the change (week over week)."""
    out = {}
    for key in HEADLINE:
        now, before = getattr(report.totals, key), getattr(report.before, key)
        out[key] = {"value": now, "previous": before, "change": _change(now, before)}
    currencies = sorted(set(report.totals.revenue) | set(report.before.revenue))
    for cur in currencies:
        now_amount = report.totals.revenue.get(cur, Decimal(0))
        before_amount = report.before.revenue.get(cur, Decimal(0))
        out[f"revenue_{cur}"] = {
            "value": str(now_amount),
            "previous": str(before_amount),
            "change": str(now_amount - before_amount),
        }
    return out


def partner_json(card: PartnerCard) -> dict[str, Any]:
    return {
        "slug": card.slug,
        "name": card.name,
        "active": card.active,
        **metrics_json(card.metrics, CLAIM_KEYS),
        "pauses": [{"start": _when(p.start), "until": _when(p.until)} for p in card.pauses],
    }


def to_json(report: Report) -> dict[str, Any]:
    """The whole report as the documented JSON document."""
    tenant = report.tenant
    return {
        "schema": SCHEMA,
        "tenant": {
            "slug": tenant.slug,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "locale": tenant.locale,
            "currency": tenant.currency,
        },
        "period": {
            **period_json(report.period),
            "until": _when(report.until),
            "partial": report.partial,
        },
        "previous_period": period_json(report.previous),
        "generated_at": _when(report.generated_at),
        "headline": headline(report),
        "totals": metrics_json(report.totals, LEAD_KEYS + CLAIM_KEYS),
        "previous_totals": metrics_json(report.before, LEAD_KEYS + CLAIM_KEYS),
        "pool": {
            "open": report.totals.open_end,
            "age_bands": metric(report.totals, "age_bands"),
            "stale_days": report.stale_days,
            "never_claimed_stale": report.totals.never_claimed_stale,
        },
        "partners": [partner_json(card) for card in report.partners],
        "products": [
            {"product": name, **metrics_json(m, LEAD_KEYS + CLAIM_KEYS)}
            for name, m in report.products.items()
        ],
        "regions": [
            {"region": name, **metrics_json(m, LEAD_KEYS + CLAIM_KEYS)}
            for name, m in report.regions.items()
        ],
        "idle_partners": [card.slug for card in report.idle],
        "weeks": [
            {"week": w.label, "start": _when(w.start), "claims": w.claims, "lapses": w.lapses}
            for w in report.weeks
        ],
    }


# --- flat rows (CSV, the CLI table) ---------------------------------------------------------


def _flat(m: Metrics, keys: Iterable[str], currencies: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in keys:
        value = metric(m, key)
        if key == "outcomes":
            row.update({f"outcome_{code}": n for code, n in value.items()})
        elif key == "revenue":
            row.update({f"revenue_{cur}": value.get(cur, "0.00") for cur in currencies})
        elif key == "age_bands":
            row.update({f"open_{band}": n for band, n in value.items()})
        else:
            row[key] = value
    return row


def rows(report: Report, by: Dimension) -> list[dict[str, Any]]:
    """One flat row per partner (scorecard order), product or region."""
    currencies = sorted({cur for card in report.partners for cur in card.metrics.revenue})
    currencies = sorted(set(currencies) | set(report.totals.revenue))
    if by == "partner":
        return [
            {
                "partner": card.slug,
                "name": card.name,
                **_flat(card.metrics, CLAIM_KEYS, currencies),
                "paused": "; ".join(
                    f"{p.start.date().isoformat()}..{p.until.date().isoformat()}"
                    for p in card.pauses
                ),
            }
            for card in report.partners
        ]
    slices = report.products if by == "product" else report.regions
    return [
        {by: name, **_flat(m, LEAD_KEYS + CLAIM_KEYS, currencies)} for name, m in slices.items()
    ]


def safe_cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab,
    CR at the start) by prefixing an apostrophe; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(table: list[dict[str, Any]], *, bom: bool = False) -> str:
    """CSV text of flat rows (``bom`` prepends U+FEFF so Excel reads it as UTF-8)."""
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\r\n")
        writer.writerow({name: safe_cell(name) for name in table[0]})
        for row in table:
            writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return ("\ufeff" if bom else "") + buffer.getvalue()
