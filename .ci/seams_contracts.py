"""An import-linter contract type for modules inside an external package.

import-linter's ``forbidden`` contract cannot name ``email.mime`` or ``email.message``: its
graph holds external packages by their top-level name only (``email``). This contract reads
each direct import of such a package back from its source line, so ``from email.mime.text
import MIMEText`` and ``from email import message`` are caught while ``email.utils`` is not.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+import\b")


def imported_names(line: str) -> list[str]:
    """Every dotted name an import line may bring in (module, and module.name)."""
    try:
        tree = ast.parse(line.strip())
    except SyntaxError:  # the first line of a parenthesised import: its module only
        match = _FROM.match(line)
        return [match.group(1)] if match else []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


class ForbiddenNames(Contract):
    """``source_modules`` (and their descendants) may not import ``forbidden_names``
    directly, dotted names inside external packages included."""

    source_modules = fields.ListField(subfield=fields.ModuleField())
    forbidden_names = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        forbidden = [str(name) for name in self.forbidden_names]
        roots = {name.split(".")[0] for name in forbidden}
        violations: list[dict[str, Any]] = []
        for source in self.source_modules:
            importers = {source.name} | graph.find_descendants(source.name)
            for importer in sorted(importers):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported.split(".")[0] not in roots:
                        continue
                    for detail in graph.get_import_details(importer=importer, imported=imported):
                        hits = [
                            name
                            for name in imported_names(detail["line_contents"])
                            if any(name == f or name.startswith(f + ".") for f in forbidden)
                            or (name in roots and "(" in detail["line_contents"])
                        ]
                        if hits:
                            violations.append({**detail, "names": hits})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            output.print_error(
                f"{violation['importer']} imports {', '.join(violation['names'])} "
                f"(l.{violation['line_number']}: {violation['line_contents'].strip()})",
                bold=False,
            )
            output.new_line()
