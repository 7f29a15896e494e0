"""The environment every benchmark measures in: the one an installed plugin runs in.

An installed package has its bytecode compiled (pip does it), so a pytest run does not
compile the plugin's ~100 modules from source (about 0.25 s per process). A source
checkout run with PYTHONDONTWRITEBYTECODE (some CI and sandbox shells set it) would; the
benchmarks compile the package once and let the processes they start use the bytecode.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

import pytest_llmobs


def prepare() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(pytest_llmobs.__file__).parent, quiet=1)


def pytest_command() -> list[str]:
    """`python -m pytest` as every benchmark starts it: quiet, no cache, and without the
    plugin of an unrelated package in this venv: langsmith (installed with langchain for the
    tests) has a pytest plugin whose import takes about 0.75 s in every pytest process, the
    same for every tool measured, which would only blur the differences between them."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:langsmith_plugin",
    ]
