"""Per-test results as plain data, so they travel on test reports (pytest-xdist
serializes report attributes) and are aggregated once, on the controller."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .calls import LLMCall
from .capture import TestCapture

REPORT_ATTR = "llmobs"  # attribute name on the teardown TestReport


def call_record(call: LLMCall) -> dict[str, Any]:
    """A JSON-safe summary of one call (bodies left out: reports carry figures, not content)."""
    return {
        "provider": call.provider,
        "operation": call.operation,
        "model": call.model,
        "stream": call.stream,
        "status_code": call.status_code,
        "error_type": call.error_type,
        "attempt": call.attempt,
        "source": call.source,
        "truncated": call.truncated,
        "truncation_reason": call.truncation_reason,
        "finish_reasons": list(call.finish_reasons),
        "duration_s": call.effective_duration_s,
        "time_to_first_chunk_s": call.effective_time_to_first_chunk_s,
        "usage": asdict(call.usage),
        "attributes": {k: v for k, v in call.attributes.items() if _plain(v)},
    }


def payload(capture: TestCapture) -> dict[str, Any]:
    return {
        "nodeid": capture.nodeid,
        "calls": [call_record(c) for c in capture.calls],
        "span_count": len(capture.spans),
    }


@dataclass
class TestRow:
    nodeid: str
    outcome: str
    calls: list[dict[str, Any]]

    @property
    def input_tokens(self) -> int:
        return sum(c["usage"]["input_tokens"] or 0 for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c["usage"]["output_tokens"] or 0 for c in self.calls)


@dataclass
class RunSummary:
    """Collected on whichever process writes output: the controller, or the only one."""

    rows: dict[str, TestRow] = field(default_factory=dict)

    def add(self, nodeid: str, outcome: str, data: dict[str, Any] | None) -> None:
        row = self.rows.setdefault(nodeid, TestRow(nodeid, outcome, []))
        if outcome != "passed" or row.outcome == "passed":
            row.outcome = outcome if row.outcome == "passed" else row.outcome
        if data is not None:
            row.calls = list(data["calls"])

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [c for row in self.rows.values() for c in row.calls]


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
