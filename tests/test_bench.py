"""The scale benchmark runs end to end (at a hundredth of its size) and reports its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_scale_benchmark_prints_one_json_object_last():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--db", "sqlite", "--scale", "0.01"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in (
        "digest_small_s",
        "digest_large_s",
        "digest_ratio",
        "sweep_small_s",
        "sweep_large_s",
        "sweep_ratio",
        "statements_small",
        "statements_large",
        "peak_mb",
    ):
        assert key in result, key
    assert result["statements_small"] == result["statements_large"]  # batched, not per partner
    assert result["digest_large_rendered"] > result["digest_small_rendered"] > 0


def test_report_benchmark_prints_one_json_object_last():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "reports.py"), "--db", "sqlite", "--scale", "0.01"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("seconds", "peak_mb", "statements", "statements_at_200_partners"):
        assert key in result, key
    assert result["statements"] == result["statements_at_200_partners"]  # not per partner
    assert result["audit_events"] >= 10_000 and result["claims_in_week"] > 0


def test_cli_benchmark_prints_its_ratios_last():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cli.py"), "--runs", "1", "--leads", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["pool_leads_shown"] == 8  # the demo's three open leads for Alpine + 5
    for key in ("typer_ms", "help_ms", "pool_ms", "help_ratio", "pool_ratio", "ok"):
        assert key in result, key
    assert result["help_ratio"] > 0 and result["pool_ratio"] > result["help_ratio"]
