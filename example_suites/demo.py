"""`make demo`: run the example suites offline, show what the plugin reports, and say where
the artifacts went.

Each suite replays its committed cassettes (strict: a request that is not in a cassette
fails). The cassettes were recorded against the local provider server
`pytest_llmobs.testing.ProviderServer`, which speaks the OpenAI, Anthropic and Bedrock wire
formats byte for byte; `python example_suites/demo.py --record` records them all again
(and refreshes the trace snapshots) — review the result with `git diff`.

Then the staging script puts `llmobs proxy` in front of a local upstream, and finally the
suite in failing/ runs: its tests fail on purpose, to show what a violation looks like.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_llmobs.testing import ProviderServer

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "llmobs-artifacts"


@dataclass(frozen=True)
class Suite:
    name: str
    about: str
    # What the local provider server answers while this suite is recorded (--record).
    recording: dict[str, Any] = field(default_factory=dict)


SUITES = (
    Suite(
        "quickstart",
        "one OpenAI and one Anthropic call, captured and checked",
        {"reply": "pytest-llmobs records, replays and checks LLM calls", "ttft_s": 0.05},
    ),
    Suite(
        "rag",
        "retrieve → rerank → answer with a tool call; budgets, trace shape, context, snapshot",
        {
            "reply": "Yes: order 1042 was delivered 12 days ago and refunds are accepted "
            "within 30 days of delivery, so you can still return the headphones."
        },
    ),
    Suite(
        "chatbot",
        "streaming Anthropic support bot; TTFT budget, broken and cut answers",
        {
            "reply": "Hold the power button for 5 seconds until the light blinks blue, then "
            "pick Acme Buds in your phone's Bluetooth settings.",
            "ttft_s": 0.12,
            "chunk_delay_s": 0.01,
        },
    ),
    Suite(
        "resilience",
        "OpenAI → Anthropic fallback under 429, 503/529 and broken streams",
        {"reply": "Refunds are accepted within 30 days of delivery.", "ttft_s": 0.05},
    ),
    Suite(
        "bedrock",
        "Amazon Bedrock Converse and ConverseStream through boto3",
        {"reply": "Acme Buds: all-day battery, crisp calls, and a case that fits a pocket."},
    ),
)
FAILING = Suite(
    "failing",
    "tests that fail on purpose: a budget, a cut answer, a client that is not resilient",
    {"reply": "A long answer that goes on for a good many words before it finally ends."},
)


def main(argv: list[str]) -> int:
    record = "--record" in argv
    started = time.monotonic()
    with ProviderServer() as server:
        results = [run_suite(suite, server, record) for suite in SUITES]
        staging_ok = run_staging()
        failing = run_suite(FAILING, server, record, expect_failures=True)
    print_table([*results, failing])
    print_artifacts([*results, failing])
    problems = [r.suite.name for r in results if r.returncode != 0]
    if not staging_ok:
        problems.append("staging")
    if failing.unexpected:
        problems.append(f"failing ({', '.join(failing.unexpected)} passed, meant to fail)")
    took = time.monotonic() - started
    if problems:
        print(f"\nDemo: not green ({'; '.join(problems)}) in {took:.1f} s.")
        return 1
    print(
        f"\nDemo green in {took:.1f} s: every example suite passed, and the {failing.failed} "
        "tests in failing/ failed as they should."
    )
    return 0


@dataclass
class Result:
    suite: Suite
    returncode: int
    summary: dict[str, Any]
    unexpected: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return int(self.summary.get("totals", {}).get("failed", 0))


def run_suite(
    suite: Suite, server: ProviderServer, record: bool, *, expect_failures: bool = False
) -> Result:
    heading(f"example suite: {suite.name} — {suite.about}")
    if expect_failures:
        print(
            "These tests FAIL ON PURPOSE: each shows what a violation looks like in the\n"
            "terminal, in the JUnit file and in the report (a budget exceeded, an answer cut\n"
            "at max_tokens, a client that gives up on a 429). The demo checks that they fail.\n",
            flush=True,
        )
    server.reset()
    server.configure(**suite.recording)
    artifacts = ARTIFACTS / suite.name
    shutil.rmtree(artifacts, ignore_errors=True)  # this run's files only
    # langsmith (installed with langchain in the test extra) has a pytest plugin that takes
    # a second to import and is not used here.
    args = ["-p", "no:cacheprovider", "-p", "no:langsmith_plugin", "--tb=short"]
    if record:
        # Modes that only add save after a failed test too; failing/ needs that.
        if expect_failures:
            shutil.rmtree(HERE / suite.name / "cassettes", ignore_errors=True)
        args += [
            f"--llm-record-mode={'once' if expect_failures else 'rewrite'}",
            "--llm-snapshot-update",
        ]
    args += [f"--llm-artifacts={artifacts}", str(HERE / suite.name)]
    # On GitHub: no red annotations and no job summary for the tests that fail on purpose.
    drop = ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS") if expect_failures else ()
    # One process for every suite: the SDKs and the plugin are imported once.
    with _environment({"LLM_URL": server.url}, drop), contextlib.chdir(HERE / suite.name):
        returncode = int(pytest.main(args))
    summary = _read_json(artifacts / "summary.json")
    result = Result(suite, returncode, summary)
    if expect_failures:
        tests = summary.get("tests", {})
        result.unexpected = [n for n, t in tests.items() if t.get("outcome") != "failed"]
        if not tests:
            result.unexpected = ["(no tests ran)"]
    return result


def run_staging() -> bool:
    heading("staging: `llmobs proxy` in front of a local upstream, with a chaos scenario")
    script = HERE / "staging" / "run_staging_chaos.py"
    done = subprocess.run([sys.executable, str(script)], cwd=HERE / "staging", check=False)
    return done.returncode == 0


def print_table(results: list[Result]) -> None:
    heading("summary")
    columns = ("suite", "tests", "failed", "LLM calls", "tokens in/out", "cost", "chaos faults")
    rows = []
    for r in results:
        t = r.summary.get("totals", {})
        cost = t.get("cost_usd")
        rows.append(
            (
                r.suite.name,
                str(t.get("tests", "-")),
                str(t.get("failed", "-")) + (" (on purpose)" if r.suite is FAILING else ""),
                str(t.get("calls", "-")),
                f"{t.get('input_tokens', 0)}/{t.get('output_tokens', 0)}",
                "-" if cost is None else f"${cost:.6f}",
                str(t.get("chaos_faults", 0)),
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_artifacts(results: list[Result]) -> None:
    heading("artifacts")
    for r in results:
        directory = ARTIFACTS / r.suite.name
        files = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        print(f"{_shown(directory)}/: {', '.join(files) or '(none)'}")
    reports = sorted(ARTIFACTS.glob("*/report.html"))
    if reports:
        print("\nOpen the HTML reports in a browser:")
        for report in reports:
            print(f"  {report.as_uri()}")
    print(
        "\nllmobs-junit.xml: per-test JUnit with LLM properties; traces.jsonl: OTLP JSON spans;\n"
        "traces.perfetto.json: open in https://ui.perfetto.dev; prompts.jsonl: one record per\n"
        "call; summary.json: the figures `llmobs merge` and `llmobs check` read."
    )


@contextlib.contextmanager
def _environment(values: dict[str, str], drop: tuple[str, ...]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    for name in drop:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def heading(text: str) -> None:
    print(f"\n{'=' * 8} {text} {'=' * max(4, 80 - len(text) - 10)}", flush=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
