"""`llmobs merge` and `llmobs check` on GitHub Actions: the merged run's job summary is
appended to `$GITHUB_STEP_SUMMARY`, and `check` prints `::error` annotations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_support import run_suite

from pytest_llmobs.cli import main
from pytest_llmobs.testing import ProviderServer

# shard 2 also makes a call outside any test (at the end of its session)
OUTSIDE_CALL = """
import os, anthropic


def pytest_sessionfinish(session):
    if os.environ.get("CALL_OUTSIDE"):
        anthropic.Anthropic(base_url=os.environ["LLM_URL"], max_retries=0).messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "bye"}]
        )
"""


@pytest.fixture
def merged(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Two shards of the report suite (the repository checked out one level up), merged."""
    provider.configure(reply="one two three four")
    pytester.makeconftest(OUTSIDE_CALL)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))
    run_suite(pytester, "--llm-artifacts=shard1", "-k", "plain or stream")
    monkeypatch.setenv("CALL_OUTSIDE", "1")
    run_suite(pytester, "--llm-artifacts=shard2", "-k", "not (plain or stream)")
    monkeypatch.delenv("GITHUB_WORKSPACE")
    out = pytester.path / "merged"
    args = ["merge", str(pytester.path / "shard1"), str(pytester.path / "shard2"), "-o", str(out)]
    assert main(args) == 0
    return out


def test_merge_appends_the_merged_job_summary(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    step = pytester.path / "step-summary.md"
    step.write_text("## earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    provider.configure(reply="one two three four")
    pytester.makeconftest(OUTSIDE_CALL)
    run_suite(pytester, "--llm-artifacts=shard1", "-k", "plain or stream")
    monkeypatch.setenv("CALL_OUTSIDE", "1")
    run_suite(pytester, "--llm-artifacts=shard2", "-k", "not (plain or stream)")
    # each shard's pytest run appended its own summary, as it does on GitHub
    shards = step.read_text()
    assert shards.count("## pytest-llmobs") == 2
    out = pytester.path / "merged"
    args = ["merge", str(pytester.path / "shard1"), str(pytester.path / "shard2"), "-o", str(out)]
    assert main(args) == 0
    assert "6 LLM calls" in capsys.readouterr().out
    text = step.read_text()
    assert text.startswith(shards) and text.count("## pytest-llmobs") == 3
    merged = text[len(shards) :]
    assert "| LLM calls | 6 in 4 tests |" in merged  # 5 in tests + 1 outside any test
    assert "| outside tests | 1 call (counted above) |" in merged
    assert "| tokens | 22 input, 24 output |" in merged
    assert "| violations | 1 in 1 test |" in merged
    assert "| `test_inner.py::test_over_budget` | budget | max_output_tokens: limit 1" in merged
    assert "### Top costs" in merged and "`test_inner.py::test_plain`" in merged
    totals = json.loads((out / "summary.json").read_text())["totals"]
    assert (totals["calls"], totals["outside_calls"]) == (6, 1)


def test_merge_without_github_writes_no_summary(
    merged: Path, pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not list(pytester.path.glob("*.md"))
    assert "::" not in capsys.readouterr().out


def test_check_prints_annotations_on_github(
    merged: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # not on GitHub: the verdict only
    assert main(["check", str(merged), "--session-budget", "max_total_tokens=40"]) == 1
    out = capsys.readouterr().out
    assert "max_total_tokens: limit 40, actual 46" in out and "::error" not in out
    # outside-test calls count: 6 calls, 46 tokens in all
    assert main(["check", str(merged), "--session-budget", "max_calls=5"]) == 1
    assert "max_calls: limit 5, actual 6" in capsys.readouterr().out

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["check", str(merged), "--session-budget", "max_total_tokens=40 max_calls=9"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("::")] == [
        "::error title=llmobs session budget::session budget exceeded: "
        "max_total_tokens: limit 40, actual 46"
    ]
    assert main(["check", str(merged), "--session-budget", "max_calls=9"]) == 0
    out = capsys.readouterr().out
    assert "::error" not in out and "within budget (6 calls, 46 tokens)" in out

    # --annotate-tests: each test finding too, at the path in the repository
    prefix = merged.parent.name
    assert main(["check", str(merged), "--session-budget", "max_calls=9", "--annotate-tests"]) == 0
    annotations = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]
    assert annotations == [
        f"::error file={prefix}/test_inner.py,line=33,title=llmobs budget::"
        "test_inner.py::test_over_budget: max_output_tokens: limit 1, actual 4"
    ]


def test_merge_and_check_json_for_ci_scripts(
    merged: Path,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--json: one object on stdout and nothing else (no annotations, even on GitHub); the
    exit status as without it."""
    capsys.readouterr()
    shards = [str(pytester.path / "shard1"), str(pytester.path / "shard2")]
    again = pytester.path / "again"
    assert main(["merge", *shards, "-o", str(again), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == str(again) and result["inputs"] == shards
    assert (result["tests"], result["calls"]) == (5, 6)
    assert "summary.json" in result["files"] and "llmobs-junit.xml" in result["files"]

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    budget = ["--session-budget", "max_total_tokens=40 max_calls=9", "--annotate-tests"]
    assert main(["check", str(merged), *budget, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)  # annotations would break the parse
    assert result["within_budget"] is False and (result["calls"], result["tokens"]) == (6, 46)
    [violation] = result["violations"]
    assert violation["key"] == "max_total_tokens"
    assert (violation["limit"], violation["actual"]) == (40, 46)
    assert violation["summary"] == "max_total_tokens: limit 40, actual 46"
    assert main(["check", str(merged), "--session-budget", "max_calls=9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["within_budget"] is True


def test_merge_keeps_each_shards_alerts_spikes_and_baseline_findings(tmp_path: Path) -> None:
    """summary.json's alerts, token spikes and baseline regressions of every shard reach the
    merged summary (and the alerts its JUnit file), as each shard judged them."""
    from pytest_llmobs.alerts import Alert, parse_rule
    from pytest_llmobs.report.artifacts import write_final
    from pytest_llmobs.report.merge import merge

    rule = parse_rule("error_rate > 0.05 severity=critical name=errors")
    shards = []
    for n in (1, 2):
        shard = tmp_path / f"shard{n}"
        write_final(
            shard,
            {},
            run_ids=[f"run{n}"],
            extra={
                "token_spikes": [{"nodeid": f"t{n}", "call": 0, "tokens": 900, "ratio": 9.0}],
                "alerts": [Alert(rule, f"model m{n}", 0.5).to_dict()],
                "alert_rules": 1,
                "baseline": {
                    "file": "baseline.json",
                    "updated": n == 2,
                    "tolerance": {"total_tokens": "+15%"},
                    "regressions": [{"nodeid": f"t{n}", "figure": "total_tokens"}],
                    "not_in_baseline": [f"new{n}", "new"],
                },
            },
        )
        shards.append(shard)
    merge(shards, tmp_path / "merged")
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert [s["nodeid"] for s in summary["token_spikes"]] == ["t1", "t2"]
    assert [a["key"] for a in summary["alerts"]] == ["model m1", "model m2"]
    assert summary["alert_rules"] == 1
    baseline = summary["baseline"]
    assert [r["nodeid"] for r in baseline["regressions"]] == ["t1", "t2"]
    assert baseline["not_in_baseline"] == ["new", "new1", "new2"]
    assert baseline["updated"] is True and baseline["file"] == "baseline.json"
    junit = ET.parse(tmp_path / "merged" / "llmobs-junit.xml")
    alerts = [c for c in junit.iter("testcase") if c.get("classname") == "llmobs.alerts"]
    assert len(alerts) == 2
    assert [f.get("type") for c in alerts for f in c.iter("failure")] == [
        "llmobs.alert.critical"
    ] * 2
