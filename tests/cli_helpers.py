"""Running ``lyra-bot`` as a real process, the way an admin does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

LYRA = shutil.which("lyra-bot") or str(Path(sys.executable).parent / "lyra-bot")


def lyra_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(
        LYRA_DATABASE_URL=database_url,
        LYRA_OUTBOX_DIR=str(tmp_path / "outbox"),
        LYRA_SECRET_KEY="test-secret-" + "x" * 32,
        LYRA_MAIL_FROM="Lyra <lyra@lyra.test>",
        LYRA_INBOUND_ADDRESS="leads@lyra.test",
        COLUMNS="200",
        **extra,
    )
    return env


def cli(
    env: dict[str, str], *args: str, ok: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [LYRA, *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json").stdout)
