"""Every chaos fault against the real SDKs: they must raise or retry exactly as the real
provider would make them (openai 3.x / anthropic 2.x over httpx2, requests for raw HTTP)."""

from __future__ import annotations

import pytest
from chaos_support import run

from pytest_llmobs.testing import ProviderServer

OPENAI_STATUS = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.2)
def test_rate_limit_is_retried_after_retry_after(llmobs):
    assert chat(oai(max_retries=2)).choices[0].message.content
    first, second = ordered(llmobs)
    assert seen(llmobs) == [(429, 0, "rate_limit"), (200, 1, None)]
    assert second.started_at - (first.started_at + first.duration_s) >= 0.18
    assert first.error_type == "rate_limit_exceeded"
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.2)
def test_rate_limit_error_is_openai_shaped(llmobs):
    with pytest.raises(openai.RateLimitError) as info:
        chat()
    err = info.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "requests"
    assert err.response.headers["retry-after-ms"] == "200"
    assert err.response.headers["retry-after"] == "0.2"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"] == "200ms"
    assert err.response.headers["x-request-id"].startswith("req_")
    assert "Please try again in 0.2s" in err.message


@pytest.mark.llm_chaos("quota_exhausted")
def test_quota_is_not_retried(llmobs):
    with pytest.raises(openai.RateLimitError) as info:
        chat(oai(max_retries=2))
    assert info.value.code == "insufficient_quota" and info.value.type == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert seen(llmobs) == [(429, 0, "quota_exhausted")]
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("long_retry_after")
def test_long_retry_after_is_given_up_or_judged(llmobs):
    try:
        chat(oai(max_retries=2))
    except openai.RateLimitError as err:  # openai 3.x does not wait more than 120 s
        assert err.response.headers["retry-after"] == "300"
        assert len(llmobs.calls) == 1
        llmobs.assert_resilient(strict=True)
    else:  # openai 2.x waits at most 60 s, then backs off on its own: too soon
        assert seen(llmobs) == [(429, 0, "long_retry_after"), (200, 1, None)]
        assert [f.code for f in llmobs.resilience().findings] == ["retry_after_ignored"]


@pytest.mark.llm_chaos("overloaded")
def test_overloaded_is_a_503_and_retried(llmobs):
    with pytest.raises(openai.InternalServerError) as info:
        chat()
    assert info.value.status_code == 503 and info.value.code == "server_is_overloaded"
    llmobs.chaos.inject("overloaded", retry_after=0.05)
    assert chat(oai(max_retries=1)).choices[0].message.content
    assert seen(llmobs) == [(503, 0, "overloaded"), (503, 0, "overloaded"), (200, 1, None)]


@pytest.mark.llm_chaos("server_error", status=502, retry_after=0.05)
def test_server_error_is_retried(llmobs):
    assert chat(oai(max_retries=1)).choices[0].message.content
    assert seen(llmobs) == [(502, 0, "server_error"), (200, 1, None)]
    llmobs.chaos.inject("server_error")
    with pytest.raises(openai.InternalServerError) as info:
        chat()
    assert info.value.status_code == 500 and info.value.type == "server_error"


@pytest.mark.llm_chaos("context_length")
def test_context_length_is_a_400_not_retried(llmobs):
    with pytest.raises(openai.BadRequestError) as info:
        chat(oai(max_retries=2))
    err = info.value
    assert (err.code, err.param, err.type) == (
        "context_length_exceeded", "messages", "invalid_request_error")
    assert "maximum context length is 128000 tokens" in err.message
    assert len(llmobs.calls) == 1
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("content_filter")
def test_prompt_content_filter(llmobs):
    with pytest.raises(openai.BadRequestError) as info:
        chat(oai(max_retries=2))
    assert info.value.code == "invalid_prompt" and len(llmobs.calls) == 1
"""

OPENAI_TRANSPORT_AND_STREAMS = """
@pytest.mark.llm_chaos("timeout")
def test_timeout_waits_for_the_read_timeout_then_retries(llmobs):
    started = time.perf_counter()
    assert chat(oai(max_retries=1, timeout=0.3)).choices[0].message.content
    assert time.perf_counter() - started >= 0.3
    first, second = ordered(llmobs)
    assert first.error_type == "ReadTimeout" and first.status_code is None
    assert first.attributes["llmobs.chaos.read_timeout_s"] == 0.3
    assert (second.status_code, second.attempt) == (200, 1)
    llmobs.chaos.inject("timeout")
    with pytest.raises(openai.APITimeoutError) as info:
        chat(oai(timeout=0.2))
    assert isinstance(info.value.__cause__, READ_TIMEOUT)


@pytest.mark.llm_chaos("connection_reset")
def test_connection_reset(llmobs):
    with pytest.raises(openai.APIConnectionError) as info:
        chat()
    assert isinstance(info.value.__cause__, PROTOCOL_ERROR)
    llmobs.chaos.inject("connection_reset")
    assert chat(oai(max_retries=1)).choices[0].message.content
    assert [c.error_type for c in ordered(llmobs)] == [
        "RemoteProtocolError", "RemoteProtocolError", None]


@pytest.mark.llm_chaos("stall_mid_stream", after=2)
def test_stall_mid_stream_times_out_and_is_not_retried(llmobs):
    got = []
    started = time.perf_counter()
    with pytest.raises(TIMEOUT_ERROR) as info:
        for chunk in chat(oai(max_retries=2, timeout=0.3), stream=True):
            got.append(chunk.choices[0].delta.content)
    transport_error(info.value, READ_TIMEOUT)
    assert 0.3 <= time.perf_counter() - started < 2
    assert got == ["", "This", " answer"]
    [call] = llmobs.calls
    assert call.truncated and call.error_type == "ReadTimeout"


@pytest.mark.llm_chaos("stream_cut", after=1)
def test_stream_cut_fails_the_call_and_is_not_retried(llmobs):
    got = []
    with pytest.raises(CONNECTION_ERROR) as info:
        for chunk in chat(oai(max_retries=2), stream=True):
            got.append(chunk.choices[0].delta.content)
    transport_error(info.value, PROTOCOL_ERROR)
    assert "incomplete chunked read" in str(transport_error(info.value, PROTOCOL_ERROR))
    assert got == ["", "This"] and len(llmobs.calls) == 1


@pytest.mark.llm_chaos("stream_truncated", after=3)
def test_stream_truncated_is_accepted_silently_by_the_sdk(llmobs):
    chunks = list(chat(stream=True))
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 4
    assert "".join(c.choices[0].delta.content for c in chunks) == "This answer was"
    [call] = llmobs.calls
    assert call.truncated and call.truncation_reason == "stream_ended_without_terminator"


@pytest.mark.llm_chaos("stream_error_event", error="server_error")
def test_stream_error_event_raises_api_error(llmobs):
    # closed by the app (openai 2.x leaves the response open when it raises; 3.x closes it)
    with pytest.raises(openai.APIError) as info, chat(stream=True) as stream:
        stream_text(stream)
    assert "had an error while processing" in info.value.message
    [call] = llmobs.calls
    assert call.status_code == 200 and call.truncated


@pytest.mark.llm_chaos("malformed_chunk")
def test_malformed_chunk_raises_json_error(llmobs):
    with pytest.raises(json.JSONDecodeError):
        stream_text(chat(stream=True))


@pytest.mark.llm_chaos("slow_stream", ttft_s=0.15, delay_s=0.02, jitter_s=0.01)
def test_slow_stream_delivers_everything_late(llmobs):
    started = time.perf_counter()
    text = stream_text(chat(stream=True))
    assert text == "This answer was synthesized by pytest-llmobs chaos for a damaged response."
    [call] = llmobs.calls
    assert call.time_to_first_chunk_s >= 0.15
    gaps = [b - a for a, b in zip(call.chunk_offsets_s, call.chunk_offsets_s[1:])]
    assert gaps and all(g >= 0.005 for g in gaps) and not call.truncated
    assert time.perf_counter() - started >= 0.15 + 0.01 * len(gaps)


@pytest.mark.llm_chaos("content_filter", variant="output", after=1)
def test_output_content_filter(llmobs):
    chunks = list(chat(stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "This"
    assert llmobs.calls[0].finish_reasons == ("content_filter",)


@pytest.mark.llm_chaos("truncate_length")
def test_truncate_length(llmobs):
    out = chat()
    assert out.choices[0].finish_reason == "length"
    assert out.choices[0].message.content == "This answer was synthesized by"
    [call] = llmobs.calls
    assert call.truncated and call.truncation_reason == "length"


@pytest.mark.llm_chaos("token_spike", factor=10, times=2)
def test_token_spike(llmobs):
    out = chat()
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (50, 110)
    chunks = list(chat(stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 110
    assert llmobs.usage.output_tokens == 220
    verdict = llmobs.resilience()
    assert verdict.extra_tokens == 2 * (160 - 16)
    assert [f.code for f in verdict.findings] == ["token_spike", "token_spike"]


@pytest.mark.llm_chaos("stream_cut", after=1)
async def test_async_client_sees_the_same_fault(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    with pytest.raises(CONNECTION_ERROR) as info:
        stream = await client.chat.completions.create(model="gpt-4o", messages=M, stream=True)
        async for _ in stream:
            pass
    transport_error(info.value, PROTOCOL_ERROR)
"""

ANTHROPIC = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.1)
def test_rate_limit(llmobs):
    with pytest.raises(anthropic.RateLimitError) as info:
        msg()
    headers = info.value.response.headers
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert headers["retry-after"] == "0.1" and "retry-after-ms" not in headers
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["request-id"] == info.value.body["request_id"]
    llmobs.chaos.inject("rate_limit", retry_after=0.1)
    assert msg(ant(max_retries=2)).content[0].text
    assert seen(llmobs)[1:] == [(429, 0, "rate_limit"), (200, 1, None)]


@pytest.mark.llm_chaos("quota_exhausted")
def test_quota_is_not_retried(llmobs):
    # anthropic >= 2.5 raises EnforcedSpendLimitReachedError, a RateLimitError
    with pytest.raises(anthropic.RateLimitError) as info:
        msg(ant(max_retries=2))
    assert info.value.status_code == 429
    assert info.value.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert len(llmobs.calls) == 1


@pytest.mark.llm_chaos("long_retry_after")
def test_long_retry_after(llmobs):
    with pytest.raises(anthropic.RateLimitError) as info:
        msg()  # anthropic 2.x would wait the full 300 s: no retries here
    assert info.value.response.headers["retry-after"] == "300"


@pytest.mark.llm_chaos("overloaded", retry_after=0.05, times=2)
def test_overloaded_529(llmobs):
    with pytest.raises(anthropic.APIStatusError) as info:  # OverloadedError from 0.47 on
        msg()
    assert info.value.status_code == 529
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert msg(ant(max_retries=1)).content[0].text
    assert seen(llmobs) == [(529, 0, "overloaded"), (529, 0, "overloaded"), (200, 1, None)]


@pytest.mark.llm_chaos("server_error")
def test_server_error(llmobs):
    with pytest.raises(anthropic.InternalServerError) as info:
        msg()
    assert info.value.body["error"]["type"] == "api_error"


@pytest.mark.llm_chaos("context_length")
def test_context_length(llmobs):
    with pytest.raises(anthropic.BadRequestError) as info:
        msg(ant(max_retries=2))
    assert "prompt is too long: 212345 tokens > 200000 maximum" in str(info.value)
    assert len(llmobs.calls) == 1


@pytest.mark.llm_chaos("timeout")
def test_timeout(llmobs):
    with pytest.raises(anthropic.APITimeoutError) as info:
        msg(ant(timeout=0.2))
    transport_error(info.value, READ_TIMEOUT)


@pytest.mark.llm_chaos("connection_reset")
def test_connection_reset(llmobs):
    with pytest.raises(anthropic.APIConnectionError) as info:
        msg()
    transport_error(info.value, PROTOCOL_ERROR)


# Mid-stream, anthropic <= 2.16 lets the transport's error through; >= 2.17 raises its own from it.
@pytest.mark.llm_chaos("stall_mid_stream")
def test_stall_mid_stream_times_out_and_is_not_retried(llmobs):
    got = []
    with pytest.raises((anthropic.APITimeoutError, *READ_TIMEOUT)) as info:
        with ant(timeout=0.3, max_retries=2).messages.stream(
            model="claude-test", max_tokens=64, messages=M) as stream:
            got.extend(stream.text_stream)
    transport_error(info.value, READ_TIMEOUT)
    assert got == ["This", " answer"]
    [call] = llmobs.calls
    assert (call.error_type, call.truncated, call.output_text) == (
        "ReadTimeout", True, "This answer")
    [span] = llmobs.find_spans("chat claude-test", error__type="ReadTimeout")
    assert span.status.status_code.name == "ERROR" and span.attributes["llmobs.truncated"]
    [finding] = llmobs.resilience().findings
    assert (finding.code, finding.severity) == ("partial_output_accepted", "warning")
    assert "the SDK raised, the app swallowed it" in finding.message


@pytest.mark.llm_chaos("stream_cut")
def test_stream_cut_fails_the_call_and_is_not_retried(llmobs):
    got = []
    with pytest.raises((anthropic.APIConnectionError, *PROTOCOL_ERROR)) as info:
        with ant(max_retries=2).messages.stream(
            model="claude-test", max_tokens=64, messages=M) as stream:
            got.extend(stream.text_stream)
    assert "incomplete chunked read" in str(transport_error(info.value, PROTOCOL_ERROR))
    assert got == ["This", " answer"]
    [call] = llmobs.calls
    assert (call.error_type, call.truncated, call.output_text) == (
        "RemoteProtocolError", True, "This answer")
    [span] = llmobs.find_spans("chat claude-test", error__type="RemoteProtocolError")
    assert "incomplete chunked read" in span.status.description
    [finding] = llmobs.resilience().findings
    assert (finding.code, finding.severity) == ("partial_output_accepted", "warning")
    assert "the SDK raised, the app swallowed it" in finding.message


@pytest.mark.llm_chaos("stream_truncated")
def test_stream_truncated_is_silent(llmobs):
    with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "This answer" and final.stop_reason is None
    assert llmobs.calls[0].truncation_reason == "stream_ended_without_terminator"


@pytest.mark.llm_chaos("stream_error_event")
def test_error_event_after_200(llmobs):
    with pytest.raises(anthropic.APIStatusError) as info:
        with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
            "".join(stream.text_stream)
    assert info.value.status_code == 200
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


@pytest.mark.llm_chaos("malformed_chunk")
def test_malformed_chunk(llmobs):
    with pytest.raises(json.JSONDecodeError):
        with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
            "".join(stream.text_stream)


@pytest.mark.llm_chaos("slow_stream", ttft_s=0.1, delay_s=0.01, jitter_s=0)
def test_slow_stream(llmobs):
    with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert llmobs.calls[0].time_to_first_chunk_s >= 0.1


@pytest.mark.llm_chaos("content_filter", times=2)
def test_refusal(llmobs):
    out = msg()
    assert out.stop_reason == "refusal" and out.content == []
    with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal" and final.content[0].text == "This answer"


@pytest.mark.llm_chaos("truncate_length", times=2)
def test_max_tokens(llmobs):
    assert msg().stop_reason == "max_tokens"
    with ant().messages.stream(model="claude-test", max_tokens=64, messages=M) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"
    assert [c.truncation_reason for c in llmobs.calls] == ["max_tokens", "max_tokens"]


@pytest.mark.llm_chaos("token_spike", factor=3)
def test_token_spike(llmobs):
    out = msg()
    assert (out.usage.input_tokens, out.usage.output_tokens) == (15, 33)
"""

RAW_AZURE_RESPONSES = """
def post(stream=False, **kw):
    body = {"model": "gpt-4o", "messages": M, "stream": stream}
    return requests.post(URL + "/v1/chat/completions", json=body, stream=stream, **kw)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.5)
def test_requests_rate_limit(llmobs):
    response = post(timeout=5)
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.llm_chaos("timeout")
def test_requests_timeout(llmobs):
    started = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(timeout=0.2)
    assert time.perf_counter() - started >= 0.2


@pytest.mark.llm_chaos("connection_reset")
def test_requests_reset(llmobs):
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection aborted"):
        post(timeout=5)


@pytest.mark.llm_chaos("stream_cut", after=1)
def test_requests_stream_cut(llmobs):
    response = post(stream=True, timeout=5)
    lines = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in response.iter_lines():
            lines.append(line)
    assert [line for line in lines if line][-1].startswith(b'data: {"id"')


@pytest.mark.llm_chaos("stall_mid_stream", after=1)
def test_requests_stall(llmobs):
    response = post(stream=True, timeout=0.2)
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        list(response.iter_lines())


@pytest.mark.llm_chaos("malformed_chunk", after=0)
def test_requests_malformed(llmobs):
    lines = [l for l in post(stream=True, timeout=5).iter_lines() if l]
    with pytest.raises(json.JSONDecodeError):
        [json.loads(l[6:]) for l in lines if l != b"data: [DONE]"]
    assert lines[-1] == b"data: [DONE]"  # the rest of the stream still arrives


def azure(**kw):
    return openai.AzureOpenAI(azure_endpoint=URL, api_version="2024-10-21", api_key="k",
                              max_retries=kw.pop("max_retries", 0), **kw)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.1)
def test_azure_rate_limit(llmobs):
    with pytest.raises(openai.RateLimitError) as info:
        azure().chat.completions.create(model="dep-1", messages=M)
    assert info.value.code == "429" and "Please retry after 0.1 seconds" in info.value.message
    assert info.value.response.headers["retry-after"] == "0.1"
    assert llmobs.calls[0].provider == "azure.ai.openai"


@pytest.mark.llm_chaos("content_filter", category="jailbreak")
def test_azure_prompt_filter(llmobs):
    with pytest.raises(openai.BadRequestError) as info:
        azure(max_retries=2).chat.completions.create(model="dep-1", messages=M)
    err = info.value
    assert err.code == "content_filter" and err.param == "prompt"
    result = err.body["innererror"]["content_filter_result"]
    assert result["jailbreak"] == {"filtered": True, "detected": True}
    assert result["violence"] == {"filtered": False, "severity": "safe"}
    assert len(llmobs.calls) == 1


@pytest.mark.llm_chaos("content_filter", variant="output")
def test_azure_output_filter(llmobs):
    chunks = list(azure().chat.completions.create(model="dep-1", messages=M, stream=True))
    assert chunks[0].prompt_filter_results[0]["prompt_index"] == 0
    last = chunks[-1].choices[0]
    assert last.finish_reason == "content_filter"
    assert last.content_filter_results["violence"]["filtered"] is True


@pytest.mark.llm_chaos("truncate_length", times=2)
def test_responses_incomplete(llmobs):
    out = oai().responses.create(model="gpt-4o", input="say hello")
    assert out.status == "incomplete" and out.incomplete_details.reason == "max_output_tokens"
    events = list(oai().responses.create(model="gpt-4o", input="say hello", stream=True))
    assert events[-1].type == "response.incomplete"
    assert [c.truncation_reason for c in llmobs.calls] == ["max_output_tokens"] * 2


@pytest.mark.llm_chaos("stream_truncated", api="responses")
def test_responses_stream_truncated(llmobs):
    events = [e.type for e in oai().responses.create(model="gpt-4o", input="hi", stream=True)]
    assert events[-1] == "response.output_text.delta" and "response.completed" not in events
    assert llmobs.calls[0].truncated


@pytest.mark.llm_chaos("stream_error_event", api="responses")
def test_responses_error_event(llmobs):
    events = list(oai().responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "error" and events[-1].code == "server_is_overloaded"


@pytest.mark.llm_chaos("rate_limit", model="gpt-4o-mini", provider="openai", retry_after=0)
def test_rules_match_model_and_provider(llmobs):
    assert chat().choices  # gpt-4o: not matched
    msg()  # anthropic: not matched
    with pytest.raises(openai.RateLimitError):
        oai().chat.completions.create(model="gpt-4o-mini", messages=M)
    assert llmobs.chaos.injected[0]["call_index"] == 2


@pytest.mark.llm_chaos("server_error", call=1, times=None)
def test_rules_match_call_index(llmobs):
    chat()
    with pytest.raises(openai.InternalServerError):
        chat()
    chat()
    assert [i["call_index"] for i in llmobs.chaos.injected] == [1]
"""


def test_openai_status_faults(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    run(pytester, OPENAI_STATUS, passed=8)
    assert provider.requests, "successful retries reach the real server"


def test_openai_transport_and_stream_faults(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(pytester, OPENAI_TRANSPORT_AND_STREAMS, passed=12)


def test_anthropic_faults(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    run(pytester, ANTHROPIC, passed=17)


def test_raw_http_azure_and_responses_faults(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(pytester, RAW_AZURE_RESPONSES, passed=14)


def test_faulted_requests_never_reach_the_provider(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    body = """
@pytest.mark.llm_chaos("rate_limit", times=None)
def test_it(llmobs):
    with pytest.raises(openai.RateLimitError):
        chat(oai(max_retries=1))
    assert len(llmobs.calls) == 2
"""
    run(pytester, body, passed=1)
    assert provider.requests == []
