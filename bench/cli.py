"""How fast ``lyra-bot`` starts: ``--help`` and a real listing, against ``import typer``.

Every CLI command is a new Python process, so its start-up is what an admin waits for.
In one run, interleaved round by round (a noisy machine slows all three alike), this times:

- ``python -c "import typer"`` — the baseline: the least any Typer CLI can cost;
- ``lyra-bot --help`` — must not import the ORM, Slack, matplotlib or the web app;
- ``lyra-bot pool --as … --json`` on a seeded SQLite database (the demo's story plus
  ``--leads`` more leads) — opens the store, dispatches ``ListPool`` through the bus.

The last line is JSON: medians in milliseconds, ``help_ratio`` and ``pool_ratio`` (median ÷
the baseline's median; targets 2 and 4) and ``ok``.

    python bench/cli.py [--runs 9] [--leads 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP_TARGET = 2.0
POOL_TARGET = 4.0
AS_USER = "mia@alpine-it.example"  # the demo's Alpine user: products Firewall, VPN; region CH


def lyra_bot() -> str:
    return shutil.which("lyra-bot") or str(Path(sys.executable).parent / "lyra-bot")


def seed(folder: Path, leads: int) -> dict[str, str]:
    """The demo's database plus ``leads`` open leads Alpine may see; the environment to use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    database = folder / "bench.db"
    env.update(LYRA_DATABASE_URL=f"sqlite://{database}", LYRA_OUTBOX_DIR=str(folder / "outbox"))
    subprocess.run(
        [lyra_bot(), "demo", "--database", str(database), "--outbox-dir", str(folder / "mails")],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
    )
    path = folder / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("product", "region", "industry", "need", "company", "email"))
        for i in range(leads):
            writer.writerow(
                (
                    "Firewall X200" if i % 2 else "VPN Gateway",
                    ("CH-ZH", "CH-BE", "CH-GE", "CH-TI")[i % 4],
                    "Retail",
                    f"Network for site {i}",
                    f"Company {i} AG",
                    f"buyer{i}@company{i}.example",
                )
            )
    subprocess.run(
        [lyra_bot(), "lead", "import", str(path), "--allow-duplicates"],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall-clock seconds of one process from spawn to exit (output discarded)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv}: exit {proc.returncode}\n{proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (median)")
    parser.add_argument("--leads", type=int, default=300, help="leads added to the demo's")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lyra-bench-cli-") as tmp:
        folder = Path(tmp)
        env = seed(folder, args.leads)
        pool = json.loads(
            subprocess.run(
                [lyra_bot(), "pool", "--as", AS_USER, "--json"],
                env=env,
                cwd=folder,
                check=True,
                capture_output=True,
            ).stdout
        )
        commands = {
            "typer": [sys.executable, "-c", "import typer"],
            "help": [lyra_bot(), "--help"],
            "pool": [lyra_bot(), "pool", "--as", AS_USER, "--json"],
        }
        for argv in commands.values():  # warm the file cache and the bytecode
            timed(argv, env, folder)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(timed(argv, env, folder))

    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "runs": args.runs,
        "pool_leads_shown": len(pool.get("leads", [])),
        "typer_ms": round(median["typer"] * 1000, 1),
        "help_ms": round(median["help"] * 1000, 1),
        "pool_ms": round(median["pool"] * 1000, 1),
        "help_ratio": round(median["help"] / median["typer"], 2),
        "pool_ratio": round(median["pool"] / median["typer"], 2),
        "help_target": HELP_TARGET,
        "pool_target": POOL_TARGET,
    }
    result["ok"] = result["help_ratio"] <= HELP_TARGET and result["pool_ratio"] <= POOL_TARGET
    for name in commands:
        values = ", ".join(f"{v * 1000:.0f}" for v in sorted(times[name]))
        print(f"{name:>5}: median {median[name] * 1000:6.1f} ms  ({values})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
