"""pytest-xdist: what a worker knows beyond its test reports reaches the controller.

Per-test data travels on each test's teardown report: figures, and the test's artifact
lines, built and redacted on the worker (report/hooks.py). What belongs to no test — LLM calls
made while no test ran (at collection, in session hooks, responses that finished after
their test), our own swallowed errors, the cassettes a worker wrote or could not write,
requests outside any test that no cassette answered — is handed over once, through
`config.workeroutput` at the end of the worker's session. The controller merges each part
in `pytest_testnodedown`, before its own `pytest_sessionfinish` checks, writes and prints.
Registered only when xdist is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pytest

KEY = "llmobs"  # our entry in workeroutput (plain data: execnet serializes it)


class WorkerPart(Protocol):
    """One component's share of the hand-over."""

    def worker_output(self) -> dict[str, Any]:
        """On a worker, at the end of its session: plain data for the controller."""
        ...

    def merge_worker(self, data: Mapping[str, Any]) -> None:
        """On the controller, once per worker that finished."""
        ...


class XdistHooks:
    def __init__(self, config: pytest.Config, parts: Mapping[str, WorkerPart]) -> None:
        self.config = config
        self.parts = dict(parts)

    @pytest.hookimpl(trylast=True)  # after every part finished its own session work
    def pytest_sessionfinish(self) -> None:
        output = getattr(self.config, "workeroutput", None)
        if isinstance(output, dict):  # only workers have one
            output[KEY] = {name: part.worker_output() for name, part in self.parts.items()}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        # A crashed worker (error set) sent no output: its tests' reports are all there is.
        data = getattr(node, "workeroutput", None) or {}
        mine = data.get(KEY) if isinstance(data, dict) else None
        if not isinstance(mine, dict):
            return
        for name, part in self.parts.items():
            if isinstance(mine.get(name), dict):
                part.merge_worker(mine[name])
