"""The app's OpenTelemetry and async setup are its own: the plugin drops into a suite as is.

The app may set its global TracerProvider at a conftest's import, in a fixture or in a test:
its exporters get exactly its own spans (as with `-p no:llmobs`), and `llmobs` still has
the app's spans and its GenAI spans in one tree. Span times may be floats. pytest-asyncio
keeps whatever mode the project chose. Runs that set a global provider are subprocesses:
the slot can be set once per process.
"""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest
from google.protobuf import json_format
from inner import INNER_ARGS
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pytest_llmobs import app_provider
from pytest_llmobs.testing import ProviderServer

HEADER = """
import json, os, time
import openai, pytest
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
TRACER = trace.get_tracer("app")  # at import, before any provider: a proxy


def chat(model="gpt-4o"):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0)
    return client.chat.completions.create(model=model, messages=MESSAGES)


def check_tree(llmobs, app_span, model="gpt-4o"):
    '''The GenAI span is the child of the app's span, in the app's trace.'''
    [llm] = llmobs.find_spans(f"chat {model}")
    parent = app_span.get_span_context()
    assert llm.parent.span_id == parent.span_id
    assert llm.context.trace_id == parent.trace_id
"""

APP_PROVIDER = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

APP_EXPORTER = InMemorySpanExporter()
APP_PROVIDER = TracerProvider()
APP_PROVIDER.add_span_processor(SimpleSpanProcessor(APP_EXPORTER))


def exported():
    return sorted(s.name for s in APP_EXPORTER.get_finished_spans())
"""

# live logging shows OpenTelemetry's "Overriding of current TracerProvider is not allowed"
LOG_ARGS = ("-o", "log_cli=true", "--log-cli-level=WARNING")


def run_app(pytester: pytest.Pytester, conftest: str, body: str, passed: int, *args: str) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_inner=HEADER + body)
    result = pytester.runpytest_subprocess(*INNER_ARGS, *LOG_ARGS, *args)
    result.assert_outcomes(passed=passed)
    assert "Overriding" not in result.stdout.str() + result.stderr.str()


def test_provider_set_at_conftest_import(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run_app(
        pytester,
        APP_PROVIDER + "trace.set_tracer_provider(APP_PROVIDER)\n",
        """
from conftest import APP_PROVIDER, exported

def test_app_and_llm_spans(llmobs):
    assert trace.get_tracer_provider() is APP_PROVIDER
    with TRACER.start_as_current_span("app.work") as work:
        chat()
    assert exported() == ["app.work"]  # its own spans, no GenAI span added
    assert sorted(s.name for s in llmobs.spans) == ["app.work", "chat gpt-4o"]
    check_tree(llmobs, work)
""",
        passed=1,
    )


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_provider_set_in_a_fixture(
    pytester: pytest.Pytester, provider: ProviderServer, xdist: tuple[str, ...]
) -> None:
    """`set_tracer_provider` imported by name before the plugin configured, called in a
    fixture; the test module's tracer was taken before. Baggage the app sets stays off the
    spans its exporter gets (the plugin stamps its captured copy)."""
    run_app(
        pytester,
        APP_PROVIDER
        + """
import pytest
from opentelemetry.trace import set_tracer_provider

@pytest.fixture(scope="session")
def app_tracing():
    set_tracer_provider(APP_PROVIDER)
    return APP_PROVIDER
""",
        """
from conftest import APP_EXPORTER, exported

def test_app_and_llm_spans(app_tracing, llmobs):
    assert trace.get_tracer_provider() is app_tracing
    with llmobs.context(conversation_id="c-1"):
        with TRACER.start_as_current_span("app.work") as work:
            with trace.get_tracer("app.db").start_as_current_span("app.query"):
                pass
            chat()
    assert exported() == ["app.query", "app.work"]
    assert all("gen_ai.conversation.id" not in s.attributes
               for s in APP_EXPORTER.get_finished_spans())
    spans = {s.name: s for s in llmobs.spans}
    assert sorted(spans) == ["app.query", "app.work", "chat gpt-4o"]
    assert {s.attributes["gen_ai.conversation.id"] for s in spans.values()} == {"c-1"}
    assert spans["app.query"].parent.span_id == work.get_span_context().span_id
    check_tree(llmobs, work)

def test_another(app_tracing, llmobs):
    with TRACER.start_as_current_span("app.other") as other:
        chat("gpt-4o-mini")
    assert "app.other" in exported()
    assert sorted(s.name for s in llmobs.spans) == ["app.other", "chat gpt-4o-mini"]
    check_tree(llmobs, other, "gpt-4o-mini")
""",
        2,
        *xdist,
    )


def test_provider_set_inside_a_test(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    """Before the app sets one, the slot is free and its spans are captured all the same;
    the same tracer then sends its spans to the app's provider."""
    run_app(
        pytester,
        APP_PROVIDER,
        """
from conftest import APP_PROVIDER, exported

def test_1_no_provider_yet(llmobs):
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    with TRACER.start_as_current_span("before") as before:
        chat("gpt-4o-mini")
    assert sorted(s.name for s in llmobs.spans) == ["before", "chat gpt-4o-mini"]
    check_tree(llmobs, before, "gpt-4o-mini")

def test_2_sets_it(llmobs):
    trace.set_tracer_provider(APP_PROVIDER)
    assert trace.get_tracer_provider() is APP_PROVIDER
    with TRACER.start_as_current_span("app.work") as work:
        chat()
    assert exported() == ["app.work"]
    assert sorted(s.name for s in llmobs.spans) == ["app.work", "chat gpt-4o"]
    check_tree(llmobs, work)

def test_3_later_tests_too(llmobs):
    with trace.get_tracer("later").start_as_current_span("app.later") as later:
        chat()
    assert exported() == ["app.later", "app.work"]
    assert sorted(s.name for s in llmobs.spans) == ["app.later", "chat gpt-4o"]
    check_tree(llmobs, later)
""",
        passed=3,
    )


def test_float_span_times_reach_every_artifact(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As instrumentation tests do: `start_time=float(time.time_ns())`. The run ends with
    its report, the times as OTLP integers."""
    pytester.makepyfile(
        test_inner=HEADER
        + """
def test_float_times(llmobs):
    t = {"outer": float(time.time_ns())}
    t.update(tick=t["outer"] + 1e3, inner=t["outer"] + 1e6, inner_end=t["outer"] + 5e8)
    with TRACER.start_as_current_span("outer", start_time=t["outer"]) as outer:
        outer.add_event("tick", timestamp=t["tick"])
        chat()
        inner = TRACER.start_span("inner", start_time=t["inner"])
        inner.end(end_time=t["inner_end"])
    with open(os.environ["TIMES"], "w") as f:
        json.dump(t, f)
    assert {s.name for s in llmobs.spans} == {"outer", "inner", "chat gpt-4o"}
"""
    )
    times = pytester.path / "times.json"
    monkeypatch.setenv("TIMES", str(times))
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    t = {k: int(v) for k, v in json.loads(times.read_text()).items()}
    out = pytester.path / "llmobs-artifacts"
    [line] = (out / "traces.jsonl").read_text().splitlines()
    request = json_format.Parse(line, ExportTraceServiceRequest())  # OTLP JSON: ints only
    spans = {s.name: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert spans["inner"].start_time_unix_nano == t["inner"]
    assert spans["inner"].end_time_unix_nano == t["inner_end"]
    assert spans["outer"].start_time_unix_nano == t["outer"]
    assert spans["outer"].events[0].time_unix_nano == t["tick"]
    events = json.loads((out / "traces.perfetto.json").read_text())["traceEvents"]
    [inner] = [e for e in events if e.get("name") == "inner"]
    assert inner["dur"] == (t["inner_end"] - t["inner"]) / 1000  # µs
    assert "inner" in (out / "report.html").read_text()


# -- pytest-asyncio: the project's mode, untouched ---------------------------------------------
ASYNC_TESTS = """
import os
import openai, pytest, pytest_asyncio

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


@pytest_asyncio.fixture
async def client():
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    yield client
    await client.close()


@MARK
async def test_async_call(client, llmobs):
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [c.request_model for c in llmobs.calls] == ["gpt-4o"]
    assert [s.name for s in llmobs.spans] == ["chat gpt-4o"]


@MARK
async def test_async_fixture_only(client):
    assert client.base_url.host == "127.0.0.1"


def test_sync_beside(llmobs):
    assert llmobs.calls == []
"""

# A fresh project: not INNER_ARGS (which set auto mode), every warning an error. Its ini sets
# only pytest-asyncio's fixture loop scope, which pytest-asyncio >= 0.24 itself warns about
# when unset, with or without this plugin (and which 0.23 does not know).
FRESH_ARGS = ("-p", "no:cacheprovider", "-p", "no:langsmith_plugin", "-W", "error")
ASYNCIO_RELEASE = tuple(
    int(part) for part in importlib.metadata.version("pytest-asyncio").split(".")[:2]
)


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_tests_pass_in_the_projects_mode(
    pytester: pytest.Pytester, provider: ProviderServer, mode: str
) -> None:
    ini = "[pytest]\n"
    if ASYNCIO_RELEASE >= (0, 24):
        ini += "asyncio_default_fixture_loop_scope = function\n"
    if mode == "auto":
        ini += "asyncio_mode = auto\n"
    pytester.makeini(ini)
    mark = "@pytest.mark.asyncio\n" if mode == "strict" else ""  # strict: marked tests only
    pytester.makepyfile(test_fresh=ASYNC_TESTS.replace("@MARK\n", mark))
    result = pytester.runpytest_subprocess(*FRESH_ARGS)
    result.assert_outcomes(passed=3)
    output = result.stdout.str() + result.stderr.str()
    assert re.search(rf"asyncio: mode=(Mode\.)?{mode}", output, re.IGNORECASE), output
    assert "warning" not in output.lower()


def test_the_plugin_needs_no_async_plugin(pytester: pytest.Pytester) -> None:
    """pytest-asyncio is the project's choice: the plugin does not pull it in, and works
    without it loaded."""
    requires = importlib.metadata.requires("pytest-llmobs") or []
    assert not [r for r in requires if re.match(r"pytest[-_]asyncio\b", r)], requires
    pytester.makepyfile(test_sync="def test_it(llmobs):\n    assert llmobs.calls == []\n")
    result = pytester.runpytest_subprocess(*FRESH_ARGS, "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    assert "warning" not in result.stdout.str().lower()


def test_the_wrapped_opentelemetry_internals_are_there() -> None:
    """Fails loudly when opentelemetry-api changes what app_provider.py wraps."""
    assert app_provider.supported()
