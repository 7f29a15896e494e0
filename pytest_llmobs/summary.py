"""Per-test results as plain data, so they travel on test reports (pytest-xdist
serializes report attributes) and are aggregated once, on the controller.

A test's payload is built where the test ran: call records (figures, and content per the
content mode, already redacted), the budget / truncation violations, the cassette, and its
spans as OTLP-JSON-ready dicts. Whoever writes artifacts consumes the heavy parts (spans,
content) as each report arrives and keeps only the figures (`RunSummary`), so memory stays
flat however long the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .budgets import TestChecks, Violation, check_test, percentile, unchecked
from .calls import LLMCall
from .capture import OUTSIDE, TestCapture
from .evaluations import scores
from .pricing import Pricing
from .redaction import Redactor
from .spikes import prompt_hash

REPORT_ATTR = "llmobs"  # attribute name on the teardown TestReport
CONTENT_MODES = ("none", "redacted", "full")
# Request body keys that hold content rather than parameters.
_CONTENT_KEYS = frozenset(
    {"messages", "input", "system", "contents", "prompt", "instructions", "systemInstruction"}
)
_CONTEXT_PREFIXES = ("gen_ai.conversation.", "user.action.", "llmobs.context.")


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
        "usage": call.usage.as_dict(),
        "attributes": {k: v for k, v in call.attributes.items() if _plain(v)},
        "prompt_hash": prompt_hash(call),  # the same request in any run (token spikes)
    }


@dataclass(frozen=True)
class PayloadOptions:
    """How a test's payload is built: content mode, redaction, prices, whether checks run."""

    content: str = "redacted"  # none | redacted | full
    redactor: Redactor = field(default_factory=Redactor)
    pricing: Pricing | None = None
    checks: bool = True


def payload(
    capture: TestCapture,
    options: PayloadOptions | None = None,
    *,
    checks: TestChecks | None = None,
    cassette: str | None = None,
) -> dict[str, Any]:
    """The teardown report's `llmobs` attribute: JSON-safe, redacted."""
    options = options or PayloadOptions()
    redactor = options.redactor
    calls = list(capture.calls)
    evaluations = [
        {**e.to_dict(), "explanation": redactor.text(e.explanation) if e.explanation else None}
        for e in capture.evaluations
    ]
    checks = checks or TestChecks()
    found: list[Violation] = []
    notes: list[str] = []
    if options.checks and (calls or evaluations or checks.budget.min_score):
        found = check_test(calls, checks, options.pricing, evaluations)
        notes = unchecked(calls, checks.budget)
    stages = call_stages(calls, capture.spans)
    index = {id(c): i for i, c in enumerate(calls)}
    violating = {index[id(c)] for v in found for c in v.calls if id(c) in index}
    records = []
    for i, call in enumerate(calls):
        record = call_record(call)
        record["attributes"] = redactor.json(record["attributes"])
        cost = (options.pricing or _PRICING).cost(call)
        record.update(
            index=i,
            model=redactor.text(call.model) if call.model else None,  # printed everywhere
            started_at=call.started_at,
            cost_usd=cost.usd,
            url=redactor.url(call.url),
            request_id=call.request_id,
            response_id=call.response_id,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            error=redactor.text(call.error) if call.error else None,
            context={
                k: v for k, v in record["attributes"].items() if k.startswith(_CONTEXT_PREFIXES)
            },
            violating=i in violating,
            stage=stages[i],
        )
        if cost.usd is None:  # why, for the cost line and session budget wherever they run
            record["cost_problem"] = cost.problem
        if options.content != "none":
            record["content"] = _content(call, redactor)
        records.append(record)
    return {
        "nodeid": capture.nodeid,
        "calls": records,
        "span_count": len(capture.spans),
        "violations": [_violation(v, index, redactor) for v in found],
        "unchecked": [redactor.text(note) for note in notes],  # limits with unknown figures
        "cassette": cassette,
        "evaluations": evaluations,
    }


def call_stages(calls: Sequence[LLMCall], spans: Sequence[Any]) -> list[str | None]:
    """Each call's stage: the name of the nearest enclosing span that is not itself a GenAI
    call span (the app's `retrieve`, `rerank`, `answer`); None when the call had no parent
    among the test's spans."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    by_hex = {format(k, "016x"): v for k, v in by_id.items()}
    out: list[str | None] = []
    for call in calls:
        span = by_hex.get(str(call.attributes.get("llmobs.span_id")))
        stage = None
        seen = 0
        while span is not None and span.parent is not None and seen < 256:
            span, seen = by_id.get(span.parent.span_id), seen + 1
            if span is not None and "gen_ai.operation.name" not in (span.attributes or {}):
                stage = span.name
                break
        out.append(stage)
    return out


def _content(call: LLMCall, redactor: Redactor) -> dict[str, Any]:
    body = call.request_body if isinstance(call.request_body, dict) else {}
    params = {k: v for k, v in body.items() if k not in _CONTENT_KEYS and _jsonable(v)}
    messages = {k: v for k, v in body.items() if k in _CONTENT_KEYS}
    return {
        "params": redactor.json(params),
        "messages": redactor.json(messages),
        "response": redactor.text(call.output_text) if call.output_text is not None else None,
    }


def _violation(v: Violation, index: Mapping[int, int], redactor: Redactor) -> dict[str, Any]:
    return {
        "kind": "truncation" if v.key == "truncation" else "budget",
        "key": v.key,
        "message": redactor.text(v.summary),
        "detail": redactor.text(v.detail),
        "origin": v.origin,
        "calls": [index[id(c)] for c in v.calls if id(c) in index],
    }


# -- the figures every artifact shows -------------------------------------------------------
def findings(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A test's violations: budget and truncation checks, then failing chaos findings."""
    out = list(test.get("violations") or [])
    chaos = test.get("chaos") or {}
    for f in chaos.get("findings") or []:
        if f.get("severity") == "error":
            out.append(
                {
                    "kind": "resilience",
                    "key": f.get("code", "?"),
                    "message": f"{f.get('code', '?')}: {f.get('message', '')}",
                    "detail": f.get("message", ""),
                    "origin": "chaos",
                    "calls": list(f.get("calls") or []),
                }
            )
    return out


def figures(test: Mapping[str, Any]) -> dict[str, Any]:
    """The per-test numbers (JUnit properties, terminal, GitHub): scalars, None if unknown."""
    calls: Sequence[Mapping[str, Any]] = test.get("calls") or []
    costs = [c.get("cost_usd") for c in calls]
    latencies = [c["duration_s"] for c in calls if c.get("duration_s") is not None]
    ttfts = [
        c["time_to_first_chunk_s"]
        for c in calls
        if c.get("stream") and c.get("time_to_first_chunk_s") is not None
    ]
    chaos = test.get("chaos") or {}
    return {
        "calls": len(calls),
        "input_tokens": sum(c["usage"].get("input_tokens") or 0 for c in calls),
        "output_tokens": sum(c["usage"].get("output_tokens") or 0 for c in calls),
        "cost_usd": _round(sum(c for c in costs if c is not None))
        if any(c is not None for c in costs)
        else None,
        "p95_latency_s": _round(percentile(latencies, 95)),
        "ttft_p50_s": _round(percentile(ttfts, 50)),
        "truncations": sum(1 for c in calls if c.get("truncated")),
        "violations": len(findings(test)),
        "chaos_faults": len(chaos.get("faults") or []),
        "chaos_verdict": chaos.get("status"),
        "cassette": test.get("cassette"),
        "unchecked": "; ".join(test.get("unchecked") or []) or None,
        # lowest score per evaluation name (llmobs.evaluate)
        **{f"score.{k}": v for k, v in scores(test.get("evaluations") or []).items()},
    }


def totals(
    tests: Iterable[Mapping[str, Any]], outside: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Run-wide sums over `figures` of every test, plus the calls made outside any test
    (`outside`: call records; they count in calls, tokens, cost, latency, truncations)."""
    tests = list(tests)
    each = [figures(t) for t in tests]
    extra = figures({"calls": outside})
    costs = [f["cost_usd"] for f in (*each, extra) if f["cost_usd"] is not None]
    latencies = [
        c["duration_s"]
        for calls in (*(t.get("calls") or [] for t in tests), outside)
        for c in calls
        if c.get("duration_s")
    ]
    return {
        "tests": len(tests),
        "tests_with_calls": sum(1 for f in each if f["calls"]),
        "calls": sum(f["calls"] for f in each) + extra["calls"],
        "input_tokens": sum(f["input_tokens"] for f in each) + extra["input_tokens"],
        "output_tokens": sum(f["output_tokens"] for f in each) + extra["output_tokens"],
        "cost_usd": _round(sum(costs)) if costs else None,
        "p95_latency_s": _round(percentile(latencies, 95)),
        "violations": sum(f["violations"] for f in each),
        "tests_with_violations": sum(1 for f in each if f["violations"]),
        "truncations": sum(f["truncations"] for f in each) + extra["truncations"],
        "chaos_faults": sum(f["chaos_faults"] for f in each),
        "failed": sum(1 for t in tests if t.get("outcome") == "failed"),
        "outside_calls": extra["calls"],
    }


@dataclass
class TestRow:
    nodeid: str
    outcome: str
    calls: list[dict[str, Any]]
    location: tuple[str, int | None] | None = None
    duration_s: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    chaos: dict[str, Any] | None = None
    cassette: str | None = None
    span_count: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def input_tokens(self) -> int:
        return sum(c["usage"]["input_tokens"] or 0 for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c["usage"]["output_tokens"] or 0 for c in self.calls)

    def to_dict(self) -> dict[str, Any]:
        """The test as it goes into summary.json (and what every report module reads)."""
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "location": list(self.location) if self.location else None,
            "duration_s": round(self.duration_s, 6),
            "calls": self.calls,
            "violations": self.violations,
            "unchecked": self.unchecked,
            "chaos": self.chaos,
            "cassette": self.cassette,
            "span_count": self.span_count,
            "evaluations": self.evaluations,
        }


@dataclass
class RunSummary:
    """Collected on whichever process writes output: the controller, or the only one.

    `outside` holds the call records (figures only) of calls made while no test ran, from
    this process and, under xdist, from every worker; `internal_errors` what our own
    response processing swallowed so the app's HTTP calls never broke."""

    rows: dict[str, TestRow] = field(default_factory=dict)
    outside: list[dict[str, Any]] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)

    def add_outside(self, data: Mapping[str, Any]) -> None:
        self.outside += [{k: v for k, v in c.items() if k != "content"} for c in data["calls"]]

    def calls_by_test(self) -> dict[str, list[dict[str, Any]]]:
        """nodeid → call records, the calls outside any test under their own key: what
        the session budget and the cost line count."""
        tests = {row.nodeid: row.calls for row in self.rows.values()}
        if self.outside:
            tests[OUTSIDE] = self.outside
        return tests

    def add(
        self,
        nodeid: str,
        outcome: str,
        data: dict[str, Any] | None,
        location: tuple[str, int | None, str] | None = None,
        duration: float = 0.0,
    ) -> None:
        row = self.rows.setdefault(nodeid, TestRow(nodeid, outcome, []))
        if outcome != "passed" or row.outcome == "passed":
            row.outcome = outcome if row.outcome == "passed" else row.outcome
        row.duration_s += duration or 0.0
        if location is not None and row.location is None:
            row.location = (str(location[0]), location[1])
        if data is not None:
            # figures only: content and spans were written out already (or never asked for)
            # (the report's own records when they hold no content: pytest keeps every report
            # all session, a copy here would double what a long run keeps per call)
            row.calls = [
                {k: v for k, v in c.items() if k != "content"} if "content" in c else c
                for c in data["calls"]
            ]
            row.violations = list(data.get("violations") or [])
            row.unchecked = [str(note) for note in data.get("unchecked") or []]
            row.chaos = data.get("chaos")
            row.cassette = data.get("cassette")
            row.span_count = int(data.get("span_count") or 0)
            row.evaluations = list(data.get("evaluations") or [])

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [c for row in self.rows.values() for c in row.calls]

    def tests(self) -> dict[str, dict[str, Any]]:
        return {nodeid: row.to_dict() for nodeid, row in self.rows.items()}


_PRICING = Pricing()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _jsonable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool | list | dict)
