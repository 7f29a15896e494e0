"""The environment every benchmark measures in: the one an installed plugin runs in.

An installed package has its bytecode compiled (pip does it), so a pytest run does not
compile the plugin's ~100 modules from source (about 0.25 s per process). A source
checkout run with PYTHONDONTWRITEBYTECODE (some CI and sandbox shells set it) would; the
benchmarks compile the package once and let the processes they start use the bytecode.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest_llmobs


def prepare() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(pytest_llmobs.__file__).parent, quiet=1)
