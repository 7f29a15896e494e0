"""Which vcrpy the plugin works with, checked when pytest starts.

The check reads the installed version from the package metadata: importing vcrpy costs
~0.4 s, which only runs that open a cassette pay. An older vcrpy is a usage error that
says what to do, instead of an INTERNALERROR in the middle of the run.
"""

from __future__ import annotations

import re
from importlib import metadata

FLOOR = (7, 0)  # the `vcrpy>=7.0` in pyproject.toml (a test keeps the two the same)
_FLOOR_TEXT = ".".join(map(str, FLOOR))
FIX = f"pip install -U 'vcrpy>={_FLOOR_TEXT}'"


def installed() -> str | None:
    """The installed vcrpy's version, or None when it is not installed."""
    try:
        return metadata.version("vcrpy")
    except metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version: '8.1.1' → (8, 1, 1), '9.0.0rc1' → (9, 0, 0)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def problem(version: str | None) -> str | None:
    """Why the plugin cannot use this vcrpy version, or None when it can."""
    needs = f"pytest-llmobs needs vcrpy >= {_FLOOR_TEXT}"
    if version is None:
        return f"{needs}, which is not installed: {FIX}"
    if release(version) < FLOOR:
        return f"{needs}, but vcrpy {version} is installed: {FIX}"
    return None
