"""GitHub Actions: a markdown job summary (appended to `$GITHUB_STEP_SUMMARY`) and one
`::error file=…,line=…::` workflow command per violation, pointing at the test."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..summary import figures, findings, totals
from ..words import count

TOP = 5


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get("GITHUB_STEP_SUMMARY")) or environ.get("GITHUB_ACTIONS") == "true"


def markdown(
    tests: Mapping[str, Mapping[str, Any]],
    session_result: str | None = None,
    outside: Sequence[Mapping[str, Any]] = (),
) -> str:
    total = totals(tests.values(), outside)
    lines = [
        "## pytest-llmobs",
        "",
        "| | |",
        "|---|---|",
        f"| LLM calls | {total['calls']} in {count(total['tests_with_calls'], 'test')} |",
        f"| tokens | {total['input_tokens']} input, {total['output_tokens']} output |",
        f"| cost | {_usd(total['cost_usd'])} |",
        f"| p95 latency | {_secs(total['p95_latency_s'])} |",
        f"| violations | {total['violations']} in "
        f"{count(total['tests_with_violations'], 'test')} |",
    ]
    if total["outside_calls"]:
        lines.insert(
            5, f"| outside tests | {count(total['outside_calls'], 'call')} (counted above) |"
        )
    if session_result:
        lines += ["", "### Session budget exceeded", "", "```", session_result, "```"]
    violating = [(n, t) for n, t in tests.items() if findings(t)]
    if violating:
        lines += ["", "### Violations", "", "| test | kind | finding |", "|---|---|---|"]
        for nodeid, test in violating:
            for f in findings(test):
                lines.append(f"| `{nodeid}` | {f['kind']} | {_cell(f['message'])} |")
    costly = sorted(
        ((n, figures(t)) for n, t in tests.items() if t.get("calls")),
        key=lambda x: -(x[1]["cost_usd"] or 0.0),
    )[:TOP]
    if costly:
        lines += ["", "### Top costs", "", "| test | calls | tokens | cost |", "|---|--:|--:|--:|"]
        for nodeid, f in costly:
            tokens = f["input_tokens"] + f["output_tokens"]
            lines.append(f"| `{nodeid}` | {f['calls']} | {tokens} | {_usd(f['cost_usd'])} |")
    return "\n".join(lines) + "\n"


def append_summary(path: Path, text: str) -> None:
    """Append to the job summary file (GitHub creates it; appending keeps other steps')."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_atomic(path, old + ("\n" if old and not old.endswith("\n") else "") + text)


def error_annotations(tests: Mapping[str, Mapping[str, Any]], prefix: str = "") -> list[str]:
    """`::error file=…,line=…,title=…::message` for every violation."""
    out = []
    for nodeid, test in tests.items():
        location = test.get("location") or [nodeid.split("::")[0], None]
        file = prefix + str(location[0]).replace("\\", "/")
        line = (location[1] or 0) + 1
        for f in findings(test):
            props = f"file={_prop(file)},line={line},title={_prop('llmobs ' + f['kind'])}"
            out.append(f"::error {props}::{_data(nodeid + ': ' + f['message'])}")
    return out


def session_annotations(messages: Iterable[str]) -> list[str]:
    """`::error title=llmobs session budget::…` per violated session limit (no file: the
    whole run is responsible)."""
    title = _prop("llmobs session budget")
    return [f"::error title={title}::{_data('session budget exceeded: ' + m)}" for m in messages]


def workspace_prefix(rootdir: Path, environ: Mapping[str, str] = os.environ) -> str:
    """Paths in annotations are relative to the repository (GITHUB_WORKSPACE)."""
    workspace = environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return ""
    try:
        rel = rootdir.resolve().relative_to(Path(workspace).resolve())
    except ValueError:
        return ""
    return "" if str(rel) == "." else rel.as_posix() + "/"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}s"
