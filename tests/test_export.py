"""Live export (--llm-otlp-endpoint): a local OTLP/HTTP receiver that decodes what arrives,
a dead endpoint, and a real Arize Phoenix reading the spans back through its REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pytest_llmobs.export import resolve_endpoint
from pytest_llmobs.redaction import REDACTED
from pytest_llmobs.testing import ProviderServer

ROOT = Path(__file__).resolve().parent.parent
PHOENIX = ROOT / ".venv-phoenix" / "bin" / "phoenix"
SECRET = "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56"

HEADER = """
import os, time, urllib.request
import openai, pytest
from opentelemetry import trace

URL = os.environ.get("LLM_URL", "")
tracer = trace.get_tracer("app")


def oai():
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0)
"""


# -- a local OTLP/HTTP receiver ----------------------------------------------------------------
class Receiver:
    """Decodes every ExportTraceServiceRequest posted to /v1/traces; GET /count says how many
    spans arrived (inner tests poll it)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, ExportTraceServiceRequest]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                with receiver.lock:
                    receiver.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body, message)
                    )
                self._reply(ExportTraceServiceResponse().SerializeToString(), "x-protobuf")

            def do_GET(self) -> None:
                self._reply(str(len(receiver.spans())).encode(), "text")

            def _reply(self, data: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("content-type", f"application/{kind}")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        with self.lock:
            messages = [m for _, _, m in self.requests]
        return [
            (attributes(rs.resource.attributes), span)
            for m in messages
            for rs in m.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in items}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    return pytester.runpytest(*INNER_ARGS, *args)


CHATS = f"""
@pytest.mark.parametrize("n", [1, 2, 3])
def test_chat(n):
    attrs = {{"api_key": "hunter2-{SECRET}"}}
    with tracer.start_as_current_span("answer question", attributes=attrs):
        oai().chat.completions.create(
            model="gpt-4o",
            messages=[{{"role": "user", "content": "my key is {SECRET}, say hi " + str(n)}}],
        )
"""


# -- the tests ------------------------------------------------------------------------------------
def test_spans_batched_with_headers_and_redacted(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.configure(reply="hello there friend")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20tok-123,x-team=qa")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    result = run(
        pytester,
        CHATS,
        f"--llm-otlp-endpoint={receiver.url}/v1/traces",
        "--llm-otlp-project=nightly",
        "--llm-capture-content",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"llmobs export: 6 spans sent to {receiver.url}/v1/traces"])
    assert "LLMExportWarning" not in result.stdout.str()

    # batched: several protobuf requests of at most 2 spans, every one with the headers
    assert len(receiver.requests) >= 3
    for headers, _, message in receiver.requests:
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["authorization"] == "Bearer tok-123" and headers["x-team"] == "qa"
        assert headers["x-project-name"] == "nightly"
        assert sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans) <= 2

    spans = receiver.spans()
    assert len(spans) == 6
    by_test: dict[str, dict[str, Any]] = {}
    for resource, span in spans:
        assert resource["service.name"] == "pytest"
        by_test.setdefault(resource["test.case.name"], {})[span.name] = span
    assert sorted(by_test) == [f"test_inner.py::test_chat[{n}]" for n in (1, 2, 3)]
    for names in by_test.values():
        app, chat = names["answer question"], names["chat gpt-4o"]
        assert chat.parent_span_id == app.span_id and chat.trace_id == app.trace_id
        assert chat.kind == chat.SPAN_KIND_CLIENT
        a = attributes(chat.attributes)
        assert a["gen_ai.request.model"] == "gpt-4o" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.usage.output_tokens"] == 3 and a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert "say hi" in a["gen_ai.input.messages"]  # content kept, its secret not
        assert "hello there friend" in a["gen_ai.output.messages"]
        assert attributes(app.attributes)["api_key"] == REDACTED
        assert REDACTED in a["gen_ai.input.messages"]

    # redacted like the artifacts: the secret is nowhere on the wire
    wire = b"".join(body for _, body, _ in receiver.requests)
    assert SECRET.encode() not in wire and b"hunter2" not in wire


PLANTED = f"""
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags, TraceState


@pytest.mark.parametrize("who", ["x"], ids=["id/{SECRET}"])
def test_everywhere(who):
    scoped = trace.get_tracer("scope/{SECRET}", "v/{SECRET}")
    state = TraceState([("vendor", "key:{SECRET}")])
    outer = SpanContext(0x1F, 0x2F, True, TraceFlags(TraceFlags.SAMPLED), state)
    ctx = trace.set_span_in_context(NonRecordingSpan(outer))
    link = Link(SpanContext(0x3F, 0x4F, True), {{"linked": "key {SECRET}"}})
    with scoped.start_as_current_span("step", context=ctx, links=[link]) as span:
        span.add_event("event {SECRET}")
"""


def test_every_string_of_a_span_is_redacted_on_the_wire(
    pytester: pytest.Pytester, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test id, resource, scope, trace state, event name and link attributes: as in
    traces.jsonl, no secret leaves the machine."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"deploy.note=key {SECRET}")
    pytester.makepyfile(test_inner=HEADER + PLANTED)
    endpoint = f"--llm-otlp-endpoint={receiver.url}/v1/traces"
    result = pytester.runpytest_subprocess(*INNER_ARGS, endpoint)
    result.assert_outcomes(passed=1)
    [(resource, span)] = receiver.spans()
    assert resource["test.case.name"].startswith("test_inner.py::test_everywhere[id/")
    assert resource["deploy.note"] == f"key {REDACTED}"
    assert [e.name for e in span.events] == [f"event {REDACTED}"]
    assert attributes(span.links[0].attributes)["linked"] == f"key {REDACTED}"
    assert span.trace_state == f"vendor=key:{REDACTED}"
    [scope] = [ss.scope for rs in receiver.requests[0][2].resource_spans for ss in rs.scope_spans]
    assert scope.name == f"scope/{REDACTED}" and scope.version == f"v/{REDACTED}"
    wire = b"".join(body for _, body, _ in receiver.requests)
    assert SECRET.encode() not in wire


def test_no_content_when_log_content_is_none(
    pytester: pytest.Pytester, provider: ProviderServer, receiver: Receiver
) -> None:
    result = run(
        pytester,
        CHATS,
        f"--llm-otlp-endpoint={receiver.url}/v1/traces",
        "--llm-capture-content",
        "--llm-log-content=none",
    )
    result.assert_outcomes(passed=3)
    chats = [s for _, s in receiver.spans() if s.name == "chat gpt-4o"]
    assert len(chats) == 3
    for span in chats:
        a = attributes(span.attributes)
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
        assert a["gen_ai.usage.output_tokens"] > 0


def test_exports_as_the_run_goes_past_cassettes_from_the_standard_variable(
    pytester: pytest.Pytester, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT alone turns export on; a batch of one is sent while the
    test still runs, and strict offline cassettes with no allowed host do not block it."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + "/")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
    monkeypatch.setenv("RECEIVER", receiver.url)
    result = run(
        pytester,
        """
def test_app_span():
    with tracer.start_as_current_span("step one"):
        pass
    deadline = time.monotonic() + 10
    while urllib.request.urlopen(os.environ["RECEIVER"] + "/count").read() != b"1":
        assert time.monotonic() < deadline, "the span did not arrive while the test ran"
        time.sleep(0.02)
""",
        "--llm-record-mode=none",
        "--llm-allow-hosts=none",
    )
    result.assert_outcomes(passed=1)
    [(resource, span)] = receiver.spans()
    assert span.name == "step one"
    assert resource["test.case.name"] == "test_inner.py::test_app_span"


def test_float_span_times_are_exported_as_integers(
    pytester: pytest.Pytester, receiver: Receiver
) -> None:
    """Instrumentations (and their tests) may give float nanoseconds; OTLP wants integers."""
    result = run(
        pytester,
        """
def test_float_times():
    start = float(time.time_ns())
    span = tracer.start_span("float times", start_time=start)
    span.add_event("tick", timestamp=start + 1e3)
    span.end(end_time=start + 2e6)
    print("TIMES", int(start), int(start + 1e3), int(start + 2e6))
""",
        f"--llm-otlp-endpoint={receiver.url}/v1/traces",
        "-s",
    )
    result.assert_outcomes(passed=1)
    assert "LLMExportWarning" not in result.stdout.str()
    [line] = [x for x in result.outlines if "TIMES" in x]
    start, tick, end = map(int, line.split("TIMES")[1].split())
    [(_, span)] = receiver.spans()
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (start, end)
    assert span.events[0].time_unix_nano == tick


def test_dead_endpoint_warns_once_and_the_run_passes(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    body = """
def test_one():
    oai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

def test_two():
    with tracer.start_as_current_span("app"):
        pass
"""
    result = run(pytester, body, f"--llm-otlp-endpoint={endpoint}", "--llm-otlp-timeout=0.5")
    result.assert_outcomes(passed=2, warnings=1)
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert out.count("LLMExportWarning") == 1
    result.stdout.fnmatch_lines(
        [f"*llmobs: 2 of 2 spans were not exported to {endpoint} (*); the test results are*"]
    )
    assert "Failed to export" not in out + result.stderr.str()  # no log line per batch
    assert "spans sent to" not in out

    # with warnings as errors the run still passes: the note goes to the terminal instead
    result = run(
        pytester,
        body,
        f"--llm-otlp-endpoint={endpoint}",
        "--llm-otlp-timeout=0.5",
        "-W",
        "error::pytest_llmobs.export.LLMExportWarning",
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["warning: llmobs: 2 of 2 spans were not exported*"])


def test_under_xdist_each_worker_exports_its_own(
    pytester: pytest.Pytester, provider: ProviderServer, receiver: Receiver
) -> None:
    result = run(pytester, CHATS, f"--llm-otlp-endpoint={receiver.url}/v1/traces", "-n", "2")
    result.assert_outcomes(passed=3)
    spans = receiver.spans()
    assert len(spans) == 6
    assert {r["test.case.name"] for r, _ in spans} == {
        f"test_inner.py::test_chat[{n}]" for n in (1, 2, 3)
    }


def test_bad_timeout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "def test_x(): pass",
        "--llm-otlp-endpoint=http://x/v1/traces",
        "--llm-otlp-timeout=0",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-otlp-timeout*0.0 is not a positive number of seconds*"])


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        ("", {}, None),
        (
            "http://a:4318/v1/traces",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
            "http://a:4318/v1/traces",
        ),
        ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318/"}, "http://b:4318/v1/traces"),
        (
            "",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/t",
            },
            "http://c/t",
        ),
        ("none", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/t"}, None),
    ],
)
def test_endpoint_resolution(option: str, env: dict[str, str], expected: str | None) -> None:
    assert resolve_endpoint(option, env) == expected


# -- a real backend: Arize Phoenix -----------------------------------------------------------
class Phoenix:
    def __init__(self, url: str, otlp: str) -> None:
        self.url = url
        self.otlp = otlp

    def spans(self, project: str) -> list[dict[str, Any]]:
        name = urllib.parse.quote(project, safe="")
        with urllib.request.urlopen(f"{self.url}/v1/projects/{name}/spans?limit=100") as r:
            data: list[dict[str, Any]] = json.load(r)["data"]
            return data


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """`phoenix serve` from its own venv, configured only by environment, once per session."""
    if not PHOENIX.exists():
        pytest.skip(f"Arize Phoenix is not installed ({PHOENIX}): run `make phoenix`")
    port, grpc_port = free_port(), free_port()
    workdir = tmp_path_factory.mktemp("phoenix")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(workdir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"phoenix serve exited: {(workdir / 'phoenix.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"phoenix not healthy in 90 s: {(workdir / 'phoenix.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield Phoenix(url, url + "/v1/traces")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.phoenix
def test_phoenix_receives_llm_spans(
    pytester: pytest.Pytester, provider: ProviderServer, phoenix: Phoenix
) -> None:
    provider.configure(reply="one two three four")
    project = f"llmobs-{os.getpid()}-{time.monotonic_ns()}"
    result = run(
        pytester,
        """
def test_chat():
    with tracer.start_as_current_span("handle request"):
        oai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "say hello to the test"}])

def test_stream():
    for _ in oai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "say hello to the test"}],
            stream=True, stream_options={"include_usage": True}):
        pass
""",
        f"--llm-otlp-endpoint={phoenix.otlp}",
        f"--llm-otlp-project={project}",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["llmobs export: 3 spans sent to *"])

    # Phoenix ingests in the background: poll until all three are readable
    deadline = time.monotonic() + 20
    spans: list[dict[str, Any]] = []
    while len(spans) < 3:
        try:
            spans = phoenix.spans(project)
        except urllib.error.HTTPError as exc:  # 404 until the project exists
            assert exc.code == 404, exc.read()
        assert time.monotonic() < deadline, f"Phoenix has {len(spans)} of 3 spans: {spans}"
        time.sleep(0.2)
    by_name = {s["name"]: s for s in spans}
    assert sorted(by_name) == ["chat gpt-4o", "chat gpt-4o-mini", "handle request"]
    chat, stream, app = (
        by_name["chat gpt-4o"],
        by_name["chat gpt-4o-mini"],
        by_name["handle request"],
    )
    assert chat["parent_id"] == app["context"]["span_id"]
    assert chat["context"]["trace_id"] == app["context"]["trace_id"]
    # Phoenix read the gen_ai attributes itself: LLM spans, with model and token counts
    assert chat["span_kind"] == "LLM" and stream["span_kind"] == "LLM"
    assert app["span_kind"] != "LLM"
    for span, model in ((chat, "gpt-4o"), (stream, "gpt-4o-mini")):
        a = span["attributes"]
        assert a["gen_ai.request.model"] == model
        assert a["gen_ai.usage.input_tokens"] == 5 and a["gen_ai.usage.output_tokens"] == 4
        assert a["llm.model_name"] == model
        assert a["llm.token_count.prompt"] == 5 and a["llm.token_count.completion"] == 4
    assert stream["attributes"]["gen_ai.request.stream"] is True


RESOURCE_SUITE = """
class TestCheckout:
    def test_pays(self):
        oai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
"""


@pytest.mark.parametrize("service", ["checkout-evals", None])
def test_resource_from_the_standard_environment_and_test_attributes(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    service: str | None,
) -> None:
    """`service.name` and the rest of the resource come from OTEL_SERVICE_NAME /
    OTEL_RESOURCE_ATTRIBUTES as the SDK reads them (`pytest` when nothing names a service),
    live and in traces.jsonl; the test is named by the test semantic conventions."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    if service is not None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci,service.version=1.4.2"
    )
    endpoint = f"--llm-otlp-endpoint={receiver.url}/v1/traces"
    run(pytester, RESOURCE_SUITE, endpoint, "--llm-artifacts=out").assert_outcomes(passed=1)
    expected = {
        "service.name": service or "pytest",
        "deployment.environment.name": "ci",
        "service.version": "1.4.2",
        "test.case.name": "test_inner.py::TestCheckout::test_pays",
        "test.suite.name": "test_inner.py::TestCheckout",
    }
    [(resource, span)] = receiver.spans()
    assert span.name == "chat gpt-4o"
    assert {k: resource.get(k) for k in expected} == expected
    [line] = (pytester.path / "out" / "traces.jsonl").read_text().splitlines()
    [stored] = json.loads(line)["resourceSpans"]
    on_file = {kv["key"]: kv["value"]["stringValue"] for kv in stored["resource"]["attributes"]}
    assert {k: on_file.get(k) for k in expected} == expected
    assert on_file["test.case.result.status"] == "pass"
