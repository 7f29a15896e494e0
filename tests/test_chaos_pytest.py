"""Chaos in pytest: the matrix, the seed, `--llm-chaos`, scenario files, xdist, and the
responder order relative to replay."""

from __future__ import annotations

import pytest
from chaos_support import HEADER, INNER_ARGS

from pytest_llmobs.testing import ProviderServer

PROBABILISTIC = """
@pytest.mark.parametrize("n", range(3))
def test_calls(llmobs, n):
    for _ in range(8):
        try:
            chat()
        except openai.APIStatusError:
            pass
    injected = [(i["call_index"], i["fault"]) for i in llmobs.chaos.injected]
    print(f"INJECTED {n} {injected}")
"""

SCENARIO = """\
name: flaky-provider
rules:
  - fault: rate_limit
    probability: 0.4
    params: {retry_after: 0}
  - fault: server_error
    probability: 0.3
    match: {provider: openai, model: "gpt-4*"}
"""


def _injected(result: pytest.RunResult) -> list[str]:
    return sorted(line for line in result.stdout.lines if line.startswith("INJECTED"))


def test_same_seed_same_faults(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makepyfile(test_inner=HEADER + PROBABILISTIC)
    pytester.makefile(".yaml", chaos=SCENARIO)
    # which faults, not whether the client survived them: the gate only reports here
    args = (*INNER_ARGS, "-rA", "--llm-chaos=chaos.yaml", "-o", "llm_chaos_gate=warn")
    first = pytester.runpytest(*args, "--llm-chaos-seed=11")
    second = pytester.runpytest(*args, "--llm-chaos-seed=11")
    other = pytester.runpytest(*args, "--llm-chaos-seed=12")
    for result in (first, second, other):
        result.assert_outcomes(passed=3)
    assert _injected(first) == _injected(second)
    assert _injected(first) != _injected(other)
    faults = " ".join(_injected(first))
    assert "rate_limit" in faults and "server_error" in faults
    first.stdout.fnmatch_lines(
        ["llmobs chaos: seed=11 (cli/ini*scenario=flaky-provider (rate_limit p=0.4 times=∞*"]
    )


def test_seed_from_the_scenario_and_ini(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(test_inner=HEADER + PROBABILISTIC)
    pytester.makefile(".yaml", chaos="seed: 99\n" + SCENARIO)
    from_file = pytester.runpytest(*INNER_ARGS, "-rA", "--llm-chaos=chaos.yaml")
    from_file.stdout.fnmatch_lines(["llmobs chaos: seed=99 (scenario*"])
    pytester.makeini("[pytest]\nllm_chaos = chaos.yaml\nllm_chaos_seed = 99\n")
    from_ini = pytester.runpytest(*INNER_ARGS, "-rA")
    from_ini.stdout.fnmatch_lines(["llmobs chaos: seed=99 (cli/ini*"])
    assert _injected(from_file) == _injected(from_ini)


def test_random_seed_is_shared_with_xdist_workers(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(test_inner=HEADER + PROBABILISTIC)
    pytester.makefile(".yaml", chaos=SCENARIO)
    result = pytester.runpytest_subprocess(
        *INNER_ARGS,
        "-n",
        "2",
        "--llm-chaos=chaos.yaml",
        "-rA",
        "-o",
        "console_output_style=classic",
    )
    result.assert_outcomes(passed=3)
    header = next(line for line in result.stdout.lines if line.startswith("llmobs chaos: seed="))
    seed = header.split("=")[1].split()[0]
    assert "(random;" in header
    result.stdout.fnmatch_lines([f"*llmobs chaos (seed {seed})*"])
    # the same faults again, in one process, from the printed seed
    again = pytester.runpytest(
        *INNER_ARGS, "-rA", "--llm-chaos=chaos.yaml", f"--llm-chaos-seed={seed}"
    )
    captured = sorted(line for line in result.stdout.lines if "INJECTED" in line)
    assert [line[line.index("INJECTED") :] for line in captured] == _injected(again)


def test_llm_chaos_with_a_fault_name_hits_every_test(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    body = """
def test_one(llmobs):
    assert chat(oai(max_retries=2)).choices
    assert [c.status_code for c in ordered(llmobs)] == [503, 200]


def test_two(llmobs):
    assert msg(ant(max_retries=2)).content
    assert [c.status_code for c in ordered(llmobs)] == [529, 200]
    llmobs.assert_resilient(strict=True)
"""
    pytester.makepyfile(test_inner=HEADER + body)
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos=overloaded")
    result.assert_outcomes(passed=2)


def test_matrix_ids_and_runs(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    body = """
@pytest.mark.llm_chaos_matrix(["rate_limit", "overloaded", "stream_cut",
                               {"fault": "server_error", "status": 503}])
def test_survives(llmobs):
    try:
        text = stream_text(chat(oai(max_retries=2), stream=True))
    except CONNECTION_ERROR:  # mid-stream: the app retries itself
        text = stream_text(chat(oai(max_retries=2), stream=True))
    assert text
    llmobs.assert_resilient()


@pytest.mark.llm_chaos_matrix(["timeout", "connection_reset"], provider="anthropic")
@pytest.mark.parametrize("model", ["claude-a", "claude-b"])
def test_combined(llmobs, model):
    pass
"""
    pytester.makepyfile(test_inner=HEADER + body)
    collected = pytester.runpytest(*INNER_ARGS, "--collect-only", "-q")
    collected.stdout.fnmatch_lines(
        [
            "test_inner.py::test_survives[chaos=rate_limit]",
            "test_inner.py::test_survives[chaos=overloaded]",
            "test_inner.py::test_survives[chaos=stream_cut]",
            "test_inner.py::test_survives[chaos=server_error]",
            "test_inner.py::test_combined[chaos=timeout-claude-a]",
            "test_inner.py::test_combined[chaos=timeout-claude-b]",
            "test_inner.py::test_combined[chaos=connection_reset-claude-a]",
            "test_inner.py::test_combined[chaos=connection_reset-claude-b]",
        ]
    )
    result = pytester.runpytest(*INNER_ARGS, "-k", "survives", "-o", "llm_chaos_seed=3")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["pass      test_inner.py::test_survives[[]chaos=stream_cut[]]*"])


def test_bad_markers_and_options_say_what_is_valid(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    body = """
@pytest.mark.llm_chaos("rate_limt")
def test_typo(llmobs):
    pass


@pytest.mark.llm_chaos("rate_limit", retry_afterr=1)
def test_bad_param(llmobs):
    pass


def test_bad_inject(llmobs):
    with pytest.raises(ValueError, match="probability=2 must be a number from 0 to 1"):
        llmobs.chaos.inject("overloaded", probability=2)


"""
    matrix = """
import pytest


@pytest.mark.llm_chaos_matrix(["overloaded", "stream_cutt"])
def test_bad_matrix(llmobs):
    pass
"""
    pytester.makepyfile(test_inner=HEADER + body, test_matrix=matrix)
    result = pytester.runpytest(*INNER_ARGS, "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*llm_chaos_matrix: unknown fault 'stream_cutt'*",
            "*test_inner.py::test_typo: llm_chaos: unknown fault 'rate_limt'; valid faults: "
            "rate_limit, quota_exhausted, *",
            "*test_inner.py::test_bad_param: llm_chaos: fault 'rate_limit' has no parameter "
            "'retry_afterr'; valid: retry_after*",
        ]
    )
    usage = pytester.runpytest(*INNER_ARGS, "--llm-chaos=rate_limt")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    usage.stderr.fnmatch_lines(
        ["*--llm-chaos*unknown fault 'rate_limt'; valid faults: rate_limit*"]
    )
    pytester.makefile(".yaml", bad="rules:\n  - fault: rate_limit\n    probability: 1.5\n")
    bad = pytester.runpytest(*INNER_ARGS, "--llm-chaos=bad.yaml")
    bad.stderr.fnmatch_lines(["*bad.yaml:3: probability=1.5 must be a number from 0 to 1*"])
    missing = pytester.runpytest(*INNER_ARGS, "--llm-chaos=nothere.yaml")
    missing.stderr.fnmatch_lines(["*nothere.yaml: cannot read scenario file*"])
    seed = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=abc")
    seed.stderr.fnmatch_lines(
        ["*--llm-chaos-seed / ini llm_chaos_seed (cli): 'abc' is not a valid int*"]
    )


REPLAY_CONFTEST = """
import json
import pytest
from pytest_llmobs.intercept import CannedResponse
from pytest_llmobs.plugin import CAPTURE

SEEN = {"replayed": 0, "recorded_sources": []}


class FakeReplay:
    \"\"\"Stands in for cassette replay: answers every chat call from a 'recording'.\"\"\"

    def __call__(self, exchange):
        SEEN["replayed"] += 1
        body = {"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "replayed"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        return CannedResponse(200, [("content-type", "application/json")],
                              [(0.0, json.dumps(body).encode())])


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    interceptor = config.stash[CAPTURE].interceptor
    interceptor.responders.insert(0, FakeReplay())  # even in front: chaos moves itself first
    interceptor.listeners.append(lambda ex: SEEN["recorded_sources"].append(ex.source))


@pytest.fixture
def seen():
    return SEEN
"""


def test_chaos_answers_before_replay_and_is_marked_as_chaos(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makeconftest(REPLAY_CONFTEST)
    body = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0, times=2)
def test_it(llmobs, seen):
    assert chat(oai(max_retries=2)).choices[0].message.content == "replayed"
    assert seen["replayed"] == 1  # the faulted attempts never consumed a recording
    assert seen["recorded_sources"] == ["chaos", "chaos", "replay"]
    assert [c.source for c in ordered(llmobs)] == ["chaos", "chaos", "replay"]
"""
    pytester.makepyfile(test_inner=HEADER + body)
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)
    assert provider.requests == []


def test_same_faults_when_recording_and_replaying_cassettes(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    body = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0)
@pytest.mark.llm_chaos("stream_cut", stream=True)
def test_it(llmobs):
    assert chat(oai(max_retries=1)).choices[0].message.content
    with pytest.raises(CONNECTION_ERROR):
        stream_text(chat(stream=True))
    assert stream_text(chat(stream=True))  # the app's own retry
    sources = [(c.source, c.attributes.get("llmobs.chaos.fault")) for c in ordered(llmobs)]
    print("SOURCES", sources)
    llmobs.assert_resilient()
"""
    pytester.makepyfile(test_inner=HEADER + body)
    recorded = pytester.runpytest(*INNER_ARGS, "-rA", "--llm-record-mode=once")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(
        [
            "SOURCES [[]('chaos', 'rate_limit'), ('live', None), ('chaos', 'stream_cut'), "
            "('live', None)[]]"
        ]
    )
    assert len(provider.requests) == 2  # faults never reached the provider
    [cassette] = (pytester.path / "cassettes").rglob("*.yaml")
    stored = cassette.read_text()
    assert "rate_limit_exceeded" not in stored and stored.count('"status"') >= 2
    replayed = pytester.runpytest(*INNER_ARGS, "-rA", "--llm-record-mode=none")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(
        [
            "SOURCES [[]('chaos', 'rate_limit'), ('replay', None), ('chaos', 'stream_cut'), "
            "('replay', None)[]]"
        ]
    )
    assert len(provider.requests) == 2  # nothing new went to the network
