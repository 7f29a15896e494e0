"""`make test-floor` runs this in the floor venv: every direct dependency must be installed at
exactly the floor pyproject.toml declares. A resolver may lift one above it (another package
needs more), and then that floor is untested: this says which, and the floor to declare.

Run: .venv-floor/bin/python tests/check_floors.py [GROUP ...]   (default: the `test` group)
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def declared(groups: list[str]) -> list[Requirement]:
    """The runtime dependencies, every extra's and the named groups', with a `>=` floor."""
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data["project"]
    texts = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    for group in groups:
        texts += data["dependency-groups"][group]
    return [Requirement(text) for text in texts]


def floor(requirement: Requirement) -> Version | None:
    found = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return max(found) if found else None


def lifted(groups: list[str]) -> list[str]:
    """One line per direct dependency installed at a release other than its floor."""
    problems = []
    for requirement in declared(groups):
        wanted = floor(requirement)
        if wanted is None or (requirement.marker and not requirement.marker.evaluate()):
            continue
        try:
            installed = Version(metadata.version(requirement.name))
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name}: not installed (floor {wanted})")
            continue
        if installed.release[: len(wanted.release)] != wanted.release:
            problems.append(
                f"{requirement.name}: {installed} installed, floor {wanted} — something needs "
                f"more: declare '{requirement.name}>={installed}' or lower what lifts it"
            )
    return problems


def main(argv: list[str]) -> int:
    problems = lifted(argv or ["test"])
    for line in problems:
        print(f"check_floors: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
