"""The end-of-run table in the terminal.

`-q`: the totals line only. Default: one row per test that made LLM calls (the first
`ROWS`), totals, and the slowest and most expensive calls. `-v`: every test, more calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..summary import RunSummary, figures, findings
from ..words import count

ROWS = 30
TOP = 3
TOP_VERBOSE = 10


class _Writer(Protocol):
    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None: ...
    def write_line(self, line: str, **markup: bool) -> None: ...


class RedactedWriter:
    """Writes through `redact` (test ids, model names, URLs, messages can hold anything, and
    CI logs are kept)."""

    def __init__(self, writer: _Writer, redact: Callable[[str], str]) -> None:
        self._writer = writer
        self._redact = redact

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
        self._writer.write_sep(sep, self._redact(title) if title else title, **markup)

    def write_line(self, line: str, **markup: bool) -> None:
        self._writer.write_line(self._redact(line), **markup)


def write_summary(writer: _Writer, summary: RunSummary, verbosity: int) -> None:
    """One line per test that made LLM calls, then totals; nothing when there were none."""
    rows = [row for row in summary.rows.values() if row.calls]
    if not rows and not summary.outside:
        return
    tests = {row.nodeid: row.to_dict() for row in rows}
    writer.write_sep("-", "llmobs summary")
    if verbosity >= 0:
        width = min(60, max([len("test"), *(len(n) for n in tests)]))
        writer.write_line(
            f"{'test':<{width}} {'calls':>5} {'in tok':>8} {'out tok':>8} {'cost':>10} "
            f"{'p95':>8} {'ttft':>8} {'viol':>4}"
        )
        shown = list(tests.items()) if verbosity > 0 else list(tests.items())[:ROWS]
        for nodeid, test in shown:
            f = figures(test)
            writer.write_line(
                f"{_name(nodeid, width):<{width}} {f['calls']:>5} {f['input_tokens']:>8} "
                f"{f['output_tokens']:>8} {_usd(f['cost_usd']):>10} "
                f"{_secs(f['p95_latency_s']):>8} {_secs(f['ttft_p50_s']):>8} "
                f"{f['violations'] or '':>4}"
            )
        if len(shown) < len(tests):
            writer.write_line(f"… {count(len(tests) - len(shown), 'more test')} (-v shows all)")
    calls = summary.calls
    inputs = sum(r.input_tokens for r in rows)
    outputs = sum(r.output_tokens for r in rows)
    writer.write_line(
        f"llmobs: {count(len(calls), 'LLM call')} in {count(len(rows), 'test')}, "
        f"{inputs} input + {outputs} output tokens"
    )
    if summary.outside:
        usage = [c.get("usage") or {} for c in summary.outside]
        writer.write_line(
            f"llmobs: {count(len(summary.outside), 'LLM call')} outside any test (collection, "
            f"session hooks, responses after their test ended), "
            f"{sum(u.get('input_tokens') or 0 for u in usage)} input + "
            f"{sum(u.get('output_tokens') or 0 for u in usage)} output tokens"
        )
    violations = sum(len(findings(t)) for t in tests.values())
    if violations:
        writer.write_line(
            f"llmobs: {count(violations, 'violation')} in "
            f"{count(sum(1 for t in tests.values() if findings(t)), 'test')}"
        )
    flat = [(nodeid, c) for nodeid, t in tests.items() for c in t["calls"]]
    _write_unanswered(writer, [x for x in flat if _unanswered(x[1])])
    if verbosity < 0:
        return
    top = TOP_VERBOSE if verbosity > 0 else TOP
    slow = sorted(
        (x for x in flat if x[1].get("duration_s") is not None and not _unanswered(x[1])),
        key=lambda x: -x[1]["duration_s"],
    )[:top]
    if slow:
        writer.write_line("slowest calls:")
        for nodeid, call in slow:
            writer.write_line(f"  {_secs(call['duration_s']):>8}  {_call(nodeid, call)}")
    costly = sorted((x for x in flat if x[1].get("cost_usd")), key=lambda x: -x[1]["cost_usd"])[
        :top
    ]
    if costly:
        writer.write_line("most expensive calls:")
        for nodeid, call in costly:
            writer.write_line(f"  {_usd(call['cost_usd']):>10}  {_call(nodeid, call)}")


def _unanswered(call: Mapping[str, Any]) -> bool:
    """No HTTP response at all: the connection was refused, timed out or broke first."""
    return call.get("status_code") is None and bool(call.get("error_type") or call.get("error"))


def _write_unanswered(writer: _Writer, calls: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Calls that got no response, said as such: they have no usage and cost nothing, and
    a cassette being recorded gets nothing for them."""
    if not calls:
        return
    writer.write_line(
        f"llmobs: {count(len(calls), 'LLM call')} got no response (nothing to record, no "
        "tokens, no cost):"
    )
    causes: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for nodeid, call in calls:
        cause = (str(call.get("error_type") or "error"), str(call.get("error") or "").strip())
        where = f"{nodeid} #{call.get('index', 0) + 1}"
        causes.setdefault(cause, []).append((where, str(call.get("url") or "?")))
    for (kind, message), seen in list(causes.items())[:TOP]:
        (where, url), more = seen[0], len(seen) - 1
        writer.write_line(
            f"  {kind}"
            + (f": {message}" if message else "")
            + f" — {url} in {where}"
            + (f" (+{more} more)" if more else "")
        )


def _call(nodeid: str, call: Mapping[str, Any]) -> str:
    usage = call.get("usage") or {}
    return (
        f"{nodeid} #{call.get('index', 0) + 1} {call.get('provider')} {call.get('model') or '?'} "
        f"({usage.get('input_tokens') or 0}+{usage.get('output_tokens') or 0} tok)"
    )


def _name(nodeid: str, width: int) -> str:
    return nodeid if len(nodeid) <= width else "…" + nodeid[-(width - 1) :]


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value >= 0.01 or value == 0 else f"${value:.6f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
