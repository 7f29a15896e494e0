"""llm_budget markers, the session budget and budget modes: pure checks over hand-made
calls, then end to end with the real SDKs against the local provider server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_llmobs.budgets import (
    BUDGET_KEYS,
    Budget,
    BudgetError,
    MarkerArgs,
    check_budget,
    check_test,
    parse_budget,
    parse_session_budget,
    percentile,
    render,
    resolve,
    tokens_per_s,
)
from pytest_llmobs.calls import LLMCall, Usage
from pytest_llmobs.testing import ProviderServer, error_reply

HEADER = """
import os
import anthropic, openai, pytest

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]  # 5 input tokens


def oai(**kw):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=kw.pop("max_retries", 0), **kw)


def chat(model="gpt-4o", ttft_ms=0, delay_ms=0, **kw):
    headers = {"x-fake-ttft-ms": str(ttft_ms), "x-fake-chunk-delay-ms": str(delay_ms)}
    return oai(**kw).chat.completions.create(
        model=model, messages=MESSAGES, extra_headers=headers)


def stream(model="gpt-4o", ttft_ms=0, delay_ms=0):
    headers = {"x-fake-ttft-ms": str(ttft_ms), "x-fake-chunk-delay-ms": str(delay_ms)}
    for _ in oai().chat.completions.create(
            model=model, messages=MESSAGES, stream=True, extra_headers=headers,
            stream_options={"include_usage": True}):
        pass
"""

INNER_ARGS = ("-p", "no:cacheprovider", "-rA", "-o", "asyncio_default_fixture_loop_scope=function")


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    return pytester.runpytest(*INNER_ARGS, *args)


def outcomes_by_test(result: pytest.RunResult) -> dict[str, str]:
    """test name → PASSED / FAILED, from the -rA short summary."""
    found = {}
    for line in result.stdout.lines:
        word, _, rest = line.partition(" test_inner.py::")
        if word in ("PASSED", "FAILED") and rest:
            found[rest.split(" ")[0]] = word
    return found


def call(
    model: str = "gpt-4o",
    i: int | None = 5,
    o: int | None = 4,
    duration: float | None = 0.1,
    ttft: float | None = None,
    attempt: int = 0,
    status: int = 200,
    **kw: Any,
) -> LLMCall:
    return LLMCall(
        provider=kw.pop("provider", "openai"),
        operation=kw.pop("operation", "chat"),
        url="http://x/v1/chat/completions",
        request_model=model,
        usage=Usage(input_tokens=i, output_tokens=o),
        duration_s=duration,
        time_to_first_chunk_s=ttft,
        stream=ttft is not None,
        attempt=attempt,
        status_code=status,
        **kw,
    )


# -- parsing and merging ---------------------------------------------------------------------
def test_parse_budget_types_and_unknown_keys() -> None:
    budget = parse_budget({"max_calls": 2, "max_cost_usd": 1, "model": "gpt-*"})
    assert budget.max_calls == 2 and budget.max_cost_usd == 1.0 and budget.model == ("gpt-*",)
    assert parse_budget({"model": ["a*", "b*"]}).model == ("a*", "b*")
    with pytest.raises(BudgetError, match=r"unknown key 'max_cals' \(did you mean max_calls\?\)"):
        parse_budget({"max_cals": 2})
    with pytest.raises(BudgetError, match="valid keys: max_calls, max_input_tokens"):
        parse_budget({"tokens": 2})
    for bad in (
        {"max_calls": True},
        {"max_calls": -1},
        {"max_calls": 1.5},
        {"max_calls": "2"},
        {"max_cost_usd": "1"},
        {"max_cost_usd": float("inf")},
        {"max_latency_s": -0.1},
        {"allow_truncation": 1},
        {"model": 3},
        {"model": []},
    ):
        with pytest.raises(BudgetError, match="must be"):
            parse_budget(bad)


def test_session_budget_string() -> None:
    budget = parse_session_budget("max_cost_usd=2.50 max_total_tokens=200000, model=gpt-*")
    assert (budget.max_cost_usd, budget.max_total_tokens) == (2.5, 200000)
    assert budget.model == ("gpt-*",) and budget.origins["max_cost_usd"] == "session"
    with pytest.raises(BudgetError, match="not KEY=VALUE"):
        parse_session_budget("max_cost_usd")
    with pytest.raises(BudgetError, match="unknown key 'allow_truncation'"):
        parse_session_budget("allow_truncation=true")


def test_merge_nearest_wins_per_key() -> None:
    markers = [  # nearest first, as item.iter_markers yields them
        MarkerArgs("llm_budget", "test", (), {"max_calls": 1}),
        MarkerArgs("llm_budget", "class", (), {"max_calls": 5, "max_output_tokens": 10}),
        MarkerArgs("llm_budget", "module", (), {"max_output_tokens": 99, "max_retries": 0}),
    ]
    checks = resolve(markers)
    b = checks.budget
    assert (b.max_calls, b.max_output_tokens, b.max_retries) == (1, 10, 0)
    assert b.origins == {"max_calls": "test", "max_output_tokens": "class", "max_retries": "module"}
    assert checks.allow_truncation is False


def test_truncation_allowance_nearest_decides() -> None:
    allow = MarkerArgs("llm_allow_truncation", "module")
    deny = MarkerArgs("llm_budget", "test", (), {"allow_truncation": False})
    assert resolve([allow]).allow_truncation is True
    assert resolve([deny, allow]).allow_truncation is False
    assert resolve([allow, deny]).allow_truncation is True
    some = resolve([MarkerArgs("llm_allow_truncation", "test", ("length", "stream"))])
    assert (some.allow_truncation, some.allowed_truncations) == (False, ("length", "stream"))
    with pytest.raises(BudgetError, match="keyword arguments only"):
        resolve([MarkerArgs("llm_budget", "test", (3,))])
    with pytest.raises(BudgetError, match="truncation reasons or kinds only"):
        resolve([MarkerArgs("llm_allow_truncation", "test", ("nonsense",))])


# -- figures ---------------------------------------------------------------------------------
def test_percentile_is_nearest_rank() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 95) == 1.0  # ceil(0.95 * 5) = 5th value
    assert percentile([0.5], 95) == 0.5 and percentile([], 50) is None
    assert percentile(list(range(1, 101)), 95) == 95


def test_tokens_per_s_streams_only() -> None:
    assert tokens_per_s(call(o=10, duration=1.2, ttft=0.2)) == pytest.approx(10.0)
    assert tokens_per_s(call(o=10, duration=1.0)) is None  # not a stream
    assert tokens_per_s(call(o=None, duration=1.0, ttft=0.1)) is None
    assert tokens_per_s(call(o=3, duration=0.1, ttft=0.1)) is None  # one chunk: no rate


def test_replay_uses_recorded_figures() -> None:
    replayed = call(duration=0.001, ttft=0.0005, source="replay")
    replayed.recorded_duration_s, replayed.recorded_time_to_first_chunk_s = 2.0, 1.0
    [v] = check_budget([replayed], Budget(max_latency_s=1.5))
    assert v.actual == 2.0
    [v] = check_budget([replayed], Budget(max_ttft_s=0.5))
    assert v.actual == 1.0


# -- every key, failing and passing -----------------------------------------------------------
CALLS = [
    call("gpt-4o", 10, 5, 0.10),
    call("gpt-4o", 20, 6, 0.30, ttft=0.1),
    call("gpt-4o", None, None, 0.02, attempt=1, status=429),
    call("gpt-4o", 30, 7, 0.50, ttft=0.4),
    call("claude-test", 40, 8, 2.00, provider="anthropic"),
]


@pytest.mark.parametrize(
    ("key", "passing", "failing", "actual", "responsible"),
    [
        ("max_calls", 4, 3, 4, 5),
        ("max_input_tokens", 100, 99, 100, 4),
        ("max_output_tokens", 26, 25, 26, 4),
        ("max_total_tokens", 126, 125, 126, 4),
        ("max_latency_s", 2.0, 0.4, 2.0, 2),
        ("max_p50_latency_s", 0.3, 0.2, 0.3, 3),
        ("max_p95_latency_s", 2.0, 1.0, 2.0, 1),
        ("max_ttft_s", 0.4, 0.3, 0.4, 1),
        ("min_tokens_per_s", 30.0, 31.0, 30.0, 1),
        ("max_retries", 1, 0, 1, 1),
    ],
)
def test_each_key(
    key: str, passing: float, failing: float, actual: float, responsible: int
) -> None:
    assert check_budget(CALLS, Budget(**{key: passing})) == []
    [v] = check_budget(CALLS, Budget(**{key: failing}))
    assert (v.key, v.limit) == (key, failing)
    assert v.actual == pytest.approx(actual)
    assert len(v.calls) == responsible


def test_model_glob_restricts_counted_calls() -> None:
    assert check_budget(CALLS, Budget(max_calls=1, model=("claude-*",))) == []
    [v] = check_budget(CALLS, Budget(max_latency_s=0.2, model=("gpt-*",)))
    assert v.actual == 0.5  # the 2 s claude call is not counted


def test_unknown_usage_is_a_violation_not_zero() -> None:
    no_usage = call(i=None, o=None, ttft=0.1)  # an OpenAI stream without include_usage
    [v] = check_budget([call(), no_usage], Budget(max_output_tokens=100))
    assert v.actual is None and "reported no output token usage" in v.detail
    assert v.calls[0] is no_usage
    # a failed request reported nothing because nothing was used
    assert (
        check_budget([call(), call(i=None, o=None, status=500)], Budget(max_total_tokens=99)) == []
    )
    # embeddings have no output tokens
    embedding = call(i=3, o=None, operation="embeddings")
    assert check_budget([embedding], Budget(max_output_tokens=1)) == []


def test_several_violations_all_listed_in_a_table() -> None:
    violations = check_test(
        CALLS,
        resolve(
            [
                MarkerArgs(
                    "llm_budget",
                    "test",
                    (),
                    {"max_calls": 1, "max_latency_s": 1.0, "max_retries": 0},
                )
            ]
        ),
    )
    assert [v.key for v in violations] == ["max_calls", "max_latency_s", "max_retries"]
    text = render(violations, CALLS, title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1].split() == ["key", "limit", "actual", "set", "on", "calls", "responsible"]
    assert lines[2].split()[:5] == ["max_calls", "1", "4", "test", "#1"]
    assert lines[3].split() == ["max_latency_s", "1.000", "s", "2.000", "s", "test", "#5"]
    assert lines[4].split() == ["max_retries", "0", "1", "test", "#3"]
    assert "calls responsible:" in lines
    assert "  #5  chat claude-test  model claude-test  in 40 / out 8 tok  latency 2.000 s" in text
    assert "attempt 1  HTTP 429" in text


def test_every_key_has_a_check_or_is_a_setting() -> None:
    from pytest_llmobs.budgets import _CHECKS

    # min_score is checked over the evaluations (budgets._min_score), not the calls
    assert set(BUDGET_KEYS) == set(_CHECKS) | {"allow_truncation", "model", "min_score"}


# -- end to end -------------------------------------------------------------------------------
def test_every_key_fails_and_passes_end_to_end(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")  # 5 input + 4 output tokens per call
    retry = error_reply("openai", 429, headers={"retry-after-ms": "1"})
    retry.match = "/chat/completions"
    provider.enqueue(retry)
    result = run(
        pytester,
        """
budget = pytest.mark.llm_budget

@budget(max_retries=0)
def test_fail_max_retries():
    chat(max_retries=2)

@budget(max_retries=1)
def test_pass_max_retries():
    pass

@budget(max_calls=1)
def test_fail_max_calls():
    chat(); chat()

@budget(max_calls=2)
def test_pass_max_calls():
    chat(); chat()

@budget(max_input_tokens=9)
def test_fail_max_input_tokens():
    chat(); chat()

@budget(max_input_tokens=10)
def test_pass_max_input_tokens():
    chat(); chat()

@budget(max_output_tokens=7)
def test_fail_max_output_tokens():
    chat(); chat()

@budget(max_output_tokens=8)
def test_pass_max_output_tokens():
    chat(); chat()

@budget(max_total_tokens=17)
def test_fail_max_total_tokens():
    chat(); chat()

@budget(max_total_tokens=18)
def test_pass_max_total_tokens():
    chat(); chat()

@budget(max_cost_usd=0.00002)
def test_fail_max_cost_usd():
    chat("gpt-4o")  # 5 * $2.50 + 4 * $10 per 1M = $0.0000525

@budget(max_cost_usd=0.0001)
def test_pass_max_cost_usd():
    chat("gpt-4o")

@budget(max_latency_s=0.1)
def test_fail_max_latency_s():
    chat(ttft_ms=150)

@budget(max_latency_s=1.0)
def test_pass_max_latency_s():
    chat(ttft_ms=150)

@budget(max_p50_latency_s=0.1)
def test_fail_max_p50_latency_s():
    chat(); chat(ttft_ms=150); chat(ttft_ms=150)

@budget(max_p50_latency_s=0.4)
def test_pass_max_p50_latency_s():
    chat(); chat(); chat(ttft_ms=600)  # passes on the median only, with room for a slow CI

@budget(max_p95_latency_s=0.1)
def test_fail_max_p95_latency_s():
    chat(); chat(); chat(ttft_ms=150)

@budget(max_p95_latency_s=1.0)
def test_pass_max_p95_latency_s():
    chat(); chat(); chat(ttft_ms=150)

@budget(max_ttft_s=0.1)
def test_fail_max_ttft_s():
    stream(ttft_ms=150)

@budget(max_ttft_s=1.0)
def test_pass_max_ttft_s():
    stream(ttft_ms=150)

@budget(min_tokens_per_s=20)
def test_fail_min_tokens_per_s():
    stream(delay_ms=100)  # 4 tokens over ~0.3 s after the first chunk

@budget(min_tokens_per_s=1)
def test_pass_min_tokens_per_s():
    stream(delay_ms=100)

@budget(max_calls=1, model="claude-*")
def test_pass_model_glob():
    chat("gpt-4o"); chat("gpt-4o-mini")

@budget(max_calls=1, model=["gpt-4o-m*", "gpt-3*"])
def test_fail_model_glob():
    chat("gpt-4o"); chat("gpt-4o-mini"); chat("gpt-3.5-turbo")
""",
    )
    outcomes = outcomes_by_test(result)
    assert len(outcomes) == 24
    for name, outcome in outcomes.items():
        assert outcome == ("FAILED" if name.startswith("test_fail") else "PASSED"), name
    out = result.stdout
    out.fnmatch_lines(
        [
            "*LLM checks failed for test_inner.py::test_fail_max_retries: 1 violation",
            "  key          limit  actual  set on  calls responsible",
            "  max_retries  0      1       test    #2",
            "calls responsible:",
            "  #2  chat gpt-4o  model gpt-4o  in 5 / out 4 tok  latency * s  attempt 1  $0.0000525",
        ]
    )
    out.fnmatch_lines(["  max_calls  1      2       test    #1 #2"])
    out.fnmatch_lines(["  max_cost_usd  $0.00002  $0.0000525  test    #1"])
    out.fnmatch_lines(["  max_latency_s  0.100 s  0.[1-9]* s  test    #1"])
    out.fnmatch_lines(["  max_p50_latency_s  0.100 s  0.[1-9]* s  test    #2 #3"])
    out.fnmatch_lines(["  max_ttft_s  0.100 s  0.[1-9]* s  test    #1"])
    out.fnmatch_lines(["  min_tokens_per_s  20.0 tok/s  *.* tok/s  test    #1"])
    out.fnmatch_lines(["  max_calls  1      2       test    #2 #3"])  # model glob


def test_merge_order_module_class_function(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    result = run(
        pytester,
        """
pytestmark = pytest.mark.llm_budget(max_calls=1, max_output_tokens=100, max_retries=0)

def test_module_budget_applies():
    chat(); chat()

@pytest.mark.llm_budget(max_calls=3)
class TestClass:
    def test_class_overrides_module_key(self):
        chat(); chat()  # max_calls=3 from the class, max_output_tokens=100 from the module

    @pytest.mark.llm_budget(max_output_tokens=4)
    def test_function_overrides_class_and_module(self):
        chat(); chat()  # 8 output tokens > 4 (function); 2 calls <= 3 (class)
""",
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*LLM checks failed for test_inner.py::test_module_budget_applies*",
            "  max_calls  1      2       module  #1 #2",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_function_overrides_class_and_module: 1 violation",
            "  max_output_tokens  4      8       test    #1 #2",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "llm_budget(max_cals=1)",
            "*llm_budget: unknown key 'max_cals' (did you mean max_calls?); valid keys: max_calls, "
            "max_input_tokens, *, allow_truncation, model, min_score",
        ),
        ("llm_budget(max_calls='3')", "*test_x: llm_budget: max_calls='3' must be a whole number*"),
        ("llm_budget(max_cost_usd=True)", "*max_cost_usd=True must be a number >= 0"),
        ("llm_budget(3)", "*llm_budget takes keyword arguments only*valid keys: max_calls*"),
        ("llm_allow_truncation('lenght')", "*llm_allow_truncation takes truncation reasons*"),
    ],
)
def test_bad_markers_are_usage_errors(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\ndef test_x(): pass\n")
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*INNER_ARGS, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.llm_budget(**limits): fail the test*", "@pytest.mark.llm_allow_truncation*"]
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("-o", "llm_session_budget=max_cost=1"), "*llm_session_budget: unknown key 'max_cost'*"),
        (("--llm-session-budget", "max_calls"), "*'max_calls' is not KEY=VALUE*"),
        (("--llm-budget-mode", "loud"), "*'loud' is not one of fail, warn, off"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, option: tuple[str, str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


SESSION_TESTS = """
def test_a():
    chat()

def test_b():
    chat(); chat()
"""


def test_session_budget_fails_the_run(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    pytester.makeini("[pytest]\nllm_session_budget = max_total_tokens=20 max_calls=3\n")
    result = run(pytester, SESSION_TESTS)
    result.assert_outcomes(passed=2)  # each test is fine; the run as a whole is not
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= llm session budget =*",
            "llm_session_budget exceeded: 1 violation over 3 calls",
            "  max_total_tokens: limit 20, actual 27",
            "    test_inner.py::test_b (2 calls)",
            "    test_inner.py::test_a (1 call)",
        ]
    )


def test_session_budget_within_limits(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    result = run(pytester, SESSION_TESTS, "--llm-session-budget", "max_total_tokens=1000")
    assert result.ret == pytest.ExitCode.OK
    assert "llm session budget" not in result.stdout.str()


def test_session_budget_under_xdist(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    over_and_bad = """
@pytest.mark.llm_budget(max_calls=0)
def test_c_over():
    chat()

@pytest.mark.llm_budget(max_cals=0)
def test_d_bad_marker():
    pass
"""
    pytester.makepyfile(test_inner=HEADER + SESSION_TESTS + over_and_bad)
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "-n", "2", "--llm-session-budget", "max_calls=2"
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  max_calls: limit 2, actual 4"])
    result.stdout.fnmatch_lines(["*test_c_over: 1 violation", "  max_calls  0      1*"])
    # the controller writes its files while xdist waits for the workers: the verdict is in
    summary = json.loads((pytester.path / "llmobs-artifacts" / "summary.json").read_text())
    assert "max_calls: limit 2, actual 4" in summary["session_result"]
    # workers cannot raise a usage error cleanly: the test errors with the same message
    result.stdout.fnmatch_lines(["usage error: *llm_budget: unknown key 'max_cals'*"])


def test_warn_mode(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makeini("[pytest]\nllm_budget_mode = warn\nllm_session_budget = max_calls=1\n")
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_calls=1)
def test_over():
    chat(); chat()
""",
    )
    result.assert_outcomes(passed=1, warnings=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*LLMBudgetWarning: LLM checks failed for test_inner.py::test_over: 1 violation",
            "*max_calls  1      2       test    #1 #2",
        ]
    )
    result.stdout.fnmatch_lines(["*= llm session budget =*", "llm_session_budget exceeded*"])


def test_off_mode_checks_nothing(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_calls=0)
def test_over():
    chat()
""",
        "--llm-budget-mode=off",
        "--llm-session-budget=max_calls=0",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_failed_test_gets_the_table_as_a_section(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_calls=0)
def test_fails_anyway():
    chat()
    assert False, "own failure"
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: own failure*", "*- llmobs checks -*", "*max_calls  0      1*"]
    )


def test_fixture_violations_and_cost(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_calls=1)
def test_inspect(llmobs):
    chat("gpt-4o")
    assert llmobs.violations() == []
    assert llmobs.cost_usd == pytest.approx(5 * 2.5e-6 + 4 * 10e-6)
    chat("gpt-4o")
    [v] = llmobs.violations()
    assert (v.key, v.limit, v.actual, v.origin) == ("max_calls", 1, 2, "test")
    assert v.calls == tuple(llmobs.calls)
    pytest.xfail("over budget on purpose")
""",
    )
    result.assert_outcomes(xfailed=1)
