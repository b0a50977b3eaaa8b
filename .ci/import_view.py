"""Print the path of a fresh view of ``lyra_bot`` as it installs, for import-linter.

The repository keeps ``adapters/``, ``handlers/`` and ``templates/`` beside ``lyra_bot/``
(setuptools ``package-dir``); import-linter (grimp) only walks the directory of the root
package, so it would never see them. The view is a directory of symbolic links laid out like
the wheel (``lyra_bot/adapters`` → ``adapters/`` …), read from pyproject.toml, plus the
project's own contract types. Run ``lint-imports`` inside it (as .ci/run does):

    view="$(python .ci/import_view.py)"
    (cd "$view" && lint-imports "$OLDPWD/pyproject.toml" --no-cache)
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(target: Path) -> Path:
    """Lay the view out in ``target`` (created); returns it."""
    mapping: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-dir"]
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        place = target.joinpath(*package.split("."))
        if "." not in package:  # the root package: a real folder, its entries linked
            place.mkdir(parents=True, exist_ok=True)
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__" and entry.name not in mapping_children(mapping):
                    (place / entry.name).symlink_to(entry)
        else:
            place.symlink_to(ROOT / folder, target_is_directory=True)
    (target / "seams_contracts.py").symlink_to(ROOT / ".ci" / "seams_contracts.py")
    return target


def mapping_children(mapping: dict[str, str]) -> set[str]:
    return {name.split(".", 1)[1] for name in mapping if "." in name}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(build(Path(sys.argv[1])))
    else:
        print(build(Path(tempfile.mkdtemp(prefix="lyra-imports-"))))
