"""A report dressed for reading: every number formatted for the tenant's locale (Babel), in
the shape the mail templates, Slack and the CLI table show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime, format_interval
from babel.numbers import format_currency, format_decimal, format_percent
from babel.units import format_unit

from lyra_bot.domain import Outcome
from lyra_bot.i18n import babel_locale
from lyra_bot.reports.exports import headline
from lyra_bot.reports.labels import labels as labels_for
from lyra_bot.reports.metrics import AGE_BANDS, Metrics
from lyra_bot.reports.periods import Period
from lyra_bot.reports.report import PartnerCard, Report

DASH = "–"
LOWER_IS_BETTER = frozenset(
    {"withdrawn", "feedback_late", "lapses", "median_hours_to_claim", "not_contacted", "open_end"}
)
"""Headline figures where a rise is bad news (shown in red)."""
MAX_ROWS = 10  # products and regions in the demand table, partners in the idle list


@dataclass(frozen=True)
class Fmt:
    """Locale-aware formatting of the report's numbers, dates and durations."""

    locale: Locale
    zone: Any
    words: dict[str, str]

    def int(self, value: int | None) -> str:
        return DASH if value is None else format_decimal(value, locale=self.locale)

    def hours(self, value: float | None) -> str:
        if value is None:
            return DASH
        return format_unit(
            value, "duration-hour", length="short", format="#,##0.#", locale=self.locale
        )

    def pct(self, value: float | None) -> str:
        return DASH if value is None else format_percent(value, "#,##0.#%", locale=self.locale)

    def money(self, amount: Decimal | str, currency: str) -> str:
        return format_currency(Decimal(amount), currency, locale=self.locale)

    def revenue(self, revenue: dict[str, Decimal]) -> str:
        if not revenue:
            return DASH
        return ", ".join(self.money(v, c) for c, v in sorted(revenue.items()))

    def day(self, when: datetime) -> str:
        return format_date(when.astimezone(self.zone).date(), "medium", locale=self.locale)

    def moment(self, when: datetime) -> str:
        return format_datetime(when, "short", tzinfo=self.zone, locale=self.locale)

    def signed(self, value: Any, key: str) -> str:
        """A change: +3, −1.5 h, +12 pts (rates change in percentage points), ±0."""
        if value is None:
            return DASH
        number = Decimal(str(value))
        if number == 0:
            return "±0"
        sign = "+" if number > 0 else "−"
        if key.startswith("revenue_"):
            return sign + self.money(abs(number), key.split("_", 1)[1])
        if key in ("conversion", "contact_rate"):
            points = format_decimal(abs(number) * 100, "#,##0.#", locale=self.locale)
            return f"{sign}{points} {self.words['points']}"
        if key.startswith("median_"):
            return sign + self.hours(float(abs(number)))
        return sign + format_decimal(abs(number), "#,##0.#", locale=self.locale)

    def value(self, value: Any, key: str) -> str:
        if key in ("conversion", "contact_rate"):
            return self.pct(value)
        if key.startswith("median_"):
            return self.hours(value)
        if key == "reliability":
            return DASH if value is None else f"{self.int(value)}/100"
        return self.int(value)


def formatter(report: Report) -> Fmt:
    tenant = report.tenant
    return Fmt(
        babel_locale(tenant.locale, tenant.holiday_country),
        report.zone,
        labels_for(tenant.locale),
    )


def period_name(period: Period, fmt: Fmt) -> str:
    """A period as its reader names it: "Woche 45", "2.–8. Nov. 2026" (never 2026-W45)."""
    if period.kind == "week":
        return f"{fmt.words['week']} {period.first.isocalendar().week}"
    return str(format_interval(period.first, period.last, "yMMMd", locale=fmt.locale))


def period_text(report: Report, fmt: Fmt) -> str:
    period = report.period
    days = format_interval(period.first, period.last, "yMMMd", locale=fmt.locale)
    text = days
    if period.kind == "week":
        text = f"{fmt.words['week']} {period.first.isocalendar().week}, {days}"
    if report.partial:
        text += f" ({fmt.words['so_far']})"
    return text


def _outcomes(m: Metrics, fmt: Fmt) -> str:
    parts = [
        f"{fmt.int(m.outcomes[o.value])} {fmt.words['outcome_' + o.value]}"
        for o in Outcome
        if m.outcomes.get(o.value)
    ]
    return " · ".join(parts) or DASH


def partner_row(card: PartnerCard, report: Report, fmt: Fmt) -> dict[str, Any]:
    m = card.metrics
    paused = [f"{fmt.words['paused']} {fmt.day(p.start)} – {fmt.day(p.until)}" for p in card.pauses]
    return {
        "name": card.name,
        "slug": card.slug,
        "claims": fmt.int(m.claims),
        "on_time": fmt.int(m.feedback_on_time),
        "late": fmt.int(m.feedback_late),
        "lapses": fmt.int(m.lapses),
        "releases": fmt.int(m.releases),
        "median_feedback": fmt.hours(m.median_hours_to_feedback),
        "outcomes": _outcomes(m, fmt),
        "won": fmt.int(m.won),
        "revenue": fmt.revenue(m.revenue),
        "conversion": fmt.pct(m.conversion),
        "contact_rate": fmt.pct(m.contact_rate),
        "not_contacted": fmt.int(m.not_contacted),
        "extensions": f"{fmt.int(m.extensions_asked)}/{fmt.int(m.extensions_granted)}",
        "paused": "; ".join(paused),
        "reliability": fmt.value(m.reliability, "reliability"),
        "attention": bool(m.lapses or m.feedback_late or m.not_contacted),
    }


def slice_row(name: str, m: Metrics, fmt: Fmt) -> dict[str, Any]:
    """A product's or region's numbers (the CLI's ``--by product|region`` table)."""
    return {
        "name": name,
        "added": fmt.int(m.added),
        "offered": fmt.int(m.offered),
        "claims": fmt.int(m.claims),
        "open": fmt.int(m.open_end),
        "lapses": fmt.int(m.lapses),
        "won": fmt.int(m.won),
        "revenue": fmt.revenue(m.revenue),
        "conversion": fmt.pct(m.conversion),
        "median_claim": fmt.hours(m.median_hours_to_claim),
    }


def _trend(key: str, change: Any) -> str:
    if change in (None, 0) or (isinstance(change, str) and Decimal(change) == 0):
        return "flat"
    rising = Decimal(str(change)) > 0
    return "good" if rising != (key in LOWER_IS_BETTER) else "bad"


def report_context(report: Report, max_partners: int = 15) -> dict[str, Any]:
    """Everything the owner report templates show, already formatted."""
    fmt = formatter(report)
    words = fmt.words
    rows = []
    for key, figure in headline(report).items():
        if key.startswith("revenue_"):
            currency = key.split("_", 1)[1]
            label = f"{words['revenue']} {currency}"
            value = fmt.money(figure["value"], currency)
            previous = fmt.money(figure["previous"], currency)
        else:
            label = words[key]
            value = fmt.value(figure["value"], key)
            previous = fmt.value(figure["previous"], key)
        rows.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "previous": previous,
                "change": fmt.signed(figure["change"], key),
                "trend": _trend(key, figure["change"]),
            }
        )
    t = report.totals
    cards = report.partners
    shown = [partner_row(card, report, fmt) for card in cards[:max_partners]]
    demand = [
        {"dimension": words[dim], "name": name, "offered": fmt.int(m.offered),
         "claims": fmt.int(m.claims), "lapses": fmt.int(m.lapses)}
        for dim, slices in (("product", report.products), ("region", report.regions))
        for name, m in sorted(slices.items(), key=lambda kv: (-kv[1].offered, kv[0]))[:MAX_ROWS]
    ]  # fmt: skip
    idle = [card.name for card in report.idle]
    return {
        "words": words,
        "tenant": {"name": report.tenant.name},
        "title": words["title"] if report.period.kind == "week" else words["range_title"],
        "period": period_text(report, fmt),
        "period_label": period_name(report.period, fmt),
        "is_week": report.period.kind == "week",
        "partial": report.partial,
        "previous_label": period_name(report.previous, fmt),
        "generated": fmt.moment(report.generated_at),
        "headline": rows,
        "partners": shown,
        "partners_more": words["more"].format(count=len(cards) - len(shown))
        if len(cards) > len(shown)
        else "",
        "pool": {
            "open": fmt.int(t.open_end),
            "bands": [
                {"name": words["age_" + name], "count": fmt.int(t.age_bands.get(name, 0))}
                for name, _ in AGE_BANDS
            ],
            "never_claimed_label": words["never_claimed_stale"].format(days=report.stale_days)
            if report.stale_days
            else "",
            "never_claimed": fmt.int(t.never_claimed_stale),
        },
        "demand": demand,
        "idle": idle[:MAX_ROWS],
        "idle_more": words["more"].format(count=len(idle) - MAX_ROWS)
        if len(idle) > MAX_ROWS
        else "",
        "summary": {
            "n_claims": t.claims,
            "n_won": t.won,
            "n_lapses": t.lapses,
            "claims": fmt.int(t.claims),
            "won": fmt.int(t.won),
            "revenue": fmt.revenue(t.revenue),
            "lapses": fmt.int(t.lapses),
            "open": fmt.int(t.open_end),
            "reliability": fmt.value(t.reliability, "reliability"),
        },
    }
