"""The dashboard is an edge beside flows/: it imports the operations below both, never flows/."""

from __future__ import annotations

import ast
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_dashboard_module_imports_flows() -> None:
    offenders = [
        f"{path.relative_to(DASHBOARD.parent)}:{line} imports {module}"
        for path in sorted(DASHBOARD.rglob("*.py"))
        for line, module in _imported_modules(path)
        if module == "flows" or module.startswith("flows.")
    ]
    assert offenders == []


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from flows.cli import _rt\n    import flows.output\n", encoding="utf-8")
    assert [m for _, m in _imported_modules(sample)] == ["flows.cli", "flows.output"]
