"""The report's chart as a PNG: outcomes per partner, and claims vs lapses over the last weeks.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global
state), so a chart can be drawn in a worker thread while the event loop goes on.
"""

from __future__ import annotations

import asyncio
import io

from lyra_bot.domain import Outcome
from lyra_bot.reports.labels import labels as labels_for
from lyra_bot.reports.report import Report

MAX_PARTNERS = 12
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 7.0, 100  # 800 x 700 px: readable in a mail, small in bytes
COLORS = {
    Outcome.WON.value: "#2e9e5b",
    Outcome.LOST.value: "#d64545",
    Outcome.CONTACTED.value: "#7fb3e6",
    Outcome.NO_CONTACT.value: "#f0a030",
    Outcome.NOT_QUALIFIED.value: "#9aa5b1",
    Outcome.DUPLICATE.value: "#c3b1e1",
}
CLAIMS_COLOR, LAPSES_COLOR = "#2f80ed", "#d64545"


def render_png(report: Report) -> bytes:
    """The chart of ``report`` as PNG bytes (CPU work: call it through ``chart_png``)."""
    # matplotlib is imported here, not with the module: it costs half a second, and every
    # process that registers the report handlers (each CLI command) would pay it.
    import matplotlib

    matplotlib.use("Agg")  # never a GUI backend, also if pyplot gets imported elsewhere
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    words = labels_for(report.tenant.locale)
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))

    shown = [c for c in report.partners if sum(c.metrics.outcomes.values())][:MAX_PARTNERS]
    top.set_title(words["chart_outcomes"], loc="left", fontsize=12)
    if shown:
        names = [card.name for card in shown][::-1]
        left = [0] * len(shown)
        for outcome in Outcome:
            counts = [card.metrics.outcomes.get(outcome.value, 0) for card in shown][::-1]
            if not any(counts):
                continue
            top.barh(
                names,
                counts,
                left=left,
                height=0.6,
                color=COLORS[outcome.value],
                label=words["outcome_" + outcome.value],
            )
            left = [a + b for a, b in zip(left, counts, strict=True)]
        top.set_ylim(-0.5, max(len(shown), 5) - 0.5)  # one partner: a bar, not a wall
        top.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=6, fontsize=8, frameon=False
        )
        top.xaxis.get_major_locator().set_params(integer=True)
    else:
        top.text(0.5, 0.5, words["no_activity"], ha="center", va="center", color="#616e7c")
        top.set_axis_off()

    weeks = report.weeks
    positions = range(len(weeks))
    bottom.set_title(words["chart_trend"], loc="left", fontsize=12)
    bottom.bar([p - 0.2 for p in positions], [w.claims for w in weeks], width=0.4,
               color=CLAIMS_COLOR, label=words["claims"])  # fmt: skip
    bottom.bar([p + 0.2 for p in positions], [w.lapses for w in weeks], width=0.4,
               color=LAPSES_COLOR, label=words["lapses"])  # fmt: skip
    bottom.set_xticks(list(positions), [w.label.split("-")[1] for w in weeks], fontsize=8)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.legend(loc="upper left", fontsize=8, frameon=False)
    for axes in (top, bottom):
        axes.spines[["top", "right"]].set_visible(False)

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


async def chart_png(report: Report) -> bytes:
    """Draw the chart in a worker thread: drawing takes a noticeable fraction of a second."""
    return await asyncio.to_thread(render_png, report)
