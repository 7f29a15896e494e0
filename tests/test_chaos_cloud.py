"""Every chaos fault for Amazon Bedrock (boto3: converse, converse_stream, invoke_model,
invoke_model_with_response_stream) and Google Gemini (google-genai): the clients must see
the error types the real services make them see, retry (or not) as they would, and the
verdict must judge those retries."""

from __future__ import annotations

import json
import random

import pytest
from chaos_support import INNER_ARGS  # the gate only reports: these check the faults

from pytest_llmobs.chaos import FAULTS, fault_table
from pytest_llmobs.chaos.catalog import describe, render
from pytest_llmobs.chaos.damage import plan
from pytest_llmobs.chaos.dialects import DIALECTS, RequestInfo
from pytest_llmobs.intercept import Exchange
from pytest_llmobs.providers import ProviderRegistry
from pytest_llmobs.testing import ProviderServer
from pytest_llmobs.testing.eventstream import (
    decode_frame,
    event_frame,
    exception_frame,
    split_frames,
)

HEADER = """
import json, os, time
import boto3, botocore.exceptions, httpx, httpx2, pytest, urllib3
from botocore.config import Config
from botocore.eventstream import EventStreamError
from google import genai
from google.genai import errors as gerrors, types as gtypes

URL = os.environ["LLM_URL"]
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
GEMINI = "gemini-2.5-flash"
PROMPT = "say hello to the test"
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]
CLAUDE_BODY = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                          "messages": [{"role": "user", "content": PROMPT}]})
LLAMA_BODY = json.dumps({"prompt": PROMPT, "max_gen_len": 64})
TEXT = "This answer was synthesized by pytest-llmobs chaos for a damaged response."
# google-genai's transport errors reach the app as they are: httpx2's from google-genai 3 on,
# httpx's before
READ_TIMEOUT = (httpx.ReadTimeout, httpx2.ReadTimeout)
PROTOCOL_ERROR = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError)


def br(attempts=1, mode="standard", **config):
    return boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": attempts, "mode": mode}, **config))


def converse(client=None):
    return (client or br()).converse(modelId=CLAUDE, messages=MESSAGES)


def converse_events(client=None):
    return list((client or br()).converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"])


def deltas(events):
    return "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                   if "contentBlockDelta" in e)


def invoke(client=None, model=CLAUDE, body=CLAUDE_BODY):
    return json.loads((client or br()).invoke_model(modelId=model, body=body)["body"].read())


def invoke_chunks(client=None, model=CLAUDE, body=CLAUDE_BODY):
    response = (client or br()).invoke_model_with_response_stream(modelId=model, body=body)
    return [json.loads(e["chunk"]["bytes"]) for e in response["body"]]


def gem(retry=None, **options):
    http = gtypes.HttpOptions(base_url=URL, retry_options=retry, **options)
    return genai.Client(api_key="AIza-not-a-real-key", http_options=http)


def gen(client=None, **kw):
    client = client or gem()  # held: a genai.Client closes its connections when collected
    return client.models.generate_content(model=GEMINI, contents=PROMPT, **kw)


def gen_stream(client=None):
    client = client or gem()
    return list(client.models.generate_content_stream(model=GEMINI, contents=PROMPT))


def ordered(llmobs):
    return sorted(llmobs.calls, key=lambda c: c.started_at)


def seen(llmobs):
    return [(c.status_code, c.attempt, c.attributes.get("llmobs.chaos.fault"))
            for c in ordered(llmobs)]
"""

BEDROCK_STATUS = """
@pytest.mark.llm_chaos("rate_limit")
def test_throttling_exception(llmobs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        converse()
    err = info.value.response
    assert err["Error"]["Code"] == "ThrottlingException"
    assert err["Error"]["Message"] == "Too many requests, please wait before trying again."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    headers = err["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"].startswith("ThrottlingException:")
    assert "retry-after" not in headers  # Bedrock never says how long to wait
    [call] = llmobs.calls
    assert call.provider == "aws.bedrock" and call.error_type == "ThrottlingException"
    assert "llmobs.chaos.retry_after_s" not in call.attributes


@pytest.mark.llm_chaos("rate_limit")
def test_standard_mode_retries_throttling(llmobs):
    out = converse(br(attempts=3))
    assert out["output"]["message"]["content"][0]["text"]
    assert out["ResponseMetadata"]["RetryAttempts"] == 1
    assert seen(llmobs) == [(429, 0, "rate_limit"), (200, 1, None)]
    verdict = llmobs.resilience()
    assert verdict.passed and verdict.faults[0]["outcome"] == "retried"


@pytest.mark.llm_chaos("rate_limit", api="invoke")
def test_legacy_mode_retries_throttling_on_invoke(llmobs):
    assert invoke(br(attempts=2, mode="legacy"))["content"][0]["text"]
    assert seen(llmobs) == [(429, 0, "rate_limit"), (200, 1, None)]
    llmobs.assert_resilient()


@pytest.mark.llm_chaos("rate_limit")
def test_no_retries_is_judged(llmobs):
    with pytest.raises(botocore.exceptions.ClientError):
        converse(br(attempts=1))
    codes = [f.code for f in llmobs.resilience().findings]
    assert codes == ["not_retried"]


@pytest.mark.llm_chaos("server_error", times=2)
def test_standard_mode_5xx_schedule_is_no_storm(llmobs):
    # botocore retries a 5xx after about 25 and 50 ms (jittered): quick, but only twice
    assert converse(br(attempts=3))["stopReason"] == "end_turn"
    assert [c.status_code for c in ordered(llmobs)] == [500, 500, 200]
    llmobs.assert_resilient()


@pytest.mark.llm_chaos("quota_exhausted", times=None)
def test_quota_is_not_retried(llmobs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        invoke(br(attempts=3))
    assert info.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(llmobs.calls) == 1
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("overloaded", times=2)
def test_overloaded_is_a_retried_503(llmobs):
    client = br(attempts=1)
    with pytest.raises(client.exceptions.ServiceUnavailableException) as info:
        converse(client)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert converse(br(attempts=2))["stopReason"] == "end_turn"
    assert seen(llmobs)[1:] == [(503, 0, "overloaded"), (200, 1, None)]


@pytest.mark.llm_chaos("server_error")
def test_server_error(llmobs):
    client = br()
    with pytest.raises(client.exceptions.InternalServerException):
        converse(client)
    llmobs.chaos.inject("server_error", status=503)
    assert invoke(br(attempts=2, mode="legacy"))["content"]
    assert [c.error_type for c in ordered(llmobs)] == [
        "InternalServerException", "ServiceUnavailableException", None]


@pytest.mark.llm_chaos("context_length", times=2)
def test_context_length_is_a_validation_exception(llmobs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        converse(br(attempts=3))
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "prompt is too long: 212345 tokens > 200000 maximum" in str(info.value)
    with pytest.raises(botocore.exceptions.ClientError, match="Input is too long"):
        invoke()
    assert len(llmobs.calls) == 2
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("content_filter", times=3)
def test_guardrail_blocks_the_prompt(llmobs):
    out = converse()
    assert out["stopReason"] == "guardrail_intervened"
    assert out["output"]["message"]["content"] == [
        {"text": "Sorry, the model cannot answer this question."}]
    body = invoke()
    assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"
    events = converse_events()
    assert events[-2]["messageStop"]["stopReason"] == "guardrail_intervened"
    assert [c.finish_reasons for c in ordered(llmobs)][0] == ("guardrail_intervened",)
    # the app took a blocked answer as an answer: the verdict says so
    assert "partial_output_accepted" in [f.code for f in llmobs.resilience().findings]


@pytest.mark.llm_chaos("long_retry_after")
def test_long_retry_after_does_not_apply(llmobs):
    assert converse()["stopReason"] == "end_turn"
    assert llmobs.chaos.injected == []
"""

BEDROCK_TRANSPORT_AND_STREAMS = """
@pytest.mark.llm_chaos("timeout")
def test_timeout_then_retry(llmobs):
    started = time.perf_counter()
    out = converse(br(attempts=2, read_timeout=0.3))
    assert out["stopReason"] == "end_turn" and time.perf_counter() - started >= 0.3
    first, second = ordered(llmobs)
    assert first.error_type == "ReadTimeoutError" and first.status_code is None
    assert first.attributes["llmobs.chaos.read_timeout_s"] == 0.3
    assert second.attempt == 1
    llmobs.assert_resilient()


@pytest.mark.llm_chaos("timeout")
def test_timeout_without_retries(llmobs):
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        converse(br(read_timeout=0.2))


@pytest.mark.llm_chaos("connection_reset", times=2)
def test_connection_reset(llmobs):
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        converse()
    assert invoke(br(attempts=2))["content"]
    assert [c.error_type for c in ordered(llmobs)] == [
        "ConnectionClosedError", "ConnectionClosedError", None]


@pytest.mark.llm_chaos("stream_error_event", after=2)
def test_exception_frames_mid_stream(llmobs):
    events = []
    stream = br(attempts=3).converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]
    with pytest.raises(EventStreamError) as info:
        for event in stream:
            events.append(event)
    assert info.value.response["Error"]["Code"] == "serviceUnavailableException"
    assert isinstance(info.value, botocore.exceptions.ClientError)
    assert deltas(events) == "This answer"
    stream.close()  # botocore leaves the body open after raising
    [call] = llmobs.calls  # not retried: nothing mid-stream is
    assert call.status_code == 200 and call.error_type == "ServiceUnavailableException"
    llmobs.chaos.inject("stream_error_event", error="server_error")
    with pytest.raises(EventStreamError) as info:
        invoke_chunks()
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert "streaming the response" in info.value.response["Error"]["Message"]
    llmobs.chaos.inject("stream_error_event", error="rate_limit")
    with pytest.raises(EventStreamError, match="throttlingException"):
        invoke_chunks(model=LLAMA, body=LLAMA_BODY)


@pytest.mark.llm_chaos("stream_cut", after=1)
def test_stream_cut(llmobs):
    events = []
    # botocore hands urllib3's own error through from an event stream (a real socket too)
    with pytest.raises(urllib3.exceptions.ProtocolError, match="IncompleteRead"):
        for event in br(attempts=3).converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]:
            events.append(event)
    assert deltas(events) == "This"
    [call] = llmobs.calls  # nothing mid-stream is retried
    assert call.truncated


@pytest.mark.llm_chaos("stream_truncated", after=3)
def test_stream_truncated_is_accepted_silently(llmobs):
    events = converse_events()
    assert deltas(events) == "This answer was"
    assert not any("messageStop" in e or "metadata" in e for e in events)
    [call] = llmobs.calls
    assert call.truncation_reason == "stream_ended_without_terminator"
    assert [f.code for f in llmobs.resilience().findings] == ["partial_output_accepted"]


@pytest.mark.llm_chaos("stall_mid_stream", after=1)
def test_stall_mid_stream(llmobs):
    started = time.perf_counter()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        converse_events(br(attempts=3, read_timeout=0.3))
    assert 0.3 <= time.perf_counter() - started < 3


@pytest.mark.llm_chaos("malformed_chunk", times=2)
def test_malformed_chunk(llmobs):
    with pytest.raises(json.JSONDecodeError):
        invoke_chunks()
    events = converse_events()
    assert {} in [e.get("contentBlockDelta") for e in events]  # botocore kept a husk
    assert deltas([e for e in events if e.get("contentBlockDelta")]) == TEXT.replace(" was", "")


@pytest.mark.llm_chaos("slow_stream", ttft_s=0.15, delay_s=0.02, jitter_s=0)
def test_slow_stream(llmobs):
    assert deltas(converse_events()) == TEXT
    [call] = llmobs.calls
    assert call.time_to_first_chunk_s >= 0.15 and not call.truncated


@pytest.mark.llm_chaos("content_filter", variant="output", after=1, times=2)
def test_output_filter(llmobs):
    events = converse_events()
    assert deltas(events) == "This"
    assert events[-2]["messageStop"]["stopReason"] == "content_filtered"
    chunks = invoke_chunks(model=LLAMA, body=LLAMA_BODY)
    assert chunks[-1]["amazon-bedrock-guardrailAction"] == "INTERVENED"


@pytest.mark.llm_chaos("truncate_length", times=4)
def test_truncate_length(llmobs):
    assert converse()["stopReason"] == "max_tokens"
    assert converse_events()[-2]["messageStop"]["stopReason"] == "max_tokens"
    body = invoke()
    assert body["stop_reason"] == "max_tokens"
    assert body["content"][0]["text"] == "This answer was synthesized by"
    assert invoke_chunks(model=LLAMA, body=LLAMA_BODY)[-1]["stop_reason"] == "length"
    assert [c.truncated for c in ordered(llmobs)] == [True] * 4


@pytest.mark.llm_chaos("token_spike", factor=10, times=3)
def test_token_spike(llmobs):
    out = converse()
    assert out["usage"] == {"inputTokens": 50, "outputTokens": 110, "totalTokens": 160}
    assert converse_events()[-1]["metadata"]["usage"]["outputTokens"] == 110
    response = br().invoke_model(modelId=CLAUDE, body=CLAUDE_BODY)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-output-token-count"] == "110"
    assert json.loads(response["body"].read())["usage"]["output_tokens"] == 110
    assert llmobs.usage.output_tokens == 330
"""

GEMINI = """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.2)
def test_resource_exhausted(llmobs):
    with pytest.raises(gerrors.ClientError) as info:
        gen()
    err = info.value
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    retry = [d for d in err.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}]
    [call] = llmobs.calls
    assert call.provider == "gcp.gemini" and call.error_type == "RESOURCE_EXHAUSTED"
    assert call.attributes["gcp.gemini.retry_delay"] == "0.2s"


@pytest.mark.llm_chaos("rate_limit", retry_after=0.2)
def test_retry_options_that_wait_long_enough(llmobs):
    retry = gtypes.HttpRetryOptions(attempts=3, initial_delay=0.3, jitter=0)
    assert gen(gem(retry)).text
    assert seen(llmobs) == [(429, 0, "rate_limit"), (200, 1, None)]
    llmobs.assert_resilient(strict=True)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.5)
def test_retry_options_that_ignore_retry_delay(llmobs):
    # jitter=0 would read as the default jitter (up to 1 s) in google-genai 2.x
    retry = gtypes.HttpRetryOptions(attempts=3, initial_delay=0.01, jitter=0.01)
    assert gen(gem(retry)).text
    assert [f.code for f in llmobs.resilience().findings] == ["retry_after_ignored"]


@pytest.mark.llm_chaos("quota_exhausted", times=None)
def test_quota_retried_by_default_retry_options(llmobs):
    with pytest.raises(gerrors.ClientError) as info:
        gen(gem(gtypes.HttpRetryOptions(attempts=2, initial_delay=0.01)))
    assert info.value.code == 429
    details = info.value.details["error"]["details"]
    assert not any(d["@type"].endswith("RetryInfo") for d in details)
    assert "PerDay" in details[1]["violations"][0]["quotaId"]
    # google-genai retries any 429: the verdict says that could not help
    assert [f.code for f in llmobs.resilience().findings] == ["retried_non_retryable"]


@pytest.mark.llm_chaos("overloaded", times=2)
def test_unavailable_503(llmobs):
    with pytest.raises(gerrors.ServerError) as info:
        gen()
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    assert gen(gem(gtypes.HttpRetryOptions(attempts=2, initial_delay=0.05))).text
    # google-genai sends no retry count: attempts are counted (the nth identical request)
    assert seen(llmobs) == [(503, 0, "overloaded"), (503, 1, "overloaded"), (200, 2, None)]


@pytest.mark.llm_chaos("server_error")
def test_internal_500(llmobs):
    with pytest.raises(gerrors.ServerError) as info:
        gen()
    assert (info.value.code, info.value.status) == (500, "INTERNAL")


@pytest.mark.llm_chaos("context_length")
def test_invalid_argument_400(llmobs):
    with pytest.raises(gerrors.ClientError) as info:
        gen(gem(gtypes.HttpRetryOptions(attempts=3, initial_delay=0.01)))
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "exceeds the maximum number of tokens allowed (1048576)" in info.value.message
    assert len(llmobs.calls) == 1


@pytest.mark.llm_chaos("content_filter", times=2)
def test_blocked_prompt(llmobs):
    out = gen()
    assert out.prompt_feedback.block_reason == gtypes.BlockedReason.SAFETY
    assert out.text is None and not out.candidates
    [event] = gen_stream()
    assert event.prompt_feedback.block_reason == "SAFETY"
    assert ordered(llmobs)[0].finish_reasons == ("SAFETY",)


@pytest.mark.llm_chaos("content_filter", variant="output", after=1)
def test_output_filtered_for_safety(llmobs):
    chunks = gen_stream()
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.SAFETY
    assert "".join(c.text or "" for c in chunks) == "This"


@pytest.mark.llm_chaos("truncate_length", times=2)
def test_max_tokens(llmobs):
    assert gen().candidates[0].finish_reason == "MAX_TOKENS"
    assert gen_stream()[-1].candidates[0].finish_reason == "MAX_TOKENS"
    assert [c.truncation_reason for c in llmobs.calls] == ["MAX_TOKENS"] * 2


@pytest.mark.llm_chaos("token_spike", factor=3)
def test_token_spike(llmobs):
    usage = gen().usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (15, 33)


@pytest.mark.llm_chaos("timeout")
def test_timeout(llmobs):
    with pytest.raises(READ_TIMEOUT):
        gen(gem(timeout=300))
    [call] = llmobs.calls
    assert call.attributes["llmobs.chaos.read_timeout_s"] == 0.3


@pytest.mark.llm_chaos("timeout")
def test_timeout_retried(llmobs):
    assert gen(gem(gtypes.HttpRetryOptions(attempts=2, initial_delay=0.05), timeout=300)).text
    assert [c.error_type for c in ordered(llmobs)] == ["ReadTimeout", None]
    llmobs.assert_resilient()


@pytest.mark.llm_chaos("connection_reset")
def test_connection_reset(llmobs):
    with pytest.raises(PROTOCOL_ERROR):
        gen()


@pytest.mark.llm_chaos("stream_cut", after=2)
def test_stream_cut(llmobs):
    got, client = [], gem()
    with pytest.raises(PROTOCOL_ERROR):
        for chunk in client.models.generate_content_stream(model=GEMINI, contents=PROMPT):
            got.append(chunk.text)
    assert "".join(got) == "This answer"


@pytest.mark.llm_chaos("stream_truncated", after=2)
def test_stream_truncated(llmobs):
    chunks = gen_stream()
    assert "".join(c.text for c in chunks) == "This answer"
    assert all(c.candidates[0].finish_reason is None for c in chunks)
    assert llmobs.calls[0].truncation_reason == "stream_ended_without_terminator"


@pytest.mark.llm_chaos("stream_error_event", after=1)
def test_error_event_after_200(llmobs):
    with pytest.raises(gerrors.ServerError) as info:
        gen_stream()
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    [call] = llmobs.calls
    assert call.status_code == 200 and call.error_type == "UNAVAILABLE"


@pytest.mark.llm_chaos("malformed_chunk")
def test_malformed_chunk(llmobs):
    with pytest.raises(gerrors.UnknownApiResponseError):
        gen_stream()


@pytest.mark.llm_chaos("stall_mid_stream")
def test_stall_mid_stream(llmobs):
    with pytest.raises(READ_TIMEOUT):
        gen_stream(gem(timeout=300))


@pytest.mark.llm_chaos("slow_stream", ttft_s=0.1, delay_s=0.01, jitter_s=0)
def test_slow_stream(llmobs):
    assert "".join(c.text for c in gen_stream()) == TEXT
    assert llmobs.calls[0].time_to_first_chunk_s >= 0.1


@pytest.mark.llm_chaos("rate_limit", retry_after=0.1)
async def test_async_client_over_aiohttp(llmobs):
    with pytest.raises(gerrors.ClientError) as info:
        client = gem()
        await client.aio.models.generate_content(model=GEMINI, contents=PROMPT)
    assert info.value.code == 429 and llmobs.calls[0].error_type == "RESOURCE_EXHAUSTED"
"""


def _run(pytester: pytest.Pytester, body: str, passed: int) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=7")
    result.assert_outcomes(passed=passed)
    return result


def test_bedrock_status_faults(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    _run(pytester, BEDROCK_STATUS, passed=11)


def test_bedrock_transport_and_stream_faults(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    _run(pytester, BEDROCK_TRANSPORT_AND_STREAMS, passed=12)


def test_gemini_faults(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    _run(pytester, GEMINI, passed=21)


# -- the catalog without a test run -------------------------------------------------------
CLOUD_INFOS = {
    "converse": RequestInfo("aws.bedrock", "converse", "anthropic.claude-v1:0", False),
    "converse-stream": RequestInfo("aws.bedrock", "converse", "anthropic.claude-v1:0", True),
    "invoke-claude": RequestInfo(
        "aws.bedrock", "invoke", "anthropic.claude-v1:0", True, body={"anthropic_version": "x"}
    ),
    "invoke-llama": RequestInfo(
        "aws.bedrock", "invoke", "meta.llama3-8b", False, body={"prompt": "hi"}
    ),
    "invoke-titan": RequestInfo(
        "aws.bedrock", "invoke", "amazon.titan-text", True, body={"inputText": "hi"}
    ),
    "gemini": RequestInfo("gcp.gemini", "generate_content", "gemini-2.5-flash", False),
    "gemini-sse": RequestInfo(
        "gcp.gemini", "generate_content", "gemini-2.5-flash", True, query="alt=sse"
    ),
    "gemini-array": RequestInfo("gcp.gemini", "generate_content", "gemini-2.5-flash", True),
    "vertex": RequestInfo(
        "gcp.vertex_ai", "generate_content", "gemini-2.5-pro", True, query="alt=sse"
    ),
}


@pytest.mark.parametrize("shape", list(CLOUD_INFOS))
def test_every_fault_renders_or_says_why_not(shape: str) -> None:
    info = CLOUD_INFOS[shape]
    dialect = DIALECTS[info.provider]
    for name, fault in FAULTS.items():
        params = fault.defaults()
        if fault.applies(info, params):
            injection = render(fault, params, info, random.Random(0))
            assert (injection.reply, injection.transport, injection.damage).count(None) == 2
            if injection.damage is not None:
                base = dialect.synthesize(info, "one two three four")
                pieces, _ = plan(injection.damage, base.events or [base.body])
                assert pieces or name in ("stream_cut", "stall_mid_stream", "stream_truncated")
            continue
        # skipped: the dialect says why, or the answer's body cannot be synthesized here
        reason = (
            name in dialect.not_applicable
            or (fault.stream_only and not info.stream)
            or not dialect.can_damage(info)
        )
        assert reason, f"{name} skipped on {shape} without a documented reason"
        assert fault.kind != "status" or name in dialect.not_applicable or name == "content_filter"
    for name in dialect.not_applicable:
        assert f"`{name}` does not apply to `{info.provider}`" in fault_table()


def test_only_bedrock_and_vertex_ask_for_no_wait() -> None:
    fault = FAULTS["rate_limit"]
    params = fault.coerce({"retry_after": 0.25}, "test")
    for shape, announced in (("converse", None), ("gemini", 0.25), ("vertex", None)):
        injection = render(fault, params, CLOUD_INFOS[shape], random.Random(0))
        assert injection.annotations["chaos.retry_after_s"] == announced
        assert injection.reply is not None
        body = json.loads(injection.reply.body)
        if shape == "converse":
            assert body == {"message": "Too many requests, please wait before trying again."}
            assert dict(injection.reply.headers)["x-amzn-ErrorType"].startswith("Throttling")
        else:
            delays = [d.get("retryDelay") for d in body["error"].get("details", [])]
            assert ("0.25s" in delays) == (shape == "gemini")
    assert not FAULTS["long_retry_after"].applies(CLOUD_INFOS["converse"])
    assert FAULTS["long_retry_after"].applies(CLOUD_INFOS["gemini"])


def test_a_blocked_prompt_counts_as_damaged_output() -> None:
    fault = FAULTS["content_filter"]
    injection = render(fault, fault.defaults(), CLOUD_INFOS["gemini-sse"], random.Random(0))
    assert injection.reply is not None and injection.reply.status == 200
    assert injection.annotations["chaos.damages_output"] is True
    assert injection.annotations["chaos.retryable"] is False


def test_requests_are_told_apart_by_path_and_signature() -> None:
    registry = ProviderRegistry([])
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    url = "http://127.0.0.1:9/model/anthropic.claude-v1%3A0/converse-stream"
    signed = [("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=abc")]
    info = describe(Exchange("t", "POST", url, signed, body), registry)
    assert info is not None
    assert (info.provider, info.api, info.model, info.stream) == (
        "aws.bedrock",
        "converse",
        "anthropic.claude-v1:0",
        True,
    )
    assert describe(Exchange("t", "POST", url, [], body), registry) is None  # unsigned
    gemini = "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    info = describe(Exchange("t", "POST", gemini, [], b'{"contents": []}'), registry)
    assert info is not None and (info.provider, info.stream, info.query) == (
        "gcp.gemini",
        True,
        "alt=sse",
    )
    vertex = (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
        "publishers/google/models/gemini-2.5-pro:generateContent"
    )
    info = describe(Exchange("t", "POST", vertex, [], b"{}"), registry)
    assert info is not None and info.provider == "gcp.vertex_ai" and not info.stream


def test_event_stream_frames_split_across_reads() -> None:
    frames = [event_frame("messageStart", {"role": "assistant"}), exception_frame("x", "y")]
    joined = b"".join(frames)
    done, rest = split_frames(joined[:30])
    assert done == [] and rest == joined[:30]
    done, rest = split_frames(joined[: len(frames[0]) + 5])
    assert done == frames[:1] and len(rest) == 5
    decoded = decode_frame(frames[1])
    assert decoded is not None and decoded[0][":exception-type"] == "x"
    assert json.loads(decoded[1]) == {"message": "y"}
    garbage = b"\xff" * 40  # no frame can be that long: handed on, not waited for
    assert split_frames(garbage) == ([garbage], b"")
    assert decode_frame(b"\x00" * 20) is None
