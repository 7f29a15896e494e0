"""CI: GitHub job summary and annotations, pytest-xdist equality, merging shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import junitparser
import pytest
from report_support import jsonl, run_suite

from pytest_llmobs.cli import main
from pytest_llmobs.report import github
from pytest_llmobs.testing import ProviderServer


def test_github_summary_and_annotations(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.configure(reply="one two three four")
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_suite(pytester)
    result.stdout.fnmatch_lines(
        [
            "::error file=test_inner.py,line=33,title=llmobs budget::"
            "test_inner.py::test_over_budget: max_output_tokens: limit 1, actual 4"
        ]
    )
    assert sum(line.startswith("::error ") for line in result.stdout.lines) == 1
    text = summary.read_text()
    assert text.startswith("earlier step\n## pytest-llmobs")
    assert "| LLM calls | 5 in 4 tests |" in text
    assert "| violations | 1 in 1 test |" in text
    assert "| `test_inner.py::test_over_budget` | budget | max_output_tokens: limit 1" in text
    assert "### Top costs" in text


def test_annotation_escaping_and_workspace_prefix(tmp_path: Path) -> None:
    tests: dict[str, Any] = {
        "t.py::test_a": {
            "location": ["t.py", 4],
            "violations": [{"kind": "budget", "key": "k", "message": "50% over\nlimit"}],
        }
    }
    [line] = github.error_annotations(tests, "sub/")
    assert (
        line == "::error file=sub/t.py,line=5,title=llmobs budget::t.py::test_a: 50%25 over%0Alimit"
    )
    root = tmp_path / "repo" / "pkg"
    root.mkdir(parents=True)
    env = {"GITHUB_WORKSPACE": str(tmp_path / "repo")}
    assert github.workspace_prefix(root, env) == "pkg/"
    assert github.workspace_prefix(tmp_path, env) == ""


# One LLM call outside any test, at the end of the session, by exactly one process: the
# single one, or the one OUTSIDE_CALLER names under xdist: worker gw0 (its share reaches the
# controller through workeroutput) or the controller itself (whose hook runs after it began
# writing the artifacts: they are written again with the call).
OUTSIDE_CALL = """
import os, anthropic


def pytest_sessionfinish(session):
    worker = getattr(session.config, "workerinput", None)
    xdist = worker is None and session.config.getoption("numprocesses", None)
    me = worker["workerid"] if worker else "controller" if xdist else "single"
    if me in ("single", os.environ["OUTSIDE_CALLER"]):
        anthropic.Anthropic(base_url=os.environ["LLM_URL"], max_retries=0).messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "bye"}]
        )
"""


@pytest.mark.parametrize("caller", ["gw0", "controller"])
def test_xdist_gives_the_same_artifacts_as_one_process(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    caller: str,
) -> None:
    provider.configure(reply="one two three four")
    pytester.makeconftest(OUTSIDE_CALL)
    monkeypatch.setenv("OUTSIDE_CALLER", caller)
    runs = {}
    for name, extra in (("single", ()), ("xdist", ("-n", "2"))):
        result = run_suite(
            pytester,
            f"--llm-artifacts={name}",
            f"--junitxml={name}.xml",
            *extra,
            subprocess=True,
        )
        result.assert_outcomes(passed=3, failed=2)
        runs[name] = _snapshot(pytester.path / name, pytester.path / f"{name}.xml")
    single, xdist = runs["single"], runs["xdist"]
    assert sum(r.json and r.json["messages"][0]["content"] == "bye" for r in provider.requests) == 2
    assert single["totals"] == xdist["totals"] and single["totals"]["calls"] == 6
    assert single["totals"]["outside_calls"] == 1 and single["outside"] == xdist["outside"]
    [(tokens_in, tokens_out, cost)] = single["outside"]
    assert (tokens_in, tokens_out) == (1, 4) and cost == pytest.approx((3 * 1 + 15 * 4) / 1e6)
    assert single["cases"] == xdist["cases"] and len(single["cases"]) == 5
    assert single["pytest_props"] == xdist["pytest_props"]
    assert single["pytest_props"]["test_plain"]["llmobs.calls"] == "2"
    assert single["spans"] == xdist["spans"] and len(single["spans"]) >= 6
    assert single["prompts"] == xdist["prompts"] and len(single["prompts"]) == 6
    assert ("(outside tests)", "chat claude-test") in {s[:2] for s in xdist["spans"]}
    assert single["run_ids"] == xdist["run_ids"] == 1


# figures that depend on timing, not on what the tests did
_TIMING = ("time", "duration", "latency", "ttft", "p95", "run_id", "run.id", "port", "_id")


def _stable(props: dict[str, str]) -> dict[str, str]:
    """Leave out timings and generated ids (request, response, trace ids)."""
    return {
        k: v
        for k, v in props.items()
        if not any(t in k for t in _TIMING) and not k.endswith(("id", "Id"))
    }


def _snapshot(directory: Path, pytest_xml: Path) -> dict[str, Any]:
    summary = json.loads((directory / "summary.json").read_text())
    xml = junitparser.JUnitXml.fromfile(str(directory / "llmobs-junit.xml"))
    cases = {}
    for suite in xml:
        for case in suite:
            holder = case._elem.find("properties")
            props = {} if holder is None else {p.get("name"): p.get("value") for p in holder}
            failures = sorted((r.type or "", r.message or "") for r in case.result)
            cases[case.name] = (_stable(props), failures)
    theirs = {}
    for suite in junitparser.JUnitXml.fromfile(str(pytest_xml)):
        for case in suite:
            holder = case._elem.find("properties")
            props = {} if holder is None else {p.get("name"): p.get("value") for p in holder}
            theirs[case.name] = _stable(props)
    spans = []
    run_ids = set(summary["run_ids"]) | {r["run_id"] for r in jsonl(directory / "prompts.jsonl")}
    for request in jsonl(directory / "traces.jsonl"):
        for rs in request["resourceSpans"]:
            resource = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            test = resource["test.case.name"]["stringValue"]
            run_ids.add(resource["llmobs.run.id"]["stringValue"])
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {
                        a["key"]: json.dumps(a["value"], sort_keys=True) for a in span["attributes"]
                    }
                    spans.append((test, span["name"], tuple(sorted(_stable(attrs).items()))))
    prompts = sorted(
        (r["test_id"], r["call_index"], r["kept"], json.dumps(r.get("messages"), sort_keys=True))
        for r in jsonl(directory / "prompts.jsonl")
    )
    totals = {k: v for k, v in summary["totals"].items() if k != "p95_latency_s"}
    outside = [
        (c["usage"]["input_tokens"], c["usage"]["output_tokens"], c["cost_usd"])
        for c in summary["outside_tests"]["calls"]
    ]
    return {
        "totals": totals,
        "outside": outside,
        "cases": cases,
        "pytest_props": theirs,
        "spans": sorted(spans),
        "prompts": prompts,
        "run_ids": len(run_ids),  # one run, one id: a worker's lines carry the controller's
    }


def test_merge_shards_and_check_the_session_budget(
    pytester: pytest.Pytester, provider: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.configure(reply="one two three four")
    run_suite(pytester, "--llm-artifacts=shard1", "-k", "plain or stream")
    run_suite(pytester, "--llm-artifacts=shard2", "-k", "not (plain or stream)")
    out = pytester.path / "merged"
    assert (
        main(
            ["merge", str(pytester.path / "shard1"), str(pytester.path / "shard2"), "-o", str(out)]
        )
        == 0
    )
    assert "llmobs merge: 2 directories → " in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["calls"] == 5 and summary["totals"]["tests"] == 5
    assert len(summary["run_ids"]) == 2
    xml = junitparser.JUnitXml.fromfile(str(out / "llmobs-junit.xml"))
    assert sorted(c.name for s in xml for c in s) == sorted(
        ["test_plain", "test_stream", "test_over_budget", "test_fails_after_call", "test_no_llm"]
    )
    assert len(jsonl(out / "prompts.jsonl")) == 5
    assert len(jsonl(out / "traces.jsonl")) == 4
    perfetto = json.loads((out / "traces.perfetto.json").read_text())
    assert sum(e["name"].startswith("chat ") for e in perfetto["traceEvents"]) == 5

    assert main(["check", str(out), "--session-budget", "max_total_tokens=41"]) == 0
    assert "within budget (5 calls, 41 tokens)" in capsys.readouterr().out
    assert main(["check", str(out), "--session-budget", "max_total_tokens=40"]) == 1
    assert "max_total_tokens: limit 40, actual 41" in capsys.readouterr().out
    prices = str(pytester.path / "prices.toml")
    assert (
        main(["check", str(out), "--session-budget", "max_cost_usd=0.0001", "--prices", prices])
        == 1
    )
    assert main(["check", str(out), "--session-budget", "max_cost_usd=1", "--prices", prices]) == 0
    assert main(["check", str(pytester.path), "--session-budget", "max_calls=1"]) == 2
    assert "not found" in capsys.readouterr().err
