"""The chaos and cassette properties of each test case, in `llmobs-junit.xml` and in pytest's
own `--junitxml` report (through `user_properties`), read back with junitparser."""

from __future__ import annotations

from pathlib import Path

import junitparser
import pytest
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer

SUITE = """
import os, openai, pytest

M = [{"role": "user", "content": "say hello to the test"}]


def chat(retries):
    client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", max_retries=retries)
    return client.chat.completions.create(model="gpt-4o", messages=M)


@pytest.mark.llm_cassette(record_mode="off")  # chaos answers live traffic here
@pytest.mark.llm_chaos("rate_limit", retry_after=0.05)
def test_fault_retried(llmobs):
    assert chat(retries=2).choices[0].message.content


@pytest.mark.llm_cassette(record_mode="off")
@pytest.mark.llm_chaos("rate_limit")
def test_fault_not_handled(llmobs):
    chat(retries=0)  # the app gives up on the first 429


def test_replayed(llmobs):
    assert chat(retries=0).choices[0].message.content


def test_no_llm():
    pass
"""


def case_properties(path: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """test name → (its properties, the types of its failure elements)."""
    out = {}
    for suite in junitparser.JUnitXml.fromfile(str(path)):
        for case in suite:
            holder = case.child(junitparser.Properties)
            props = {} if holder is None else {p.name: p.value for p in holder}
            failures = [r.type or "" for r in case.result if isinstance(r, junitparser.Failure)]
            out[case.name] = (props, failures)
    return out


def test_chaos_and_cassette_properties_in_both_junit_reports(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    pytester.makepyfile(test_inner=SUITE)
    pytester.runpytest(*INNER_ARGS, "-k", "replayed", "--llm-record-mode=once").assert_outcomes(
        passed=1
    )
    pytester.makeini("[pytest]\nllm_record_mode = none\n")  # the marker may turn it off
    sent = len(provider.requests)
    result = pytester.runpytest(
        *INNER_ARGS, "--llm-artifacts=out", "--junitxml=pytest.xml", "--llm-chaos-seed=7"
    )
    result.assert_outcomes(passed=3, failed=1)
    # only the retry after the injected 429 reached the server; test_replayed did not
    assert len(provider.requests) == sent + 1

    ours = case_properties(pytester.path / "out" / "llmobs-junit.xml")
    theirs = case_properties(pytester.path / "pytest.xml")
    assert (
        set(ours)
        == set(theirs)
        == {
            "test_fault_retried",
            "test_fault_not_handled",
            "test_replayed",
            "test_no_llm",
        }
    )

    retried, failures = ours["test_fault_retried"]
    assert (retried["llmobs.chaos_faults"], retried["llmobs.chaos_verdict"]) == ("1", "pass")
    assert retried["llmobs.calls"] == "2" and "llmobs.cassette" not in retried
    assert failures == []

    given_up, failures = ours["test_fault_not_handled"]
    assert (given_up["llmobs.chaos_faults"], given_up["llmobs.chaos_verdict"]) == ("1", "fail")
    assert given_up["llmobs.calls"] == "1" and "llmobs.cassette" not in given_up
    assert failures == ["llmobs.resilience.not_retried"]  # the app never retried the 429

    replayed, failures = ours["test_replayed"]
    assert replayed["llmobs.cassette"] == "cassettes/test_inner/test_replayed.yaml"
    assert replayed["llmobs.chaos_faults"] == "0" and "llmobs.chaos_verdict" not in replayed
    assert replayed["llmobs.calls"] == "1" and replayed["llmobs.output_tokens"] == "4"
    assert failures == []

    assert ours["test_no_llm"] == ({}, [])
    # pytest's report carries the same per-test properties
    for name, (props, _) in ours.items():
        assert theirs[name][0] == props, name
