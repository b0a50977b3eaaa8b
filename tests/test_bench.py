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
