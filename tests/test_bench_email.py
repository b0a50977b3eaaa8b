"""The email benchmark runs end to end (small) and reports its JSON; its file name does not
hide the standard library's ``email`` from the other scripts in bench/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_email_benchmark_prints_one_json_object_last():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "email.py"), "--n", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("smtp_ratio", "inbound_ratio", "smtp_outbox_per_s", "smtp_raw_per_s"):
        assert result[key] > 0, key
    assert result["mails"] == 120 and result["smtp_ratio_vs_bytes"] > 0
