"""The wheel's package list covers every package directory of the repository."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    listed = set(config["packages"])
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            sub = init.parent.relative_to(ROOT / folder).parts
            package = ".".join((name, *sub))
            assert package in listed, f"{package} ({init.parent}) is missing from pyproject.toml"


def test_help_imports_neither_the_store_nor_slack_charts_or_the_web_app():
    """`lyra-bot --help` must stay fast (bench/cli.py): none of the heavy imports."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "from lyra_bot.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('tortoise', 'pydantic', 'slack_bolt', 'slack_sdk', 'matplotlib', 'aiohttp',\n"
        "         'asyncio', 'jinja2', 'lyra_bot.models', 'lyra_bot.bus', 'lyra_bot.app')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "# a lazy module (lyra_bot.lazy) sits in sys.modules unexecuted until first used\n"
        "print(json.dumps([m for m in loaded if type(sys.modules[m]).__name__ != '_LazyModule']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
