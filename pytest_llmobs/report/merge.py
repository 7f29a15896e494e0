"""`llmobs merge DIR… -o OUT` joins the artifact directories of several CI jobs (shards)
into one; `llmobs check OUT --session-budget …` checks a budget over the merged run.

On GitHub Actions they report like the plugin does: `merge` appends the merged run's
markdown summary to `$GITHUB_STEP_SUMMARY`; `check` prints a `::error` annotation per
session budget violation (and, with `--annotate-tests`, one per test finding, which each
shard's pytest run has already printed when it ran on GitHub).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..budgets import (
    BudgetError,
    Violation,
    call_from_record,
    check_budget,
    parse_session_budget,
    render_session,
)
from ..capture import OUTSIDE
from ..encryption.keys import KeySource, KeySourceError, key_source_from_env
from ..encryption.stream import DecryptError
from ..pricing import PricesFileError, Pricing
from ..summary import totals
from ..words import count
from . import github
from .artifacts import PROMPTS, TRACES, load_summary, write_final, write_views
from .storage import artifact_lines, open_artifact


def register_cli(subparsers: Any) -> None:
    merge = subparsers.add_parser(
        "merge",
        help="merge llmobs artifact directories (CI shards) into one",
        description="Merge the artifact directories written by several pytest runs (e.g. CI "
        "shards): JUnit, traces (OTLP JSON lines and Perfetto), prompt log and summary.",
    )
    merge.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR", help="artifact directories (--llm-artifacts)"
    )
    merge.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="the merged directory"
    )
    merge.add_argument(
        "--key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the artifact key: read encrypted (.enc) inputs "
        "and write the merged content artifacts encrypted with it",
    )
    merge.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object (output, inputs, files, tests, calls)",
    )
    merge.set_defaults(func=_merge_cmd)
    check = subparsers.add_parser(
        "check",
        help="check a session budget over an artifact directory (merged or not)",
        description="Exit 1 when the run recorded in DIR exceeds the budget.",
    )
    check.add_argument(
        "dir", type=Path, metavar="DIR", help="an artifact directory (merged or one run's)"
    )
    check.add_argument(
        "--session-budget",
        required=True,
        help="e.g. 'max_cost_usd=2.50 max_total_tokens=200000'",
    )
    check.add_argument("--prices", type=Path, default=None, help="llm_prices TOML file")
    check.add_argument(
        "--annotate-tests",
        action="store_true",
        help="on GitHub Actions, also print an ::error annotation per test finding "
        "(budget, truncation, resilience), as the pytest run does",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object (within_budget, violations, calls, tokens) "
        "and nothing else: no ::error annotations",
    )
    check.set_defaults(func=_check_cmd)


def merge(dirs: Sequence[Path], output: Path, keys: KeySource | None = None) -> list[Path]:
    """Merge `dirs` into `output`; ValueError when one is not an artifact directory (or is
    encrypted and no `keys` were given). With `keys`, content artifacts are written `.enc`."""
    summaries = [load_summary(d) for d in dirs]
    tests: dict[str, Any] = {}
    run_ids: list[str] = []
    outside: list[Any] = []
    session_results = []
    for summary in summaries:
        run_ids += summary.get("run_ids") or []
        tests.update(summary.get("tests") or {})
        outside += _outside(summary)
        if summary.get("session_result"):
            session_results.append(summary["session_result"])
    written = []
    for name in (TRACES, PROMPTS):
        target = open_artifact(output / name, keys)
        with target as stream:
            stream.writelines(line + "\n" for line in _lines(dirs, name, keys))
        written.append(target.path)
    written += write_final(
        output,
        tests,
        run_ids=run_ids,
        outside=outside,
        session_result="\n".join(session_results) or None,
        settings=summaries[0].get("settings"),
        extra=merged_extras(summaries),
    )
    written += write_views(output, keys)
    return sorted(written)


def merged_extras(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The shards' token spikes, alerts and baseline findings, side by side: each shard
    judged its own tests (the figures are not judged again over the merged run)."""
    out: dict[str, Any] = {}
    spikes = [s for summary in summaries for s in summary.get("token_spikes") or []]
    if spikes or any("token_spikes" in summary for summary in summaries):
        out["token_spikes"] = spikes
    ruled = [summary for summary in summaries if "alerts" in summary]
    if ruled:
        out["alerts"] = [a for summary in ruled for a in summary["alerts"] or []]
        out["alert_rules"] = max(int(summary.get("alert_rules") or 0) for summary in ruled)
    baselines = [summary["baseline"] for summary in summaries if summary.get("baseline")]
    if baselines:
        out["baseline"] = {
            **baselines[0],  # file and tolerance: the same settings in every shard
            "updated": any(b.get("updated") for b in baselines),
            "regressions": [r for b in baselines for r in b.get("regressions") or []],
            "not_in_baseline": sorted(
                {n for b in baselines for n in b.get("not_in_baseline") or []}
            ),
        }
    return out


def _lines(dirs: Sequence[Path], name: str, keys: KeySource | None) -> Iterator[str]:
    for d in dirs:
        yield from artifact_lines(d / name, keys)


def _outside(summary: dict[str, Any]) -> list[Any]:
    """Call records of calls made outside any test (summaries before 0.x have none)."""
    return list((summary.get("outside_tests") or {}).get("calls") or [])


def check(directory: Path, budget_text: str, prices: Path | None = None) -> str | None:
    """The violation text, or None when the run is within the budget."""
    return _check(load_summary(directory), budget_text, prices)[0]


def _check(
    summary: dict[str, Any], budget_text: str, prices: Path | None
) -> tuple[str | None, list[Violation]]:
    budget = parse_session_budget(budget_text)
    pricing = Pricing.from_file(prices)
    records = [
        (nodeid, record)
        for nodeid, test in (summary.get("tests") or {}).items()
        for record in test.get("calls") or []
    ]
    records += [(OUTSIDE, record) for record in _outside(summary)]
    calls = [call_from_record(record, nodeid) for nodeid, record in records]
    violations = check_budget(calls, budget, pricing)
    if not violations:
        return None, []
    title = (
        f"session budget exceeded: {count(len(violations), 'violation')} over "
        f"{count(len(calls), 'call')}"
    )
    return render_session(violations, title=title, pricing=pricing), violations


def _merge_cmd(args: argparse.Namespace) -> int:
    try:
        keys = key_source_from_env(args.key_env) if args.key_env else None
        written = merge(args.dirs, args.output, keys)
    except (ValueError, KeySourceError, DecryptError) as exc:
        print(f"llmobs merge: {exc}", file=sys.stderr)
        return 2
    summary = load_summary(args.output)
    total = totals(summary["tests"].values(), _outside(summary))
    if args.json:
        result = {
            "output": str(args.output),
            "inputs": [str(d) for d in args.dirs],
            "files": [p.name for p in written],
            "tests": total["tests"],
            "calls": total["calls"],
        }
        print(json.dumps(result, indent=2))
    else:
        print(
            f"llmobs merge: {count(len(args.dirs), 'directory')} → {args.output}: "
            f"{count(total['tests'], 'test')}, {count(total['calls'], 'LLM call')} "
            f"({', '.join(p.name for p in written)})"
        )
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        text = github.markdown(summary["tests"], summary.get("session_result"), _outside(summary))
        github.append_summary(Path(step_summary), text)
    return 0


def _check_cmd(args: argparse.Namespace) -> int:
    try:
        summary = load_summary(args.dir)
        text, violations = _check(summary, args.session_budget, args.prices)
    except (BudgetError, PricesFileError, ValueError) as exc:
        print(f"llmobs check: {exc}", file=sys.stderr)
        return 2
    if github.enabled() and not args.json:  # --json: the object alone on stdout
        if args.annotate_tests:
            prefix = str((summary.get("settings") or {}).get("annotation_prefix") or "")
            for line in github.error_annotations(summary.get("tests") or {}, prefix):
                print(line)
        for line in github.session_annotations(v.summary for v in violations):
            print(line)
    total = totals(summary["tests"].values(), _outside(summary))
    tokens = total["input_tokens"] + total["output_tokens"]
    if args.json:
        result = {
            "within_budget": text is None,
            "violations": [
                {
                    "key": v.key,
                    "limit": v.limit,
                    "actual": v.actual,
                    "summary": v.summary,
                    "detail": v.detail,
                }
                for v in violations
            ],
            "calls": total["calls"],
            "tokens": tokens,
        }
        print(json.dumps(result, indent=2))
    elif text is None:
        print(f"llmobs check: within budget ({count(total['calls'], 'call')}, {tokens} tokens)")
    else:
        print(text)
    return 0 if text is None else 1
