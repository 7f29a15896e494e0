"""Rules of the package's layout that no single behaviour test would notice breaking."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_llmobs"
SHIPPED = sorted(p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: list[str] = []
    package = ".".join(("pytest_llmobs", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                names.append(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.append(node.module or "")
    return names


def test_shipped_code_never_imports_the_test_helpers() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in SHIPPED
        for name in _imports(path)
        if name == "pytest_llmobs.testing" or name.startswith("pytest_llmobs.testing.")
    ]
    assert offenders == []


def test_files_are_replaced_in_one_place() -> None:
    """Every file the plugin writes goes through atomic.py (fsync, mode kept, no temp left)."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in SHIPPED
        if path.name != "atomic.py"
        and any(call in path.read_text(encoding="utf-8") for call in ("os.replace(", "mkstemp("))
    ]
    assert offenders == []
