"""`llmobs diff BASE HEAD`: what changed between two runs, per test and per stage.

BASE and HEAD are artifact directories (`--llm-artifacts`: summary.json, and traces.jsonl
for the span trees) or a baseline file (`--llm-baseline`: per-test figures and scores
only, so its side has no stages, calls, spans or findings to compare).

A stage is the nearest enclosing span of a call that is not itself a GenAI call span (the
app's `retrieve`, `rerank`, `answer`), recorded on each call record where the test ran
(summary.call_stages). Calls are matched per test and stage by position; spans by their
path of names from the root (the n-th `answer/chat gpt-4o` of one run with the n-th of the
other). Latency and TTFT count as changed beyond +-25% + 50 ms (the baseline's default
latency tolerance): two live runs never measure the same milliseconds.

Output: Markdown (a PR comment, `$GITHUB_STEP_SUMMARY`) or `--json`. Reads files only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..baseline import FORMAT as BASELINE_FORMAT
from ..budgets import fmt as budget_fmt
from ..budgets import percentile
from ..evaluations import scores
from ..summary import findings
from ..words import count
from .artifacts import TRACES, load_summary
from .storage import artifact_lines
from .traces import attributes_dict

METRICS = (
    "calls",
    "retries",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "p95_latency_s",
    "ttft_p50_s",
)
_TIMINGS = frozenset({"p95_latency_s", "ttft_p50_s"})
_LABELS = {
    "calls": "calls",
    "retries": "retries",
    "input_tokens": "in tok",
    "output_tokens": "out tok",
    "cost_usd": "cost",
    "p95_latency_s": "p95 latency",
    "ttft_p50_s": "TTFT p50",
}
NO_STAGE = "(no stage)"  # calls with no enclosing app span
MAX_MARKDOWN = 60_000  # a GitHub comment holds 65,536 characters


class DiffError(ValueError):
    """A BASE or HEAD that cannot be read; the message names the path and what to pass."""


# -- reading a side ------------------------------------------------------------------------
@dataclass
class TestSide:
    figures: dict[str, Any]
    outcome: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, list[str]] = field(default_factory=dict)  # stage → call descriptions
    findings: dict[str, str] = field(default_factory=dict)  # kind:key → message
    chaos: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    spans: Counter[str] = field(default_factory=Counter)  # span path → count

    __test__ = False


@dataclass
class Side:
    path: Path
    kind: str  # artifacts | baseline
    tests: dict[str, TestSide]


def load_side(path: Path) -> Side:
    """An artifact directory or a baseline file."""
    if path.is_dir():
        try:
            summary = load_summary(path)
        except ValueError as exc:
            raise DiffError(str(exc)) from None
        tests = {
            str(nodeid): _test_side(test)
            for nodeid, test in (summary.get("tests") or {}).items()
            if isinstance(test, dict)
        }
        for nodeid, paths in _span_paths(path / TRACES).items():
            if nodeid in tests:
                tests[nodeid].spans = paths
        return Side(path, "artifacts", tests)
    if not path.exists():
        raise DiffError(
            f"{path}: not found; pass an artifact directory (--llm-artifacts) or a baseline file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiffError(f"{path}: not a readable JSON baseline file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise DiffError(
            f"{path}: neither an artifact directory nor a pytest-llmobs baseline file "
            f"(format {BASELINE_FORMAT!r})"
        )
    entries = data.get("tests") if isinstance(data.get("tests"), dict) else {}
    tests = {
        str(nodeid): TestSide(
            {m: entry.get(m) for m in METRICS},
            scores=dict(entry.get("scores") or {}),
        )
        for nodeid, entry in (entries or {}).items()
        if isinstance(entry, dict)
    }
    return Side(path, "baseline", tests)


def _test_side(test: Mapping[str, Any]) -> TestSide:
    records: list[Mapping[str, Any]] = list(test.get("calls") or [])
    by_stage: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_stage.setdefault(record.get("stage") or NO_STAGE, []).append(record)
    found = {f"{f['kind']}:{f['key']}": str(f.get("message") or "") for f in findings(test)}
    chaos = test.get("chaos") or {}
    for f in chaos.get("findings") or []:  # warnings too: "no longer retried" is news
        found.setdefault(f"chaos:{f.get('code')}", f"{f.get('code')}: {f.get('message', '')}")
    return TestSide(
        _figures(records),
        outcome=test.get("outcome"),
        stages={stage: _figures(calls) for stage, calls in by_stage.items()},
        calls={stage: [_describe(c) for c in calls] for stage, calls in by_stage.items()},
        findings=found,
        chaos=chaos.get("status"),
        scores=scores(test.get("evaluations") or []),
    )


def _figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    costs = [r.get("cost_usd") for r in records]
    latencies = [r["duration_s"] for r in records if r.get("duration_s") is not None]
    ttfts = [
        r["time_to_first_chunk_s"]
        for r in records
        if r.get("stream") and r.get("time_to_first_chunk_s") is not None
    ]
    usage = [r.get("usage") or {} for r in records]
    return {
        "calls": sum(1 for r in records if not r.get("attempt")),
        "retries": sum(1 for r in records if r.get("attempt")),
        "input_tokens": sum(u.get("input_tokens") or 0 for u in usage),
        "output_tokens": sum(u.get("output_tokens") or 0 for u in usage),
        "cost_usd": None
        if any(c is None for c in costs)
        else round(sum(float(c or 0) for c in costs), 9),
        "p95_latency_s": percentile(latencies, 95),
        "ttft_p50_s": percentile(ttfts, 50),
    }


def _describe(record: Mapping[str, Any]) -> str:
    text = f"{record.get('operation') or '?'} {record.get('model') or '?'}"
    status = record.get("status_code")
    if isinstance(status, int) and status >= 400:
        text += f" HTTP {status}"
    if record.get("attempt"):
        text += f" (retry {record['attempt']})"
    return text


def _span_paths(path: Path) -> dict[str, Counter[str]]:
    """nodeid → Counter of span paths ("answer/chat gpt-4o") from traces.jsonl (nothing
    when the file is absent or encrypted)."""
    out: dict[str, Counter[str]] = {}
    if not path.exists():
        return out
    for line in artifact_lines(path, None):
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            continue
        for rs in request.get("resourceSpans") or []:
            resource = attributes_dict(rs.get("resource", {}).get("attributes", []))
            nodeid = str(resource.get("test.case.name", ""))
            spans = [s for ss in rs.get("scopeSpans") or [] for s in ss.get("spans") or []]
            by_id = {s.get("spanId"): s for s in spans}
            counter = out.setdefault(nodeid, Counter())
            for span in spans:
                names, seen, current = [], 0, span
                while current is not None and seen < 256:
                    names.append(str(current.get("name")))
                    current, seen = by_id.get(current.get("parentSpanId")), seen + 1
                counter["/".join(reversed(names))] += 1
    return out


# -- comparing -------------------------------------------------------------------------------
def _pair(base: Any, head: Any) -> dict[str, Any]:
    return {"base": base, "head": head}


def _moved(metric: str, base: Any, head: Any) -> bool:
    if base is None or head is None:
        return base is not head
    if metric in _TIMINGS:
        return bool(abs(head - base) > abs(base) * 0.25 + 0.05)
    return bool(base != head)


def _figure_changes(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    return {m: _pair(base.get(m), head.get(m)) for m in METRICS}


def _matched(base: Sequence[str], head: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"added": [], "removed": [], "changed": []}
    for i in range(max(len(base), len(head))):
        b = base[i] if i < len(base) else None
        h = head[i] if i < len(head) else None
        if b is None:
            out["added"].append(h)
        elif h is None:
            out["removed"].append(b)
        elif b != h:
            out["changed"].append(_pair(b, h))
    return out


def compare_test(nodeid: str, base: TestSide | None, head: TestSide | None) -> dict[str, Any]:
    """One test's changes (JSON-ready); `status`: added | removed | changed | unchanged."""
    if base is None or head is None:
        only = head if base is None else base
        assert only is not None
        return {
            "nodeid": nodeid,
            "status": "added" if base is None else "removed",
            "outcome": _pair(base and base.outcome, head and head.outcome),
            "figures": {
                m: _pair(
                    None if base is None else only.figures.get(m),
                    None if head is None else only.figures.get(m),
                )
                for m in METRICS
            },
            "stages": {},
            "calls": {},
            "spans": {"added": [], "removed": []},
            "findings": {"new": [], "resolved": []},
            "chaos": _pair(base and base.chaos, head and head.chaos),
            "scores": {
                k: _pair(None if base is None else v, None if head is None else v)
                for k, v in only.scores.items()
            },
        }
    detailed = bool(base.stages or base.spans or base.outcome) and bool(
        head.stages or head.spans or head.outcome
    )  # a baseline side has figures and scores only
    stages: dict[str, Any] = {}
    calls: dict[str, Any] = {}
    if detailed:
        for stage in dict.fromkeys([*base.stages, *head.stages]):
            b, h = base.stages.get(stage, {}), head.stages.get(stage, {})
            if any(_moved(m, b.get(m), h.get(m)) for m in METRICS):
                stages[stage] = _figure_changes(b, h)
            matched = _matched(base.calls.get(stage, []), head.calls.get(stage, []))
            if any(matched.values()):
                calls[stage] = matched
    spans_added = sorted((head.spans - base.spans).elements()) if detailed else []
    spans_removed = sorted((base.spans - head.spans).elements()) if detailed else []
    new = [head.findings[k] for k in head.findings if k not in base.findings]
    resolved = [base.findings[k] for k in base.findings if k not in head.findings]
    score_changes = {
        k: _pair(base.scores.get(k), head.scores.get(k))
        for k in dict.fromkeys([*base.scores, *head.scores])
        if base.scores.get(k) != head.scores.get(k)
    }
    figures = _figure_changes(base.figures, head.figures)
    changed = (
        any(_moved(m, base.figures.get(m), head.figures.get(m)) for m in METRICS)
        or bool(stages or calls or spans_added or spans_removed or score_changes)
        or (detailed and (base.outcome != head.outcome or base.chaos != head.chaos))
        or (detailed and bool(new or resolved))
    )
    return {
        "nodeid": nodeid,
        "status": "changed" if changed else "unchanged",
        "outcome": _pair(base.outcome, head.outcome),
        "figures": figures,
        "stages": stages,
        "calls": calls,
        "spans": {"added": spans_added, "removed": spans_removed},
        "findings": {"new": new if detailed else [], "resolved": resolved if detailed else []},
        "chaos": _pair(base.chaos, head.chaos),
        "scores": score_changes,
    }


def diff(base: Side, head: Side) -> dict[str, Any]:
    """Every test of either side, compared; run totals of the figures that add up."""
    nodeids = list(dict.fromkeys([*base.tests, *head.tests]))
    tests = [compare_test(n, base.tests.get(n), head.tests.get(n)) for n in nodeids]
    totals = {}
    for metric in ("calls", "retries", "input_tokens", "output_tokens", "cost_usd"):
        sums = []
        for side in (base, head):
            values = [t.figures.get(metric) for t in side.tests.values()]
            known = [v for v in values if isinstance(v, int | float)]
            sums.append(round(sum(known), 9) if known else None)
        totals[metric] = _pair(*sums)
    counts = Counter(t["status"] for t in tests)
    return {
        "base": {"path": str(base.path), "kind": base.kind},
        "head": {"path": str(head.path), "kind": head.kind},
        "counts": {k: counts.get(k, 0) for k in ("changed", "added", "removed", "unchanged")},
        "totals": totals,
        "tests": tests,
    }


# -- Markdown --------------------------------------------------------------------------------
def _fmt(metric: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if metric == "cost_usd":
        return budget_fmt("max_cost_usd", value)
    if metric in _TIMINGS:
        return f"{value:.3f} s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(metric: str, pair: Mapping[str, Any]) -> str:
    base, head = _fmt(metric, pair["base"]), _fmt(metric, pair["head"])
    if base == head:
        return base
    change = ""
    b, h = pair["base"], pair["head"]
    if isinstance(b, int | float) and isinstance(h, int | float) and b:
        change = f" ({(h - b) / b * 100:+.0f}%)"
    return f"{base} → **{head}**{change}"


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    lines = [
        "| | " + " | ".join(_LABELS[m] for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for label, figures in rows:
        cells = [_cell(m, figures[m]) for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: Mapping[str, Any]) -> str:
    base, head = result["base"], result["head"]
    counts = result["counts"]
    out = [
        f"### LLM changes: {_code(base['path'])} → {_code(head['path'])}",
        "",
        f"{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
        f"{count(counts['unchanged'], 'unchanged test')}.",
        "",
        "| run | " + " | ".join(_LABELS[m] for m in result["totals"]) + " |",
        "|---|" + "---:|" * len(result["totals"]),
        "| total | " + " | ".join(_cell(m, p) for m, p in result["totals"].items()) + " |",
    ]
    if "baseline" in (base["kind"], head["kind"]):
        out += [
            "",
            "_A baseline file holds figures and scores only: no stages, calls, spans "
            "or findings are compared._",
        ]
    shown = [t for t in result["tests"] if t["status"] != "unchanged"]
    for i, test in enumerate(shown):
        section = _test_markdown(test)
        if sum(len(line) + 1 for line in out) + len(section) > MAX_MARKDOWN:
            out += [
                "",
                f"… {count(len(shown) - i, 'more test')} changed: see `llmobs diff --json`.",
            ]
            break
        out += ["", section]
    return "\n".join(out) + "\n"


def _test_markdown(test: Mapping[str, Any]) -> str:
    outcome = test["outcome"]
    title = f"#### {_code(test['nodeid'])} — {test['status']}"
    if outcome["base"] and outcome["head"] and outcome["base"] != outcome["head"]:
        title += f" ({outcome['base']} → **{outcome['head']}**)"
    rows = [("**test**", test["figures"])]
    rows += [(f"stage {_code(stage)}", figures) for stage, figures in test["stages"].items()]
    lines = [title, "", *_table(rows), ""]
    for stage, matched in test["calls"].items():
        where = f" in {_code(stage)}"
        lines += [f"- call added{where}: {_code(c)}" for c in matched["added"]]
        lines += [f"- call removed{where}: {_code(c)}" for c in matched["removed"]]
        lines += [
            f"- call changed{where}: {_code(c['base'])} → {_code(c['head'])}"
            for c in matched["changed"]
        ]
    lines += [f"- span added: {_code(s)}" for s in test["spans"]["added"]]
    lines += [f"- span removed: {_code(s)}" for s in test["spans"]["removed"]]
    chaos = test["chaos"]
    if chaos["base"] != chaos["head"] and test["status"] == "changed":
        lines.append(f"- chaos verdict: {chaos['base'] or 'n/a'} → **{chaos['head'] or 'n/a'}**")
    lines += [f"- new finding: {_one_line(f)}" for f in test["findings"]["new"]]
    lines += [f"- no longer: {_one_line(f)}" for f in test["findings"]["resolved"]]
    for name, pair in test["scores"].items():
        b = "n/a" if pair["base"] is None else f"{pair['base']:g}"
        h = "n/a" if pair["head"] is None else f"{pair['head']:g}"
        lines.append(f"- score {_code(name)}: {b} → **{h}**")
    return "\n".join(lines).rstrip()


def _one_line(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first.replace("|", "\\|")[:300]


# -- the command -------------------------------------------------------------------------------
def register_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="what changed between two runs, per test and stage (Markdown or JSON)",
        description="Compare two runs' artifact directories (or a baseline file and a run): "
        "per test and per stage, calls and spans added / removed / changed, tokens, cost, "
        "p95 latency, TTFT, findings, chaos verdicts and evaluation scores.",
    )
    parser.add_argument(
        "base", type=Path, metavar="BASE", help="artifact directory or baseline file"
    )
    parser.add_argument("head", type=Path, metavar="HEAD", help="artifact directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.set_defaults(func=_diff_cmd)


def _diff_cmd(args: argparse.Namespace) -> int:
    try:
        result = diff(load_side(args.base), load_side(args.head))
    except DiffError as exc:
        print(f"llmobs diff: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(markdown(result))
    return 0
