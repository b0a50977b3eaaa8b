"""The seams hold: import-linter's contracts (pyproject.toml ``[tool.importlinter]``) pass on
this checkout, and fail when an adapter reaches the store or a handler reaches a channel.

``lint-imports`` runs as ``.ci/run`` runs it: in the view ``.ci/import_view.py`` lays out,
where ``lyra_bot`` holds ``adapters/`` and ``handlers/`` as the installed wheel does.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"

spec = importlib.util.spec_from_file_location("import_view", ROOT / ".ci" / "import_view.py")
assert spec is not None and spec.loader is not None
import_view = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_view)


def lint(view: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=view,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold(tmp_path: Path) -> None:
    result = lint(import_view.build(tmp_path / "view"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def _unlinked(folder: Path) -> Path:
    """``folder`` (a link to a package) as a real folder of links, so a module can be added
    to the view without touching the checkout."""
    source = folder.resolve()
    folder.unlink()
    folder.mkdir()
    for entry in source.iterdir():
        (folder / entry.name).symlink_to(entry)
    return folder


def test_a_violation_breaks_its_contract(tmp_path: Path) -> None:
    view = import_view.build(tmp_path / "view")
    adapters = _unlinked(view / "lyra_bot" / "adapters")
    (adapters / "sneaky.py").write_text(
        "from lyra_bot.models import Lead\nfrom lyra_bot.handlers.common import lead_by_ref\n"
        "from lyra_bot.app import bootstrap\n"
    )
    handlers = _unlinked(view / "lyra_bot" / "handlers")
    (handlers / "sneaky.py").write_text(
        "import slack_sdk\nfrom email import message\nfrom email.utils import parseaddr\n"
        "from lyra_bot.adapters.slack import blocks\n"
    )
    result = lint(view)
    assert result.returncode == 1
    assert "0 kept, 4 broken" in result.stdout, result.stdout
    for line in (
        "lyra_bot.adapters.sneaky -> lyra_bot.models",
        "lyra_bot.adapters.sneaky -> lyra_bot.handlers.common",
        "lyra_bot.adapters.sneaky -> lyra_bot.app",
        "lyra_bot.handlers.sneaky -> slack_sdk",
        "lyra_bot.handlers.sneaky -> lyra_bot.adapters.slack.blocks",
        "lyra_bot.handlers.sneaky imports email.message",
    ):
        assert line in result.stdout, line
    assert "email.utils" not in result.stdout  # only MIME is forbidden
