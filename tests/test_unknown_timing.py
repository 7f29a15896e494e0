"""Unknown is not zero: a stream replayed from a cassette plain vcrpy wrote (no timing) has an
unknown time to first chunk — in the LLMCall, on its span, in summary.json, the terminal
table, report.html and JUnit — and a `max_ttft_s` budget says it could not be checked (a
warning by default; `-W error::pytest_llmobs.LLMUncheckedWarning` makes it fail)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import junitparser
import pytest
import vcr  # noqa: F401 - loaded once for the session (pytester drops what it imports)
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.testing import ProviderServer

SUITE = """
import os
import openai, pytest

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


@pytest.fixture(autouse=True)
def plain_vcrpy(request):
    if not os.environ.get("VCR_RECORD"):
        yield
        return
    import vcr

    path = request.path.parent / "cassettes" / request.path.stem / f"{request.node.name}.yaml"
    with vcr.VCR(record_mode="once", filter_headers=["authorization"]).use_cassette(str(path)):
        yield


@pytest.mark.llm_budget(max_ttft_s=0.5, min_tokens_per_s=1)
def test_stream(request):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    if not request.config.pluginmanager.hasplugin("llmobs"):
        return
    llmobs = request.getfixturevalue("llmobs")
    [call] = llmobs.calls
    assert call.source == "replay" and call.stream
    assert call.recorded_time_to_first_chunk_s is None
    assert call.effective_time_to_first_chunk_s is None
    [span] = llmobs.find_spans("chat gpt-4o")
    assert "llmobs.recorded.time_to_first_chunk_s" not in span.attributes
    assert span.attributes["llmobs.source"] == "replay"
"""


def _page_data(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="llmobs-data">(.*?)</script>', html, re.S
    )
    assert match, "no embedded data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_vcrpy_cassette_without_timing_replays_with_unknown_ttft(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.configure(reply="one two three four", ttft_s=0.05)
    pytester.makepyfile(test_inner=SUITE)
    monkeypatch.setenv("VCR_RECORD", "1")
    pytester.runpytest(*INNER_ARGS, "-p", "no:llmobs").assert_outcomes(passed=1)
    monkeypatch.delenv("VCR_RECORD")
    cassette = pytester.path / "cassettes" / "test_inner" / "test_stream.yaml"
    assert b"llmobs_cassette" not in cassette.read_bytes()  # vcrpy's own file, no timing

    monkeypatch.setenv("LLM_URL", dead_url())  # offline: the cassette answers
    result = pytester.runpytest(
        *INNER_ARGS, "--llm-record-mode=none", "--llm-artifacts=out", "-p", "no:xdist"
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*LLMUncheckedWarning: LLM budget not fully checked for test_inner.py::test_stream:"
            " 2 limits unknown",
            "*- max_ttft_s: could not be checked for call #1: replayed from a cassette "
            "without timing*",
            "*- min_tokens_per_s: could not be checked for call #1*",
        ]
    )
    # the terminal table: no TTFT, not 0
    [row] = [line for line in result.outlines if line.startswith("test_inner.py::test_stream ")]
    assert row.split()[6] == "-", row

    out = pytester.path / "out"
    summary = json.loads((out / "summary.json").read_text())
    [test] = summary["tests"].values()
    [record] = test["calls"]
    assert record["source"] == "replay" and record["stream"] is True
    assert record["time_to_first_chunk_s"] is None
    assert test["unchecked"] and test["unchecked"][0].startswith("max_ttft_s: could not be")
    assert test["violations"] == []

    page = _page_data((out / "report.html").read_text())
    [shown] = page["tests"]
    assert shown["ttft_p50_s"] is None and shown["call_rows"][0]["ttft_s"] is None
    [llm_span] = [s for s in shown["spans"] if s["llm"]]
    assert llm_span["ttft_ms"] is None and llm_span["ttft_unknown"] is True

    [suite] = junitparser.JUnitXml.fromfile(str(out / "llmobs-junit.xml"))
    [case] = list(suite)
    holder = case.child(junitparser.Properties)
    properties = {p.name: p.value for p in holder} if holder is not None else {}
    assert "llmobs.ttft_p50_s" not in properties
    assert properties["llmobs.unchecked"].startswith("max_ttft_s: could not be checked")
    assert case.is_passed

    # a demanding CI opts in to failing on it with the standard warning filter
    strict = pytester.runpytest(
        *INNER_ARGS,
        "--llm-record-mode=none",
        "-p",
        "no:xdist",
        "-W",
        "error::pytest_llmobs.LLMUncheckedWarning",
    )
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        ["LLM budget not fully checked for test_inner.py::test_stream: 2 limits unknown"]
    )
    assert "INTERNALERROR" not in strict.stdout.str() + strict.stderr.str()


def test_cassette_without_timing_unit(tmp_path: Path) -> None:
    """The rule itself, on hand-made calls: only a replay without recorded timing is unknown."""
    from pytest_llmobs.budgets import Budget, unchecked
    from pytest_llmobs.calls import LLMCall

    def call(**kw: Any) -> LLMCall:
        return LLMCall(provider="openai", operation="chat", url="u", stream=True, **kw)

    timed = call(source="replay", recorded_time_to_first_chunk_s=0.2, time_to_first_chunk_s=0.0)
    untimed = call(source="replay", time_to_first_chunk_s=0.0001)
    live = call(time_to_first_chunk_s=0.3)
    assert timed.effective_time_to_first_chunk_s == 0.2
    assert untimed.effective_time_to_first_chunk_s is None
    assert live.effective_time_to_first_chunk_s == 0.3
    budget = Budget(max_ttft_s=1.0)
    assert unchecked([timed, live], budget) == []
    [note] = unchecked([timed, untimed, live], budget)
    assert note.startswith("max_ttft_s: could not be checked for call #2:")
    assert unchecked([untimed], Budget(max_latency_s=1.0)) == []
    errored = call(source="replay", status_code=429)
    assert unchecked([errored], budget) == []
