"""End to end: real SDKs → local provider server, captured as LLMCalls and GenAI spans."""

from __future__ import annotations

import pytest
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer, error_reply

HEADER = """
import asyncio, os, threading, time
import anthropic, httpx, openai, pytest, requests
from opentelemetry import trace

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]  # 5 words


def oai(**kw):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=kw.pop("max_retries", 0), **kw)


def ant(**kw):
    return anthropic.Anthropic(base_url=URL, max_retries=kw.pop("max_retries", 0), **kw)
"""


def run(
    pytester: pytest.Pytester, body: str, *args: str, passed: int = 1, subprocess: bool = False
) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runner(*INNER_ARGS, *args)
    result.assert_outcomes(passed=passed)
    return result


def test_openai_chat_non_streaming(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    run(
        pytester,
        """
def test_it(llmobs):
    out = oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.2)
    assert out.choices[0].message.content == "one two three four"
    [call] = llmobs.calls
    assert (call.provider, call.operation, call.request_model) == ("openai", "chat", "gpt-4o")
    assert call.response_model == "gpt-4o" and call.stream is False
    assert call.usage.input_tokens == 5 and call.usage.output_tokens == 4
    assert call.usage.total_tokens == 9 and call.usage.cached_input_tokens == 0
    assert call.finish_reasons == ("stop",) and call.truncated is False
    assert call.status_code == 200 and call.attempt == 0 and call.error is None
    assert call.request_id and call.response_id.startswith("chatcmpl-")
    assert call.temperature == 0.2 and call.url.endswith("/v1/chat/completions")
    assert call.duration_s > 0 and call.started_at > 0
    assert call.output_text == "one two three four"
    [span] = llmobs.find_spans("chat *")
    assert span.name == "chat gpt-4o" and span.kind == trace.SpanKind.CLIENT
    a = span.attributes
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.usage.input_tokens"] == 5 and a["gen_ai.usage.output_tokens"] == 4
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert a["server.address"] == "127.0.0.1" and a["gen_ai.request.temperature"] == 0.2
    assert llmobs.usage.total_tokens == 9
""",
    )


def test_openai_stream_timing_and_usage(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="a b c d e", ttft_s=0.2, chunk_delay_s=0.05)
    run(
        pytester,
        """
def test_usage(llmobs):
    client = oai()
    # warm up: the SDK imports its resource modules lazily on first use
    client.chat.completions.create(model="warm-up", messages=MESSAGES, extra_headers={
        "x-fake-ttft-ms": "0", "x-fake-chunk-delay-ms": "0"})
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True})
    first = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    # not buffered: the app saw its first token long before the end
    assert 0.18 < first < total - 0.15
    [_, call] = llmobs.calls
    assert call.stream is True and call.finish_reasons == ("stop",)
    assert call.usage.output_tokens == 5 and call.usage.input_tokens == 5
    assert 0.18 < call.time_to_first_chunk_s < 0.35
    assert abs(call.duration_s - total) < 0.05
    assert len(call.chunk_offsets_s) >= 5
    assert list(call.chunk_offsets_s) == sorted(call.chunk_offsets_s)
    [span] = llmobs.find_spans("chat gpt-4o-mini")
    assert span.attributes["gen_ai.request.stream"] is True
    assert 0.18 < span.attributes["gen_ai.response.time_to_first_chunk"] < 0.35
    assert (span.end_time - span.start_time) / 1e9 == pytest.approx(call.duration_s, abs=0.01)

def test_no_usage_without_include_usage(llmobs):
    for _ in oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    [call] = llmobs.calls
    assert call.usage.input_tokens is None and call.usage.output_tokens is None
    assert call.finish_reasons == ("stop",)
""",
        passed=2,
    )


def test_async_clients_and_anthropic(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="w1 w2 w3 w4 w5 w6")
    run(
        pytester,
        """
async def test_async_openai(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    out = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    async for _ in stream:
        pass
    assert [c.stream for c in llmobs.calls] == [False, True]
    assert [c.usage.output_tokens for c in llmobs.calls] == [6, 6]

async def test_async_anthropic_stream(llmobs):
    client = anthropic.AsyncAnthropic(base_url=URL, max_retries=0)
    async with client.messages.stream(
            model="claude-test-s", max_tokens=100, messages=MESSAGES) as stream:
        text = await stream.get_final_text()
    assert text == "w1 w2 w3 w4 w5 w6"
    [call] = llmobs.calls
    assert (call.provider, call.stream, call.finish_reasons) == ("anthropic", True, ("end_turn",))
    assert call.usage.input_tokens == 5 and call.usage.output_tokens == 6

@pytest.mark.llm_allow_truncation  # the point of this test
def test_anthropic_truncated_by_max_tokens(llmobs):
    msg = ant().messages.create(model="claude-test-h", max_tokens=3, messages=MESSAGES)
    assert msg.stop_reason == "max_tokens"
    [call] = llmobs.calls
    assert call.truncated and call.truncation_reason == "max_tokens"
    assert call.max_tokens == 3 and call.usage.output_tokens == 3
""",
        passed=3,
    )


def test_span_tree_and_no_double_counting(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(
        pytester,
        """
tracer = trace.get_tracer("app")

def test_tree(llmobs):
    with tracer.start_as_current_span("rag.answer"):
        with tracer.start_as_current_span("rag.retrieve"):
            pass
        oai().chat.completions.create(model="gpt-4o", messages=MESSAGES)
        ant().messages.create(model="claude-test-s", max_tokens=50, messages=MESSAGES)
    by_name = {s.name: s for s in llmobs.spans}
    root = by_name["rag.answer"]
    assert by_name["rag.retrieve"].parent.span_id == root.context.span_id
    assert by_name["chat gpt-4o"].parent.span_id == root.context.span_id
    # ours (one per HTTP attempt) nests under the app's span, or under the call span an SDK
    # that emits its own puts between them (anthropic 2.x: `anthropic.messages.create`)
    between = []
    span = by_name["chat claude-test-s"]
    while span.parent.span_id != root.context.span_id:
        [span] = [s for s in llmobs.spans if s.context.span_id == span.parent.span_id]
        between.append(span.name)
    assert between in ([], ["anthropic.messages.create"])
    assert len({s.context.trace_id for s in llmobs.spans}) == 1
    # two GenAI spans describe the anthropic call, but it is one LLMCall
    assert [c.provider for c in llmobs.calls] == ["openai", "anthropic"]
    assert llmobs.usage.input_tokens == 10
""",
    )


def test_isolation_threads_tasks(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    run(
        pytester,
        """
def test_a_threads(llmobs):
    client = oai()
    threads = [threading.Thread(target=lambda: client.embeddings.create(
        model="text-embedding-3-small", input="hi there")) for _ in range(4)]
    [t.start() for t in threads]; [t.join() for t in threads]
    assert [c.operation for c in llmobs.calls] == ["embeddings"] * 4

async def test_b_tasks(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    await asyncio.gather(*[client.chat.completions.create(model=f"m{i}", messages=MESSAGES)
                           for i in range(5)])
    assert sorted(c.request_model for c in llmobs.calls) == [f"m{i}" for i in range(5)]
    assert not llmobs.find_spans("embeddings *")

def test_c_nothing(llmobs, llm_spans):
    assert llmobs.calls == [] and llm_spans == [] and llmobs.usage.total == 0
""",
        passed=3,
    )


def test_plain_httpx_and_requests(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="x y z", ttft_s=0.1, chunk_delay_s=0.05)
    run(
        pytester,
        """
BODY = {"model": "gpt-4o", "messages": MESSAGES}

def test_httpx(llmobs):
    httpx.post(URL + "/v1/chat/completions", json=BODY)
    with httpx.Client() as c, c.stream("POST", URL + "/v1/chat/completions",
                                       json={**BODY, "stream": True}) as r:
        lines = list(r.iter_lines())
    assert lines[-2] == "data: [DONE]" or lines[-1] == "data: [DONE]"
    assert [c.stream for c in llmobs.calls] == [False, True]
    assert llmobs.calls[1].time_to_first_chunk_s > 0.09

def test_requests(llmobs):
    requests.post(URL + "/v1/chat/completions", json=BODY).json()
    t0 = time.perf_counter(); first = None
    with requests.post(URL + "/v1/chat/completions", json={**BODY, "stream": True},
                       stream=True) as r:
        for line in r.iter_lines(chunk_size=None):
            first = first or time.perf_counter() - t0
    assert first < 0.2  # streamed through, not buffered (stream takes >= 0.25 s)
    [plain, streamed] = llmobs.calls
    assert plain.usage.output_tokens == 3 and plain.finish_reasons == ("stop",)
    assert streamed.stream and streamed.finish_reasons == ("stop",)
    assert streamed.output_text == "x y z"
    assert not streamed.truncated
    assert streamed.duration_s > 0.2

async def test_async_httpx(llmobs):
    async with httpx.AsyncClient() as c:
        await c.post(URL + "/v1/messages", json={"model": "claude-x", "max_tokens": 9,
                     "messages": MESSAGES}, headers={"anthropic-version": "2023-06-01"})
    [call] = llmobs.calls
    assert call.provider == "anthropic" and call.usage.output_tokens == 3

def test_unknown_traffic_ignored(llmobs):
    assert httpx.get(URL + "/not-an-llm").status_code == 404
    requests.post(URL + "/upload", data=b"\\x00\\xff binary")
    assert llmobs.calls == []
""",
        passed=4,
    )


def test_retries_are_attempts(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    rate_limited = error_reply("openai", 429, headers={"retry-after-ms": "10"})
    rate_limited.match = "/chat/completions"
    overloaded = error_reply("anthropic", 529, headers={"retry-after-ms": "10"})
    overloaded.match = "/messages"
    provider.enqueue(rate_limited)
    provider.enqueue(overloaded)
    run(
        pytester,
        """
def test_retry(llmobs):
    oai(max_retries=2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    ant(max_retries=2).messages.create(model="claude-x", max_tokens=20, messages=MESSAGES)
    assert [(c.provider, c.attempt, c.status_code) for c in llmobs.calls] == [
        ("openai", 0, 429), ("openai", 1, 200), ("anthropic", 0, 529), ("anthropic", 1, 200)]
    assert llmobs.calls[0].error_type == "rate_limit_exceeded"
    assert llmobs.calls[2].error_type == "overloaded_error"
    [failed] = [s for s in llmobs.find_spans("chat gpt-4o") if s.status.status_code.name == "ERROR"]
    assert failed.attributes["error.type"] == "rate_limit_exceeded"
""",
    )


def test_gateway_base_path_and_registered_host(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makeini("[pytest]\nllm_hosts =\n    127.0.0.1/corp-llm=anthropic\n")
    run(
        pytester,
        """
def test_gateways(llmobs):
    openai.OpenAI(base_url=URL + "/gw/openai/v1", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=MESSAGES)
    anthropic.Anthropic(base_url=URL + "/gw/anthropic", max_retries=0).messages.create(
        model="claude-x", max_tokens=10, messages=MESSAGES)
    assert [c.provider for c in llmobs.calls] == ["openai", "anthropic"]
""",
    )


def test_bad_llm_hosts_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, "--llm-hosts", "llm.corp=nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llm_hosts*nonsense*openai*"])


def test_report_header_shows_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, "--llm-capture-content")
    result.stdout.fnmatch_lines(["llmobs *: record mode off (env); on: content on spans; -v *"])
    result = pytester.runpytest(*INNER_ARGS, "--llm-capture-content", "-v")
    result.stdout.fnmatch_lines(["llmobs settings: *llm_capture_content=True (cli)*"])


def test_leaked_stream_is_flushed_at_test_end(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(
        pytester,
        """
LEAK = []

def test_leak():
    r = httpx.Client().send(httpx.Client().build_request(
        "POST", URL + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}), stream=True)
    LEAK.append(r)  # never read, never closed

def test_next(llmobs):
    assert llmobs.calls == []  # the leaked call belongs to the previous test only
""",
        passed=2,
    )


def test_responses_azure_embeddings_through_sdks(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="r1 r2 r3")
    run(
        pytester,
        """
@pytest.mark.llm_allow_truncation  # the point of this test
def test_responses(llmobs):
    client = oai()
    client.responses.create(model="gpt-4.1", input="say hello to the test")
    for _ in client.responses.create(model="gpt-4.1", input="hi", stream=True):
        pass
    client.responses.create(model="gpt-4.1", input="hi", max_output_tokens=2)
    plain, streamed, cut = llmobs.calls
    assert plain.usage.input_tokens == 5 and plain.usage.output_tokens == 3
    assert plain.finish_reasons == ("completed",) and not plain.truncated
    assert streamed.stream and streamed.usage.output_tokens == 3
    assert streamed.output_text == "r1 r2 r3"
    assert cut.truncated and cut.truncation_reason == "max_output_tokens"

def test_azure(llmobs):
    client = openai.AzureOpenAI(azure_endpoint=URL, api_version="2024-10-21", max_retries=0,
                               api_key="azure-key-0000")
    client.chat.completions.create(model="prod-gpt4o", messages=MESSAGES)
    [call] = llmobs.calls
    assert call.provider == "azure.ai.openai" and call.request_model == "prod-gpt4o"
    assert "api-key" not in call.url
    [span] = llmobs.find_spans("chat prod-gpt4o")
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"

def test_embeddings(llmobs):
    out = oai().embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert len(out.data) == 2
    [call] = llmobs.calls
    assert call.operation == "embeddings" and call.usage.input_tokens == 3
    assert llmobs.find_spans("embeddings text-embedding-3-small")
""",
        passed=3,
    )


def test_calls_are_analysed_when_read_not_on_the_call_path(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    """With only our span processor listening, a finished call is queued; reading `calls` or
    `spans` analyses it, with the span under the parent it had (even one ended since) and
    in the test that made it, whichever thread made it."""
    run(
        pytester,
        """
from pytest_llmobs.plugin import TEST_CAPTURE

def test_deferred(llmobs, request):
    capture = request.node.stash[TEST_CAPTURE]
    with trace.get_tracer("app").start_as_current_span("app.parent") as parent:
        oai().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    worker = threading.Thread(target=lambda: oai().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES))
    worker.start(); worker.join()
    assert len(capture.pending) == 2  # nothing parsed or traced while the app waited
    assert [c.request_model for c in llmobs.calls] == ["gpt-4o", "gpt-4o-mini"]
    assert capture.pending == []
    [first] = llmobs.find_spans("chat gpt-4o")
    assert first.parent.span_id == parent.get_span_context().span_id
    assert first.end_time - first.start_time == int(llmobs.calls[0].duration_s * 1e9)
    assert {s.name for s in llmobs.spans} == {"app.parent", "chat gpt-4o", "chat gpt-4o-mini"}

def test_next_test_sees_only_its_own(llmobs):
    oai().chat.completions.create(model="gpt-4.1", messages=MESSAGES)
    assert [c.request_model for c in llmobs.calls] == ["gpt-4.1"]
    assert [s.name for s in llmobs.spans] == ["chat gpt-4.1"]
""",
        passed=2,
        subprocess=True,  # in process, the outer session's span processor listens too
    )


def test_under_xdist_each_worker_captures_its_tests(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two")
    result = run(
        pytester,
        """
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_n_calls(llmobs, n):
    for _ in range(n):
        oai().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(llmobs.calls) == n
    assert llmobs.usage.output_tokens == 2 * n
""",
        "-n",
        "2",
        passed=4,
        subprocess=True,
    )
    # the controller's summary adds up what the workers sent on their reports
    result.stdout.fnmatch_lines(["llmobs: 10 LLM calls in 4 tests, 50 input + 20 output tokens"])


@pytest.mark.parametrize("module", ["httpx", "httpx2"])
def test_header_names_and_values_decode_as_the_client_encoded_them(module: str) -> None:
    """Headers are read as ASCII first (the common case, fast) and otherwise in the
    encoding the client itself detects, so a UTF-8 or Latin-1 value is never mangled."""
    import importlib

    from pytest_llmobs.intercept.httpx_clients import _header_list

    httpx = importlib.import_module(module)
    plain = httpx.Headers({"Content-Type": "application/json", "X-Trace": "abc"})
    assert _header_list(plain) == list(plain.multi_items())
    for raw in ("café ☕".encode(), "Zürich".encode("latin-1")):
        headers = httpx.Headers([(b"X-Note", raw), (b"Accept", b"*/*")])
        assert _header_list(headers) == list(headers.multi_items())
        assert _header_list(headers)[0][1] == raw.decode(headers.encoding)


def test_clients_are_patched_when_imported_not_before(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    """The plugin imports no HTTP client itself: each is patched when the code under test
    imports it, even inside a test, before its first request."""
    pytester.makepyfile(
        test_inner="""
import asyncio, os, sys
URL = os.environ["LLM_URL"] + "/v1/chat/completions"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "say hello"}]}
CLIENTS = ("aiohttp", "botocore.httpsession", "requests", "httpx", "httpx2")

def test_nothing_imported_yet():
    assert [m for m in CLIENTS if m in sys.modules] == []

def test_imported_in_the_test(llmobs):
    import requests
    assert requests.post(URL, json=BODY, headers={"authorization": "Bearer k"}).ok
    import aiohttp

    async def post():
        async with aiohttp.ClientSession() as session:
            async with session.post(URL, json=BODY) as response:
                return await response.json()

    assert asyncio.run(post())["choices"]
    import httpx
    assert httpx.post(URL, json=BODY).status_code == 200
    assert [c.request_model for c in llmobs.calls] == ["gpt-4o"] * 3
"""
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=2)
