"""The report as rich tables for ``lyra-bot report`` (the default ``--format table``)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Column, Table

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
    ("won", "won"),
    ("revenue", "revenue"),
    ("conversion", "conversion"),
    ("reliability", "reliability"),
)
"""The scorecard's main columns; ``--format csv`` or ``json`` has every metric."""
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


WIDE = 120
"""Narrower consoles get the scorecard as lines, not a table of squeezed columns."""


def print_report(console: Console, report: Report, by: Dimension) -> None:
    view = report_context(report, max_partners=len(report.partners))
    words = view["words"]
    head = Table(
        Column("", min_width=12),
        view["period_label"],
        view["previous_label"],
        words["change"],
        title=f"{view['title']} · {report.tenant.name} · {view['period']}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for row in view["headline"]:
        head.add_row(row["label"], row["value"], row["previous"], row["change"])
    console.print(head)

    fmt = formatter(report)
    if by == "partner" and console.width < WIDE:
        console.print(f"\n[bold]{words['scorecard']}[/bold]", highlight=False)
        for card in report.partners:
            row = partner_row(card, report, fmt)
            figures = " · ".join(f"{words[label]} {row[key]}" for key, label in PARTNER_COLUMNS[1:])
            paused = f" ({row['paused']})" if row["paused"] else ""
            console.print(f"  {row['name']}{paused}\n    {figures}", highlight=False)
        console.print()
    elif by == "partner":
        columns = list(PARTNER_COLUMNS)
        if any(card.pauses for card in report.partners):
            columns.append(("paused", "paused"))
        table = Table(
            Column(words["partner"], min_width=12),
            *(_number(words[label]) for _, label in columns[1:]),
            title=words["scorecard"],
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        for card in report.partners:
            row = partner_row(card, report, fmt)
            table.add_row(*(row[key] for key, _ in columns))
        console.print(table)
    else:
        slices = report.products if by == "product" else report.regions
        table = Table(
            Column(words[by], min_width=8),
            *(_number(words[label]) for _, label in SLICE_COLUMNS),
            title=words["demand"],
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
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


def _number(header: str) -> Column:
    return Column(header, justify="right", no_wrap=False, overflow="fold")
