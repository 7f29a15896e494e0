"""The fake provider server, exercised through the real SDKs and plain HTTP clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import requests
from sdk_errors import PROTOCOL_ERROR, transport_error

from pytest_llmobs.fixture import LLMObs
from pytest_llmobs.testing import ProviderServer, Reply, error_reply
from pytest_llmobs.testing import provider_server as ps

MESSAGES: Any = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the test suite"},
]
ANTHROPIC_MESSAGES: Any = [{"role": "user", "content": "Say hello to the test suite"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}
CUT = ps.HEADER_STREAM_CUT_AFTER
REPLY_WORDS = ["Hello", " from", " the", " fake", " provider"]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def server(shared_server: ProviderServer) -> ProviderServer:
    shared_server.reset()
    return shared_server


def oai(server: ProviderServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", **kw)


def aoai(server: ProviderServer, **kw: Any) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test", **kw)


def ant(server: ProviderServer, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", **kw)


def aant(server: ProviderServer, **kw: Any) -> anthropic.AsyncAnthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-ant-test", **kw)


def sse_payloads(raw: bytes) -> list[tuple[str | None, str]]:
    """Split a raw SSE body into (event, data) pairs."""
    out: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((event, data))
    return out


# --------------------------------------------------------------------------- OpenAI chat


def test_chat_completion_parses_strictly(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    result = raw.parse()
    assert result.object == "chat.completion"
    assert result.id.startswith("chatcmpl-")
    assert result.model == "gpt-4o"
    choice = result.choices[0]
    assert choice.message.content == "Hello from the fake provider"
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.prompt_tokens == 3 + 6  # words in system + user
    assert result.usage.completion_tokens == 5
    assert result.usage.total_tokens == 14
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 0
    assert result.usage.completion_tokens_details is not None
    assert result.usage.completion_tokens_details.reasoning_tokens == 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert "openai-processing-ms" in raw.headers
    assert raw.headers["content-type"] == "application/json"
    [seen] = server.requests
    assert seen.method == "POST"
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert json.loads(seen.body) == seen.json


def test_chat_stream_with_usage(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    words = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert words == REPLY_WORDS
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 5)
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_raw_wire_format(server: ProviderServer) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with_usage = {**body, "stream_options": {"include_usage": True}}
    plain = httpx2.post(server.url + "/v1/chat/completions", json=body)
    usage = httpx2.post(server.url + "/v1/chat/completions", json=with_usage)
    assert plain.headers["transfer-encoding"] == "chunked"
    assert plain.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in plain.headers
    for resp, include in ((plain, False), (usage, True)):
        events = sse_payloads(resp.content)
        assert events[-1] == (None, "[DONE]")
        chunks = [json.loads(data) for _, data in events[:-1]]
        assert all(("usage" in c) is include for c in chunks)
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len(sse_payloads(plain.content)) == 1 + 5 + 1 + 1
    assert len(sse_payloads(usage.content)) == 1 + 5 + 1 + 1 + 1


def test_chat_stream_without_usage_has_no_usage(server: ProviderServer) -> None:
    chunks = list(oai(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ps.DEFAULT_REPLY


async def test_chat_async(server: ProviderServer) -> None:
    client = aoai(server, _strict_response_validation=True)
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content == ps.DEFAULT_REPLY
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    usage = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == ps.DEFAULT_REPLY
    assert usage is not None and usage.completion_tokens == 5
    await client.close()


def test_chat_truncation(server: ProviderServer) -> None:
    client = oai(server)
    r = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    assert r.choices[0].message.content == "Hello from"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 2
    r = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=3)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == (
        "Hello from the",
        "length",
    )
    r = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=5)
    assert r.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=1, stream=True)
    )
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["Hello"]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_reply_model_and_header_overrides(server: ProviderServer) -> None:
    server.configure(reply="Configured  reply\ntext", model="served-model")
    client = oai(server)
    r = client.chat.completions.create(model="asked", messages=MESSAGES)
    assert r.choices[0].message.content == "Configured  reply\ntext"
    assert r.model == "served-model"
    assert r.usage is not None and r.usage.completion_tokens == 3
    r = client.chat.completions.create(
        model="asked", messages=MESSAGES, extra_headers={"x-fake-reply": "per request"}
    )
    assert r.choices[0].message.content == "per request"
    server.configure(model=None)
    r = client.chat.completions.create(model="asked", messages=MESSAGES)
    assert r.model == "asked"
    assert r.choices[0].message.content == "Configured  reply\ntext"
    server.reset()
    r = client.chat.completions.create(model="asked", messages=MESSAGES)
    assert r.choices[0].message.content == ps.DEFAULT_REPLY


def test_chat_tool_call(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    r = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        extra_headers={"x-fake-tool-call": "get_weather"},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert args == {"city": "example city", "unit": "celsius", "days": 1}
    # No tools in the request: plain text even when a tool call is configured.
    server.configure(tool_call="get_weather")
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content == ps.DEFAULT_REPLY


def test_chat_tool_call_stream(server: ProviderServer) -> None:
    server.configure(tool_call="get_weather")
    client = oai(server)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )
    pieces = [
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in chunks
        if c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
    ]
    assert len(pieces) > 2
    assert json.loads("".join(p or "" for p in pieces))["city"] == "example city"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The SDK's own accumulator agrees.
    with client.chat.completions.stream(
        model="m", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None
    assert json.loads(tool_calls[0].function.arguments)["days"] == 1


def test_chat_forced_tool_choice(server: ProviderServer) -> None:
    r = oai(server).chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert r.choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- Azure


def test_azure_chat(server: ProviderServer) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=server.url, api_version="2024-10-21", api_key="x", max_retries=0
    )
    r = client.chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert r.choices[0].message.content == ps.DEFAULT_REPLY
    extra = r.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert (r.choices[0].model_extra or {})["content_filter_results"]["violence"] == {
        "filtered": False,
        "severity": "safe",
    }
    seen = server.requests[-1]
    assert seen.path == "/openai/deployments/my-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == "x"
    chunks = list(
        client.chat.completions.create(
            model="my-deployment",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # Like real Azure, the first chunk only carries prompt_filter_results.
    assert chunks[0].choices == [] and chunks[0].usage is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ps.DEFAULT_REPLY
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


# --------------------------------------------------------------------------- Responses


def test_responses(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    r = client.responses.create(model="gpt-4.1", input="Say hello please", instructions="Be nice")
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.output_text == ps.DEFAULT_REPLY
    assert r.model == "gpt-4.1"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (5, 5, 10)
    assert r.usage.input_tokens_details.cached_tokens == 0
    r = client.responses.create(
        model="gpt-4.1",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "one two"}]}],
        max_output_tokens=2,
    )
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == "Hello from"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (2, 2)


def test_responses_stream(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == REPLY_WORDS
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.usage is not None and final.response.usage.output_tokens == 5
    # The SDK's stream helper only finalises on response.completed, so read the raw events.
    with client.responses.stream(model="gpt-4.1", input="hi", max_output_tokens=3) as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.output_text == "Hello from the"
    with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        assert stream.get_final_response().output_text == ps.DEFAULT_REPLY


def test_responses_tool_call(server: ProviderServer) -> None:
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": WEATHER_TOOL["function"]["parameters"],
    }
    client = oai(server, _strict_response_validation=True)
    headers = {"x-fake-tool-call": "get_weather"}
    r = client.responses.create(model="m", input="hi", tools=[tool], extra_headers=headers)
    [item] = r.output
    assert item.type == "function_call"
    assert item.name == "get_weather"
    assert json.loads(item.arguments)["unit"] == "celsius"
    events = list(
        client.responses.create(
            model="m", input="hi", tools=[tool], stream=True, extra_headers=headers
        )
    )
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas))["days"] == 1
    assert events[-1].type == "response.completed"


# --------------------------------------------------------------------------- legacy completions


def test_completion_parses_strictly(server: ProviderServer) -> None:
    client = oai(server, _strict_response_validation=True)
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hello to the test suite", max_tokens=50
    )
    result = raw.parse()
    assert result.object == "text_completion"
    assert result.id.startswith("cmpl-")
    assert result.model == "gpt-3.5-turbo-instruct"
    [choice] = result.choices
    assert (choice.text, choice.index, choice.finish_reason) == (ps.DEFAULT_REPLY, 0, "stop")
    assert choice.logprobs is None
    assert result.usage is not None
    usage = (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens)
    assert usage == (6, 5, 11)
    assert raw.headers["x-request-id"].startswith("req_")
    [seen] = server.requests
    assert (seen.path, seen.json["prompt"]) == ("/v1/completions", "Say hello to the test suite")


def test_completion_stops_at_max_tokens_and_at_16_by_default(server: ProviderServer) -> None:
    client = oai(server)
    cut = client.completions.create(model="m", prompt="hi", max_tokens=2)
    assert (cut.choices[0].text, cut.choices[0].finish_reason) == ("Hello from", "length")
    assert cut.usage is not None and cut.usage.completion_tokens == 2
    server.configure(reply=" ".join(f"w{i}" for i in range(20)))
    default = client.completions.create(model="m", prompt=[1, 2, 3])  # token ids
    assert default.choices[0].finish_reason == "length"
    assert default.choices[0].text == " ".join(f"w{i}" for i in range(16))
    assert default.usage is not None
    assert (default.usage.prompt_tokens, default.usage.completion_tokens) == (3, 16)


def test_completion_stream_wire_format(server: ProviderServer) -> None:
    # Not strict: like the real API, chunks before the last have finish_reason null, which
    # the SDK's (shared, non-optional) Completion type rejects under strict validation.
    client = oai(server)
    chunks = list(
        client.completions.create(
            model="m",
            prompt="hi there",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert [c.choices[0].text for c in chunks[:-2]] == REPLY_WORDS
    assert all(c.object == "text_completion" for c in chunks)
    assert (chunks[-2].choices[0].text, chunks[-2].choices[0].finish_reason) == ("", "stop")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 5)
    raw = httpx2.post(
        server.url + "/v1/completions",
        json={"model": "m", "prompt": "hi", "max_tokens": 1, "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = sse_payloads(raw.content)
    assert events[-1] == (None, "[DONE]")
    bodies = [json.loads(data) for _, data in events[:-1]]
    assert [b["choices"][0]["text"] for b in bodies] == ["Hello", ""]
    assert bodies[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in b for b in bodies)  # only with include_usage


async def test_completion_async(server: ProviderServer) -> None:
    client = aoai(server)
    result = await client.completions.create(model="m", prompt="hi")
    assert result.choices[0].text == ps.DEFAULT_REPLY
    stream = await client.completions.create(model="m", prompt="hi", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == ps.DEFAULT_REPLY
    await client.close()


# --------------------------------------------------------------------------- embeddings


def test_embeddings(server: ProviderServer) -> None:
    client = oai(server)
    default = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert server.requests[-1].json["encoding_format"] == "base64"
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in default.data)
    assert default.usage.prompt_tokens == 3
    floats = oai(server, _strict_response_validation=True).embeddings.create(
        model="text-embedding-3-small", input=["a b", "c"], encoding_format="float"
    )
    assert [d.embedding for d in floats.data] == [d.embedding for d in default.data]
    assert default.data[0].embedding != default.data[1].embedding
    single = client.embeddings.create(model="e", input="a b", dimensions=4)
    assert single.data[0].embedding == default.data[0].embedding[:4]
    assert single.model == "e"
    assert single.object == "list"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_message(server: ProviderServer) -> None:
    client = ant(server, _strict_response_validation=True)
    raw = client.messages.with_raw_response.create(
        model="claude-fake-1",
        max_tokens=100,
        system="Be terse please",
        messages=ANTHROPIC_MESSAGES,
    )
    m = raw.parse()
    assert m.id.startswith("msg_")
    assert m.type == "message" and m.role == "assistant"
    assert m.model == "claude-fake-1"
    assert m.stop_reason == "end_turn"
    assert m.stop_sequence is None
    [block] = m.content
    assert block.type == "text" and block.text == ps.DEFAULT_REPLY
    assert (m.usage.input_tokens, m.usage.output_tokens) == (3 + 6, 5)
    assert m.usage.cache_creation_input_tokens == 0
    assert m.usage.cache_read_input_tokens == 0
    assert m.usage.service_tier == "standard"
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert server.requests[-1].path == "/v1/messages"
    m = client.messages.create(model="c", max_tokens=2, messages=ANTHROPIC_MESSAGES)
    assert m.stop_reason == "max_tokens"
    assert m.content[0].type == "text" and m.content[0].text == "Hello from"
    assert m.usage.output_tokens == 2


def test_anthropic_stream(server: ProviderServer) -> None:
    client = ant(server, _strict_response_validation=True)
    with client.messages.stream(model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == REPLY_WORDS
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (6, 5)
    events = list(
        client.messages.create(model="c", max_tokens=3, messages=ANTHROPIC_MESSAGES, stream=True)
    )
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (6, 1)
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "max_tokens"
    assert delta.usage.output_tokens == 3


def test_anthropic_raw_stream_has_ping(server: ProviderServer) -> None:
    body = {"model": "c", "max_tokens": 9, "messages": ANTHROPIC_MESSAGES, "stream": True}
    raw = httpx.post(server.url + "/v1/messages", json=body).content
    names = [event for event, _ in sse_payloads(raw)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"
    assert all(json.loads(data)["type"] == event for event, data in sse_payloads(raw))


async def test_anthropic_async(server: ProviderServer) -> None:
    client = aant(server)
    m = await client.messages.create(model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES)
    assert m.content[0].type == "text" and m.content[0].text == ps.DEFAULT_REPLY
    async with client.messages.stream(
        model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES
    ) as stream:
        texts = [t async for t in stream.text_stream]
    assert "".join(texts) == ps.DEFAULT_REPLY
    stream2 = await client.messages.create(
        model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES, stream=True
    )
    kinds = [e.type async for e in stream2]
    assert kinds[-1] == "message_stop"
    await client.close()


def test_anthropic_tool_use(server: ProviderServer) -> None:
    tool: Any = {"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}
    client = ant(server, _strict_response_validation=True)
    headers = {"x-fake-tool-call": "get_weather"}
    m = client.messages.create(
        model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES, tools=[tool], extra_headers=headers
    )
    assert m.stop_reason == "tool_use"
    [block] = m.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.input == {"city": "example city", "unit": "celsius", "days": 1}
    with client.messages.stream(
        model="c", max_tokens=100, messages=ANTHROPIC_MESSAGES, tools=[tool], extra_headers=headers
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == block.input


def test_anthropic_count_tokens(server: ProviderServer) -> None:
    result = ant(server).messages.count_tokens(model="c", messages=ANTHROPIC_MESSAGES)
    assert result.input_tokens == 6


# --------------------------------------------------------------------------- timing


def test_ttft_delay(server: ProviderServer) -> None:
    server.configure(ttft_s=0.25)
    client = oai(server)
    start = time.monotonic()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    assert time.monotonic() - start >= 0.24
    list(stream)
    start = time.monotonic()
    with ant(server).messages.stream(
        model="c",
        max_tokens=10,
        messages=ANTHROPIC_MESSAGES,
        extra_headers={"x-fake-ttft-ms": "150"},
    ) as astream:
        next(iter(astream.text_stream))
        elapsed = time.monotonic() - start
    assert 0.14 <= elapsed < 1.0


def test_stream_arrives_incrementally(server: ProviderServer) -> None:
    arrivals: list[float] = []
    start = time.monotonic()
    with httpx2.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
        headers={"x-fake-chunk-delay-ms": "80"},
    ) as resp:
        for chunk in resp.iter_raw():
            arrivals.append(time.monotonic() - start)
            assert chunk.startswith(b"data: ") and chunk.endswith(b"\n\n")
    assert len(arrivals) == 8  # each event is its own chunk, read separately
    assert arrivals[-1] - arrivals[0] >= 4 * 0.08 - 0.01  # first chunk well before the last


def test_non_stream_waits_for_generation(server: ProviderServer) -> None:
    start = time.monotonic()
    oai(server).chat.completions.create(
        model="m",
        messages=MESSAGES,
        extra_headers={"x-fake-ttft-ms": "50", "x-fake-chunk-delay-ms": "25"},
    )
    assert time.monotonic() - start >= 0.05 + 4 * 0.025 - 0.01


# --------------------------------------------------------------------------- errors and faults


def test_scripted_error_replies(server: ProviderServer) -> None:
    server.enqueue(
        error_reply("openai", 429, retry_after=3),
        error_reply("openai", 400, "too long", code="context_length_exceeded", param="messages"),
        error_reply("openai", 500),
    )
    client = oai(server)
    with pytest.raises(openai.RateLimitError) as rate:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert rate.value.code == "rate_limit_exceeded"
    assert rate.value.response.headers["retry-after"] == "3"
    assert rate.value.response.headers["retry-after-ms"] == "3000"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert bad.value.body == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert server.pending == 0

    server.enqueue(error_reply("anthropic", 529), error_reply("anthropic", 429, retry_after=1))
    aclient = ant(server)
    with pytest.raises(anthropic.InternalServerError) as over:
        aclient.messages.create(model="c", max_tokens=5, messages=ANTHROPIC_MESSAGES)
    assert over.value.status_code == 529
    body: Any = over.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    assert body["request_id"].startswith("req_")
    with pytest.raises(anthropic.RateLimitError):
        aclient.messages.create(model="c", max_tokens=5, messages=ANTHROPIC_MESSAGES)


def test_status_header(server: ProviderServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        oai(server).chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-fake-status": "401"}
        )
    with pytest.raises(anthropic.NotFoundError) as err:
        ant(server).messages.create(
            model="c",
            max_tokens=5,
            messages=ANTHROPIC_MESSAGES,
            extra_headers={"x-fake-status": "404"},
        )
    assert err.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "The requested resource could not be found.",
        },
        "request_id": err.value.response.headers["request-id"],
    }


def test_retry_consumes_scripted_replies(server: ProviderServer) -> None:
    server.enqueue(error_reply("openai", 503, headers={"retry-after-ms": "10"}))
    r = oai(server, max_retries=1).chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content == ps.DEFAULT_REPLY
    assert [q.headers["x-stainless-retry-count"] for q in server.requests] == ["0", "1"]


def test_scripted_reply_exact_bytes_and_match(server: ProviderServer) -> None:
    events = [
        (
            0.0,
            b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"s",'
            b'"choices":[{"index":0,"delta":{"content":"scripted"},"finish_reason":null}]}\n\n',
        ),
        (0.0, b"data: [DONE]\n\n"),
    ]
    server.enqueue(
        Reply(body={"input_tokens": 42}, match="count_tokens"),
        Reply(events=events, headers={"x-custom": "yes"}),
    )
    client = oai(server)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["scripted"]
    assert server.pending == 1
    assert (
        ant(server).messages.count_tokens(model="c", messages=ANTHROPIC_MESSAGES).input_tokens == 42
    )
    server.enqueue(Reply(status=200, body=b"not json", headers={"content-type": "text/plain"}))
    assert requests.post(server.url + "/v1/chat/completions", json={}).text == "not json"


def test_stream_cut_fails_the_call_with_the_transport_error(
    server: ProviderServer, llmobs: LLMObs
) -> None:
    got: list[str] = []
    with pytest.raises((openai.APIConnectionError, *PROTOCOL_ERROR)) as err:
        for chunk in oai(server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers={CUT: "3"}
        ):
            got.append(chunk.choices[0].delta.content or "")
    assert "incomplete chunked read" in str(transport_error(err.value, PROTOCOL_ERROR))
    assert got == ["", "Hello", " from"]
    texts: list[str] = []
    with (
        pytest.raises((anthropic.APIConnectionError, *PROTOCOL_ERROR)) as err,
        ant(server).messages.stream(
            model="c", max_tokens=9, messages=ANTHROPIC_MESSAGES, extra_headers={CUT: "5"}
        ) as stream,
    ):
        texts.extend(stream.text_stream)
    assert "incomplete chunked read" in str(transport_error(err.value, PROTOCOL_ERROR))
    assert texts == ["Hello", " from"]
    # The calls say why, whichever error the SDK raised.
    assert [(c.provider, c.error_type, c.truncated, c.output_text) for c in llmobs.calls] == [
        ("openai", "RemoteProtocolError", True, "Hello from"),
        ("anthropic", "RemoteProtocolError", True, "Hello from"),
    ]
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.post(
            server.url + "/v1/responses",
            json={"model": "m", "input": "x", "stream": True},
            headers={CUT: "3"},
        )


def test_stream_truncate_is_silent(server: ProviderServer) -> None:
    headers = {"x-fake-stream-truncate-after": "3"}
    chunks = list(
        oai(server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=headers
        )
    )
    assert [c.choices[0].delta.content for c in chunks] == ["", "Hello", " from"]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    raw = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
        headers={"x-fake-stream-truncate-after": "100"},
    ).content
    assert b"[DONE]" not in raw and b'finish_reason":"stop' not in raw
    events = list(
        ant(server).messages.create(
            model="c", max_tokens=9, messages=ANTHROPIC_MESSAGES, stream=True, extra_headers=headers
        )
    )
    assert [e.type for e in events] == ["message_start", "content_block_start"]


def test_unknown_path_is_404(server: ProviderServer) -> None:
    resp = requests.get(server.url + "/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Invalid URL (GET /nope)"
    with pytest.raises(openai.NotFoundError):
        oai(server).models.list()


# --------------------------------------------------------------------------- plumbing


def test_prefixed_paths_and_plain_clients(server: ProviderServer) -> None:
    body = {"model": "m", "messages": MESSAGES}
    r1 = httpx.post(server.url + "/gw/openai/v1/chat/completions", json=body)
    r2 = requests.post(server.url + "/proxy/v1/messages", json={**body, "max_tokens": 5})
    assert r1.json()["choices"][0]["message"]["content"] == ps.DEFAULT_REPLY
    assert int(r1.headers["content-length"]) == len(r1.content)
    assert r2.json()["content"][0]["text"] == ps.DEFAULT_REPLY
    with requests.post(
        server.url + "/v1/chat/completions", json={**body, "stream": True}, stream=True
    ) as r3:
        lines = [line for line in r3.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"


def test_keep_alive(server: ProviderServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    payload = json.dumps({"model": "m", "messages": MESSAGES})
    for stream in (False, True, False):
        body = payload if not stream else json.dumps({**json.loads(payload), "stream": True})
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        assert not resp.will_close
    conn.close()


async def test_concurrent_requests(server: ProviderServer) -> None:
    server.configure(ttft_s=0.3)
    client = aoai(server)

    async def one(i: int) -> str:
        r = await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-fake-reply": f"reply {i}"}
        )
        return r.choices[0].message.content or ""

    start = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(100)))
    elapsed = time.monotonic() - start
    assert results == [f"reply {i}" for i in range(100)]
    assert elapsed < 10.0  # served in parallel: one at a time would take 100 * 0.3 s = 30 s
    assert len(server.requests) == 100
    await client.close()


def test_many_open_connections(server: ProviderServer) -> None:
    server.configure(ttft_s=0.2)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True})
        conn.request("POST", "/v1/chat/completions", body)
        resp = conn.getresponse()
        resp.read()
        with lock:
            statuses.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 200


def test_lifecycle() -> None:
    server = ProviderServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    server.start()
    url = server.url
    assert url.startswith("http://127.0.0.1:") and server.port > 0
    # An idle keep-alive connection must not block stop().
    client = httpx2.Client()
    client.post(url + "/v1/embeddings", json={"model": "e", "input": "x"})
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 2
    server.stop()  # idempotent
    with pytest.raises(httpx2.TransportError):
        client.post(url + "/v1/embeddings", json={"model": "e", "input": "x"})
    client.close()


def test_cli_runs_in_foreground() -> None:
    root = Path(ps.__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_llmobs.testing.provider_server",
            "--port",
            "0",
            "--reply",
            "cli says hi",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert r.json()["choices"][0]["message"]["content"] == "cli says hi"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
