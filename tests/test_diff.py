"""`llmobs diff BASE HEAD`: two runs of one suite against the local provider server (the
second with another model, an extra call and a longer answer), diffed as Markdown and JSON;
a baseline file as BASE; unreadable inputs are clear CLI errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS

from pytest_llmobs.cli import main
from pytest_llmobs.testing import ProviderServer

SUITE = """
import os
import openai
from opentelemetry import trace

URL = os.environ["LLM_URL"]
VERSION = os.environ["APP_VERSION"]
tracer = trace.get_tracer("app")


def ask(model, reply="a short answer"):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "q"}],
        extra_headers={"x-fake-reply": reply},
    )


def test_rag(llmobs):
    with tracer.start_as_current_span("retrieve"):
        ask("gpt-4o-mini")
        if VERSION == "head":  # the PR adds a rerank call
            ask("gpt-4o-mini")
    with tracer.start_as_current_span("answer"):
        words = 5 if VERSION == "base" else 40  # the PR's answer is longer
        ask("gpt-4o" if VERSION == "base" else "gpt-4.1", " ".join(["word"] * words))
    llmobs.evaluate("faithfulness", score=0.9 if VERSION == "base" else 0.6)


def test_same(llmobs):
    ask("gpt-4o-mini")
"""


def _run(
    pytester: pytest.Pytester, version: str, out: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("APP_VERSION", version)
    pytester.runpytest(*INNER_ARGS, f"--llm-artifacts={out}").assert_outcomes(passed=2)
    return pytester.path / out


def test_diff_two_runs_markdown_and_json(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_inner=SUITE)
    base = _run(pytester, "base", "base-artifacts", monkeypatch)
    head = _run(pytester, "head", "head-artifacts", monkeypatch)
    capsys.readouterr()  # the inner runs' output

    assert main(["diff", str(base), str(head), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert result["counts"] == {"changed": 1, "added": 0, "removed": 0, "unchanged": 1}
    assert result["totals"]["calls"] == {"base": 3, "head": 4}
    rag = next(t for t in result["tests"] if t["nodeid"].endswith("test_rag"))
    assert rag["status"] == "changed"
    assert rag["figures"]["calls"] == {"base": 2, "head": 3}
    assert rag["figures"]["output_tokens"]["head"] > rag["figures"]["output_tokens"]["base"]
    assert set(rag["stages"]) == {"retrieve", "answer"}
    assert rag["stages"]["retrieve"]["calls"] == {"base": 1, "head": 2}
    assert rag["calls"] == {
        "retrieve": {"added": ["chat gpt-4o-mini"], "removed": [], "changed": []},
        "answer": {
            "added": [],
            "removed": [],
            "changed": [{"base": "chat gpt-4o", "head": "chat gpt-4.1"}],
        },
    }
    assert rag["spans"] == {
        "added": ["answer/chat gpt-4.1", "retrieve/chat gpt-4o-mini"],
        "removed": ["answer/chat gpt-4o"],
    }
    assert rag["scores"] == {"faithfulness": {"base": 0.9, "head": 0.6}}
    same = next(t for t in result["tests"] if t["nodeid"].endswith("test_same"))
    assert same["status"] == "unchanged"

    assert main(["diff", str(base), str(head)]) == 0
    text = capsys.readouterr().out
    assert "1 changed, 0 added, 0 removed, 1 unchanged test." in text
    assert "#### `test_inner.py::test_rag` — changed" in text
    assert "| stage `retrieve` | 1 → **2** (+100%) |" in text
    assert "- call added in `retrieve`: `chat gpt-4o-mini`" in text
    assert "- call changed in `answer`: `chat gpt-4o` → `chat gpt-4.1`" in text
    assert "- span removed: `answer/chat gpt-4o`" in text
    assert "- score `faithfulness`: 0.9 → **0.6**" in text
    assert "test_same" not in text  # unchanged tests are counted, not listed


def test_diff_against_a_baseline_file_and_bad_inputs(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_inner=SUITE)
    monkeypatch.setenv("APP_VERSION", "base")
    pytester.runpytest(
        *INNER_ARGS, "--llm-baseline=baseline.json", "--llm-baseline-update"
    ).assert_outcomes(passed=2)
    head = _run(pytester, "head", "head-artifacts", monkeypatch)
    capsys.readouterr()
    assert main(["diff", str(pytester.path / "baseline.json"), str(head), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["base"]["kind"] == "baseline"
    rag = next(t for t in result["tests"] if t["nodeid"].endswith("test_rag"))
    assert rag["figures"]["calls"] == {"base": 2, "head": 3}
    assert rag["scores"] == {"faithfulness": {"base": 0.9, "head": 0.6}}
    assert rag["calls"] == {}  # a baseline has no call list to match

    assert main(["diff", str(pytester.path / "nowhere"), str(head)]) == 2
    assert "llmobs diff: " in capsys.readouterr().err
    (pytester.path / "junk.json").write_text("{}")
    assert main(["diff", str(pytester.path / "junk.json"), str(head)]) == 2
    err = capsys.readouterr().err
    assert "junk.json: neither an artifact directory nor a pytest-llmobs baseline" in err
