"""The resilience verdict for well- and badly-behaved clients, and where it is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaos_support import HEADER, INNER_ARGS

from pytest_llmobs.chaos import Policy
from pytest_llmobs.testing import ProviderServer

GOOD = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.1, times=2)
def test_sdk_retries_rate_limits(llmobs):
    assert chat(oai(max_retries=2)).choices[0].message.content
    llmobs.assert_resilient(strict=True)
    assert llmobs.resilience().status == "pass"


@pytest.mark.llm_chaos("overloaded", retry_after=0.05)
def test_anthropic_retries_overload(llmobs):
    assert msg(ant(max_retries=2)).content
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("stream_truncated")
def test_app_checks_finish_reason_and_retries(llmobs):
    for _ in range(2):
        chunks = list(chat(stream=True))
        if any(c.choices and c.choices[0].finish_reason for c in chunks):
            break
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("truncate_length")
def test_anthropic_continuation_counts_as_handled(llmobs):
    first = msg()
    assert first.stop_reason == "max_tokens"
    partial = first.content[0].text
    ant().messages.create(model="claude-test", max_tokens=64,
                          messages=[*M, {"role": "assistant", "content": partial}])
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("rate_limit", model="gpt-4o")
def test_fallback_to_another_model(llmobs):
    try:
        chat()
    except openai.RateLimitError:
        oai().chat.completions.create(model="gpt-4o-mini", messages=M)
    verdict = llmobs.resilience()
    assert [f.code for f in verdict.findings] == ["fell_back"]
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("timeout", hang_s=1)
def test_timeout_with_a_short_read_timeout(llmobs):
    assert chat(oai(max_retries=1, timeout=0.2)).choices
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("overloaded", call=6, retry_after=0.05)
def test_the_same_question_again_is_not_a_retry(llmobs):
    for _ in range(7):
        assert chat(oai(max_retries=1)).choices
    assert len(llmobs.calls) == 8
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("stream_cut")
def test_a_raising_app_passes_the_report_verdict(llmobs):
    stream_text(chat(stream=True))  # the app lets the connection error escape: the test fails
"""

BAD = """
def fails_with(llmobs, *codes, strict=False):
    with pytest.raises(AssertionError) as info:
        llmobs.assert_resilient(strict=strict)
    found = [f.code for f in llmobs.resilience().failures(strict)]
    assert found == list(codes), (found, str(info.value))
    return str(info.value)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.1)
def test_no_retry(llmobs):
    try:
        chat()
    except openai.RateLimitError:
        pass  # swallowed: the user gets nothing
    text = fails_with(llmobs, "not_retried")
    assert "reproduce with --llm-chaos-seed=7" in text


@pytest.mark.llm_chaos("rate_limit", retry_after=0.5)
def test_ignores_retry_after(llmobs):
    while chat_raw().status_code == 429:
        time.sleep(0.05)
    fails_with(llmobs, "retry_after_ignored")


@pytest.mark.llm_chaos("server_error", times=6)
def test_retry_storm(llmobs):
    while chat_raw().status_code >= 500:
        pass
    fails_with(llmobs, "retry_storm")


@pytest.mark.llm_chaos("server_error", times=3)
def test_hammering_without_waiting(llmobs):
    while chat_raw().status_code >= 500:
        pass
    assert len(llmobs.calls) == 4
    fails_with(llmobs, "retry_storm")


@pytest.mark.llm_chaos("quota_exhausted")
def test_retries_a_non_retryable_error(llmobs):
    for _ in range(3):
        if chat_raw().status_code == 200:
            break
        time.sleep(0.05)
    fails_with(llmobs, "retried_non_retryable")


@pytest.mark.llm_chaos("timeout", hang_s=0.2)
def test_no_read_timeout(llmobs):
    try:
        chat_raw(timeout=None)
    except requests.exceptions.ReadTimeout:
        pass
    fails_with(llmobs, "not_retried", "no_read_timeout")


@pytest.mark.llm_chaos("stall_mid_stream", hang_s=0.2)
def test_sdk_default_timeout_is_too_long_for_a_stall(llmobs):
    with pytest.raises(TIMEOUT_ERROR):
        stream_text(chat(oai(), stream=True))  # openai's default read timeout: 600 s
    fails_with(llmobs, "no_read_timeout")


@pytest.mark.llm_chaos("stream_truncated")
def test_partial_answer_used_in_the_next_turn(llmobs):
    partial = stream_text(chat(stream=True))
    oai().chat.completions.create(model="gpt-4o", messages=[
        *M, {"role": "assistant", "content": partial}, {"role": "user", "content": "and?"}])
    fails_with(llmobs, "partial_output_used")


@pytest.mark.llm_chaos("content_filter", variant="output")
def test_filtered_answer_taken_as_complete(llmobs):
    assert chat().choices[0].message.content is None
    fails_with(llmobs, "partial_output_accepted")


@pytest.mark.llm_chaos("stream_cut")
def test_swallowed_mid_stream_error_is_a_warning(llmobs):
    try:
        stream_text(chat(stream=True))
    except CONNECTION_ERROR:
        pass
    llmobs.assert_resilient()  # not an error ...
    fails_with(llmobs, "partial_output_accepted", strict=True)  # ... but a warning


@pytest.mark.llm_chaos("server_error", times=4)
def test_fixed_interval_retries_do_not_back_off(llmobs):
    waits = iter([0.3, 0.25, 0.2, 0.15])  # shrinking: the opposite of a backoff
    while chat_raw().status_code >= 500:
        time.sleep(next(waits))
    llmobs.assert_resilient()
    fails_with(llmobs, "no_backoff", strict=True)
    llmobs.assert_resilient(strict=True, ignore=["no_backoff"])


@pytest.mark.llm_chaos("malformed_chunk")
def test_skips_a_malformed_event(llmobs):
    body = {"model": "gpt-4o", "messages": M, "stream": True}
    response = requests.post(URL + "/v1/chat/completions", json=body, stream=True, timeout=5)
    for line in response.iter_lines():
        if line.startswith(b"data: {"):
            try:
                json.loads(line[6:])
            except ValueError:
                continue  # "robust" parsing: the text of that event is lost
    llmobs.assert_resilient()
    fails_with(llmobs, "malformed_chunk_ignored", strict=True)


@pytest.mark.llm_chaos("stream_truncated")
def test_the_report_verdict_fails_too(llmobs):
    stream_text(chat(stream=True))  # no assert_resilient: llm_chaos_gate fails it anyway
"""

BAD_HELPERS = """
def chat_raw(timeout=5):
    body = {"model": "gpt-4o", "messages": M}
    return requests.post(URL + "/v1/chat/completions", json=body, timeout=timeout)
"""

SPAN_DUMP = """
import json, os
import pytest
from pytest_llmobs.plugin import CAPTURE

SPANS = []


@pytest.hookimpl(trylast=True)  # after the plugin's: its capture is there
def pytest_configure(config):
    # the plugin's own spans (GenAI, chaos verdicts) come from its own provider, not the app's
    config.stash[CAPTURE].span_listeners.append(lambda nodeid, span: SPANS.append(span))


def pytest_unconfigure(config):
    spans = [{"name": s.name, "attributes": dict(s.attributes or {}),
              "events": [e.name for e in s.events], "links": len(s.links),
              "trace_id": s.context.trace_id}
             for s in SPANS]
    with open(os.environ["SPAN_DUMP"], "w") as f:
        json.dump(spans, f, default=list)
"""


def _payloads(reprec: pytest.HookRecorder) -> dict[str, dict[str, object]]:
    out = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        data = getattr(report, "llmobs", None)
        if report.when == "teardown" and isinstance(data, dict) and "chaos" in data:
            out[report.nodeid.split("::")[-1]] = data["chaos"]
    return out


def test_well_behaved_clients_pass(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makepyfile(test_inner=HEADER + GOOD)
    reprec = pytester.inline_run(*INNER_ARGS, "--llm-chaos-seed=7")
    reprec.assertoutcome(passed=7, failed=1)
    verdicts = _payloads(reprec)
    assert {name: v["status"] for name, v in verdicts.items()} == {
        "test_sdk_retries_rate_limits": "pass",
        "test_anthropic_retries_overload": "pass",
        "test_app_checks_finish_reason_and_retries": "pass",
        "test_anthropic_continuation_counts_as_handled": "pass",
        "test_fallback_to_another_model": "pass",
        "test_timeout_with_a_short_read_timeout": "pass",
        "test_the_same_question_again_is_not_a_retry": "pass",
        "test_a_raising_app_passes_the_report_verdict": "pass",
    }
    raised = verdicts["test_a_raising_app_passes_the_report_verdict"]
    assert raised["faults"][0]["outcome"] == "app raised"


def test_badly_behaved_clients_fail(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = pytester.path / "spans.json"
    monkeypatch.setenv("SPAN_DUMP", str(dump))
    pytester.makeconftest(SPAN_DUMP)
    pytester.makepyfile(test_inner=HEADER + BAD_HELPERS + BAD)
    reprec = pytester.inline_run(*INNER_ARGS, "--llm-chaos-seed=7", "--llm-chaos-gate=fail")
    # The others read the verdict themselves (resilience(), assert_resilient()) and pass;
    # the one that does not is failed by llm_chaos_gate, as its verdict is.
    [failed] = [r.nodeid for r in reprec.getreports("pytest_runtest_logreport") if r.failed]
    assert failed.endswith("::test_the_report_verdict_fails_too")
    reprec.assertoutcome(passed=12, failed=1)
    verdicts = _payloads(reprec)
    assert verdicts["test_the_report_verdict_fails_too"]["status"] == "fail"
    assert verdicts["test_no_retry"]["status"] == "fail"
    assert verdicts["test_no_retry"]["seed"] == 7
    storm = verdicts["test_retry_storm"]
    assert storm["attempts"] == 7 and storm["findings"][-1]["code"] == "retry_storm"
    no_retry = verdicts["test_no_retry"]
    assert no_retry["injected"][0]["fault"] == "rate_limit"
    assert no_retry["findings"][0]["severity"] == "error"

    spans = json.loads(Path(dump).read_text())
    verdict_spans = [s for s in spans if s["name"] == "llmobs.chaos.verdict"]
    assert len(verdict_spans) == 13
    by_status = {s["attributes"]["llmobs.chaos.verdict"] for s in verdict_spans}
    assert by_status == {"pass", "fail"}
    no_timeout = next(
        s for s in verdict_spans if "no_read_timeout" in s["attributes"]["llmobs.chaos.findings"]
    )
    assert "llmobs.chaos.finding.no_read_timeout" in no_timeout["events"]
    assert no_timeout["links"] == 1 and no_timeout["attributes"]["llmobs.chaos.seed"] == 7
    faulted = [s for s in spans if s["attributes"].get("llmobs.chaos.fault") == "quota_exhausted"]
    assert faulted and faulted[0]["attributes"]["llmobs.chaos.retryable"] is False
    assert faulted[0]["name"] == "chat gpt-4o"
    assert faulted[0]["attributes"]["llmobs.source"] == "chaos"


def test_terminal_summary_and_failure_sections(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(
        test_inner=HEADER
        + """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.1)
def test_bad(llmobs):
    try:
        chat()
    except openai.RateLimitError:
        pass
    llmobs.assert_resilient()
"""
    )
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=1234")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL    not_retried: call #0 (chat gpt-4o) got rate_limit*",
            "*- llmobs chaos -*",
            "*llmobs chaos verdict: fail (seed 1234*",
            "*llmobs chaos (seed 1234)*",
            "fail      test_inner.py::test_bad  [rate_limit]  not_retried",
            "llmobs chaos: 1 test with faults, 1 failing verdict; "
            "reproduce with --llm-chaos-seed=1234",
        ]
    )
    # chaos came from a marker, not --llm-chaos: the seed is in the verdict, not the header
    assert not any(line.startswith("llmobs chaos: seed") for line in result.outlines)


# -- thresholds: --llm-chaos-verdict / ini llm_chaos_verdict ----------------------------------
THRESHOLDS = """
@pytest.mark.llm_chaos("server_error", times=3)
def test_fixed_waits(llmobs):
    while chat_raw().status_code >= 500:
        time.sleep(0.5)  # three retries 0.5 s apart: 1.5 s in all
    codes = {f.code for f in llmobs.resilience().findings if f.severity != "info"}
    assert codes == set(filter(None, os.environ["EXPECTED"].split(",")))


@pytest.mark.llm_chaos("rate_limit", retry_after=0.5)
def test_early_retry(llmobs):
    while chat_raw().status_code == 429:
        time.sleep(0.35)  # 70 % of the wait asked for
    codes = {f.code for f in llmobs.resilience().findings if f.severity != "info"}
    assert ("retry_after_ignored" in codes) == ("retry_after_ratio" not in os.environ["ARGS"])
"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # Margins of 25 ms and more on every threshold: sleeps overshoot on a busy machine.
        ("", "no_backoff"),  # default window 500 ms: 1.5 s of waiting is no storm
        ("storm_window_ms=2500", "retry_storm"),
        ("min_backoff_ms=700, storm_retries=2", "retry_storm"),
        ("backoff_growth=1 retry_after_ratio=0.6", ""),  # equal waits count as backing off
    ],
)
def test_verdict_thresholds_from_the_command_line(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    args: str,
    expected: str,
) -> None:
    monkeypatch.setenv("EXPECTED", expected)
    monkeypatch.setenv("ARGS", args)
    pytester.makepyfile(test_inner=HEADER + BAD_HELPERS + THRESHOLDS)
    extra = [f"--llm-chaos-verdict={args}"] if args else []
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=7", "-v", *extra)
    result.assert_outcomes(passed=2)
    if args:
        shown = " ".join(sorted(args.replace(",", " ").split()))
        header = next(line for line in result.outlines if line.startswith("llmobs chaos: seed"))
        assert " ".join(sorted(header.split("verdict: ")[1].split())) == shown


def test_verdict_thresholds_from_ini(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makeini("[pytest]\nllm_chaos_verdict = max_retries=1\n")
    pytester.makepyfile(
        test_inner=HEADER
        + BAD_HELPERS
        + """
@pytest.mark.llm_chaos("server_error", times=2, retry_after=0.05)
def test_two_retries(llmobs):
    while chat_raw().status_code >= 500:
        time.sleep(0.06)
    [finding] = [f for f in llmobs.resilience().findings if f.severity == "error"]
    assert finding.code == "retry_storm" and "max_retries=1" in finding.message
"""
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("storm_windw_ms=100", "unknown key 'storm_windw_ms'; valid keys: max_retries, "),
        ("min_backoff_ms=fast", "min_backoff_ms='fast' must be a number >= 0"),
        ("retry_after_ratio=1.5", "retry_after_ratio='1.5' must be a number from 0 to 1"),
        ("storm_retries=1", "storm_retries='1' must be an integer >= 2"),
        ("max_retries", "'max_retries' needs a value"),
    ],
)
def test_bad_verdict_thresholds_are_usage_errors(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    pytester.makepyfile(test_inner="def test_x():\n    pass\n")
    result = pytester.runpytest(*INNER_ARGS, f"--llm-chaos-verdict={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--llm-chaos-verdict / ini llm_chaos_verdict: {message}*"])


def test_policy_round_trips_and_defaults() -> None:
    policy = Policy.parse("max_retries=2,min_backoff_ms=50 storm_window_ms=2000")
    assert (policy.max_attempts, policy.min_backoff_s, policy.storm_window_s) == (3, 0.05, 2.0)
    assert Policy.parse(policy.describe()) == policy
    assert Policy.parse("") == Policy() and Policy().describe() == ""
    with pytest.raises(ValueError, match=r"valid keys: .*max_read_timeout_s"):
        Policy.parse("bogus=1")


GATED = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0)
def test_gives_up_on_a_rate_limit(llmobs):
    try:
        chat()
    except openai.RateLimitError:
        pass  # the app swallows it: the call was never retried


@pytest.mark.llm_chaos("rate_limit", retry_after=0)
def test_reads_its_own_verdict(llmobs):
    try:
        chat()
    except openai.RateLimitError:
        pass
    assert llmobs.resilience().status == "fail"  # a known-bad client, documented


def test_no_faults(llmobs):
    chat()
"""


@pytest.mark.parametrize("gate", ["fail", "warn", "off"])
def test_the_chaos_gate_decides_one_outcome_for_every_output(
    pytester: pytest.Pytester, provider: ProviderServer, gate: str
) -> None:
    """A failing verdict fails its test by default (llm_chaos_gate = fail): pytest, the exit
    status, pytest's --junitxml and llmobs-junit.xml say the same; warn and off leave it
    passed everywhere. A test that reads its verdict itself decides for itself."""
    pytester.makepyfile(test_inner=HEADER + GATED)
    result = pytester.runpytest(
        *INNER_ARGS,
        "--llm-chaos-seed=7",
        f"--llm-chaos-gate={gate}",
        "--junitxml=pytest-junit.xml",
        "--llm-artifacts=artifacts",
    )
    gated = gate == "fail"
    result.assert_outcomes(passed=2 if gated else 3, failed=1 if gated else 0)
    assert result.ret == (1 if gated else 0)
    if gated:
        result.stdout.fnmatch_lines(
            ["*_ test_gives_up_on_a_rate_limit _*", "the client did not survive the injected*"]
        )
    for junit in ("pytest-junit.xml", "artifacts/llmobs-junit.xml"):
        text = (pytester.path / junit).read_text()
        assert text.count("<failure") == (1 if gated else 0), (junit, text)
        if gated:  # the <failure> sits in the gated test's <testcase>
            case = text.split("<failure")[0].rsplit("<testcase", 1)[-1]
            assert 'name="test_gives_up_on_a_rate_limit"' in case, (junit, case)
