"""The end-of-run table in the terminal."""

from __future__ import annotations

from typing import Protocol

from ..summary import RunSummary


class _Writer(Protocol):
    def write_sep(self, sep: str, title: str | None = None) -> None: ...
    def write_line(self, line: str) -> None: ...


def write_summary(writer: _Writer, summary: RunSummary, verbosity: int) -> None:
    """One line per test that made LLM calls, then totals; nothing when there were none."""
    rows = [row for row in summary.rows.values() if row.calls]
    if not rows:
        return
    writer.write_sep("-", "llmobs summary")
    if verbosity >= 0:
        writer.write_line(f"{'test':<60} {'calls':>5} {'in tok':>8} {'out tok':>8}")
        for row in rows:
            name = row.nodeid if len(row.nodeid) <= 60 else "…" + row.nodeid[-59:]
            writer.write_line(
                f"{name:<60} {len(row.calls):>5} {row.input_tokens:>8} {row.output_tokens:>8}"
            )
    calls = summary.calls
    inputs = sum(r.input_tokens for r in rows)
    outputs = sum(r.output_tokens for r in rows)
    writer.write_line(
        f"llmobs: {len(calls)} LLM calls in {len(rows)} tests, "
        f"{inputs} input + {outputs} output tokens"
    )
