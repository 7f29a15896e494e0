"""The artifact directory: JUnit, OTLP JSON traces, Perfetto, prompt log, terminal table."""

from __future__ import annotations

import base64
import gc
import json
from pathlib import Path
from typing import Any

import junitparser
import pytest
import xmlschema
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from report_support import EMAIL, INNER_ARGS, SECRET, jsonl, run_suite

from pytest_llmobs.redaction import Redactor
from pytest_llmobs.report.artifacts import ArtifactWriter, _no_cycle_collection
from pytest_llmobs.report.prompts import sampled
from pytest_llmobs.testing import ProviderServer

XSD = Path(__file__).parent / "data" / "junit.xsd"


@pytest.fixture
def artifacts(pytester: pytest.Pytester, provider: ProviderServer) -> Path:
    provider.configure(reply="one two three four")
    result = run_suite(pytester, "--junitxml=pytest-junit.xml")
    result.assert_outcomes(passed=3, failed=2)
    return pytester.path / "llmobs-artifacts"


def test_junit_one_case_per_test_with_properties_and_failures(artifacts: Path) -> None:
    path = artifacts / "llmobs-junit.xml"
    xmlschema.XMLSchema(XSD).validate(path)
    xml = junitparser.JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    cases = {case.name: case for case in suite}
    assert set(cases) == {
        "test_plain",
        "test_stream",
        "test_over_budget",
        "test_fails_after_call",
        "test_no_llm",
    }
    assert suite.tests == 5 and suite.failures == 2
    props = _case_props(path, "test_plain")
    assert props["llmobs.calls"] == "2" and props["llmobs.input_tokens"] == "11"
    assert props["llmobs.output_tokens"] == "8" and float(props["llmobs.cost_usd"]) > 0
    assert float(props["llmobs.p95_latency_s"]) > 0 and props["llmobs.violations"] == "0"
    assert "llmobs.ttft_p50_s" in _case_props(path, "test_stream")
    assert _case_props(path, "test_no_llm") == {}
    [failure] = cases["test_over_budget"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.type == "llmobs.budget.max_output_tokens"
    assert "max_output_tokens: limit 1, actual 4" in failure.message
    [failure] = cases["test_fails_after_call"].result
    assert failure.type == "pytest.failed"
    assert cases["test_plain"].is_passed and cases["test_no_llm"].is_passed
    suite_props = {p.name: p.value for p in suite.properties()}
    assert suite_props["llmobs.calls"] == "5" and suite_props["llmobs.violations"] == "1"
    assert suite_props["llmobs.input_tokens"] == "21"


def test_pytest_junitxml_gets_the_same_properties(artifacts: Path) -> None:
    ours = _case_props(artifacts / "llmobs-junit.xml", "test_plain")
    theirs = _case_props(artifacts.parent / "pytest-junit.xml", "test_plain")
    assert theirs == ours


def test_traces_jsonl_is_otlp_json_one_request_per_test(artifacts: Path) -> None:
    lines = (artifacts / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 4  # the four tests with spans
    seen = {}
    for line in lines:
        raw = json.loads(line)
        request = json_format.Parse(json.dumps(_ids_to_base64(raw)), ExportTraceServiceRequest())
        [rs] = request.resource_spans
        resource = {a.key: a.value.string_value for a in rs.resource.attributes}
        assert resource["llmobs.run.id"] and resource["service.name"]
        spans = [s for ss in rs.scope_spans for s in ss.spans]
        seen[resource["test.case.name"]] = (resource["test.case.result.status"], spans)
        # ids are hex in the file (OTLP JSON), 16/8 bytes once parsed
        first = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        assert spans[0].trace_id == bytes.fromhex(first["traceId"])
        assert len(spans[0].span_id) == 8
    status, spans = seen["test_inner.py::test_plain"]
    spans = [s for s in spans if s.name.startswith("chat ")]  # the SDK may add its own
    assert status == "pass" and [s.name for s in spans] == ["chat claude-test"] * 2
    attrs = {a.key: a.value for a in spans[0].attributes}
    assert attrs["gen_ai.provider.name"].string_value == "anthropic"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 9
    assert spans[0].kind == 3  # CLIENT
    assert spans[0].end_time_unix_nano > spans[0].start_time_unix_nano
    assert seen["test_inner.py::test_fails_after_call"][0] == "fail"


def test_perfetto_trace_events(artifacts: Path) -> None:
    data = json.loads((artifacts / "traces.perfetto.json").read_text())
    events = data["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert "test_inner.py::test_plain" in names and len(names) == 4
    spans = [e for e in events if e["ph"] == "X" and e["name"].startswith("chat ")]
    assert len(spans) == 5 and all(e["dur"] > 0 and e["ts"] > 0 for e in spans)
    assert {e["name"] for e in spans} == {"chat claude-test"}
    assert spans[0]["args"]["gen_ai.request.model"] == "claude-test"


def test_prompt_log_records(artifacts: Path) -> None:
    records = jsonl(artifacts / "prompts.jsonl")
    assert len(records) == 5
    first = records[0]
    assert first["test_id"] == "test_inner.py::test_plain" and first["kept"] == "sampled"
    assert (first["provider"], first["model"]) == ("anthropic", "claude-test")
    assert first["parameters"]["max_tokens"] == 50
    assert first["usage"]["input_tokens"] == 9 and first["cost_usd"] > 0
    assert first["latency_s"] > 0 and first["finish_reasons"] == ["end_turn"]
    assert first["response"] == "one two three four"
    assert first["trace_id"] and first["span_id"] and "context" in first
    stream = next(r for r in records if r["test_id"].endswith("test_stream"))
    assert stream["ttft_s"] > 0
    kept = {r["test_id"].split("::")[1]: r["kept"] for r in records}
    assert kept["test_over_budget"] == kept["test_fails_after_call"] == "failed_test"
    # secrets never reach an artifact, even with PII masking off
    assert SECRET not in first["messages"]["messages"][0]["content"]


def test_summary_json_carries_figures_not_content(artifacts: Path) -> None:
    summary = json.loads((artifacts / "summary.json").read_text())
    assert summary["totals"]["calls"] == 5 and len(summary["tests"]) == 5
    call = summary["tests"]["test_inner.py::test_plain"]["calls"][0]
    assert "content" not in call and call["usage"]["input_tokens"] == 9


@pytest.mark.parametrize("mode", ["none", "redacted", "full"])
def test_content_modes(pytester: pytest.Pytester, provider: ProviderServer, mode: str) -> None:
    provider.configure(reply="one two three four")
    run_suite(pytester, f"--llm-log-content={mode}", "--llm-mask-pii", "--llm-capture-content")
    out = pytester.path / "llmobs-artifacts"
    first = jsonl(out / "prompts.jsonl")[0]
    traces = (out / "traces.jsonl").read_text()
    if mode == "none":
        assert "messages" not in first and "response" not in first
        assert "gen_ai.input.messages" not in traces
        return
    content = first["messages"]["messages"][0]["content"]
    assert SECRET not in content and SECRET not in traces
    assert "gen_ai.input.messages" in traces
    if mode == "redacted":
        assert EMAIL not in content and "<EMAIL_" in content
        assert EMAIL not in traces and "<EMAIL_" in traces
    else:
        assert EMAIL in content and EMAIL in traces


def test_redaction_in_every_artifact(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply=f"contact {EMAIL} with key {SECRET}")
    summary = pytester.path / "step-summary.md"
    result = _run_github(pytester, summary, "--llm-mask-pii", "--llm-capture-content")
    result.assert_outcomes(passed=3, failed=2)
    out = pytester.path / "llmobs-artifacts"
    files = sorted(out.iterdir())
    assert {f.name for f in files} == {
        "llmobs-junit.xml",
        "traces.jsonl",
        "traces.perfetto.json",
        "prompts.jsonl",
        "summary.json",
        "report.html",
    }
    for path in [*files, summary]:
        text = path.read_text()
        assert SECRET not in text, path.name
        assert EMAIL not in text, path.name
    assert "<EMAIL_" in (out / "prompts.jsonl").read_text()
    assert "<EMAIL_" in (out / "traces.jsonl").read_text()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def _run_github(pytester: pytest.Pytester, summary: Path, *args: str) -> pytest.RunResult:
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        mp.setenv("GITHUB_ACTIONS", "true")
        return run_suite(pytester, *args)
    finally:
        mp.undo()


def test_sampling_keeps_failed_tests_and_violating_calls(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    result = run_suite(pytester, "--llm-log-sample-rate=0", "--llm-budget-mode=warn")
    result.assert_outcomes(passed=4, failed=1)
    records = jsonl(pytester.path / "llmobs-artifacts" / "prompts.jsonl")
    kept = {(r["test_id"].split("::")[1], r["kept"]) for r in records}
    assert kept == {("test_over_budget", "violation"), ("test_fails_after_call", "failed_test")}


def test_sampling_is_deterministic_and_proportional() -> None:
    picks = [sampled("t.py::test_x", i, 0.3) for i in range(2000)]
    assert picks == [sampled("t.py::test_x", i, 0.3) for i in range(2000)]
    assert 500 < sum(picks) < 700
    assert all(sampled("a", i, 1.0) for i in range(10))
    assert not any(sampled("a", i, 0.0) for i in range(10))


def test_bad_sample_rate_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS[:6], "--llm-log-sample-rate=2")
    result.stderr.fnmatch_lines(["*llm-log-sample-rate*not between 0 and 1*"])


def test_nothing_written_without_llm_traffic(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    pytester.runpytest(*INNER_ARGS[:6]).assert_outcomes(passed=1)
    assert not (pytester.path / "llmobs-artifacts").exists()
    pytester.runpytest(*INNER_ARGS[:6], "--llm-artifacts=out").assert_outcomes(passed=1)
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert summary["totals"]["calls"] == 0 and list(summary["tests"]) == ["test_x.py::test_x"]


def test_terminal_summary_respects_verbosity(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    normal = run_suite(pytester).stdout
    normal.fnmatch_lines(
        [
            "test *calls*in tok*out tok*cost*p95*ttft*viol",
            "test_inner.py::test_plain * 2 * 11 * 8 * $0.0001*ms*",
            "test_inner.py::test_over_budget * 1 * 5 * 4 *1",
            "llmobs: 5 LLM calls in 4 tests, 21 input + 20 output tokens",
            "llmobs: 1 violation in 1 test",
            "slowest calls:",
            "most expensive calls:",
        ]
    )
    assert len(_section(normal.lines, "slowest calls:")) == 3
    quiet = run_suite(pytester, "-q").stdout
    quiet.fnmatch_lines(["llmobs: 5 LLM calls in 4 tests, 21 input + 20 output tokens"])
    assert not any("slowest calls" in line or "p95" in line for line in quiet.lines)
    verbose = run_suite(pytester, "-v").stdout
    assert len(_section(verbose.lines, "slowest calls:")) == 5


def _section(lines: list[str], title: str) -> list[str]:
    start = lines.index(title) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line)
    return out


def _case_props(path: Path, name: str) -> dict[str, str]:
    xml = junitparser.JUnitXml.fromfile(str(path))
    for suite in xml:
        for case in suite:
            if case.name == name:
                holder = case._elem.find("properties")
                if holder is None:
                    return {}
                return {
                    p.get("name"): p.get("value")
                    for p in holder.findall("property")
                    if p.get("name", "").startswith("llmobs.")
                }
    raise AssertionError(f"no test case {name}")


def _ids_to_base64(value: Any) -> Any:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping of bytes is base64."""
    if isinstance(value, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode()
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
            else _ids_to_base64(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_ids_to_base64(v) for v in value]
    return value


PLANTED = """
import os
import openai, pytest
from opentelemetry import trace
from opentelemetry.trace import (
    Link, NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags, TraceState
)

SECRET = "{secret}"
URL = os.environ["LLM_URL"]


@pytest.mark.parametrize("who", ["x"], ids=["id/" + SECRET])
def test_everywhere(llmobs, who):
    tracer = trace.get_tracer("scope/" + SECRET, "v/" + SECRET)
    state = TraceState([("vendor", "key:" + SECRET)])
    sampled = TraceFlags(TraceFlags.SAMPLED)
    outer = SpanContext(0x1F, 0x2F, is_remote=True, trace_flags=sampled, trace_state=state)
    ctx = trace.set_span_in_context(NonRecordingSpan(outer))
    link = Link(SpanContext(0x3F, 0x4F, is_remote=True), {{"linked": "key " + SECRET}})
    with tracer.start_as_current_span("span " + SECRET, context=ctx, links=[link]) as span:
        span.set_attribute("app.note", SECRET)
        span.add_event("event " + SECRET, {{"detail": SECRET}})
        span.set_status(Status(StatusCode.ERROR, "failed with " + SECRET))
        openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
            model="gpt/" + SECRET, messages=[{{"role": "user", "content": "hi " + SECRET}}]
        )
"""


def test_a_secret_planted_in_every_field_reaches_no_artifact(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test id, span name, attributes, event name and attributes, link attributes, status,
    trace state, scope, resource, model, messages: no secret reaches any artifact."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"deploy.note=key {SECRET}")
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    body = PLANTED.format(secret=SECRET)
    result = run_suite(pytester, "--llm-capture-content", subprocess=True, body=body)
    result.assert_outcomes(passed=1)
    out = pytester.path / "llmobs-artifacts"
    [line] = jsonl(out / "traces.jsonl")
    text = json.dumps(line)
    for planted in ("span <redacted", "event <redacted", "scope/<redacted", "deploy.note"):
        assert planted in text, planted  # the fields are there, their secrets are not
    [record] = jsonl(out / "prompts.jsonl")
    assert record["test_id"].startswith("test_inner.py::test_everywhere[id/")
    assert record["model"].startswith("gpt/")
    assert "test_everywhere" in step_summary.read_text()
    for path in [*sorted(out.iterdir()), step_summary]:
        assert SECRET not in path.read_text(), path.name


def test_the_end_of_run_pass_gives_the_collector_back_as_it_found_it() -> None:
    """The report and Perfetto pass runs without cycle collection, then restores it: on,
    also after an error; off when the user had turned it off."""
    assert gc.isenabled()
    with _no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _no_cycle_collection():
        raise RuntimeError("the report failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with _no_cycle_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_reopening_after_a_run_that_wrote_nothing_leaves_an_older_run_out(
    tmp_path: Path,
) -> None:
    """The xdist controller's late call (report/hooks.py) reopens the files it wrote; when
    its first pass wrote none, an earlier run's traces.jsonl there is not taken in."""
    (tmp_path / "traces.jsonl").write_text('{"resourceSpans": [], "run": "earlier"}\n')
    writer = ArtifactWriter(tmp_path, run_id="r", sample_rate=1.0, redactor=Redactor())
    assert writer.finish({}) == []  # no LLM calls yet: nothing written
    writer.reopen()
    late = json.dumps({"resourceSpans": [], "run": "this"})
    writer.add_lines({"calls": True, "traces": late, "prompts": []})
    writer.finish({})
    assert jsonl(tmp_path / "traces.jsonl") == [json.loads(late)]
