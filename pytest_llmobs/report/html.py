"""`report.html`: one self-contained page over a run's artifact files.

Built from `summary.json`, `traces.jsonl` and `prompts.jsonl` (plain or `.enc`), so a single
run, an xdist run and `llmobs merge` share this one path. The files are read a line at a
time and cut down to what the page shows (spans per test, excerpts of messages, attribute
values, all capped: `Limits`), so memory and page size stay bounded however big the run.

The page is static: the data is JSON in a `<script type="application/json">` (every `<`, `>`
and `&` escaped), rendered by a small inline script with `textContent` only (never as
markup), and a Content-Security-Policy with the hashes of the inline script and style allows
nothing else: no network fetch, no injected script can run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture import OUTSIDE
from ..summary import figures, findings
from .artifacts import PROMPTS, TRACES, load_summary
from .storage import artifact_lines, open_artifact
from .traces import CONTENT_ATTRIBUTES, SpanView, request_spans

if TYPE_CHECKING:
    from ..encryption.keys import KeySource

REPORT = "report.html"
_TTFT = "gen_ai.response.time_to_first_chunk"
_SHOWN_PREFIXES = ("gen_ai.", "llmobs.", "http.", "server.", "error.", "url.", "db.", "rpc.")


@dataclass(frozen=True)
class Limits:
    """What the page keeps at most; the rest is counted ("N more") and left in the files."""

    spans_per_test: int = 300
    excerpts_per_test: int = 8
    messages_per_excerpt: int = 8
    text_chars: int = 1500  # one message or response
    attributes_per_span: int = 24
    value_chars: int = 200
    calls_per_test: int = 50
    total_spans: int = 50_000
    total_text_chars: int = 3_000_000


def write_report(
    directory: Path,
    *,
    keys: KeySource | None = None,
    limits: Limits | None = None,
    traces: Callable[[list[SpanView]], None] | None = None,
) -> Path:
    """Write `directory/report.html` (`.enc` with `keys`) from the artifacts in it. Their
    content is already redacted and masked (every line was, when written), so the page is
    too; redacting it all again would double the time for nothing. `traces` gets each
    test's spans too, as read from `traces.jsonl` (the Perfetto file is made in this one
    pass)."""
    page = render(collect(directory, keys=keys, limits=limits, traces=traces))
    target = open_artifact(directory / REPORT, keys)
    with target as stream:
        stream.write(page)
    return target.path


# -- reading the artifacts --------------------------------------------------------------------
def collect(
    directory: Path,
    *,
    keys: KeySource | None = None,
    limits: Limits | None = None,
    traces: Callable[[list[SpanView]], None] | None = None,
) -> dict[str, Any]:
    """The page's data: run figures and one compact record per test (`traces`: as in
    `write_report`)."""
    limits = limits or Limits()
    summary = load_summary(directory)
    budget = _Budget(limits)
    tests: dict[str, dict[str, Any]] = {
        nodeid: _test(nodeid, test, limits) for nodeid, test in (summary.get("tests") or {}).items()
    }
    outside = (summary.get("outside_tests") or {}).get("calls") or []
    if outside:  # calls made while no test ran: a row of their own, as in the terminal
        tests[OUTSIDE] = _test(OUTSIDE, {"outcome": "outside", "calls": outside}, limits)
    for line in artifact_lines(directory / TRACES, keys):
        spans = request_spans(json.loads(line))
        if not spans:
            continue
        if traces is not None:
            traces(spans)
        nodeid = str(spans[0][0].get("test.case.name", "?"))
        row = _row(tests, nodeid, limits)
        row.update(_waterfall(spans, limits, budget))
    for line in artifact_lines(directory / PROMPTS, keys):
        record = json.loads(line)
        nodeid = str(record.get("test_id", "?"))
        row = _row(tests, nodeid, limits)
        if len(row["excerpts"]) >= limits.excerpts_per_test:
            row["excerpts_omitted"] += 1
            continue
        row["excerpts"].append(_excerpt(record, limits, budget))
    return {
        "format": "pytest-llmobs-report",
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_ids": summary.get("run_ids") or [],
        "settings": summary.get("settings") or {},
        "totals": summary.get("totals") or {},
        "session_result": summary.get("session_result"),
        "limits": asdict(limits),
        "budget_exhausted": budget.exhausted,
        "tests": list(tests.values()),
    }


def _row(tests: dict[str, dict[str, Any]], nodeid: str, limits: Limits) -> dict[str, Any]:
    """A test's row; one of its own for a test summary.json does not know (never expected)."""
    if nodeid not in tests:
        tests[nodeid] = _test(nodeid, {"nodeid": nodeid}, limits)
    return tests[nodeid]


@dataclass
class _Budget:
    """The run-wide caps: spans and excerpt characters left."""

    limits: Limits
    spans: int = 0
    chars: int = 0
    spans_full: bool = False
    text_full: bool = False

    @property
    def exhausted(self) -> bool:
        return self.spans_full or self.text_full

    def take_spans(self, n: int) -> int:
        allowed = max(0, min(n, self.limits.total_spans - self.spans))
        self.spans += allowed
        self.spans_full = self.spans_full or allowed < n
        return allowed

    def text(self, value: str, limit: int) -> str:
        room = max(0, self.limits.total_text_chars - self.chars)
        if len(value) > room < limit:
            self.text_full = True
        cut = _cut(value, min(limit, room))
        self.chars += min(len(value), limit, room)
        return cut


def _test(nodeid: str, test: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    figs = figures(test)
    chaos = test.get("chaos") or {}
    calls = list(test.get("calls") or [])
    return {
        "id": nodeid,
        "outcome": test.get("outcome") or "unknown",
        "duration_s": test.get("duration_s"),
        "location": test.get("location"),
        "cassette": test.get("cassette"),
        "calls": figs["calls"],
        "input_tokens": figs["input_tokens"],
        "output_tokens": figs["output_tokens"],
        "cost_usd": figs["cost_usd"],
        "p95_latency_s": figs["p95_latency_s"],
        "ttft_p50_s": figs["ttft_p50_s"],
        "truncations": figs["truncations"],
        "findings": [
            {k: _cut(str(f.get(k) or ""), 2000) for k in ("kind", "key", "message")}
            for f in findings(test)
        ],
        "scores": [
            {"name": k[len("score.") :], "value": f"{v:g}"}
            for k, v in figs.items()
            if k.startswith("score.")
        ],
        "evaluations": [
            {
                "name": _cut(str(e.get("name")), 200),
                "score": e.get("score"),
                "label": _cut(str(e["label"]), 200) if e.get("label") else None,
                "explanation": _cut(str(e.get("explanation") or ""), 2000),
                "call": e.get("call"),
            }
            for e in test.get("evaluations") or []
        ],
        "chaos_verdict": chaos.get("status"),
        "faults": [
            {"fault": str(f.get("fault")), "call": f.get("call")} for f in chaos.get("faults") or []
        ],
        "call_rows": [_call_row(c) for c in calls[: limits.calls_per_test]],
        "calls_omitted": max(0, len(calls) - limits.calls_per_test),
        "spans": [],
        "spans_omitted": 0,
        "span_window_ms": 0.0,
        "excerpts": [],
        "excerpts_omitted": 0,
    }


def _call_row(call: Mapping[str, Any]) -> dict[str, Any]:
    usage = call.get("usage") or {}
    attrs = call.get("attributes") or {}
    return {
        "index": call.get("index"),
        "provider": call.get("provider"),
        "model": call.get("model"),
        "operation": call.get("operation"),
        "stream": call.get("stream"),
        "status_code": call.get("status_code"),
        "attempt": call.get("attempt"),
        "source": call.get("source"),
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "cost_usd": call.get("cost_usd"),
        "latency_s": call.get("duration_s"),
        "ttft_s": call.get("time_to_first_chunk_s") if call.get("stream") else None,
        "finish_reasons": list(call.get("finish_reasons") or []),
        "truncated": bool(call.get("truncated")),
        "fault": attrs.get("llmobs.chaos.fault"),
        "error": _cut(str(call.get("error")), 300) if call.get("error") else None,
        "violating": bool(call.get("violating")),
    }


def _waterfall(views: list[SpanView], limits: Limits, budget: _Budget) -> dict[str, Any]:
    """Spans in tree order (children under their parent, by start time) with their offset
    from the test's first span."""
    ids = {span.get("spanId") for _, span, _ in views}
    children: dict[str | None, list[SpanView]] = defaultdict(list)
    for view in views:
        span = view[1]
        parent = span.get("parentSpanId")
        children[parent if parent in ids and parent != span.get("spanId") else None].append(view)
    for group in children.values():
        group.sort(key=lambda v: int(v[1].get("startTimeUnixNano") or 0))
    t0 = min(int(span.get("startTimeUnixNano") or 0) for _, span, _ in views)
    t1 = max(int(span.get("endTimeUnixNano") or 0) for _, span, _ in views)
    keep = budget.take_spans(min(len(views), limits.spans_per_test))
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    stack = [(v, 0) for v in reversed(children[None])]
    while stack and len(out) < keep:
        (_, span, attrs), depth = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        out.append(_span(span, attrs, depth, t0, limits))
        stack += [(c, depth + 1) for c in reversed(children.get(span.get("spanId"), []))]
    return {
        "spans": out,
        "spans_omitted": len(views) - len(out),
        "span_window_ms": max(t1 - t0, 0) / 1e6,
    }


def _span(
    span: Mapping[str, Any], attrs: Mapping[str, Any], depth: int, t0: int, limits: Limits
) -> dict[str, Any]:
    start = int(span.get("startTimeUnixNano") or 0)
    end = int(span.get("endTimeUnixNano") or start)
    ttft = attrs.get(_TTFT)
    replayed = attrs.get("llmobs.source") == "replay"
    if replayed:  # the recording's TTFT (the mark says "recorded"); absent: unknown, not 0
        ttft = attrs.get("llmobs.recorded.time_to_first_chunk_s")
    recorded = attrs.get("llmobs.recorded.duration_s")
    status = span.get("status") or {}
    shown = [
        (k, v)
        for k, v in attrs.items()
        if k not in CONTENT_ATTRIBUTES and (k.startswith(_SHOWN_PREFIXES) or "." not in k)
    ]
    return {
        "name": _cut(str(span.get("name", "")), limits.value_chars),
        "depth": depth,
        "start_ms": (start - t0) / 1e6,
        "dur_ms": max(end - start, 0) / 1e6,
        "kind": span.get("kind"),
        "error": status.get("code") == 2,
        "status": _cut(str(status.get("message") or ""), limits.value_chars),
        "llm": "gen_ai.operation.name" in attrs,
        "fault": attrs.get("llmobs.chaos.fault"),
        "verdict": attrs.get("llmobs.chaos.verdict"),
        "source": attrs.get("llmobs.source"),
        "ttft_ms": ttft * 1000 if isinstance(ttft, int | float) else None,
        "ttft_unknown": replayed
        and attrs.get("gen_ai.request.stream") is True
        and not isinstance(ttft, int | float),
        "recorded_ms": recorded * 1000 if isinstance(recorded, int | float) else None,
        "attributes": [
            [k, _cut(_text(v), limits.value_chars)] for k, v in shown[: limits.attributes_per_span]
        ],
        "events": [
            _cut(str(e.get("name", "")), limits.value_chars) for e in span.get("events") or []
        ][:20],
    }


def _excerpt(record: Mapping[str, Any], limits: Limits, budget: _Budget) -> dict[str, Any]:
    messages = list(_messages(record.get("messages")))
    kept = [] if budget.text_full else messages[-limits.messages_per_excerpt :]
    response = None if budget.text_full else record.get("response")
    return {
        "call": record.get("call_index"),
        "provider": record.get("provider"),
        "model": record.get("model"),
        "operation": record.get("operation"),
        "kept": record.get("kept"),
        "status_code": record.get("status_code"),
        "fault": record.get("chaos_fault"),
        "error": _cut(str(record["error"]), 500) if record.get("error") else None,
        "finish_reasons": list(record.get("finish_reasons") or []),
        "content": "messages" in record,
        "messages": [
            {"role": role, "text": budget.text(text, limits.text_chars)} for role, text in kept
        ],
        "messages_omitted": len(messages) - len(kept),
        "over_budget": budget.text_full,
        "response": budget.text(str(response), limits.text_chars) if response else None,
    }


def _messages(body: Any) -> Iterable[tuple[str, str]]:
    """(role, text) of a request's content keys, whatever the provider's shape."""
    if not isinstance(body, Mapping):
        if body:
            yield "input", _flatten(body)
        return
    system = ("system", "instructions", "systemInstruction")
    for key, value in sorted(body.items(), key=lambda kv: kv[0] not in system):  # system first
        if key in system:
            yield "system", _flatten(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping) and ("role" in item or "parts" in item):
                    content = item.get("content", item.get("parts"))
                    yield str(item.get("role") or "user"), _flatten(content)
                else:
                    yield "user", _flatten(item)
        else:
            yield "user" if key in ("prompt", "input") else str(key), _flatten(value)


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_flatten(v) for v in value)
    if isinstance(value, Mapping):
        for key in ("text", "content", "parts"):
            if key in value and value[key] is not None:
                return _flatten(value[key])
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more chars)"


# -- the page -----------------------------------------------------------------------------------
def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON that is safe inside `<script type="application/json">`: no `<`, `>` or `&` (so
    no `</script>` or `<!--`), and no U+2028/2029."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def render(data: dict[str, Any]) -> str:
    script = _asset("report.js")
    style = _asset("report.css")
    policy = (
        f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        "<title>pytest-llmobs report</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<noscript><p>This report renders with JavaScript; the data is in summary.json, "
        "traces.jsonl and prompts.jsonl next to it.</p></noscript>\n"
        '<main id="app"></main>\n'
        f'<script type="application/json" id="llmobs-data">{embed_json(data)}</script>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
