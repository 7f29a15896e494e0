"""What xdist workers hand the controller beyond test reports (`workeroutput`): calls made
outside any test, the cassettes they wrote, requests outside any test that no cassette
answered, and our own swallowed errors — printed once, by the controller. (The equality of
an xdist run's artifacts with a single process's is in test_report_ci.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.testing import ProviderServer

# An LLM call while the module is collected (every process that collects it makes it),
# and tests that each make one.
SUITE = """
import os, httpx, pytest

URL = os.environ["LLM_URL"]


def chat(text):
    return httpx.post(URL + "/v1/chat/completions",
                      json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})


chat("at import")


@pytest.mark.parametrize("n", range(4))
def test_n(n):
    chat(f"call {n}")
"""


# A bug in our own response processing (a listener that raises) must not break the app's
# calls, and is reported, once, by whoever prints.
BROKEN_LISTENER = """
import pytest
from pytest_llmobs.plugin import CAPTURE


@pytest.hookimpl(trylast=True)  # after the plugin's
def pytest_configure(config):
    def broken(exchange):
        raise RuntimeError("listener bug")
    config.stash[CAPTURE].interceptor.listeners.append(broken)
"""


def summary(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / name / "summary.json").read_text())
    return data


def test_calls_outside_tests_cassettes_and_errors_reach_the_controller(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    pytester.makepyfile(test_inner=SUITE)
    pytester.makeconftest(BROKEN_LISTENER)
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "-n", "2", "-v", "--llm-record-mode=once", "--llm-artifacts=xdist"
    )
    result.assert_outcomes(passed=4)
    # both workers collected the module: two calls at import, none from the controller
    assert sum(r.json["messages"][0]["content"] == "at import" for r in provider.requests) == 2
    totals = summary(pytester, "xdist")["totals"]
    assert (totals["calls"], totals["outside_calls"]) == (6, 2)
    assert (totals["input_tokens"], totals["output_tokens"]) == (6 * 2, 6 * 4)
    outside = summary(pytester, "xdist")["outside_tests"]["calls"]
    assert [c["usage"]["output_tokens"] for c in outside] == [4, 4]
    prompts = (pytester.path / "xdist" / "prompts.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["test_id"] == "(outside tests)" for line in prompts) == 2
    result.stdout.fnmatch_lines(
        ["llmobs: 2 LLM calls outside any test (collection, *), 4 input + 8 output tokens"]
    )
    # one list, from the controller: every test's cassette and the session cassette once
    assert result.stdout.lines.count("5 cassettes written") == 1
    listed = sorted(line.strip() for line in result.stdout.lines if line.endswith(".yaml"))
    root = str(pytester.path / "cassettes")
    assert listed == sorted(
        [f"{root}/_session.yaml", *(f"{root}/test_inner/test_n[{n}].yaml" for n in range(4))]
    )
    # every worker's swallowed errors, one line on the controller (4 tests + 2 imports)
    result.stdout.fnmatch_lines(
        ["llmobs: 6 internal errors while reading responses *RuntimeError('listener bug')*"]
    )

    # the same run in one process: the same figures, one import call instead of two
    single = pytester.runpytest(*INNER_ARGS, "--llm-record-mode=none", "--llm-artifacts=single")
    single.assert_outcomes(passed=4)
    assert summary(pytester, "single")["totals"]["outside_calls"] == 1
    single.stdout.fnmatch_lines(["llmobs: 5 internal errors while reading responses *"])
    assert "cassette(s) written" not in single.stdout.str()


def test_requests_outside_tests_without_a_cassette_fail_the_xdist_run(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=SUITE)
    # every test has its cassette, the session (module import) has none
    pytester.runpytest(*INNER_ARGS, "--llm-record-mode=once").assert_outcomes(passed=4)
    (pytester.path / "cassettes" / "_session.yaml").unlink()
    monkeypatch.setenv("LLM_URL", dead_url())
    result = pytester.runpytest_subprocess(*INNER_ARGS, "-n", "2", "--llm-record-mode=none")
    result.assert_outcomes(passed=4)
    # a worker's own exit status never reaches the controller: the controller fails the run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert text.count("llmobs: requests outside any test") == 1
    # both workers missed the same request: explained once
    assert text.count("pytest-llmobs: no cassette") == 1
    result.stdout.fnmatch_lines(["*no cassette */_session.yaml*"])


def test_outside_calls_count_in_the_session_budget_single_process(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(test_inner=SUITE)
    result = pytester.runpytest(*INNER_ARGS, "--llm-session-budget", "max_calls=4")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  max_calls: limit 4, actual 5*", "    (outside tests) (1 call)"])
    path = Path(pytester.path / "llmobs-artifacts" / "summary.json")
    assert json.loads(path.read_text())["totals"]["calls"] == 5


PRICED = """
import os, httpx, pytest


@pytest.mark.parametrize("model", ["gpt-4o", "house-model-x", "gpt-4o-mini", "gpt-4o"])
def test_model(model):
    httpx.post(os.environ["LLM_URL"] + "/v1/chat/completions",
               json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
"""

# Whether the process that prints the cost line and checks the session loaded the price
# table and PyYAML: one file per run (RUN), written by the controller or the single process.
LOADED = """
import json, os, sys


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        with open(f"loaded-{os.environ['RUN']}.json", "w") as f:
            json.dump({m: m in sys.modules for m in ("genai_prices.data", "yaml")}, f)
"""


def test_the_xdist_controller_loads_neither_prices_nor_yaml(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call's record carries the cost its worker worked out (and why one is unknown):
    the controller's cost line and session budget read it, as a single process computes
    them, without loading genai-prices' table (or, with no SDK imported, pydantic). Nor
    does it import PyYAML: it reads no cassette or scenario (~15 ms before it can start
    the workers)."""
    provider.configure(reply="one two three four")
    pytester.makepyfile(test_inner=PRICED)
    pytester.makeconftest(LOADED)
    args = (*INNER_ARGS, "--llm-record-mode=off", "--llm-session-budget=max_cost_usd=0.000001")
    outputs = {}
    for run, extra in (("xdist", ("-n", "2")), ("single", ())):
        monkeypatch.setenv("RUN", run)
        result = pytester.runpytest_subprocess(*args, *extra)
        result.assert_outcomes(passed=4)
        assert result.ret == pytest.ExitCode.TESTS_FAILED  # over the session budget
        result.stdout.fnmatch_lines(
            [
                "llmobs cost: $* for 3 of 4 calls; unknown for 1: "
                "no known price for house-model-x (openai)*",
                "*max_cost_usd: limit $0.000001, actual $*",
            ]
        )
        outputs[run] = [line for line in result.stdout.lines if line.startswith("llmobs cost:")]
    assert outputs["xdist"] == outputs["single"]
    loaded = {
        run: json.loads(Path(pytester.path, f"loaded-{run}.json").read_text()) for run in outputs
    }
    assert loaded["xdist"] == {"genai_prices.data": False, "yaml": False}
    assert loaded["single"]["genai_prices.data"]
