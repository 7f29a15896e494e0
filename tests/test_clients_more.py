"""boto3 (Bedrock), google-genai (Gemini), ollama, aiohttp and LangChain against the local
provider server: captured as LLMCalls and spans, streams passed through unbuffered, and
canned answers (what replay and chaos hand the transports) served through the real SDKs."""

from __future__ import annotations

import gzip
import json
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import botocore.exceptions
import ollama
import pytest
from botocore.config import Config
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from pytest_llmobs.calls import LLMCall
from pytest_llmobs.fixture import LLMObs
from pytest_llmobs.intercept import CannedResponse, Exchange, Interceptor
from pytest_llmobs.plugin import CAPTURE
from pytest_llmobs.testing import ProviderServer, Reply, error_reply
from pytest_llmobs.testing.eventstream import event_frame, exception_frame

PROMPT = "say hello to the test"  # 5 words
CONVERSE_MESSAGES: Any = [{"role": "user", "content": [{"text": PROMPT}]}]
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": PROMPT}],
}
OLLAMA_MESSAGES = [{"role": "user", "content": PROMPT}]
EVENTSTREAM = "application/vnd.amazon.eventstream"
# google-genai subclasses aiohttp.ClientSession, which aiohttp warns about: not ours to fix.
GENAI_SUBCLASS_WARNING = "Inheritance class AiohttpClientSession"
SEMANTIC = ("provider", "operation", "request_model", "response_model", "stream", "usage")
SEMANTIC += ("finish_reasons", "truncated", "truncation_reason", "output_text", "error_type")


def semantics(call: LLMCall) -> tuple[Any, ...]:
    return tuple(getattr(call, name) for name in SEMANTIC)


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def server(provider: ProviderServer) -> ProviderServer:
    provider.configure(reply="one two three four")
    return provider


@pytest.fixture
def interceptor(pytestconfig: pytest.Config) -> Iterator[Interceptor]:
    """This session's interceptor; responders and listeners added by a test are removed."""
    intercept = pytestconfig.stash[CAPTURE].interceptor
    responders, listeners = list(intercept.responders), list(intercept.listeners)
    yield intercept
    intercept.responders[:] = responders
    intercept.listeners[:] = listeners


def bedrock(server: ProviderServer, headers: dict[str, str] | None = None, **config: Any) -> Any:
    """A bedrock-runtime client on the local server, fake credentials, no retries by default."""
    config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN",
        config=Config(**config),
    )
    if headers:

        def add_headers(request: Any, **_: Any) -> None:
            for name, value in headers.items():
                request.headers[name] = value

        client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    return client


def gemini(server: ProviderServer, headers: dict[str, str] | None = None) -> genai.Client:
    options = genai_types.HttpOptions(base_url=server.url, headers=headers)
    return genai.Client(api_key="AIza-not-a-real-key", http_options=options)


def canned_from(recorded: Exchange, pace: float = 0.0, **changes: Any) -> CannedResponse:
    """What a cassette replays: the recorded status, headers and pieces with their offsets."""
    canned = CannedResponse(
        status=recorded.status_code,
        headers=list(recorded.response_headers),
        chunks=list(zip(recorded.chunk_offsets, recorded.chunks, strict=True)),
        reason=recorded.reason,
        headers_offset=recorded.headers_offset or 0.0,
        pace=pace,
        body_decoded=recorded.body_decoded,
        duration_s=recorded.duration_s,
    )
    for name, value in changes.items():
        setattr(canned, name, value)
    return canned


class Tape:
    """Records exchanges live, then answers the same requests from them, in order."""

    def __init__(self, interceptor: Interceptor) -> None:
        self.interceptor = interceptor
        self.exchanges: list[Exchange] = []
        self.served = 0
        interceptor.listeners.append(self.exchanges.append)

    def replay(self, pace: float = 0.0) -> None:
        self.interceptor.listeners.remove(self.exchanges.append)
        queue = deque(self.exchanges)

        def respond(exchange: Exchange) -> CannedResponse | None:
            if not queue:
                return None
            self.served += 1
            return canned_from(queue.popleft(), pace)

        self.interceptor.responders.append(respond)


def answer_with(interceptor: Interceptor, *canned: CannedResponse) -> None:
    queue = deque(canned)
    interceptor.responders.append(lambda exchange: queue.popleft() if queue else None)


# -- Bedrock ----------------------------------------------------------------------------
def test_bedrock_converse_and_stream(server: ProviderServer, llmobs: LLMObs) -> None:
    client = bedrock(server)
    out = client.converse(
        modelId="anthropic.claude-test-v1:0",
        messages=CONVERSE_MESSAGES,
        inferenceConfig={"maxTokens": 100, "temperature": 0.3},
    )
    assert out["output"]["message"]["content"] == [{"text": "one two three four"}]
    server.configure(ttft_s=0.15, chunk_delay_s=0.05)
    t0 = time.perf_counter()
    response = client.converse_stream(modelId="amazon.nova-test-v1:0", messages=CONVERSE_MESSAGES)
    first: float | None = None
    kinds = []
    for event in response["stream"]:
        kinds += list(event)
        if "contentBlockDelta" in event and first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert kinds[0] == "messageStart" and kinds[-1] == "metadata"
    assert first is not None and 0.12 < first < total - 0.1  # frames were not held back
    plain, streamed = llmobs.calls
    assert (plain.provider, plain.operation, plain.request_model) == (
        "aws.bedrock",
        "chat",
        "anthropic.claude-test-v1:0",
    )
    assert plain.max_tokens == 100 and plain.temperature == 0.3 and not plain.stream
    assert plain.usage.input_tokens == 5 and plain.usage.output_tokens == 4
    assert plain.usage.total_tokens == 9 and plain.finish_reasons == ("end_turn",)
    assert plain.output_text == "one two three four" and plain.request_id
    assert plain.attributes["aws.bedrock.latency_ms"] == 120
    assert streamed.stream and streamed.output_text == "one two three four"
    assert streamed.usage.output_tokens == 4 and streamed.finish_reasons == ("end_turn",)
    assert streamed.time_to_first_chunk_s is not None
    assert 0.12 < streamed.time_to_first_chunk_s < 0.4
    assert len(streamed.chunk_offsets_s) == 4 and not streamed.truncated
    [span] = llmobs.find_spans("chat amazon.nova-test-v1:0")
    attrs = span.attributes or {}
    assert attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["gen_ai.usage.input_tokens"] == 5 and attrs["gen_ai.request.stream"] is True


def test_bedrock_invoke_model_families(server: ProviderServer, llmobs: LLMObs) -> None:
    client = bedrock(server)
    body = json.loads(
        client.invoke_model(modelId="anthropic.claude-test", body=json.dumps(CLAUDE_BODY))[
            "body"
        ].read()
    )
    assert body["content"][0]["text"] == "one two three four"
    stream = client.invoke_model_with_response_stream(
        modelId="anthropic.claude-test", body=json.dumps(CLAUDE_BODY)
    )
    assert len(list(stream["body"])) == 10
    llama = {"prompt": "hi there", "max_gen_len": 2}
    client.invoke_model(modelId="meta.llama-test", body=json.dumps(llama))["body"].read()
    for _ in client.invoke_model_with_response_stream(
        modelId="meta.llama-test", body=json.dumps({**llama, "max_gen_len": 50})
    )["body"]:
        pass
    claude, claude_stream, llama_plain, llama_stream = llmobs.calls
    for call in (claude, claude_stream):
        assert call.operation == "chat" and call.finish_reasons == ("end_turn",)
        assert call.usage.input_tokens == 5 and call.usage.output_tokens == 4
        assert call.output_text == "one two three four" and call.response_id
    assert claude_stream.stream and claude_stream.attributes[
        "aws.bedrock.invocation_latency_ms"
    ] == (120)
    assert llama_plain.operation == "text_completion" and llama_plain.truncated
    assert llama_plain.truncation_reason == "length" and llama_plain.max_tokens == 2
    assert (llama_plain.usage.input_tokens, llama_plain.usage.output_tokens) == (2, 2)
    assert llama_stream.finish_reasons == ("stop",) and not llama_stream.truncated
    assert llama_stream.output_text == "one two three four"
    assert llama_stream.usage.output_tokens == 4


def test_bedrock_truncation(server: ProviderServer, llmobs: LLMObs) -> None:
    out = bedrock(server).converse(
        modelId="m", messages=CONVERSE_MESSAGES, inferenceConfig={"maxTokens": 2}
    )
    assert out["stopReason"] == "max_tokens"
    # a stream that simply stops: botocore accepts it silently, we do not
    silent = bedrock(server, {"x-fake-stream-truncate-after": "2"})
    events = list(silent.converse_stream(modelId="m", messages=CONVERSE_MESSAGES)["stream"])
    assert "messageStop" not in [kind for event in events for kind in event]
    filtered = bedrock(server, {"x-fake-finish-reason": "content_filtered"})
    filtered.converse(modelId="m", messages=CONVERSE_MESSAGES)
    cut, silent_call, filtered_call = llmobs.calls
    assert cut.truncated and cut.truncation_reason == "max_tokens"
    assert cut.usage.output_tokens == 2 and cut.output_text == "one two"
    assert silent_call.truncated
    assert silent_call.truncation_reason == "stream_ended_without_terminator"
    assert filtered_call.finish_reasons == ("content_filtered",) and not filtered_call.truncated


def test_bedrock_errors_retries_and_stream_exceptions(
    server: ProviderServer, llmobs: LLMObs
) -> None:
    throttled = error_reply("bedrock", 429)
    server.enqueue(throttled)
    bedrock(server, retries={"max_attempts": 2, "mode": "standard"}).converse(
        modelId="m", messages=CONVERSE_MESSAGES
    )
    bedrock(server).converse(modelId="m", messages=CONVERSE_MESSAGES)  # same body, new call
    server.enqueue(error_reply("bedrock", 400, "messages: field required"))
    with pytest.raises(botocore.exceptions.ClientError, match="ValidationException"):
        bedrock(server).converse(modelId="m", messages=CONVERSE_MESSAGES)
    frames = [event_frame("messageStart", {"role": "assistant"})]
    frames.append(
        event_frame("contentBlockDelta", {"delta": {"text": "Hi"}, "contentBlockIndex": 0})
    )
    frames.append(exception_frame("throttlingException", "Too many tokens, slow down."))
    server.enqueue(Reply(headers={"Content-Type": EVENTSTREAM}, events=[(0, f) for f in frames]))
    response = bedrock(server).converse_stream(modelId="m", messages=CONVERSE_MESSAGES)
    with pytest.raises(botocore.exceptions.EventStreamError, match="throttlingException"):
        list(response["stream"])
    response["stream"].close()  # botocore raised at the exception frame, before the body's end
    first, retried, again, invalid, in_stream = llmobs.calls
    assert again.attempt == 0  # botocore numbers its attempts: not the nth identical request
    assert (first.attempt, first.status_code, first.error_type) == (0, 429, "ThrottlingException")
    assert first.error == "Too many requests, please wait before trying again."
    assert (retried.attempt, retried.status_code, retried.error) == (1, 200, None)
    assert invalid.error_type == "ValidationException"
    assert invalid.error == "messages: field required"
    assert in_stream.error_type == "ThrottlingException" and in_stream.truncated
    assert in_stream.output_text == "Hi"
    assert in_stream.truncation_reason == "stream_error: ThrottlingException"


def test_bedrock_replay_from_recording_and_canned_faults(
    server: ProviderServer, llmobs: LLMObs, interceptor: Interceptor
) -> None:
    tape = Tape(interceptor)
    client = bedrock(server)
    client.converse(modelId="m", messages=CONVERSE_MESSAGES)
    list(client.converse_stream(modelId="m", messages=CONVERSE_MESSAGES)["stream"])
    client.invoke_model(modelId="anthropic.claude-test", body=json.dumps(CLAUDE_BODY))[
        "body"
    ].read()
    live = llmobs.calls
    tape.replay()
    received = len(server.requests)
    replayed_out = client.converse(modelId="m", messages=CONVERSE_MESSAGES)
    kinds = [
        k
        for e in client.converse_stream(modelId="m", messages=CONVERSE_MESSAGES)["stream"]
        for k in e
    ]
    client.invoke_model(modelId="anthropic.claude-test", body=json.dumps(CLAUDE_BODY))[
        "body"
    ].read()
    assert len(server.requests) == received and tape.served == 3  # nothing reached the server
    assert replayed_out["output"]["message"]["content"] == [{"text": "one two three four"}]
    assert kinds[-1] == "metadata"
    replayed = llmobs.calls[3:]
    assert [c.source for c in replayed] == ["replay"] * 3
    assert [semantics(c) for c in replayed] == [semantics(c) for c in live]
    assert replayed[1].chunk_offsets_s and len(replayed[1].chunk_offsets_s) == 4
    # chaos: the stream breaks after two frames; a throttle before any byte is retried
    recorded = tape.exchanges[1]
    first_two = list(zip(recorded.chunk_offsets[:2], recorded.chunks[:2], strict=True))
    answer_with(interceptor, canned_from(recorded, chunks=first_two, fail="reset", source="chaos"))
    with pytest.raises(Exception, match="Connection broken"):
        list(client.converse_stream(modelId="m", messages=CONVERSE_MESSAGES)["stream"])
    broken = llmobs.calls[-1]
    assert broken.source == "chaos" and broken.truncated and broken.error_type == "ProtocolError"


# -- Gemini -----------------------------------------------------------------------------
def test_gemini_generate_and_stream(server: ProviderServer, llmobs: LLMObs) -> None:
    client = gemini(server)
    out = client.models.generate_content(model="gemini-test", contents=PROMPT)
    assert out.text == "one two three four"
    thinking = genai_types.ThinkingConfig(thinking_budget=64, include_thoughts=True)
    config = genai_types.GenerateContentConfig(temperature=0.5, thinking_config=thinking)
    client.models.generate_content(model="gemini-test", contents=PROMPT, config=config)
    server.configure(ttft_s=0.15, chunk_delay_s=0.05)
    t0 = time.perf_counter()
    first: float | None = None
    pieces = []
    for chunk in client.models.generate_content_stream(model="gemini-test", contents=PROMPT):
        pieces.append(chunk.text or "")
        first = first or time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert "".join(pieces) == "one two three four"
    assert first is not None and first < total - 0.1
    plain, thought, streamed = llmobs.calls
    assert (plain.provider, plain.operation, plain.request_model) == (
        "gcp.gemini",
        "generate_content",
        "gemini-test",
    )
    assert plain.usage.input_tokens == 5 and plain.usage.output_tokens == 4
    assert plain.usage.total_tokens == 9 and plain.finish_reasons == ("STOP",)
    assert plain.response_model == "gemini-test" and plain.response_id
    # thoughts are output tokens too (billed as such); reasoning_tokens says how many
    assert thought.usage.output_tokens == 7 and thought.usage.reasoning_tokens == 3
    assert thought.usage.total_tokens == 12 and thought.output_text == "one two three four"
    assert thought.temperature == 0.5
    assert streamed.stream and streamed.usage.output_tokens == 4
    assert streamed.finish_reasons == ("STOP",) and streamed.output_text == "one two three four"
    assert streamed.time_to_first_chunk_s is not None and streamed.time_to_first_chunk_s > 0.12
    assert llmobs.find_spans("generate_content gemini-test")


def test_gemini_truncation_safety_and_errors(server: ProviderServer, llmobs: LLMObs) -> None:
    client = gemini(server)
    config = genai_types.GenerateContentConfig(max_output_tokens=2)
    out = client.models.generate_content(model="gemini-test", contents=PROMPT, config=config)
    assert out.candidates and out.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    blocked = gemini(server, {"x-fake-finish-reason": "SAFETY"})
    blocked.models.generate_content(model="gemini-test", contents=PROMPT)
    json_config = genai_types.GenerateContentConfig(response_mime_type="application/json")
    client.models.generate_content(model="gemini-test", contents=PROMPT, config=json_config)
    server.enqueue(error_reply("gemini", 429, retry_after=7))
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-test", contents=PROMPT)
    assert info.value.code == 429
    cut, safety, not_json, limited = llmobs.calls
    assert cut.truncated and cut.truncation_reason == "MAX_TOKENS" and cut.max_tokens == 2
    assert safety.finish_reasons == ("SAFETY",) and not safety.truncated
    assert not_json.truncated and not_json.truncation_reason == "invalid_json"
    assert limited.error_type == "RESOURCE_EXHAUSTED" and limited.status_code == 429
    assert limited.attributes["gcp.gemini.retry_delay"] == "7s"


@pytest.mark.filterwarnings(f"ignore:{GENAI_SUBCLASS_WARNING}:DeprecationWarning")
async def test_gemini_async_goes_through_aiohttp(server: ProviderServer, llmobs: LLMObs) -> None:
    client = gemini(server)
    out = await client.aio.models.generate_content(model="gemini-test", contents=PROMPT)
    assert out.text == "one two three four"
    server.configure(ttft_s=0.15, chunk_delay_s=0.05)
    t0 = time.perf_counter()
    first: float | None = None
    stream = await client.aio.models.generate_content_stream(model="gemini-test", contents=PROMPT)
    async for _ in stream:
        first = first or time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert first is not None and first < total - 0.1
    plain, streamed = llmobs.calls
    assert plain.usage.output_tokens == 4 and plain.finish_reasons == ("STOP",)
    assert streamed.stream and streamed.output_text == "one two three four"
    assert streamed.time_to_first_chunk_s is not None
    assert 0.12 < streamed.time_to_first_chunk_s < first + 0.05
    assert len(streamed.chunk_offsets_s) == 4


def test_gemini_api_key_never_in_url(server: ProviderServer, llmobs: LLMObs) -> None:
    import httpx

    httpx.post(
        server.url + "/v1beta/models/gemini-test:generateContent?key=AIzaSECRET",
        json={"contents": [{"parts": [{"text": PROMPT}]}]},
    )
    [call] = llmobs.calls
    assert "AIzaSECRET" not in call.url and "key=<redacted>" in call.url
    assert call.usage.input_tokens == 5


@pytest.mark.filterwarnings(f"ignore:{GENAI_SUBCLASS_WARNING}:DeprecationWarning")
async def test_gemini_and_ollama_replay_from_recording(
    server: ProviderServer, llmobs: LLMObs, interceptor: Interceptor
) -> None:
    client, local = gemini(server), ollama.AsyncClient(host=server.url)
    cut = genai_types.GenerateContentConfig(max_output_tokens=2)

    async def run_all() -> list[str]:
        texts = [client.models.generate_content(model="g", contents=PROMPT).text or ""]
        stream = client.models.generate_content_stream(model="g", contents=PROMPT, config=cut)
        texts.append("".join(chunk.text or "" for chunk in stream))
        stream_aio = await client.aio.models.generate_content_stream(model="g", contents=PROMPT)
        texts.append("".join([chunk.text or "" async for chunk in stream_aio]))
        parts = await local.chat(model="llama-test", messages=OLLAMA_MESSAGES, stream=True)
        texts.append("".join([part.message.content or "" async for part in parts]))
        return texts

    tape = Tape(interceptor)
    live_texts = await run_all()
    live = llmobs.calls
    tape.replay(pace=1.0)
    assert await run_all() == live_texts
    assert tape.served == 4 and len(server.requests) == 4
    replayed = llmobs.calls[4:]
    assert [semantics(c) for c in replayed] == [semantics(c) for c in live]
    assert [c.source for c in replayed] == ["replay"] * 4
    assert replayed[1].truncation_reason == "MAX_TOKENS"
    # paced replay keeps the recorded chunking: one offset per recorded output chunk
    assert [len(c.chunk_offsets_s) for c in replayed] == [len(c.chunk_offsets_s) for c in live]


# -- Ollama -----------------------------------------------------------------------------
def test_ollama_chat_generate_and_streams(server: ProviderServer, llmobs: LLMObs) -> None:
    client = ollama.Client(host=server.url)
    out = client.chat(model="llama-test", messages=OLLAMA_MESSAGES, stream=False)
    assert out.message.content == "one two three four" and out.done_reason == "stop"
    pieces = [
        part.message.content
        for part in client.chat(model="llama-test", messages=OLLAMA_MESSAGES, stream=True)
    ]
    assert "".join(p or "" for p in pieces) == "one two three four"
    client.generate(model="llama-test", prompt="hi there", options={"num_predict": 2})
    server.enqueue(error_reply("ollama", 404, 'model "nope" not found, try pulling it first'))
    with pytest.raises(ollama.ResponseError):
        client.chat(model="nope", messages=OLLAMA_MESSAGES)
    plain, streamed, generated, missing = llmobs.calls
    assert (plain.provider, plain.operation, plain.stream) == ("ollama", "chat", False)
    assert plain.usage.input_tokens == 5 and plain.usage.output_tokens == 4
    assert plain.finish_reasons == ("stop",) and plain.response_model == "llama-test"
    assert plain.attributes["ollama.eval_duration_ns"] == 80_000_000
    assert plain.attributes["ollama.load_duration_ns"] == 5_000_000
    assert streamed.stream and streamed.output_text == "one two three four"
    assert len(streamed.chunk_offsets_s) == 4 and not streamed.truncated
    assert generated.operation == "text_completion" and generated.truncated
    assert generated.truncation_reason == "length" and generated.max_tokens == 2
    assert (
        missing.status_code == 404
        and missing.error == 'model "nope" not found, try pulling it first'
    )


def test_ollama_stream_cut_is_truncation(server: ProviderServer, llmobs: LLMObs) -> None:
    client = ollama.Client(host=server.url, headers={"x-fake-stream-truncate-after": "2"})
    list(client.chat(model="llama-test", messages=OLLAMA_MESSAGES, stream=True))
    [call] = llmobs.calls
    assert call.truncated and call.truncation_reason == "stream_ended_without_terminator"
    assert call.output_text == "one two" and call.usage.output_tokens is None


# -- aiohttp ----------------------------------------------------------------------------
async def test_aiohttp_stream_timing_and_gzip(server: ProviderServer, llmobs: LLMObs) -> None:
    server.configure(ttft_s=0.15, chunk_delay_s=0.05)
    body = {"model": "gpt-4o", "messages": OLLAMA_MESSAGES, "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + "/v1/chat/completions", json=body) as response,
    ):
        async for _ in response.content.iter_any():
            first = first or time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert first is not None and first < total - 0.1
    answer = {"model": "llama-test", "message": {"role": "assistant", "content": "zipped"}}
    answer |= {"done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 1}
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    server.enqueue(Reply(headers=headers, body=gzip.compress(json.dumps(answer).encode())))
    async with aiohttp.ClientSession() as session:
        chat = {"model": "llama-test", "messages": OLLAMA_MESSAGES, "stream": False}
        async with session.post(server.url + "/api/chat", json=chat) as response:
            assert (await response.json())["message"]["content"] == "zipped"
    streamed, zipped = llmobs.calls
    assert (
        streamed.provider == "openai"
        and streamed.stream
        and streamed.output_text == "one two three four"
    )
    assert streamed.time_to_first_chunk_s is not None and streamed.time_to_first_chunk_s > 0.12
    assert streamed.duration_s is not None and streamed.duration_s > 0.25
    assert zipped.output_text == "zipped" and zipped.usage.output_tokens == 1


async def test_aiohttp_closed_early_and_empty_body(server: ProviderServer, llmobs: LLMObs) -> None:
    server.configure(chunk_delay_s=0.05)
    body = {"model": "llama-test", "messages": OLLAMA_MESSAGES}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.url + "/api/chat", json=body) as response:
            await response.content.readline()  # one line, then leave
        async with session.head(server.url + "/api/chat") as response:
            assert response.status >= 400
    [call] = llmobs.calls
    assert call.truncated and call.truncation_reason == "stream_closed_by_client"


async def test_aiohttp_canned_answers(
    server: ProviderServer, llmobs: LLMObs, interceptor: Interceptor
) -> None:
    ndjson = [b'{"model":"m","message":{"role":"assistant","content":"a"},"done":false}\n']
    ndjson.append(b'{"model":"m","message":{"role":"assistant","content":"b"},"done":true,')
    ndjson.append(b'"done_reason":"stop","prompt_eval_count":5,"eval_count":2}\n')
    headers = [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")]
    pieces = [(0.1, ndjson[0]), (0.2, ndjson[1]), (0.25, ndjson[2])]
    answer_with(
        interceptor,
        CannedResponse(status=200, headers=headers, chunks=pieces, pace=1.0),
        CannedResponse(
            status=200, headers=headers, chunks=pieces[:1], fail="reset", source="chaos"
        ),
        CannedResponse(status=None, fail="connect", source="chaos"),
        CannedResponse(
            status=200,
            headers=headers[:1],
            chunks=pieces[:1],
            fail="timeout",
            fail_offset=0.05,
            source="chaos",
        ),
    )
    body = {"model": "m", "messages": OLLAMA_MESSAGES}
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.post(server.url + "/api/chat", json=body) as response:
            lines = [(line, time.perf_counter() - t0) async for line in response.content]
        assert [json.loads(line)["done"] for line, _ in lines] == [False, True]
        assert 0.08 < lines[0][1] < 0.18 and lines[1][1] > 0.22  # served on the recorded schedule
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(server.url + "/api/chat", json=body) as response:
                await response.read()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.post(server.url + "/api/chat", json=body)
        timeout = aiohttp.ClientTimeout(sock_read=5)
        with pytest.raises(aiohttp.ServerTimeoutError):
            async with session.post(
                server.url + "/api/chat", json=body, timeout=timeout
            ) as response:
                await response.read()
    assert server.requests == []  # every answer was canned
    replayed, reset, refused, timed_out = llmobs.calls
    assert replayed.source == "replay" and replayed.output_text == "ab"
    assert replayed.usage.output_tokens == 2 and not replayed.truncated
    assert replayed.time_to_first_chunk_s is not None and replayed.time_to_first_chunk_s > 0.08
    assert reset.truncated and reset.error_type == "ClientPayloadError" and reset.output_text == "a"
    assert refused.error_type == "ClientConnectorError" and refused.status_code is None
    assert timed_out.error_type in ("SocketTimeoutError", "ServerTimeoutError")


# -- LangChain --------------------------------------------------------------------------
def test_langchain_chat_model_and_chain(
    server: ProviderServer, llmobs: LLMObs, interceptor: Interceptor
) -> None:
    model = ChatOpenAI(
        model="gpt-4o-mini", base_url=server.url + "/v1", api_key="sk-test", max_retries=0
    )
    chain = (
        ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{question}")])
        | model
        | StrOutputParser()
    )
    tape = Tape(interceptor)

    def run_all() -> None:
        assert model.invoke(PROMPT).content == "one two three four"
        assert chain.invoke({"question": PROMPT}) == "one two three four"
        assert "".join(chain.stream({"question": PROMPT})) == "one two three four"

    run_all()
    live = llmobs.calls
    assert [c.provider for c in live] == ["openai"] * 3 and live[2].stream
    assert live[0].usage.input_tokens == 5 and live[1].usage.input_tokens == 7
    assert all(c.finish_reasons == ("stop",) and not c.truncated for c in live)
    # the same calls replayed from the recording: same answers, same LLMCalls, no network
    tape.replay()
    run_all()
    assert len(server.requests) == 3 and tape.served == 3
    assert [semantics(c) for c in llmobs.calls[3:]] == [semantics(c) for c in live]
    # a fault the way chaos injects it: a canned 429; the SDK under LangChain retries
    limited = error_reply("openai", 429, retry_after=0.01)
    body = json.dumps(limited.body).encode()
    fault = CannedResponse(status=429, headers=list(limited.headers.items()), chunks=[(0.0, body)])
    answer_with(interceptor, fault)
    retrying = ChatOpenAI(
        model="gpt-4o-mini", base_url=server.url + "/v1", api_key="sk-test", max_retries=1
    )
    assert retrying.invoke(PROMPT).content == "one two three four"
    faulted, recovered = llmobs.calls[6:]
    assert (faulted.status_code, faulted.error_type, faulted.attempt) == (
        429,
        "rate_limit_exceeded",
        0,
    )
    assert (recovered.status_code, recovered.attempt) == (200, 1)


# -- inside a pytest run with the plugin -------------------------------------------------
def test_new_clients_in_a_nested_pytest_run(
    pytester: pytest.Pytester, server: ProviderServer, llmobs: LLMObs
) -> None:
    pytester.makepyfile(
        """
import os, boto3, ollama
from google import genai
from google.genai import types

URL = os.environ["LLM_URL"]
MSG = [{"role": "user", "content": [{"text": "say hello to the test"}]}]

async def test_inner(llmobs):
    boto3.client("bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
                 aws_access_key_id="AKIA", aws_secret_access_key="x").converse(
        modelId="m", messages=MSG)
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=URL))
    await client.aio.models.generate_content(model="gemini-test", contents="hi")
    ollama.Client(host=URL).generate(model="llama-test", prompt="hi", stream=False)
    assert [c.provider for c in llmobs.calls] == ["aws.bedrock", "gcp.gemini", "ollama"]
    assert llmobs.usage.output_tokens == 12
"""
    )
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        f"ignore:{GENAI_SUBCLASS_WARNING}:DeprecationWarning",
    )
    result.assert_outcomes(passed=1)
    assert llmobs.calls == []  # the inner session saw them; this one was suspended
