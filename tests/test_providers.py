"""providers/: raw exchanges (hand-written wire bytes, per PROVIDERS.md) → LLMCall fields."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pytest_llmobs.calls import LLMCall, Usage
from pytest_llmobs.intercept.exchange import Exchange
from pytest_llmobs.providers import PROVIDER_NAMES, ProviderRegistry, Route
from pytest_llmobs.providers.sse import SSEDecoder, SSEEvent, decode_sse

OPENAI = "https://api.openai.com/v1"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
AZURE = (
    "https://contoso.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
    "?api-version=2024-10-21"
)
ANTHROPIC_HEADERS = [("anthropic-version", "2023-06-01"), ("x-api-key", "sk-ant-test")]
SSE = "text/event-stream; charset=utf-8"


# -- building exchanges ----------------------------------------------------------------
class RemoteProtocolError(Exception):
    """Stands in for httpx2.RemoteProtocolError: only the class name matters here."""


class ConnectError(Exception):
    pass


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def make_exchange(
    url: str,
    request: Any,
    *,
    status: int | None = 200,
    body: bytes = b"",
    chunks: Sequence[bytes] | None = None,
    content_type: str | None = "application/json",
    headers: Sequence[tuple[str, str]] = (),
    request_headers: Sequence[tuple[str, str]] = (),
    method: str = "POST",
    complete: bool = True,
    error: BaseException | None = None,
    reason: str = "",
) -> Exchange:
    raw = request if isinstance(request, bytes) else compact(request)
    exchange = Exchange(
        client="httpx2",
        method=method,
        url=url,
        request_headers=list(request_headers),
        request_body=raw,
        started_at=1_700_000_000.0,
        t0=0.0,
    )
    exchange.status_code = status
    exchange.reason = reason
    if status is not None:
        ctype = [("content-type", content_type)] if content_type else []
        exchange.response_headers = ctype + list(headers)
        exchange.headers_offset = 0.05
    exchange.chunks = list(chunks) if chunks is not None else ([body] if body else [])
    exchange.chunk_offsets = [round(0.1 * (i + 1), 3) for i in range(len(exchange.chunks))]
    exchange.end_offset = round(0.1 * (len(exchange.chunks) + 1), 3)
    exchange.complete = complete and error is None
    exchange.error = error
    return exchange


def data_events(*payloads: Any, done: bool = True) -> list[bytes]:
    """OpenAI chat stream: one `data:` event per chunk, then `data: [DONE]`."""
    events = [b"data: " + compact(p) + b"\n\n" for p in payloads]
    return events + ([b"data: [DONE]\n\n"] if done else [])


def named_events(*pairs: tuple[str, Any]) -> list[bytes]:
    """Responses / Anthropic stream: `event:` + `data:` pairs."""
    return [b"event: " + name.encode() + b"\ndata: " + compact(p) + b"\n\n" for name, p in pairs]


def typed_events(*payloads: dict[str, Any]) -> list[bytes]:
    return named_events(*((p["type"], p) for p in payloads))


def parse(exchange: Exchange, routes: Sequence[Route] = ()) -> LLMCall | None:
    registry = ProviderRegistry(routes)
    call = registry.parse(exchange)
    # the request alone decides (cassettes ask before any response exists)
    assert registry.recognizes(exchange) == (call is not None)
    return call


SEMANTIC_DEFAULTS: dict[str, Any] = {
    "provider": None,
    "operation": None,
    "request_model": None,
    "response_model": None,
    "stream": False,
    "max_tokens": None,
    "temperature": None,
    "usage": Usage(),
    "finish_reasons": (),
    "truncated": False,
    "truncation_reason": None,
    "status_code": 200,
    "error": None,
    "error_type": None,
    "attempt": 0,
    "request_id": None,
    "response_id": None,
    "output_text": None,
    "attributes": {},
}


def check(call: LLMCall | None, **expected: Any) -> LLMCall:
    """Every semantic field of `call` equals `expected`, or its default when not named."""
    assert call is not None
    want = {**SEMANTIC_DEFAULTS, **expected}
    got = {name: getattr(call, name) for name in want}
    assert got == want
    return call


# -- OpenAI chat fixtures ----------------------------------------------------------------
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Capital of France?"}],
    "max_completion_tokens": 64,
    "temperature": 0.2,
}
CHAT_BODY = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris is the capital of France.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 14,
        "completion_tokens": 8,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 6, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 2,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}
OPENAI_HEADERS = [("x-request-id", "req_5d3b0f8c1a2e4b6d"), ("openai-processing-ms", "344")]
CHUNK = {
    "id": "chatcmpl-stream1",
    "object": "chat.completion.chunk",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_06737a9306",
}
STREAM_USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 3,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**CHUNK, "choices": [choice], **extra}


def chat_stream(*, include_usage: bool, done: bool = True) -> list[bytes]:
    usage_null = {"usage": None} if include_usage else {}
    chunks = [
        chat_chunk({"role": "assistant", "content": "", "refusal": None}, **usage_null),
        chat_chunk({"content": "Bonjour"}, **usage_null),
        chat_chunk({"content": " à "}, **usage_null),
        chat_chunk({"content": "tous"}, **usage_null),
        chat_chunk({}, "stop", **usage_null),
    ]
    if include_usage:
        chunks.append({**CHUNK, "choices": [], "usage": STREAM_USAGE})
    return data_events(*chunks, done=done)


def stream_request(**extra: Any) -> dict[str, Any]:
    return {**CHAT_REQUEST, "stream": True, **extra}


def chat_stream_exchange(chunks: Sequence[bytes], **kwargs: Any) -> Exchange:
    request = kwargs.pop("request", stream_request(stream_options={"include_usage": True}))
    kwargs.setdefault("headers", OPENAI_HEADERS)
    return make_exchange(
        f"{OPENAI}/chat/completions", request, chunks=chunks, content_type=SSE, **kwargs
    )


CHAT_STREAM_FIELDS: dict[str, Any] = {
    "provider": "openai",
    "operation": "chat",
    "request_model": "gpt-4o-mini",
    "response_model": "gpt-4o-mini-2024-07-18",
    "stream": True,
    "max_tokens": 64,
    "temperature": 0.2,
    "usage": Usage(12 - 3, 3, 12, cached_input_tokens=0, reasoning_tokens=0),
    "finish_reasons": ("stop",),
    "request_id": "req_5d3b0f8c1a2e4b6d",
    "response_id": "chatcmpl-stream1",
    "output_text": "Bonjour à tous",
}


# -- OpenAI chat ------------------------------------------------------------------------
def test_chat_non_stream() -> None:
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        CHAT_REQUEST,
        body=compact(CHAT_BODY),
        headers=OPENAI_HEADERS,
        request_headers=[("x-stainless-retry-count", "1")],
    )
    call = check(
        parse(exchange),
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        max_tokens=64,
        temperature=0.2,
        usage=Usage(14, 8, 22, cached_input_tokens=6, reasoning_tokens=2),
        finish_reasons=("stop",),
        attempt=1,
        request_id="req_5d3b0f8c1a2e4b6d",
        response_id="chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        output_text="Paris is the capital of France.",
    )
    assert call.request_body == CHAT_REQUEST
    assert call.response_body == CHAT_BODY


def test_exchange_fields_are_carried_over() -> None:
    exchange = make_exchange(
        "http://127.0.0.1:4000/v1/chat/completions",
        CHAT_REQUEST,
        body=compact(CHAT_BODY),
    )
    exchange.source = "replay"
    exchange.recorded_duration_s = 1.5
    exchange.recorded_chunk_offsets = [1.25]
    call = parse(exchange)
    assert call is not None
    assert (call.url, call.server_address, call.server_port) == (
        "http://127.0.0.1:4000/v1/chat/completions",
        "127.0.0.1",
        4000,
    )
    assert (call.started_at, call.duration_s, call.time_to_first_chunk_s) == (1.7e9, 0.2, 0.1)
    assert call.chunk_offsets_s == (0.1,)
    assert (call.source, call.recorded_duration_s, call.recorded_time_to_first_chunk_s) == (
        "replay",
        1.5,
        1.25,
    )
    assert call.effective_duration_s == 1.5


def test_credentials_in_the_url_are_redacted() -> None:
    exchange = make_exchange(f"{AZURE}&api-key=s3cret", {"messages": []}, body=b"{}")
    call = parse(exchange)
    assert call is not None
    assert "s3cret" not in call.url
    assert call.url.endswith("api-version=2024-10-21&api-key=<redacted>")


def test_chat_stream_with_usage() -> None:
    chunks = chat_stream(include_usage=True)
    call = check(parse(chat_stream_exchange(chunks)), **CHAT_STREAM_FIELDS)
    # Output events are chunks 1..3 (the role chunk carries no text): timed from those.
    assert call.time_to_first_chunk_s == 0.2
    assert call.chunk_offsets_s == (0.2, 0.3, 0.4)
    assert call.duration_s == 0.1 * (len(chunks) + 1)
    assert isinstance(call.response_body, list) and len(call.response_body) == 6
    assert call.response_body[-1]["usage"] == STREAM_USAGE


def test_chat_stream_without_include_usage_has_no_usage() -> None:
    exchange = chat_stream_exchange(chat_stream(include_usage=False), request=stream_request())
    check(parse(exchange), **{**CHAT_STREAM_FIELDS, "usage": Usage()})


def test_recorded_first_chunk_follows_the_first_output_event() -> None:
    exchange = chat_stream_exchange(chat_stream(include_usage=True))
    exchange.source = "replay"
    exchange.recorded_chunk_offsets = [0.5, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4]
    exchange.recorded_duration_s = 1.4  # a recording with timing (vcrpy's have none: unknown)
    call = parse(exchange)
    assert call is not None
    assert call.recorded_time_to_first_chunk_s == 0.9
    assert call.effective_time_to_first_chunk_s == 0.9


def test_chat_stream_tool_calls_in_pieces() -> None:
    def piece(index: int, arguments: str, **first: Any) -> dict[str, Any]:
        function = {"arguments": arguments, **({"name": first["name"]} if first else {})}
        call = {"index": index, "function": function}
        if first:
            call.update(id=first["id"], type="function")
        return chat_chunk({"tool_calls": [call]})

    chunks = data_events(
        chat_chunk({"role": "assistant", "content": None, "refusal": None}),
        piece(0, "", name="get_weather", id="call_DdmO9pD3xa9XTPNJ32zg2hcA"),
        piece(0, '{"ci'),
        piece(0, 'ty": "Pa'),
        piece(0, 'ris"}'),
        piece(1, "", name="get_time", id="call_2"),
        piece(1, '{"tz": "CET"}'),
        chat_chunk({}, "tool_calls"),
    )
    request = {**stream_request(), "tools": [{"type": "function"}]}
    check(
        parse(chat_stream_exchange(chunks, request=request)),
        **{
            **CHAT_STREAM_FIELDS,
            "usage": Usage(),
            "finish_reasons": ("tool_calls",),
            "output_text": 'get_weather({"city": "Paris"})\nget_time({"tz": "CET"})',
        },
    )


def test_chat_tool_call_arguments_that_are_not_json() -> None:
    body = json.loads(json.dumps(CHAT_BODY))
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "unterminated'},
            }
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    call = parse(make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, body=compact(body)))
    assert call is not None
    assert (call.truncated, call.truncation_reason) == (True, "invalid_json")
    assert call.output_text == 'lookup({"q": "unterminated)'


@pytest.mark.parametrize(
    ("response_format", "content", "invalid"),
    [
        ({"type": "json_object"}, 'Sure! {"city": "Paris"', True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, "[1, 2", True),
        ({"type": "json_object"}, '{"city": "Paris"}', False),
        ({"type": "text"}, "not json at all", False),
        (None, "not json at all", False),
    ],
)
def test_chat_json_output_must_parse(response_format: Any, content: str, invalid: bool) -> None:
    request = {**CHAT_REQUEST, "response_format": response_format}
    body = json.loads(json.dumps(CHAT_BODY))
    body["choices"][0]["message"]["content"] = content
    call = parse(make_exchange(f"{OPENAI}/chat/completions", request, body=compact(body)))
    assert call is not None
    assert (call.truncated, call.truncation_reason) == (
        (True, "invalid_json") if invalid else (False, None)
    )


def test_chat_finish_length_is_truncation() -> None:
    body = json.loads(json.dumps(CHAT_BODY))
    body["choices"][0]["finish_reason"] = "length"
    request = {**CHAT_REQUEST, "response_format": {"type": "json_object"}}
    body["choices"][0]["message"]["content"] = '{"answer": "Par'
    call = parse(make_exchange(f"{OPENAI}/chat/completions", request, body=compact(body)))
    assert call is not None
    # The cut explains the broken JSON: the more specific reason wins.
    assert (call.truncated, call.truncation_reason) == (True, "length")
    assert call.finish_reasons == ("length",)


def test_chat_several_choices() -> None:
    body = json.loads(json.dumps(CHAT_BODY))
    second = {"index": 1, "message": {"role": "assistant", "content": "Paris."}}
    body["choices"].append({**second, "finish_reason": "length"})
    call = parse(make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, body=compact(body)))
    assert call is not None
    assert call.finish_reasons == ("stop", "length")
    assert call.output_text == "Paris is the capital of France.\nParis."
    assert call.truncation_reason == "length"


def test_chat_stream_without_done_is_truncated() -> None:
    chunks = chat_stream(include_usage=True, done=False)[:3]  # role + two text pieces
    check(
        parse(chat_stream_exchange(chunks)),
        **{
            **CHAT_STREAM_FIELDS,
            "usage": Usage(),
            "finish_reasons": (),
            "output_text": "Bonjour à ",
            "truncated": True,
            "truncation_reason": "stream_ended_without_terminator",
        },
    )


def test_chat_stream_cut_by_a_transport_error() -> None:
    chunks = chat_stream(include_usage=True)[:3]
    error = RemoteProtocolError("peer closed connection (incomplete chunked read)")
    call = parse(chat_stream_exchange(chunks, error=error, complete=False))
    assert call is not None
    assert (call.error, call.error_type) == (
        "peer closed connection (incomplete chunked read)",
        "RemoteProtocolError",
    )
    assert call.truncation_reason == "stream_ended_without_terminator"


def test_chat_stream_closed_by_the_client_early() -> None:
    chunks = chat_stream(include_usage=True)[:3]
    call = parse(chat_stream_exchange(chunks, complete=False))
    assert call is not None
    assert (call.truncated, call.truncation_reason, call.error) == (
        True,
        "stream_closed_by_client",
        None,
    )


def test_chat_stream_error_data_line_after_200() -> None:
    error = {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    chunks = [*chat_stream(include_usage=False)[:2], *data_events({"error": error}, done=False)]
    check(
        parse(chat_stream_exchange(chunks, request=stream_request())),
        **{
            **CHAT_STREAM_FIELDS,
            "usage": Usage(),
            "finish_reasons": (),
            "output_text": "Bonjour",
            "truncated": True,
            "truncation_reason": "stream_error: server_error",
            "error": error["message"],
            "error_type": "server_error",
        },
    )


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (
            429,
            {
                "message": "Rate limit reached for gpt-4o-mini on tokens per min (TPM).",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            },
            "rate_limit_exceeded",
        ),
        (
            400,
            {
                "message": "This model's maximum context length is 128000 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            },
            "context_length_exceeded",
        ),
        (
            500,
            {"message": "The server had an error.", "type": "server_error", "code": None},
            "server_error",
        ),
    ],
)
def test_openai_http_errors(status: int, error: dict[str, Any], error_type: str) -> None:
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        stream_request(),
        status=status,
        body=compact({"error": error}),
        headers=[*OPENAI_HEADERS, ("retry-after-ms", "20")],
        request_headers=[("x-stainless-retry-count", "2")],
    )
    call = check(
        parse(exchange),
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        stream=True,
        max_tokens=64,
        temperature=0.2,
        status_code=status,
        error=error["message"],
        error_type=error_type,
        attempt=2,
        request_id="req_5d3b0f8c1a2e4b6d",
    )
    assert call.response_body == {"error": error}


def test_html_502_from_a_proxy() -> None:
    page = (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        b"</body>\r\n</html>\r\n"
    )
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        stream_request(),
        status=502,
        body=page,
        content_type="text/html",
        reason="Bad Gateway",
    )
    call = check(
        parse(exchange),
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        stream=True,
        max_tokens=64,
        temperature=0.2,
        status_code=502,
        error="HTTP 502 Bad Gateway",
        error_type="502",
    )
    assert call.response_body == page.decode()


def test_connect_error_before_any_response() -> None:
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        stream_request(),
        status=None,
        error=ConnectError("[Errno 111] Connection refused"),
    )
    check(
        parse(exchange),
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        stream=True,
        max_tokens=64,
        temperature=0.2,
        status_code=None,
        error="[Errno 111] Connection refused",
        error_type="ConnectError",
    )


def test_empty_bodies() -> None:
    non_stream = parse(make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST))
    assert non_stream is not None
    assert (non_stream.truncation_reason, non_stream.output_text) == (
        "invalid_response_body",
        None,
    )
    stream = parse(chat_stream_exchange([], request=stream_request()))
    assert stream is not None
    assert (stream.truncation_reason, stream.response_body) == (
        "stream_ended_without_terminator",
        [],
    )


def test_gzip_body() -> None:
    packed = gzip.compress(compact(CHAT_BODY))
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        CHAT_REQUEST,
        chunks=[packed[:10], packed[10:]],
        headers=[("content-encoding", "gzip")],
    )
    call = parse(exchange)
    assert call is not None
    assert call.response_body == CHAT_BODY
    assert call.output_text == "Paris is the capital of France."


def test_gzip_stream_keeps_event_timing() -> None:
    compressor = zlib.compressobj(wbits=31)
    plain = chat_stream(include_usage=True)
    packed = [compressor.compress(c) + compressor.flush(zlib.Z_SYNC_FLUSH) for c in plain]
    exchange = chat_stream_exchange(packed, headers=[*OPENAI_HEADERS, ("content-encoding", "gzip")])
    call = check(parse(exchange), **CHAT_STREAM_FIELDS)
    assert call.chunk_offsets_s == (0.2, 0.3, 0.4)


def test_cut_off_gzip_stream_still_yields_what_arrived() -> None:
    compressor = zlib.compressobj(wbits=31)
    plain = chat_stream(include_usage=True)[:3]
    packed = [compressor.compress(c) + compressor.flush(zlib.Z_SYNC_FLUSH) for c in plain]
    exchange = chat_stream_exchange(packed, headers=[("content-encoding", "gzip")])
    call = parse(exchange)
    assert call is not None
    assert (call.output_text, call.truncation_reason) == (
        "Bonjour à ",
        "stream_ended_without_terminator",
    )


def test_already_decoded_body_is_not_decoded_again() -> None:
    exchange = make_exchange(
        f"{OPENAI}/chat/completions",
        CHAT_REQUEST,
        body=compact(CHAT_BODY),
        headers=[("content-encoding", "gzip")],
    )
    exchange.body_decoded = True  # urllib3 and replays hand over plain bytes
    call = parse(exchange)
    assert call is not None and call.response_body == CHAT_BODY


# -- awkward byte boundaries ---------------------------------------------------------------
def splits(data: bytes) -> Iterator[list[bytes]]:
    """Every two-way split, and one byte per chunk."""
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))]


def test_chat_stream_split_anywhere() -> None:
    # Multi-byte characters (à, emoji) and CRLF line ends, cut at every byte.
    crlf = b"".join(chat_stream(include_usage=True)).replace(b"\n", b"\r\n")
    crlf = crlf.replace(b"Bonjour", "Grüße 🌍".encode())
    expected = {**CHAT_STREAM_FIELDS, "output_text": "Grüße 🌍 à tous"}
    for chunks in splits(crlf):
        check(parse(chat_stream_exchange(chunks)), **expected)


def test_anthropic_stream_split_anywhere_with_cr_line_ends() -> None:
    data = b"".join(ANTHROPIC_STREAM).replace(b"\n", b"\r")
    for chunks in splits(data):
        check(parse(anthropic_exchange(chunks, stream=True)), **ANTHROPIC_STREAM_FIELDS)


# -- Responses API -------------------------------------------------------------------------
RESPONSES_REQUEST = {"model": "gpt-4.1", "input": "Say hi", "max_output_tokens": 200}
RESPONSE_USAGE = {
    "input_tokens": 36,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
    "output_tokens": 87,
    "output_tokens_details": {"reasoning_tokens": 16},
    "total_tokens": 123,
}
MESSAGE_ITEM = {
    "type": "message",
    "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Hi there!", "annotations": []}],
}
RESPONSE = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    "object": "response",
    "created_at": 1741476777,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "max_output_tokens": 200,
    "model": "gpt-4.1-2025-04-14",
    "output": [MESSAGE_ITEM],
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "usage": RESPONSE_USAGE,
}
RESPONSES_FIELDS: dict[str, Any] = {
    "provider": "openai",
    "operation": "chat",
    "request_model": "gpt-4.1",
    "response_model": "gpt-4.1-2025-04-14",
    "max_tokens": 200,
    "usage": Usage(36, 87, 123, 4, cache_creation_input_tokens=0, reasoning_tokens=16),
    "finish_reasons": ("completed",),
    "request_id": "req_5d3b0f8c1a2e4b6d",
    "response_id": RESPONSE["id"],
    "output_text": "Hi there!",
}


def responses_stream(*, final: str | None = "response.completed") -> list[bytes]:
    created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    in_progress_item = {**MESSAGE_ITEM, "status": "in_progress", "content": []}
    ids = {"item_id": MESSAGE_ITEM["id"], "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {"type": "response.in_progress", "sequence_number": 1, "response": created},
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 0,
            "item": in_progress_item,
        },
        {
            "type": "response.content_part.added",
            "sequence_number": 3,
            **ids,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 4,
            **ids,
            "delta": "Hi",
            "logprobs": [],
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 5,
            **ids,
            "delta": " there!",
            "logprobs": [],
        },
        {
            "type": "response.output_text.done",
            "sequence_number": 6,
            **ids,
            "text": "Hi there!",
            "logprobs": [],
        },
    ]
    if final is not None:
        events += [
            {
                "type": "response.output_item.done",
                "sequence_number": 7,
                "output_index": 0,
                "item": MESSAGE_ITEM,
            },
            {"type": final, "sequence_number": 8, "response": {**RESPONSE, "stream": True}},
        ]
    return typed_events(*events)


def responses_exchange(**kwargs: Any) -> Exchange:
    kwargs.setdefault("headers", OPENAI_HEADERS)
    return make_exchange(f"{OPENAI}/responses", kwargs.pop("request", RESPONSES_REQUEST), **kwargs)


def test_responses_non_stream() -> None:
    call = check(parse(responses_exchange(body=compact(RESPONSE))), **RESPONSES_FIELDS)
    assert call.response_body == RESPONSE


def test_responses_stream() -> None:
    request = {**RESPONSES_REQUEST, "stream": True}
    exchange = responses_exchange(request=request, chunks=responses_stream(), content_type=SSE)
    call = check(parse(exchange), **{**RESPONSES_FIELDS, "stream": True})
    assert call.chunk_offsets_s == (0.5, 0.6)  # the two text deltas
    assert [event["type"] for event in call.response_body][-1] == "response.completed"


def test_responses_stream_without_terminal_event() -> None:
    request = {**RESPONSES_REQUEST, "stream": True}
    exchange = responses_exchange(
        request=request, chunks=responses_stream(final=None), content_type=SSE
    )
    check(
        parse(exchange),
        **{
            **RESPONSES_FIELDS,
            "stream": True,
            "usage": Usage(),
            "finish_reasons": (),
            "truncated": True,
            "truncation_reason": "stream_ended_without_terminator",
        },
    )


def test_responses_incomplete() -> None:
    body = {
        **RESPONSE,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{**MESSAGE_ITEM, "status": "incomplete"}],
    }
    check(
        parse(responses_exchange(body=compact(body))),
        **{
            **RESPONSES_FIELDS,
            "finish_reasons": ("incomplete",),
            "truncated": True,
            "truncation_reason": "max_output_tokens",
        },
    )


def test_responses_failed_in_stream() -> None:
    failed = {"code": "server_error", "message": "The model failed to generate a response."}
    chunks = responses_stream(final=None) + typed_events(
        {
            "type": "response.failed",
            "sequence_number": 7,
            "response": {**RESPONSE, "status": "failed", "error": failed, "output": []},
        }
    )
    exchange = responses_exchange(
        request={**RESPONSES_REQUEST, "stream": True}, chunks=chunks, content_type=SSE
    )
    check(
        parse(exchange),
        **{
            **RESPONSES_FIELDS,
            "stream": True,
            "finish_reasons": ("failed",),
            "output_text": "",
            "truncated": True,
            "truncation_reason": "stream_error: server_error",
            "error": failed["message"],
            "error_type": "server_error",
        },
    )


def test_responses_function_call_and_json_format() -> None:
    request = {**RESPONSES_REQUEST, "text": {"format": {"type": "json_schema", "name": "x"}}}
    function_call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    message = {**MESSAGE_ITEM, "content": [{"type": "output_text", "text": "Hi there!"}]}
    body = {**RESPONSE, "output": [{"type": "reasoning", "id": "rs_1"}, function_call, message]}
    check(
        parse(responses_exchange(request=request, body=compact(body))),
        **{
            **RESPONSES_FIELDS,
            "output_text": 'get_weather({"city":"Paris"})\nHi there!',
            "truncated": True,
            "truncation_reason": "invalid_json",
        },
    )


def test_responses_stream_cut_inside_a_function_call() -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather"}
    chunks = typed_events(
        {"type": "response.created", "sequence_number": 0, "response": RESPONSE},
        {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {**item, "arguments": "", "status": "in_progress"},
        },
        {
            "type": "response.function_call_arguments.delta",
            "sequence_number": 2,
            "item_id": "fc_1",
            "output_index": 0,
            "delta": '{"city":',
        },
    )
    exchange = responses_exchange(
        request={**RESPONSES_REQUEST, "stream": True}, chunks=chunks, content_type=SSE
    )
    call = parse(exchange)
    assert call is not None
    assert (call.output_text, call.truncation_reason, call.chunk_offsets_s) == (
        'get_weather({"city":)',
        "stream_ended_without_terminator",
        (0.3,),
    )


def test_responses_error_event() -> None:
    error = {
        "type": "error",
        "code": "server_error",
        "message": "An error occurred while processing your request.",
        "param": None,
        "sequence_number": 7,
    }
    chunks = [*responses_stream(final=None), *named_events(("error", error))]
    exchange = responses_exchange(
        request={**RESPONSES_REQUEST, "stream": True}, chunks=chunks, content_type=SSE
    )
    call = parse(exchange)
    assert call is not None
    assert (call.truncation_reason, call.error, call.error_type, call.output_text) == (
        "stream_error: server_error",
        error["message"],
        "server_error",
        "Hi there!",
    )


def test_responses_failed_body() -> None:
    body = {**RESPONSE, "status": "failed", "output": [], "usage": None}
    body["error"] = {"code": "rate_limit_exceeded", "message": "Slow down."}
    call = parse(responses_exchange(body=compact(body)))
    assert call is not None
    assert (call.error_type, call.error, call.truncated) == (
        "rate_limit_exceeded",
        "Slow down.",
        False,
    )


def test_a_gateway_error_given_as_a_string() -> None:
    body = compact({"error": "upstream connect error or disconnect/reset before headers"})
    exchange = make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, status=503, body=body)
    call = parse(exchange)
    assert call is not None
    assert (call.error_type, call.error) == (
        "503",
        "upstream connect error or disconnect/reset before headers",
    )


def test_compatible_server_quirks() -> None:
    # Arguments as an object and content as a list of parts (seen from some servers).
    body = json.loads(json.dumps(CHAT_BODY))
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Sure."}],
        "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
    }
    call = parse(make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, body=compact(body)))
    assert call is not None
    assert (call.output_text, call.truncated) == ('Sure.\nf({"x": 1})', False)


def test_responses_503_overloaded() -> None:
    error = {
        "message": "The server is overloaded. Please try again later.",
        "type": "server_error",
        "param": None,
        "code": "server_is_overloaded",
    }
    exchange = responses_exchange(status=503, body=compact({"error": error}))
    check(
        parse(exchange),
        **{
            **RESPONSES_FIELDS,
            "response_model": None,
            "usage": Usage(),
            "finish_reasons": (),
            "response_id": None,
            "output_text": None,
            "status_code": 503,
            "error": error["message"],
            "error_type": "server_is_overloaded",
        },
    )


# -- embeddings ------------------------------------------------------------------------------
def test_embeddings() -> None:
    request = {"model": "text-embedding-3-small", "input": ["hello"], "encoding_format": "base64"}
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": "AAAAvwAAgD8="}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    exchange = make_exchange(
        f"{OPENAI}/embeddings", request, body=compact(body), headers=OPENAI_HEADERS
    )
    call = check(
        parse(exchange),
        provider="openai",
        operation="embeddings",
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        usage=Usage(input_tokens=1, total_tokens=1),
        request_id="req_5d3b0f8c1a2e4b6d",
    )
    assert call.response_body == body


# -- legacy completions ---------------------------------------------------------------------
COMPLETION_REQUEST = {
    "model": "gpt-3.5-turbo-instruct",
    "prompt": "Say this is a test",
    "max_tokens": 7,
    "temperature": 0,
}
COMPLETION_BODY = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": None,
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}
COMPLETION_FIELDS: dict[str, Any] = {
    "provider": "openai",
    "operation": "text_completion",
    "request_model": "gpt-3.5-turbo-instruct",
    "response_model": "gpt-3.5-turbo-instruct",
    "max_tokens": 7,
    "temperature": 0,
    "usage": Usage(5, 7, 12),
    "finish_reasons": ("length",),
    "truncated": True,
    "truncation_reason": "length",
    "request_id": "req_5d3b0f8c1a2e4b6d",
    "response_id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "output_text": "\n\nThis is indeed a test",
}


def completion_chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    # The real stream's key order: id, object, created, choices, model.
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
    head = {k: COMPLETION_BODY[k] for k in ("id", "object", "created")}
    return {**head, "choices": [choice], "model": "gpt-3.5-turbo-instruct", **extra}


def completion_stream(finish: str = "stop", *, done: bool = True) -> list[bytes]:
    usage_null = {"usage": None}
    chunks = [
        completion_chunk("\n\n", **usage_null),
        completion_chunk("This is", **usage_null),
        completion_chunk(" a test", **usage_null),
        completion_chunk("", finish, **usage_null),
        {
            **completion_chunk(""),
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        },
    ]
    return data_events(*chunks, done=done)


def test_legacy_completion_body() -> None:
    exchange = make_exchange(
        f"{OPENAI}/completions",
        COMPLETION_REQUEST,
        body=compact(COMPLETION_BODY),
        headers=OPENAI_HEADERS,
    )
    call = check(parse(exchange), **COMPLETION_FIELDS)
    assert call.response_body == COMPLETION_BODY


def test_legacy_completion_stream() -> None:
    request = {**COMPLETION_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    exchange = make_exchange(
        f"{OPENAI}/completions",
        request,
        chunks=completion_stream(),
        content_type=SSE,
        headers=OPENAI_HEADERS,
    )
    call = check(
        parse(exchange),
        **{
            **COMPLETION_FIELDS,
            "stream": True,
            "usage": Usage(5, 4, 9),
            "finish_reasons": ("stop",),
            "truncated": False,
            "truncation_reason": None,
            "output_text": "\n\nThis is a test",
        },
    )
    assert call.chunk_offsets_s == (0.1, 0.2, 0.3)  # the text pieces, not finish or usage
    assert call.time_to_first_chunk_s == 0.1
    cut = make_exchange(
        f"{OPENAI}/completions",
        request,
        chunks=completion_stream(done=False)[:2],
        content_type=SSE,
    )
    partial = parse(cut)
    assert partial is not None
    assert (partial.output_text, partial.truncation_reason) == (
        "\n\nThis is",
        "stream_ended_without_terminator",
    )


@pytest.mark.parametrize(
    ("url", "request_body", "provider"),
    [
        (f"{OPENAI}/completions", {"model": "m", "prompt": [1, 2, 3]}, "openai"),
        ("http://127.0.0.1:8000/v1/completions", {"model": "m", "prompt": ""}, "openai"),
        (
            "https://contoso.openai.azure.com/openai/deployments/instruct/completions"
            "?api-version=2024-10-21",
            {"prompt": "hi"},
            "azure.ai.openai",
        ),
        (f"{OPENAI}/completions", {"prompt": "no model"}, None),
        (f"{OPENAI}/completions", {"model": "m", "messages": []}, None),
        ("https://example.com/code/completions", {"model": "m", "text": "x"}, None),
    ],
)
def test_legacy_completion_detection(
    url: str, request_body: dict[str, Any], provider: str | None
) -> None:
    call = parse(make_exchange(url, request_body, body=compact(COMPLETION_BODY)))
    assert (call and (call.provider, call.operation)) == (
        (provider, "text_completion") if provider else None
    )
    # chat completions still end in "/completions": they stay chat
    chat = parse(make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, body=compact(CHAT_BODY)))
    assert chat is not None and chat.operation == "chat"


# -- Azure ----------------------------------------------------------------------------------
FILTERS_SAFE = {
    category: {"filtered": False, "severity": "safe"}
    for category in ("hate", "self_harm", "sexual", "violence")
}
PROMPT_FILTERS = [
    {
        "prompt_index": 0,
        "content_filter_results": {**FILTERS_SAFE, "jailbreak": {"filtered": False}},
    }
]
AZURE_FIELDS: dict[str, Any] = {
    "provider": "azure.ai.openai",
    "operation": "chat",
    "request_model": "gpt4o-prod",
    "response_model": "gpt-4o-2024-08-06",
    "usage": Usage(20, 0, 20, cached_input_tokens=0, reasoning_tokens=0),
    "finish_reasons": ("content_filter",),
    "request_id": "0a3e8d51-0e51-4f1d-8e8c-6f9a2c8e5b11",
    "response_id": "chatcmpl-AzUrE",
    "output_text": "",
    "attributes": {"azure.prompt_filter_results": PROMPT_FILTERS},
}
AZURE_HEADERS = [
    ("apim-request-id", "0a3e8d51-0e51-4f1d-8e8c-6f9a2c8e5b11"),
    ("x-ms-region", "Sweden Central"),
]


def test_azure_content_filter() -> None:
    request = {
        "messages": [{"role": "user", "content": "..."}],
        "response_format": {"type": "json_object"},
    }
    body = {
        "choices": [
            {
                "content_filter_results": {
                    **FILTERS_SAFE,
                    "violence": {"filtered": True, "severity": "high"},
                },
                "finish_reason": "content_filter",
                "index": 0,
                "logprobs": None,
                "message": {"content": None, "refusal": None, "role": "assistant"},
            }
        ],
        "created": 1741569952,
        "id": "chatcmpl-AzUrE",
        "model": "gpt-4o-2024-08-06",
        "object": "chat.completion",
        "prompt_filter_results": PROMPT_FILTERS,
        "system_fingerprint": "fp_b705f0c291",
        "usage": {
            "completion_tokens": 0,
            "completion_tokens_details": {"reasoning_tokens": 0},
            "prompt_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 0},
            "total_tokens": 20,
        },
    }
    exchange = make_exchange(
        AZURE,
        request,
        body=compact(body),
        headers=AZURE_HEADERS,
        request_headers=[("api-key", "azure-secret")],
    )
    check(parse(exchange), **AZURE_FIELDS)


def test_azure_stream_with_prompt_filter_chunk_first() -> None:
    first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": PROMPT_FILTERS,
    }
    base = {"created": 1741569952, "id": "chatcmpl-AzUrE", "model": "gpt-4o-2024-08-06"}

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {
            "content_filter_results": FILTERS_SAFE if delta else {},
            "delta": delta,
            "finish_reason": finish,
            "index": 0,
        }
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}

    chunks = data_events(
        first,
        chunk({"content": "", "role": "assistant"}, None),
        chunk({"content": "Hej"}, None),
        chunk({}, "stop"),
    )
    exchange = make_exchange(
        AZURE, {"messages": [], "stream": True}, chunks=chunks, content_type=SSE
    )
    check(
        parse(exchange),
        **{
            **AZURE_FIELDS,
            "stream": True,
            "usage": Usage(),
            "finish_reasons": ("stop",),
            "request_id": None,
            "output_text": "Hej",
        },
    )


def test_azure_429() -> None:
    message = (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 6 seconds."
    )
    exchange = make_exchange(
        AZURE,
        {"messages": []},
        status=429,
        body=compact({"error": {"code": "429", "message": message}}),
        headers=[("retry-after", "6")],
    )
    check(
        parse(exchange),
        provider="azure.ai.openai",
        operation="chat",
        request_model="gpt4o-prod",
        status_code=429,
        error=message,
        error_type="429",
    )


def test_azure_v1_path_on_a_cognitiveservices_host() -> None:
    url = "https://contoso.cognitiveservices.azure.com/openai/v1/chat/completions"
    call = parse(make_exchange(url, CHAT_REQUEST, body=compact(CHAT_BODY)))
    assert call is not None and call.provider == "azure.ai.openai"


# -- Anthropic ------------------------------------------------------------------------------
ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hello"}],
}
ANTHROPIC_BODY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello! How can I help?"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2048,
        "output_tokens": 9,
        "service_tier": "standard",
    },
}
ANTHROPIC_RESPONSE_HEADERS = [("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")]
ANTHROPIC_FIELDS: dict[str, Any] = {
    "provider": "anthropic",
    "operation": "chat",
    "request_model": "claude-sonnet-4-5",
    "response_model": "claude-sonnet-4-5-20250929",
    "max_tokens": 1024,
    "usage": Usage(
        12 + 2048 + 100, 9, None, cached_input_tokens=2048, cache_creation_input_tokens=100
    ),
    "finish_reasons": ("end_turn",),
    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    "response_id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "output_text": "Hello! How can I help?",
}


def message_start(**usage: int) -> dict[str, Any]:
    message = {**ANTHROPIC_BODY, "content": [], "stop_reason": None, "usage": usage}
    return {"type": "message_start", "message": message}


def text_delta(index: int, text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def message_delta(stop: str, output_tokens: int) -> dict[str, Any]:
    delta = {"stop_reason": stop, "stop_sequence": None}
    return {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}}


START = message_start(
    input_tokens=12, cache_creation_input_tokens=100, cache_read_input_tokens=2048, output_tokens=1
)
TEXT_START = {
    "type": "content_block_start",
    "index": 0,
    "content_block": {"type": "text", "text": ""},
}
ANTHROPIC_STREAM = typed_events(
    START,
    TEXT_START,
    {"type": "ping"},
    text_delta(0, "Hello! "),
    text_delta(0, "How can I help?"),
    {"type": "content_block_stop", "index": 0},
    message_delta("end_turn", 9),
    {"type": "message_stop"},
)
ANTHROPIC_STREAM_FIELDS = {**ANTHROPIC_FIELDS, "stream": True}


def anthropic_exchange(chunks: Sequence[bytes], *, stream: bool, **kwargs: Any) -> Exchange:
    request = kwargs.pop("request", {**ANTHROPIC_REQUEST, **({"stream": True} if stream else {})})
    return make_exchange(
        kwargs.pop("url", ANTHROPIC),
        request,
        chunks=chunks,
        content_type=SSE if stream else "application/json",
        headers=kwargs.pop("headers", ANTHROPIC_RESPONSE_HEADERS),
        request_headers=kwargs.pop("request_headers", ANTHROPIC_HEADERS),
        **kwargs,
    )


def test_anthropic_non_stream() -> None:
    call = check(
        parse(anthropic_exchange([compact(ANTHROPIC_BODY)], stream=False)), **ANTHROPIC_FIELDS
    )
    assert call.response_body == ANTHROPIC_BODY


def test_anthropic_stream() -> None:
    call = check(
        parse(anthropic_exchange(ANTHROPIC_STREAM, stream=True)), **ANTHROPIC_STREAM_FIELDS
    )
    assert call.chunk_offsets_s == (0.4, 0.5)  # the text deltas, not the ping
    assert len(call.response_body) == 8


def test_anthropic_stream_usage_from_message_delta() -> None:
    # Newer servers repeat input and cache counts in message_delta; cumulative, so they win.
    delta = message_delta("end_turn", 9)
    delta["usage"] |= {"input_tokens": 13, "cache_read_input_tokens": 4096}
    delta["usage"] |= {"output_tokens_details": {"thinking_tokens": 4}}
    chunks = [*ANTHROPIC_STREAM[:6], *typed_events(delta, {"type": "message_stop"})]
    usage = Usage(13 + 4096 + 100, 9, None, 4096, 100, reasoning_tokens=4)
    check(
        parse(anthropic_exchange(chunks, stream=True)),
        **{**ANTHROPIC_STREAM_FIELDS, "usage": usage},
    )


def test_anthropic_tool_use_stream() -> None:
    tool_block = {
        "type": "tool_use",
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "name": "get_weather",
        "input": {},
    }

    def json_delta(piece: str) -> dict[str, Any]:
        delta = {"type": "input_json_delta", "partial_json": piece}
        return {"type": "content_block_delta", "index": 1, "delta": delta}

    chunks = typed_events(
        START,
        TEXT_START,
        text_delta(0, "Let me check."),
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": tool_block},
        json_delta(""),
        json_delta('{"location": "San Fra'),
        json_delta('ncisco, CA"}'),
        {"type": "content_block_stop", "index": 1},
        message_delta("tool_use", 89),
        {"type": "message_stop"},
    )
    check(
        parse(anthropic_exchange(chunks, stream=True)),
        **{
            **ANTHROPIC_STREAM_FIELDS,
            "usage": Usage(12 + 2048 + 100, 89, None, 2048, 100),
            "finish_reasons": ("tool_use",),
            "output_text": 'Let me check.\nget_weather({"location": "San Francisco, CA"})',
        },
    )


def test_anthropic_tool_use_non_stream_matches_stream_text() -> None:
    body = {
        **ANTHROPIC_BODY,
        "content": [
            {"type": "thinking", "thinking": "…", "signature": "abc"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
    }
    call = parse(anthropic_exchange([compact(body)], stream=False))
    assert call is not None
    assert (call.output_text, call.truncated) == ('get_weather({"city": "Oslo"})', False)


def test_anthropic_streamed_tool_input_that_is_not_json() -> None:
    tool_block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    delta = {"type": "input_json_delta", "partial_json": '{"a": '}
    chunks = typed_events(
        START,
        {"type": "content_block_start", "index": 0, "content_block": tool_block},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        message_delta("tool_use", 5),
        {"type": "message_stop"},
    )
    call = parse(anthropic_exchange(chunks, stream=True))
    assert call is not None
    assert (call.truncation_reason, call.output_text) == ("invalid_json", 'f({"a": )')


def test_anthropic_max_tokens() -> None:
    body = {**ANTHROPIC_BODY, "stop_reason": "max_tokens"}
    check(
        parse(anthropic_exchange([compact(body)], stream=False)),
        **{
            **ANTHROPIC_FIELDS,
            "finish_reasons": ("max_tokens",),
            "truncated": True,
            "truncation_reason": "max_tokens",
        },
    )


def test_anthropic_structured_output_must_parse() -> None:
    request = {
        **ANTHROPIC_REQUEST,
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    call = parse(anthropic_exchange([compact(ANTHROPIC_BODY)], stream=False, request=request))
    assert call is not None and call.truncation_reason == "invalid_json"
    body = {**ANTHROPIC_BODY, "content": [{"type": "text", "text": '{"ok": true}'}]}
    call = parse(anthropic_exchange([compact(body)], stream=False, request=request))
    assert call is not None and not call.truncated


def test_anthropic_overloaded_error_after_200() -> None:
    error = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    chunks = [*ANTHROPIC_STREAM[:4], *named_events(("error", error))]
    check(
        parse(anthropic_exchange(chunks, stream=True, headers=[])),
        **{
            **ANTHROPIC_STREAM_FIELDS,
            "usage": Usage(12 + 2048 + 100, 1, None, 2048, 100),
            "finish_reasons": (),
            "output_text": "Hello! ",
            "truncated": True,
            "truncation_reason": "stream_error: overloaded_error",
            "error": "Overloaded",
            "error_type": "overloaded_error",
        },
    )


def test_anthropic_stream_without_message_stop() -> None:
    check(
        parse(anthropic_exchange(ANTHROPIC_STREAM[:-1], stream=True)),
        **{
            **ANTHROPIC_STREAM_FIELDS,
            "truncated": True,
            "truncation_reason": "stream_ended_without_terminator",
        },
    )


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (529, "overloaded_error", "Overloaded"),
        (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit."),
        (400, "invalid_request_error", "max_tokens: Field required"),
    ],
)
def test_anthropic_http_errors(status: int, kind: str, message: str) -> None:
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    exchange = anthropic_exchange([compact(body)], stream=True, headers=[], status=status)
    exchange.response_headers = [("content-type", "application/json")]  # errors are not SSE
    check(
        parse(exchange),
        provider="anthropic",
        operation="chat",
        request_model="claude-sonnet-4-5",
        max_tokens=1024,
        stream=True,
        status_code=status,
        error=message,
        error_type=kind,
        request_id="req_011CSHoEeqs5C35K2UUqR7Fy",
    )


# -- error responses are errors, not cut answers ----------------------------------------------
JSON_REQUESTS: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        ANTHROPIC,
        {**ANTHROPIC_REQUEST, "output_config": {"format": {"type": "json_schema", "schema": {}}}},
        ANTHROPIC_HEADERS,
    ),
    (
        f"{OPENAI}/chat/completions",
        {**CHAT_REQUEST, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        [],
    ),
    (
        f"{OPENAI}/responses",
        {"model": "gpt-4.1", "input": "hi", "text": {"format": {"type": "json_object"}}},
        [],
    ),
    (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
        {
            "contents": [{"parts": [{"text": "hi"}]}],
            "generationConfig": {"responseMimeType": "application/json"},
        },
        [],
    ),
    ("http://localhost:11434/api/chat", {"model": "llama3", "messages": [], "format": "json"}, []),
]
ERROR_BODIES = {
    400: {"type": "error", "error": {"type": "invalid_request_error", "message": "bad schema"}},
    # what the cassette answers a request it has no recording for
    404: {
        "type": "error",
        "error": {
            "type": "llmobs_cassette_miss",
            "code": "llmobs_cassette_miss",
            "message": "pytest-llmobs: request not in cassette (record mode 'none'): x.yaml",
        },
    },
    500: {"error": {"message": "The server had an error", "type": "server_error"}},
}


@pytest.mark.parametrize("status", sorted(ERROR_BODIES))
@pytest.mark.parametrize(
    ("url", "request_body", "headers"),
    JSON_REQUESTS,
    ids=["anthropic", "chat", "responses", "gemini", "ollama"],
)
def test_an_error_response_to_a_json_request_is_no_truncation(
    url: str, request_body: dict[str, Any], headers: list[tuple[str, str]], status: int
) -> None:
    exchange = make_exchange(
        url,
        request_body,
        status=status,
        body=compact(ERROR_BODIES[status]),
        request_headers=headers,
    )
    call = parse(exchange)
    assert call is not None and call.status_code == status
    assert (call.truncated, call.truncation_reason) == (False, None)
    assert call.error_type is not None and call.error
    # the same request answered 200 with text that is not JSON: that is a cut answer
    if "anthropic" in url:
        ok = parse(make_exchange(url, request_body, body=compact(ANTHROPIC_BODY)))
        assert ok is not None and ok.truncation_reason == "invalid_json"


# -- detection, gateways and routes -----------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://gw.internal/anthropic/v1/messages", "anthropic"),
        ("http://127.0.0.1:4000/v1/chat/completions", "openai"),
        ("http://localhost:8000/chat/completions", "openai"),
        ("https://api.groq.com/openai/v1/chat/completions", "openai"),
        ("https://gw.internal/azure/openai/deployments/gpt4o/chat/completions", "azure.ai.openai"),
    ],
)
def test_gateways_and_compatible_hosts(url: str, provider: str) -> None:
    if provider == "anthropic":
        exchange = make_exchange(url, ANTHROPIC_REQUEST, body=compact(ANTHROPIC_BODY))
    else:
        exchange = make_exchange(url, CHAT_REQUEST, body=compact(CHAT_BODY))
    call = parse(exchange)
    assert call is not None and call.provider == provider


def test_anthropic_version_header_makes_any_messages_path_count() -> None:
    url = "https://gw.internal/claude/messages"
    exchange = make_exchange(url, {"messages": []}, request_headers=ANTHROPIC_HEADERS)
    call = parse(exchange)
    assert call is not None and call.provider == "anthropic"
    assert parse(make_exchange(url, {"messages": []})) is None


@pytest.mark.parametrize(
    "exchange",
    [
        make_exchange(f"{OPENAI}/chat/completions", CHAT_REQUEST, method="GET"),
        make_exchange(f"{OPENAI}/models", {"model": "x"}),
        make_exchange(f"{OPENAI}/chat/completions", b"not json"),
        make_exchange(f"{OPENAI}/chat/completions", b""),
        make_exchange(f"{OPENAI}/chat/completions", b"\xff\xfe\x00garbage"),
        make_exchange(f"{OPENAI}/chat/completions", [CHAT_REQUEST]),
        make_exchange(f"{OPENAI}/chat/completions", {"messages": []}),  # no model
        make_exchange(f"{OPENAI}/embeddings", {"input": "x"}),
        make_exchange("https://slack.example/api/v1/messages", {"channel": "C1", "text": "hi"}),
        make_exchange("https://example.com/upload", {"model": "x", "messages": []}),
        make_exchange("https://example.com/api/responses", {"answers": [1, 2]}),
        make_exchange("http://host:99999/v1/chat/completions", CHAT_REQUEST),
        make_exchange("http://[::1/v1/chat/completions", CHAT_REQUEST),
    ],
    ids=lambda e: f"{e.method} {e.url} {e.request_body[:12]!r}",
)
def test_non_llm_traffic_is_ignored(exchange: Exchange) -> None:
    assert parse(exchange) is None


def test_a_registered_route_parses_by_path_shape() -> None:
    url = "https://llm.corp/api/chat/completions"
    request = {"messages": [{"role": "user", "content": "hi"}]}  # a gateway-side default model
    exchange = make_exchange(url, request, body=compact(CHAT_BODY))
    assert parse(exchange) is None
    call = parse(exchange, [Route.parse("llm.corp=openai")])
    assert call is not None
    assert (call.provider, call.request_model, call.output_text) == (
        "openai",
        None,
        "Paris is the capital of France.",
    )


def test_a_route_overrides_detection() -> None:
    exchange = make_exchange(
        "https://proxy.corp/azure/openai/deployments/d/chat/completions",
        {"messages": []},
        body=compact(CHAT_BODY),
    )
    call = parse(exchange, [Route.parse("proxy.corp/azure=openai")])
    assert call is not None and (call.provider, call.request_model) == ("openai", "d")
    # Routed to anthropic, a chat completions path is simply not a call.
    assert parse(exchange, [Route.parse("proxy.corp=anthropic")]) is None


def test_the_most_specific_route_wins() -> None:
    routes = [
        Route.parse("*.corp=anthropic"),
        Route.parse("llm.corp=openai"),
        Route.parse("llm.corp/claude=anthropic"),
    ]
    registry = ProviderRegistry(routes)
    claude = make_exchange("https://llm.corp/claude/v1/messages", {}, body=b"{}")
    chat = make_exchange("https://llm.corp/v1/chat/completions", {}, body=b"{}")
    other = make_exchange("https://eu.llm.corp/messages", {}, body=b"{}")
    assert [registry.route_for(e) for e in (claude, chat, other)] == [
        routes[2],
        routes[1],
        routes[0],
    ]


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("llm.corp=openai", Route("llm.corp", "", "openai")),
        ("LLM.corp/v1/ = anthropic", Route("llm.corp", "/v1", "anthropic")),
        (
            "https://gw.internal/a/b=azure.ai.openai",
            Route("gw.internal", "/a/b", "azure.ai.openai"),
        ),
        ("127.0.0.1:4000=openai", Route("127.0.0.1:4000", "", "openai")),
    ],
)
def test_route_parse(text: str, route: Route) -> None:
    assert Route.parse(text) == route


@pytest.mark.parametrize(
    "text", ["llm.corp=bogus", "=openai", "llm.corp", "llm.corp:http=openai", "a b=openai"]
)
def test_route_parse_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"valid providers: openai, azure\.ai\.openai, anthropic"):
        Route.parse(text)


def test_route_with_a_port_matches_only_that_port() -> None:
    route = Route.parse("127.0.0.1:4000=openai")
    url = "http://127.0.0.1:{}/v1/chat/completions"
    assert route.matches(make_exchange(url.format(4000), {}))
    assert not route.matches(make_exchange(url.format(4001), {}))


def test_provider_names() -> None:
    assert PROVIDER_NAMES == (
        "openai",
        "azure.ai.openai",
        "anthropic",
        "aws.bedrock",
        "gcp.gemini",
        "gcp.vertex_ai",
        "ollama",
    )


# -- never raise ------------------------------------------------------------------------------
def mutations(value: Any) -> Iterator[Any]:
    """`value` with one node at a time replaced by a value of the wrong type."""
    wrong: list[Any] = [None, 7, -1.5, "x", True, [], {}, [None], {"": None}]
    yield from wrong
    if isinstance(value, dict):
        for key, item in value.items():
            for replacement in mutations(item):
                yield {**value, key: replacement}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for replacement in mutations(item):
                yield [*value[:i], replacement, *value[i + 1 :]]


def fixtures() -> Iterator[tuple[str, Any, list[Any], bool, list[tuple[str, str]]]]:
    """(url, request, response documents, streamed?, request headers)."""
    chat_chunks = [json.loads(c[6:]) for c in chat_stream(include_usage=True)[:-1]]
    yield f"{OPENAI}/chat/completions", CHAT_REQUEST, [CHAT_BODY], False, []
    yield f"{OPENAI}/chat/completions", stream_request(), chat_chunks, True, []
    yield f"{OPENAI}/responses", RESPONSES_REQUEST, [RESPONSE], False, []
    response_events = [json.loads(e.split(b"data: ")[1]) for e in responses_stream()]
    yield f"{OPENAI}/responses", RESPONSES_REQUEST, response_events, True, []
    anthropic_events = [json.loads(e.split(b"data: ")[1]) for e in ANTHROPIC_STREAM]
    yield ANTHROPIC, ANTHROPIC_REQUEST, [ANTHROPIC_BODY], False, ANTHROPIC_HEADERS
    yield ANTHROPIC, ANTHROPIC_REQUEST, anthropic_events, True, ANTHROPIC_HEADERS


def test_wrong_types_anywhere_never_raise() -> None:
    for url, request, documents, streamed, request_headers in fixtures():
        for position, document in enumerate(documents):
            for mutated in mutations(document):
                docs = [*documents[:position], mutated, *documents[position + 1 :]]
                if streamed:
                    chunks = [b"data: " + compact(d) + b"\n\n" for d in docs]
                else:
                    chunks = [compact(docs[0])]
                exchange = make_exchange(
                    url,
                    request,
                    chunks=chunks,
                    content_type=SSE if streamed else "application/json",
                    request_headers=request_headers,
                )
                assert parse(exchange) is not None


def test_wrong_request_types_never_raise() -> None:
    for url, request, documents, _, request_headers in fixtures():
        for mutated in mutations(request):
            exchange = make_exchange(
                url, mutated, body=compact(documents[0]), request_headers=request_headers
            )
            parse(exchange)


def test_cut_and_garbled_bodies_never_raise() -> None:
    rng = random.Random(20240601)
    streams = [
        b"".join(chat_stream(include_usage=True)),
        b"".join(responses_stream()),
        b"".join(ANTHROPIC_STREAM),
        compact(CHAT_BODY),
    ]
    targets = [
        (f"{OPENAI}/chat/completions", stream_request(), []),
        (f"{OPENAI}/responses", RESPONSES_REQUEST, []),
        (ANTHROPIC, ANTHROPIC_REQUEST, ANTHROPIC_HEADERS),
        (f"{OPENAI}/embeddings", {"model": "m", "input": "x"}, []),
    ]
    for _ in range(400):
        data = bytearray(rng.choice(streams)[: rng.randrange(0, 4000)])
        for _ in range(rng.randrange(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        url, request, request_headers = rng.choice(targets)
        exchange = make_exchange(
            url,
            request,
            body=bytes(data),
            status=rng.choice([200, 200, 400, 500, 502]),
            content_type=rng.choice([SSE, "application/json", "text/html", None]),
            headers=rng.choice([[], [("content-encoding", "gzip")], [("content-encoding", "br")]]),
            request_headers=request_headers,
        )
        assert parse(exchange) is not None


# -- the SSE decoder ----------------------------------------------------------------------------
def test_sse_fields_comments_and_multiline_data() -> None:
    stream = (
        b"\xef\xbb\xbf: keep-alive comment\n"
        b"retry: 3000\n"
        b"id: 7\n"
        b"event: update\n"
        b"data: first\n"
        b"data:second\n"
        b"data\n"
        b"unknown: ignored\n"
        b"\n"
        b"data: {}\n"
        b"\n"
        b"event: no-data-so-dropped\n"
        b"\n"
        b"id: bad\x00id\n"
        b"retry: soon\n"
        b"data:  two spaces\n"
        b"\n"
        b"data: cut off at the end"
    )
    assert decode_sse([stream]) == [
        SSEEvent("update", "first\nsecond\n", "7", 3000, 0),
        SSEEvent("message", "{}", "7", 3000, 0),
        SSEEvent("message", " two spaces", "7", 3000, 0),
    ]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_sse_line_ends_and_chunk_indices(eol: bytes) -> None:
    text = "event: a\ndata: é\n\ndata: 🌍\n\n".encode().replace(b"\n", eol)
    for chunks in splits(text):
        events = decode_sse(chunks)
        assert [(e.event, e.data) for e in events] == [("a", "é"), ("message", "🌍")]
        # Each event is stamped with the chunk holding the first byte of its final line end.
        last_end = len(text) - len(eol)
        starts = [sum(len(c) for c in chunks[:i]) for i in range(len(chunks))]
        assert events[-1].chunk_index == max(i for i, s in enumerate(starts) if s <= last_end)


def test_sse_any_chunking_gives_the_events_of_the_whole_stream() -> None:
    # Chunks of whole LF-ended lines take a fast path (decoded at once); anything else
    # (a partial line pending, a CR) goes line by line. Both must agree everywhere.
    stream = "\ufeffid: 1\nevent: e\ndata: é\n: note\ndata: 🌍\n\nretry: 5\ndata: x\n\n".encode()
    whole = [(e.event, e.data, e.id, e.retry) for e in decode_sse([stream])]
    assert whole == [("e", "é\n🌍", "1", None), ("message", "x", "1", 5)]
    lines = stream.split(b"\n")
    one_line_each = [line + b"\n" for line in lines[:-1]]
    for chunks in [*splits(stream), one_line_each]:
        assert [(e.event, e.data, e.id, e.retry) for e in decode_sse(chunks)] == whole


def test_sse_crlf_split_between_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r", 0) == []
    assert decoder.feed(b"\n\r", 1) == [SSEEvent("message", "x", "", None, 1)]
    assert decoder.feed(b"\ndata: y\r\n\r\n", 2) == [SSEEvent("message", "y", "", None, 2)]
    assert not decoder.pending
    decoder.feed(b"data: z", 3)
    assert decoder.pending


def test_sse_invalid_utf8_is_replaced() -> None:
    assert decode_sse([b"data: \xff\xfe ok\n\n"])[0].data == "\ufffd\ufffd ok"


def test_llmcall_fields_are_all_considered() -> None:
    # When LLMCall grows a field, this reminds us to decide what providers put there.
    timing = {
        "url",
        "started_at",
        "duration_s",
        "time_to_first_chunk_s",
        "chunk_offsets_s",
        "source",
        "recorded_duration_s",
        "recorded_time_to_first_chunk_s",
        "server_address",
        "server_port",
        "request_body",
        "response_body",
    }
    names = {f.name for f in dataclasses.fields(LLMCall)}
    assert names == set(SEMANTIC_DEFAULTS) | timing


# -- the fixtures are what the official SDKs accept ----------------------------------------------
def test_fixtures_validate_against_the_installed_sdks() -> None:
    pydantic = pytest.importorskip("pydantic")
    chat = pytest.importorskip("openai.types.chat")
    responses = pytest.importorskip("openai.types.responses")
    anthropic_types = pytest.importorskip("anthropic.types")
    chat.ChatCompletion.model_validate(CHAT_BODY)
    completion = pytest.importorskip("openai.types").Completion
    completion.model_validate(COMPLETION_BODY)
    # only the last text chunk: the SDK's type has no null finish_reason, the wire has
    completion.model_validate(json.loads(completion_stream()[3][6:]))
    for chunk in chat_stream(include_usage=True)[:-1]:
        chat.ChatCompletionChunk.model_validate(json.loads(chunk[6:]))
    responses.Response.model_validate(RESPONSE)
    response_event = pydantic.TypeAdapter(responses.ResponseStreamEvent)
    for event in responses_stream():
        response_event.validate_python(json.loads(event.split(b"data: ")[1]))
    anthropic_types.Message.model_validate(ANTHROPIC_BODY)
    message_event = pydantic.TypeAdapter(anthropic_types.RawMessageStreamEvent)
    for event in ANTHROPIC_STREAM[:2] + ANTHROPIC_STREAM[3:]:  # the SDK has no ping type
        message_event.validate_python(json.loads(event.split(b"data: ")[1]))


def test_our_sse_decoder_agrees_with_the_openai_sdk() -> None:
    streaming = pytest.importorskip("openai._streaming")
    data = b"".join(ANTHROPIC_STREAM + responses_stream()).replace(b"\n", b"\r\n")
    for chunks in [[data], [data[i : i + 7] for i in range(0, len(data), 7)]]:
        theirs = streaming.SSEDecoder().iter_bytes(iter(chunks))
        ours = decode_sse(chunks)
        assert [(e.event, e.data) for e in ours] == [(e.event, e.data) for e in theirs]
