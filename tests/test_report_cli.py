"""``lyra-bot report`` as a real process over a known history: table, JSON, CSV (safe for
spreadsheets, with a BOM on request) and the chart file."""

from __future__ import annotations

import csv
import io
import json

from PIL import Image

from lyra_bot import commands as c
from lyra_bot.reports.exports import safe_cell, to_csv
from tests.cli_helpers import cli, lyra_env
from tests.report_history import build_history


async def test_report_cli_formats(services, clock, settings, tmp_path):
    world = await build_history(services, clock)
    await world.ok(c.AddPartner("evil", '=HYPERLINK("http://x")', ("*",), ("CH",)), world.owner)
    await world.ok(c.AddLead("@SUM(A1:A9)", "CH-ZH", need="odd product"), world.owner)
    env = lyra_env(settings.database_url, tmp_path)

    data = json.loads(cli(env, "report", "acme", "--week", "2026-W45", "--format", "json").stdout)
    assert data["schema"] == "lyra.report/1" and data["period"]["label"] == "2026-W45"
    assert data["totals"]["claims"] == 5 and data["totals"]["revenue"]["EUR"] == "5000.00"

    path = tmp_path / "partners.csv"
    chart = tmp_path / "chart.png"
    cli(env, "report", "acme", "--from", "2026-11-02", "--to", "2026-11-15", "--format", "csv",
        "--bom", "-o", str(path), "--chart", str(chart))  # fmt: skip
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    by_slug = {row["partner"]: row for row in rows}
    assert by_slug["alpine"]["claims"] == "5" and by_slug["alpine"]["lapses"] == "2"
    assert by_slug["alpine"]["revenue_CHF"] == "15000.00"
    assert by_slug["evil"]["name"] == '\'=HYPERLINK("http://x")'  # not a formula any more
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size == (800, 700)

    products = cli(env, "report", "acme", "--week", "this", "--format", "csv", "--by", "product")
    assert not products.stdout.startswith("\ufeff")
    cells = [row["product"] for row in csv.DictReader(io.StringIO(products.stdout))]
    assert "'@SUM(A1:A9)" in cells

    table = cli(env, "report", "acme", "--week", "2026-W46", "--by", "region").stdout
    assert "Weekly report" in table and "CH-ZH" in table and "Lakeside, Romandie" in table

    bad = cli(env, "report", "acme", "--week", "2026-W99", ok=False)
    assert bad.returncode == 1 and "is not a week" in bad.stderr
    both = cli(env, "report", "acme", "--week", "last", "--from", "2026-11-01", ok=False)
    assert both.returncode == 1 and "not both" in both.stderr
    unknown = cli(env, "report", "nobody", ok=False)
    assert unknown.returncode == 1 and "no tenant 'nobody'" in unknown.stderr


def test_csv_cells_that_spreadsheets_would_run_are_neutralised():
    for text in ("=1+1", "+41 44", "-2", "@cmd", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    assert safe_cell(-2) == -2 and safe_cell(0.5) == 0.5 and safe_cell(None) == ""
    assert safe_cell("Alpine AG") == "Alpine AG"
    text = to_csv([{"name": "=cmd|' /C calc'!A0", "n": -3}], bom=True)
    assert text == "\ufeffname,n\r\n'=cmd|' /C calc'!A0,-3\r\n"
