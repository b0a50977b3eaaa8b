"""The report as rich tables for ``lyra-bot report`` (the default ``--format table``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lyra_bot.reports.exports import Dimension
from lyra_bot.reports.report import Report
from lyra_bot.reports.view import formatter, partner_row, report_context, slice_row

PARTNER_COLUMNS = (
    ("name", "partner"),
    ("claims", "claims"),
    ("lapses", "lapses"),
    ("late", "feedback_late"),
    ("not_contacted", "not_contacted"),
    ("on_time", "feedback_on_time"),
    ("median_feedback", "median_hours_to_feedback"),
    ("won", "won"),
    ("revenue", "revenue"),
    ("conversion", "conversion"),
    ("contact_rate", "contact_rate"),
    ("extensions", "extensions"),
    ("reliability", "reliability"),
    ("paused", "paused"),
)
SLICE_COLUMNS = (
    ("added", "added"),
    ("offered", "offered"),
    ("claims", "claims"),
    ("open", "open_end"),
    ("lapses", "lapses"),
    ("won", "won"),
    ("revenue", "revenue"),
    ("conversion", "conversion"),
    ("median_claim", "median_hours_to_claim"),
)


def print_report(console: Console, report: Report, by: Dimension) -> None:
    view = report_context(report, max_partners=len(report.partners))
    words = view["words"]
    head = Table(
        "",
        view["period_label"],
        view["previous_label"],
        words["change"],
        title=f"{view['title']} · {report.tenant.name} · {view['period']}",
        title_justify="left",
    )
    for row in view["headline"]:
        head.add_row(row["label"], row["value"], row["previous"], row["change"])
    console.print(head)

    fmt = formatter(report)
    if by == "partner":
        table = Table(*(words[label] for _, label in PARTNER_COLUMNS), title=words["scorecard"],
                      title_justify="left")  # fmt: skip
        for card in report.partners:
            row = partner_row(card, report, fmt)
            table.add_row(*(row[key] for key, _ in PARTNER_COLUMNS))
    else:
        slices = report.products if by == "product" else report.regions
        table = Table(words[by], *(words[label] for _, label in SLICE_COLUMNS),
                      title=words["demand"], title_justify="left")  # fmt: skip
        for name, metrics in slices.items():
            row = slice_row(name, metrics, fmt)
            table.add_row(row["name"], *(row[key] for key, _ in SLICE_COLUMNS))
    console.print(table)
    pool = view["pool"]
    bands = ", ".join(f"{b['name']}: {b['count']}" for b in pool["bands"])
    console.print(f"{words['pool']}: {words['open_end']} {pool['open']} ({bands})", highlight=False)
    if pool["never_claimed_label"]:
        console.print(f"{pool['never_claimed_label']}: {pool['never_claimed']}", highlight=False)
    idle = ", ".join(card.name for card in report.idle) or words["none"]
    console.print(f"{words['idle']}: {idle}", highlight=False)
