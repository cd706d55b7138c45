"""An import-linter contract type for what the built-in one cannot say: "no PySide6.QtWidgets here"."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) for every import in a file, at any depth; ``from a import b`` gives ``a.b``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


class ForbiddenExternalSubmodulesContract(Contract):
    """The source packages must not import these submodules of external packages, directly.

    import-linter keeps one node per external package (``PySide6``), so its ``forbidden`` contract
    cannot tell ``PySide6.QtCore`` from ``PySide6.QtWidgets``; this one reads the source files.
    Indirect routes go through modules of this project, which the ``forbidden`` contracts cover.
    """

    type_name = "forbidden_external_submodules"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    forbidden_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        forbidden = [str(name) for name in self.forbidden_modules]  # type: ignore[attr-defined]
        violations = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            for module in sorted({source.name} | graph.find_descendants(source.name)):
                spec = importlib.util.find_spec(module)
                if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
                    continue
                for line, name in imported_names(Path(spec.origin)):
                    if any(name == f or name.startswith(f + ".") for f in forbidden):
                        violations.append((module, line, name))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, line, name in check.metadata["violations"]:
            output.print_error(f"{module} imports {name} (l.{line})", bold=False)
            output.new_line()
