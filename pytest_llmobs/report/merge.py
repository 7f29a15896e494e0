"""`llmobs merge DIR… -o OUT` joins the artifact directories of several CI jobs (shards)
into one; `llmobs check OUT --session-budget …` checks a budget over the merged run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..budgets import (
    BudgetError,
    call_from_record,
    check_budget,
    parse_session_budget,
    render_session,
)
from ..pricing import PricesFileError, Pricing
from ..summary import totals
from ._files import AtomicFile
from .artifacts import PERFETTO, PROMPTS, TRACES, load_summary, write_final, write_lines
from .traces import PerfettoWriter


def register_cli(subparsers: Any) -> None:
    merge = subparsers.add_parser(
        "merge",
        help="merge llmobs artifact directories (CI shards) into one",
        description="Merge the artifact directories written by several pytest runs (e.g. CI "
        "shards): JUnit, traces (OTLP JSON lines and Perfetto), prompt log and summary.",
    )
    merge.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    merge.set_defaults(func=_merge_cmd)
    check = subparsers.add_parser(
        "check",
        help="check a session budget over an artifact directory (merged or not)",
        description="Exit 1 when the run recorded in DIR exceeds the budget.",
    )
    check.add_argument("dir", type=Path, metavar="DIR")
    check.add_argument(
        "--session-budget",
        required=True,
        help="e.g. 'max_cost_usd=2.50 max_total_tokens=200000'",
    )
    check.add_argument("--prices", type=Path, default=None, help="llm_prices TOML file")
    check.set_defaults(func=_check_cmd)


def merge(dirs: Sequence[Path], output: Path) -> list[Path]:
    """Merge `dirs` into `output`; ValueError when one is not an artifact directory."""
    summaries = [load_summary(d) for d in dirs]
    tests: dict[str, Any] = {}
    run_ids: list[str] = []
    session_results = []
    for summary in summaries:
        run_ids += summary.get("run_ids") or []
        tests.update(summary.get("tests") or {})
        if summary.get("session_result"):
            session_results.append(summary["session_result"])
    written = [write_lines(output / name, _lines(dirs, name)) for name in (TRACES, PROMPTS)]
    with AtomicFile(output / PERFETTO) as stream:
        perfetto = PerfettoWriter(stream)
        for line in _lines(dirs, TRACES):
            perfetto.add(json.loads(line))
        perfetto.close()
    written.append(output / PERFETTO)
    written += write_final(
        output,
        tests,
        run_ids=run_ids,
        session_result="\n".join(session_results) or None,
        settings=summaries[0].get("settings"),
    )
    return sorted(written)


def _lines(dirs: Sequence[Path], name: str) -> list[str]:
    out: list[str] = []
    for d in dirs:
        path = d / name
        if path.exists():
            out += [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return out


def check(directory: Path, budget_text: str, prices: Path | None = None) -> str | None:
    """The violation text, or None when the run is within the budget."""
    summary = load_summary(directory)
    budget = parse_session_budget(budget_text)
    pricing = Pricing.from_file(prices)
    calls = [
        call_from_record(record, nodeid)
        for nodeid, test in (summary.get("tests") or {}).items()
        for record in test.get("calls") or []
    ]
    violations = check_budget(calls, budget, pricing)
    if not violations:
        return None
    title = f"session budget exceeded: {len(violations)} violation(s) over {len(calls)} calls"
    return render_session(violations, title=title, pricing=pricing)


def _merge_cmd(args: argparse.Namespace) -> int:
    try:
        written = merge(args.dirs, args.output)
    except ValueError as exc:
        print(f"llmobs merge: {exc}", file=sys.stderr)
        return 2
    total = totals(load_summary(args.output)["tests"].values())
    print(
        f"llmobs merge: {len(args.dirs)} directories → {args.output}: {total['tests']} tests, "
        f"{total['calls']} LLM calls ({', '.join(p.name for p in written)})"
    )
    return 0


def _check_cmd(args: argparse.Namespace) -> int:
    try:
        text = check(args.dir, args.session_budget, args.prices)
    except (BudgetError, PricesFileError, ValueError) as exc:
        print(f"llmobs check: {exc}", file=sys.stderr)
        return 2
    if text is None:
        total = totals(load_summary(args.dir)["tests"].values())
        print(
            f"llmobs check: within budget ({total['calls']} calls, "
            f"{total['input_tokens'] + total['output_tokens']} tokens)"
        )
        return 0
    print(text)
    return 1
