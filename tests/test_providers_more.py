"""providers/ for Bedrock, Gemini and Ollama: raw exchanges (hand-built wire bytes) → LLMCall."""

from __future__ import annotations

import base64
import gzip
import json
import random
import struct
from typing import Any

from test_providers import check, compact, make_exchange, mutations, parse, splits

from pytest_llmobs.calls import Usage
from pytest_llmobs.providers import Route
from pytest_llmobs.providers.eventstream import decode_event_stream
from pytest_llmobs.providers.ndjson import decode_ndjson
from pytest_llmobs.testing.eventstream import (
    chunk_frame,
    encode_frame,
    event_frame,
    exception_frame,
)

BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com/model"
SIGNED = [
    ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20250101/us-east-1/bedrock/aws4_request"),
    ("X-Amz-Date", "20250101T000000Z"),
    ("amz-sdk-request", "attempt=1; max=3"),
]
EVENTSTREAM = "application/vnd.amazon.eventstream"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
OLLAMA = "http://localhost:11434/api"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

CONVERSE_REQUEST = {
    "messages": [{"role": "user", "content": [{"text": "Capital of France?"}]}],
    "inferenceConfig": {"maxTokens": 64, "temperature": 0.2},
}
CONVERSE_BODY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
    "metrics": {"latencyMs": 321},
}
CONVERSE_FIELDS: dict[str, Any] = {
    "provider": "aws.bedrock",
    "operation": "chat",
    "request_model": "anthropic.claude-test-v1:0",
    "max_tokens": 64,
    "temperature": 0.2,
    "usage": Usage(input_tokens=12, output_tokens=3, total_tokens=15),
    "finish_reasons": ("end_turn",),
    "output_text": "Paris.",
    "request_id": "req-1",
    "attributes": {"aws.bedrock.latency_ms": 321},
}


def converse_url(action: str = "converse", model: str = "anthropic.claude-test-v1:0") -> str:
    return f"{BEDROCK}/{model}/{action}"


def converse_frames(stop: str = "end_turn", *, metadata: bool = True) -> list[bytes]:
    def delta(piece: dict[str, Any], index: int = 0) -> bytes:
        return event_frame("contentBlockDelta", {"delta": piece, "contentBlockIndex": index})

    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        delta({"reasoningContent": {"text": "thinking…"}}),
        delta({"text": "Par"}, 1),
        delta({"text": "is."}, 1),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}),
        event_frame("messageStop", {"stopReason": stop}),
    ]
    usage = {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15}
    if metadata:
        frames.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 99}}))
    return frames


def bedrock_exchange(
    url: str, request: Any, chunks: list[bytes], content_type: str = EVENTSTREAM, **kw: Any
) -> Any:
    kw.setdefault("request_headers", SIGNED)
    kw.setdefault("headers", [("x-amzn-RequestId", "req-1")])
    return make_exchange(url, request, chunks=chunks, content_type=content_type, **kw)


# -- Bedrock: Converse ------------------------------------------------------------------
def test_converse_body() -> None:
    exchange = bedrock_exchange(
        converse_url(), CONVERSE_REQUEST, [compact(CONVERSE_BODY)], "application/json"
    )
    check(parse(exchange), **CONVERSE_FIELDS)


def test_converse_stream_split_anywhere() -> None:
    data = b"".join(converse_frames())
    expected = {
        **CONVERSE_FIELDS,
        "stream": True,
        "attributes": {"aws.bedrock.latency_ms": 99},
    }
    for chunks in list(splits(data))[::37]:  # every frame boundary and then some
        exchange = bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, chunks)
        call = check(parse(exchange), **expected)
        assert call.response_body[0] == {
            "messageStart": {"role": "assistant", "p": call.response_body[0]["messageStart"]["p"]}
        }


def test_converse_stream_timing_counts_output_frames() -> None:
    exchange = bedrock_exchange(
        converse_url("converse-stream"), CONVERSE_REQUEST, converse_frames()
    )
    call = parse(exchange)
    assert call is not None
    # reasoning and both text deltas are output; start, stop and metadata frames are not
    assert call.chunk_offsets_s == (0.2, 0.3, 0.4) and call.time_to_first_chunk_s == 0.2


def test_converse_stream_truncations() -> None:
    url = converse_url("converse-stream")
    frames = converse_frames("max_tokens")
    call = parse(bedrock_exchange(url, CONVERSE_REQUEST, frames))
    check(
        call,
        **{
            **CONVERSE_FIELDS,
            "stream": True,
            "finish_reasons": ("max_tokens",),
            "truncated": True,
            "truncation_reason": "max_tokens",
            "attributes": {"aws.bedrock.latency_ms": 99},
        },
    )
    # cut inside a frame: what decoded counts, the rest is a stream without its end
    cut = b"".join(frames)[:-40]
    call = parse(
        bedrock_exchange(
            url, CONVERSE_REQUEST, [cut], complete=False, error=ConnectionResetError("reset")
        )
    )
    assert call is not None and call.truncated and call.output_text == "Paris."
    assert call.error_type == "ConnectionResetError" and call.usage == Usage()
    # a stream that just stops before messageStop
    call = parse(bedrock_exchange(url, CONVERSE_REQUEST, frames[:4]))
    assert call is not None and call.truncation_reason == "stream_ended_without_terminator"


def test_converse_stream_bad_crc_stops_decoding() -> None:
    frames = converse_frames()
    broken = bytearray(frames[3])
    broken[-1] ^= 0xFF  # message CRC
    data = [*frames[:3], bytes(broken), *frames[4:]]
    call = parse(bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, data))
    assert call is not None and call.truncated
    assert call.error_type == "invalid_event_stream" and "ChecksumMismatch" in (call.error or "")
    assert call.output_text == "Par"


def test_converse_stream_exception_frame() -> None:
    frames = [*converse_frames()[:3], exception_frame("modelStreamErrorException", "boom")]
    call = parse(bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, frames))
    assert call is not None and call.error_type == "ModelStreamErrorException"
    assert (
        call.error == "boom" and call.truncation_reason == "stream_error: ModelStreamErrorException"
    )
    error_frame = encode_frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}, b""
    )
    call = parse(bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, [error_frame]))
    assert call is not None and (call.error_type, call.error) == ("InternalFailure", "oops")


def test_converse_tool_use_cache_and_stream_tool_fragments() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 4,
            "outputTokens": 9,
            "totalTokens": 113,
            "cacheReadInputTokens": 100,
        },
    }
    call = parse(
        bedrock_exchange(converse_url(), CONVERSE_REQUEST, [compact(body)], "application/json")
    )
    assert call is not None and call.output_text == 'Let me check.\nweather({"city": "Paris"})'
    assert call.usage == Usage(
        input_tokens=104, output_tokens=9, total_tokens=113, cached_input_tokens=100
    )
    start = event_frame(
        "contentBlockStart",
        {"start": {"toolUse": {"toolUseId": "t1", "name": "weather"}}, "contentBlockIndex": 0},
    )
    pieces = [
        event_frame(
            "contentBlockDelta", {"delta": {"toolUse": {"input": p}}, "contentBlockIndex": 0}
        )
        for p in ('{"ci', 'ty": "Paris"}')
    ]
    stop = event_frame("messageStop", {"stopReason": "tool_use"})
    call = parse(
        bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, [start, *pieces, stop])
    )
    assert (
        call is not None and call.output_text == 'weather({"city": "Paris"})' and not call.truncated
    )
    bad = event_frame(
        "contentBlockDelta", {"delta": {"toolUse": {"input": '{"ci'}}, "contentBlockIndex": 0}
    )
    call = parse(
        bedrock_exchange(converse_url("converse-stream"), CONVERSE_REQUEST, [start, bad, stop])
    )
    assert call is not None and call.truncation_reason == "invalid_json"


def test_bedrock_http_errors() -> None:
    for error_type_header, expected in [
        (
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "ThrottlingException",
        ),
        ("com.amazon.coral.service#ExpiredTokenException", "ExpiredTokenException"),
    ]:
        exchange = bedrock_exchange(
            converse_url(),
            CONVERSE_REQUEST,
            [b'{"message":"slow down"}'],
            "application/json",
            status=429,
            headers=[("x-amzn-ErrorType", error_type_header)],
        )
        call = parse(exchange)
        assert call is not None and (call.error_type, call.error) == (expected, "slow down")
    html = bedrock_exchange(
        converse_url(),
        CONVERSE_REQUEST,
        [b"<html>Bad Gateway</html>"],
        "text/html",
        status=502,
        reason="Bad Gateway",
    )
    call = parse(html)
    assert call is not None and (call.error_type, call.error) == ("502", "HTTP 502 Bad Gateway")


def test_bedrock_detection_attempts_and_routes() -> None:
    unsigned = make_exchange(
        "http://gw.local/model/m/converse", CONVERSE_REQUEST, body=compact(CONVERSE_BODY)
    )
    assert parse(unsigned) is None  # the path alone is too generic
    routed = parse(unsigned, [Route.parse("gw.local=aws.bedrock")])
    assert routed is not None and routed.provider == "aws.bedrock"
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude-test"
    headers = [*SIGNED[:2], ("amz-sdk-request", "attempt=3; max=3")]
    call = parse(
        bedrock_exchange(
            converse_url(model=arn),
            CONVERSE_REQUEST,
            [compact(CONVERSE_BODY)],
            "application/json",
            request_headers=headers,
        )
    )
    assert call is not None and call.attempt == 2
    assert (
        call.request_model
        == "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-test"
    )


# -- Bedrock: InvokeModel ---------------------------------------------------------------
CLAUDE_REQUEST = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "Hi"}],
}
CLAUDE_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "usage": {"input_tokens": 8, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 20},
    },
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 8,
            "outputTokenCount": 20,
            "invocationLatency": 500,
            "firstByteLatency": 80,
        },
    },
]


def test_invoke_anthropic_body_and_stream() -> None:
    body = {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 8, "output_tokens": 2},
    }
    url = converse_url("invoke", "anthropic.claude-test")
    call = parse(bedrock_exchange(url, CLAUDE_REQUEST, [compact(body)], "application/json"))
    check(
        call,
        provider="aws.bedrock",
        operation="chat",
        request_model="anthropic.claude-test",
        response_model="claude-test",
        max_tokens=20,
        usage=Usage(
            input_tokens=8,
            output_tokens=2,
            cached_input_tokens=None,
            cache_creation_input_tokens=None,
        ),
        finish_reasons=("end_turn",),
        output_text="Hello",
        request_id="req-1",
        response_id="msg_bdrk_1",
    )
    frames = [chunk_frame(event) for event in CLAUDE_EVENTS]
    call = parse(
        bedrock_exchange(
            converse_url("invoke-with-response-stream", "anthropic.claude-test"),
            CLAUDE_REQUEST,
            frames,
        )
    )
    check(
        call,
        provider="aws.bedrock",
        operation="chat",
        request_model="anthropic.claude-test",
        response_model="claude-test",
        stream=True,
        max_tokens=20,
        usage=Usage(input_tokens=8, output_tokens=20),
        finish_reasons=("max_tokens",),
        truncated=True,
        truncation_reason="max_tokens",
        output_text="Hello",
        request_id="req-1",
        response_id="msg_bdrk_1",
        attributes={
            "aws.bedrock.invocation_latency_ms": 500,
            "aws.bedrock.first_byte_latency_ms": 80,
        },
    )


def test_invoke_other_families() -> None:
    token_headers = [
        ("x-amzn-bedrock-input-token-count", "6"),
        ("x-amzn-bedrock-output-token-count", "2"),
    ]
    cases: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        (
            "amazon.titan-text-test",
            {"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 2, "temperature": 0}},
            {
                "inputTextTokenCount": 6,
                "results": [
                    {"tokenCount": 2, "outputText": "Hi there", "completionReason": "LENGTH"}
                ],
            },
            {
                "operation": "text_completion",
                "max_tokens": 2,
                "temperature": 0.0,
                "finish_reasons": ("LENGTH",),
                "truncated": True,
                "truncation_reason": "LENGTH",
                "output_text": "Hi there",
            },
        ),
        (
            "mistral.mistral-test",
            {"prompt": "<s>[INST] Hi [/INST]", "max_tokens": 50},
            {"outputs": [{"text": "Hi there", "stop_reason": "stop"}]},
            {
                "operation": "text_completion",
                "max_tokens": 50,
                "finish_reasons": ("stop",),
                "output_text": "Hi there",
            },
        ),
        (
            "cohere.command-r-test",
            {"message": "Hi"},
            {"text": "Hi there", "finish_reason": "COMPLETE"},
            {
                "operation": "text_completion",
                "finish_reasons": ("COMPLETE",),
                "output_text": "Hi there",
            },
        ),
        (
            "amazon.titan-embed-test",
            {"inputText": "Hi"},
            {"embedding": [0.1, 0.2], "inputTextTokenCount": 6},
            {"operation": "embeddings", "usage": Usage(input_tokens=6)},
        ),
        (
            "openai.gpt-oss-test",
            {"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 9},
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hi there"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 6, "completion_tokens": 2},
            },
            {
                "operation": "chat",
                "max_tokens": 9,
                "finish_reasons": ("stop",),
                "output_text": "Hi there",
            },
        ),
    ]
    for model, request, body, fields in cases:
        call = parse(
            bedrock_exchange(
                converse_url("invoke", model),
                request,
                [compact(body)],
                "application/json",
                headers=token_headers,
            )
        )
        check(
            call,
            provider="aws.bedrock",
            request_model=model,
            request_id=None,
            **{"usage": Usage(input_tokens=6, output_tokens=2), **fields},
        )


def test_invoke_stream_native_and_nova() -> None:
    llama = [
        {
            "generation": "Hi",
            "prompt_token_count": 6,
            "generation_token_count": 1,
            "stop_reason": None,
        },
        {
            "generation": " there",
            "prompt_token_count": None,
            "generation_token_count": 2,
            "stop_reason": "length",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 6,
                "outputTokenCount": 2,
                "invocationLatency": 40,
                "firstByteLatency": 10,
            },
        },
    ]
    url = converse_url("invoke-with-response-stream", "meta.llama-test")
    call = parse(
        bedrock_exchange(url, {"prompt": "Hi", "max_gen_len": 2}, [chunk_frame(c) for c in llama])
    )
    check(
        call,
        provider="aws.bedrock",
        operation="text_completion",
        request_model="meta.llama-test",
        stream=True,
        max_tokens=2,
        usage=Usage(input_tokens=6, output_tokens=2),
        finish_reasons=("length",),
        truncated=True,
        truncation_reason="length",
        output_text="Hi there",
        request_id="req-1",
        attributes={
            "aws.bedrock.invocation_latency_ms": 40,
            "aws.bedrock.first_byte_latency_ms": 10,
        },
    )
    nova = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 6, "outputTokens": 1, "cacheReadInputTokenCount": 4}
            },
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 1},
        },
    ]
    request = {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"max_new_tokens": 5},
    }
    url = converse_url("invoke-with-response-stream", "amazon.nova-test")
    call = parse(bedrock_exchange(url, request, [chunk_frame(c) for c in nova]))
    check(
        call,
        provider="aws.bedrock",
        operation="chat",
        request_model="amazon.nova-test",
        stream=True,
        max_tokens=5,
        usage=Usage(input_tokens=10, output_tokens=1, cached_input_tokens=4),
        finish_reasons=("end_turn",),
        output_text="Hi",
        request_id="req-1",
    )


def test_event_stream_decoder_reports_frames_and_errors() -> None:
    frames = converse_frames()
    decoded = decode_event_stream([b"".join(frames)[:7], b"".join(frames)[7:]])
    assert [f.kind for f in decoded.frames][:2] == ["messageStart", "contentBlockDelta"]
    assert decoded.error is None and decoded.frames[0].chunk_index == 1
    garbage = struct.pack(">II", 16, 0) + b"\x00\x00\x00\x00" + b"\x00" * 4
    assert decode_event_stream([garbage]).error is not None
    huge = struct.pack(">II", 2**31, 2**30)
    assert decode_event_stream([huge + b"\x00" * 20]).error is not None


# -- Gemini -----------------------------------------------------------------------------
GEMINI_REQUEST = {
    "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
    "generationConfig": {"maxOutputTokens": 64, "temperature": 0.4},
}


def gemini_response(text: str, finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "r1",
        **extra,
    }


USAGE = {
    "promptTokenCount": 9,
    "candidatesTokenCount": 2,
    "thoughtsTokenCount": 30,
    "totalTokenCount": 41,
    "cachedContentTokenCount": 4,
    "toolUsePromptTokenCount": 1,
}
GEMINI_FIELDS: dict[str, Any] = {
    "provider": "gcp.gemini",
    "operation": "generate_content",
    "request_model": "gemini-2.5-flash",
    "response_model": "gemini-2.5-flash-001",
    "response_id": "r1",
    "max_tokens": 64,
    "temperature": 0.4,
    "usage": Usage(
        input_tokens=10,
        output_tokens=32,
        total_tokens=41,
        cached_input_tokens=4,
        reasoning_tokens=30,
    ),
    "finish_reasons": ("STOP",),
    "output_text": "Paris.",
}


def test_gemini_body_with_thoughts_and_function_call() -> None:
    body = gemini_response("Paris.", usageMetadata=USAGE)
    body["candidates"][0]["content"]["parts"].insert(0, {"text": "Let me think", "thought": True})
    call = parse(make_exchange(f"{GEMINI}:generateContent", GEMINI_REQUEST, body=compact(body)))
    check(call, **GEMINI_FIELDS)
    tool = gemini_response("x")
    tool["candidates"][0]["content"]["parts"] = [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}
    ]
    call = parse(make_exchange(f"{GEMINI}:generateContent", GEMINI_REQUEST, body=compact(tool)))
    assert call is not None and call.output_text == 'weather({"city": "Paris"})'


def test_gemini_sse_stream_crlf_split_anywhere() -> None:
    chunks = [
        gemini_response("Par", None),
        gemini_response("is.", None),
        gemini_response("", "STOP", usageMetadata=USAGE),
    ]
    data = b"".join(b"data: " + compact(c) + b"\r\n\r\n" for c in chunks)
    url = f"{GEMINI}:streamGenerateContent?alt=sse"
    for split in list(splits(data))[::41]:
        call = parse(make_exchange(url, GEMINI_REQUEST, chunks=split, content_type=SSE))
        check(call, **{**GEMINI_FIELDS, "stream": True})


def test_gemini_stream_without_finish_error_event_and_json_array() -> None:
    url = f"{GEMINI}:streamGenerateContent?alt=sse"
    part = b"data: " + compact(gemini_response("Par", None)) + b"\r\n\r\n"
    call = parse(make_exchange(url, GEMINI_REQUEST, chunks=[part], content_type=SSE))
    assert call is not None and call.truncation_reason == "stream_ended_without_terminator"
    error = (
        b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\r\n\r\n'
    )
    call = parse(make_exchange(url, GEMINI_REQUEST, chunks=[part, error], content_type=SSE))
    assert call is not None and (call.error_type, call.error) == ("UNAVAILABLE", "overloaded")
    assert call.truncation_reason == "stream_error: UNAVAILABLE"
    array = compact(
        [gemini_response("Par", None), gemini_response("is.", "MAX_TOKENS", usageMetadata=USAGE)]
    )
    call = parse(make_exchange(f"{GEMINI}:streamGenerateContent", GEMINI_REQUEST, body=array))
    assert call is not None and call.stream and call.output_text == "Paris."
    assert call.truncation_reason == "MAX_TOKENS" and call.usage.output_tokens == 32


def test_gemini_blocked_prompt_safety_json_and_vertex() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    call = parse(make_exchange(f"{GEMINI}:generateContent", GEMINI_REQUEST, body=compact(blocked)))
    assert (
        call is not None and call.finish_reasons == ("PROHIBITED_CONTENT",) and not call.truncated
    )
    assert call.attributes == {"gcp.gemini.prompt_block_reason": "PROHIBITED_CONTENT"}
    json_request = {**GEMINI_REQUEST, "generationConfig": {"responseMimeType": "application/json"}}
    safety = gemini_response("", "SAFETY")
    call = parse(make_exchange(f"{GEMINI}:generateContent", json_request, body=compact(safety)))
    assert call is not None and call.finish_reasons == ("SAFETY",) and not call.truncated
    call = parse(
        make_exchange(
            f"{GEMINI}:generateContent", json_request, body=compact(gemini_response("Paris"))
        )
    )
    assert call is not None and call.truncation_reason == "invalid_json"
    vertex = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-test:generateContent"
    call = parse(make_exchange(vertex, GEMINI_REQUEST, body=compact(gemini_response("Paris."))))
    assert call is not None and call.provider == "gcp.vertex_ai"
    assert parse(make_exchange(f"{GEMINI}:countTokens", GEMINI_REQUEST, body=b"{}")) is None


def test_gemini_errors_and_key_redaction() -> None:
    error = {
        "error": {
            "code": 429,
            "message": "Quota exceeded",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "28s"}],
        }
    }
    call = parse(
        make_exchange(
            f"{GEMINI}:generateContent?key=AIzaSECRET",
            GEMINI_REQUEST,
            status=429,
            body=compact(error),
        )
    )
    assert call is not None and (call.error_type, call.error) == (
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
    )
    assert call.attributes["gcp.gemini.retry_delay"] == "28s"
    assert "AIzaSECRET" not in call.url and call.url.endswith("key=<redacted>")
    call = parse(
        make_exchange(
            f"{GEMINI}:generateContent",
            GEMINI_REQUEST,
            status=500,
            body=b'{"error": {"code": 500}}',
        )
    )
    assert call is not None and call.error_type == "500"


# -- Ollama -----------------------------------------------------------------------------
CHAT_REQUEST = {
    "model": "llama3.2",
    "messages": [{"role": "user", "content": "Hi"}],
    "options": {"num_predict": 40, "temperature": 0.1},
}
FINAL = {
    "done": True,
    "done_reason": "stop",
    "total_duration": 900,
    "load_duration": 100,
    "prompt_eval_count": 6,
    "prompt_eval_duration": 200,
    "eval_count": 2,
    "eval_duration": 600,
}
OLLAMA_FIELDS: dict[str, Any] = {
    "provider": "ollama",
    "operation": "chat",
    "request_model": "llama3.2",
    "response_model": "llama3.2",
    "max_tokens": 40,
    "temperature": 0.1,
    "usage": Usage(input_tokens=6, output_tokens=2),
    "finish_reasons": ("stop",),
    "output_text": "Hi 👋",
    "attributes": {
        "ollama.total_duration_ns": 900,
        "ollama.load_duration_ns": 100,
        "ollama.prompt_eval_duration_ns": 200,
        "ollama.eval_duration_ns": 600,
    },
}


def chat_line(content: str, **extra: Any) -> bytes:
    return (
        compact(
            {
                "model": "llama3.2",
                "message": {"role": "assistant", "content": content},
                "done": False,
                **extra,
            }
        )
        + b"\n"
    )


def test_ollama_chat_body_and_ndjson_split_anywhere() -> None:
    whole = {"model": "llama3.2", "message": {"role": "assistant", "content": "Hi 👋"}, **FINAL}
    call = parse(
        make_exchange(f"{OLLAMA}/chat", {**CHAT_REQUEST, "stream": False}, body=compact(whole))
    )
    check(call, **OLLAMA_FIELDS)
    data = chat_line("Hi ") + chat_line("👋") + chat_line("", **FINAL)
    for split in list(splits(data))[::23]:
        call = parse(
            make_exchange(f"{OLLAMA}/chat", CHAT_REQUEST, chunks=split, content_type=NDJSON)
        )
        check(call, **{**OLLAMA_FIELDS, "stream": True})


def test_ollama_generate_truncation_errors_and_json() -> None:
    lines = [
        compact({"model": "llama3.2", "response": "Hi", "done": False}) + b"\n",
        compact({"model": "llama3.2", "response": "", **FINAL, "done_reason": "length"}) + b"\n",
    ]
    call = parse(
        make_exchange(
            f"{OLLAMA}/generate",
            {"model": "llama3.2", "prompt": "Hi"},
            chunks=lines,
            content_type=NDJSON,
        )
    )
    assert (
        call is not None
        and call.operation == "text_completion"
        and call.truncation_reason == "length"
    )
    # default streaming, no content type, cut before the last line
    call = parse(
        make_exchange(f"{OLLAMA}/chat", CHAT_REQUEST, chunks=[chat_line("Hi")], content_type=None)
    )
    assert call is not None and call.truncation_reason == "stream_ended_without_terminator"
    error_line = compact({"error": "model runner crashed"}) + b"\n"
    call = parse(
        make_exchange(
            f"{OLLAMA}/chat",
            CHAT_REQUEST,
            chunks=[chat_line("Hi"), error_line],
            content_type=NDJSON,
        )
    )
    assert call is not None and (call.error_type, call.error) == ("error", "model runner crashed")
    call = parse(
        make_exchange(
            f"{OLLAMA}/chat", CHAT_REQUEST, status=404, body=b'{"error":"model \\"x\\" not found"}'
        )
    )
    assert call is not None and (call.error_type, call.error) == ("404", 'model "x" not found')
    json_request = {**CHAT_REQUEST, "format": "json", "stream": False}
    whole = {"model": "llama3.2", "message": {"role": "assistant", "content": '{"a": '}, **FINAL}
    call = parse(make_exchange(f"{OLLAMA}/chat", json_request, body=compact(whole)))
    assert call is not None and call.truncation_reason == "invalid_json"


def test_ollama_tool_calls_embeddings_and_detection() -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}],
    }
    call = parse(
        make_exchange(
            f"{OLLAMA}/chat",
            {**CHAT_REQUEST, "stream": False},
            body=compact({"model": "llama3.2", "message": message, **FINAL}),
        )
    )
    assert call is not None and call.output_text == 'weather({"city": "Paris"})'
    embed = {
        "model": "all-minilm",
        "embeddings": [[0.1]],
        "total_duration": 5,
        "prompt_eval_count": 3,
    }
    call = parse(
        make_exchange(
            f"{OLLAMA}/embed", {"model": "all-minilm", "input": "Hi"}, body=compact(embed)
        )
    )
    check(
        call,
        provider="ollama",
        operation="embeddings",
        request_model="all-minilm",
        response_model="all-minilm",
        usage=Usage(input_tokens=3),
        attributes={"ollama.total_duration_ns": 5},
    )
    assert (
        parse(make_exchange(f"{OLLAMA}/chat", {"model": "m", "text": "no messages"}, body=b"{}"))
        is None
    )


def test_ndjson_decoder() -> None:
    lines = decode_ndjson([b'{"a":', b' 1}\n\n{"b"', b": 2}\nnot json\n", b'{"c": 3}'])
    assert [(line.value, line.chunk_index) for line in lines] == [
        ({"a": 1}, 1),
        ({"b": 2}, 2),
        (None, 2),
        ({"c": 3}, 3),
    ]


# -- never raise ------------------------------------------------------------------------
def fixtures() -> list[tuple[str, Any, list[Any], str, list[tuple[str, str]]]]:
    """(url, request, documents, framing, request headers)."""
    return [
        (converse_url(), CONVERSE_REQUEST, [CONVERSE_BODY], "json", SIGNED),
        (
            converse_url("invoke-with-response-stream", "anthropic.claude-test"),
            CLAUDE_REQUEST,
            CLAUDE_EVENTS,
            "chunks",
            SIGNED,
        ),
        (
            f"{GEMINI}:streamGenerateContent?alt=sse",
            GEMINI_REQUEST,
            [gemini_response("a", None), gemini_response("b", usageMetadata=USAGE)],
            "sse",
            [],
        ),
        (
            f"{OLLAMA}/chat",
            CHAT_REQUEST,
            [json.loads(chat_line("Hi")), {"model": "m", **FINAL}],
            "ndjson",
            [],
        ),
    ]


def encode(documents: list[Any], framing: str) -> tuple[list[bytes], str]:
    if framing == "json":
        return [compact(documents[0])], "application/json"
    if framing == "chunks":
        return [
            chunk_frame(d)
            if isinstance(d, dict)
            else event_frame("chunk", {"bytes": base64.b64encode(compact(d)).decode()})
            for d in documents
        ], EVENTSTREAM
    if framing == "sse":
        return [b"data: " + compact(d) + b"\r\n\r\n" for d in documents], SSE
    return [compact(d) + b"\n" for d in documents], NDJSON


def test_wrong_types_anywhere_never_raise() -> None:
    for url, request, documents, framing, headers in fixtures():
        for position, document in enumerate(documents):
            for mutated in mutations(document):
                docs = [*documents[:position], mutated, *documents[position + 1 :]]
                chunks, content_type = encode(docs, framing)
                exchange = make_exchange(
                    url, request, chunks=chunks, content_type=content_type, request_headers=headers
                )
                assert parse(exchange) is not None
        for mutated in mutations(request):
            chunks, content_type = encode(documents, framing)
            parse(
                make_exchange(
                    url, mutated, chunks=chunks, content_type=content_type, request_headers=headers
                )
            )


def test_cut_and_garbled_bodies_never_raise() -> None:
    rng = random.Random(20250301)
    targets = fixtures()
    for _ in range(300):
        url, request, documents, framing, headers = rng.choice(targets)
        chunks, content_type = encode(documents, framing)
        data = bytearray(b"".join(chunks)[: rng.randrange(0, 1500)])
        for _ in range(rng.randrange(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        body = gzip.compress(bytes(data)) if rng.random() < 0.1 else bytes(data)
        exchange = make_exchange(
            url,
            request,
            chunks=[body[i : i + 50] for i in range(0, len(body), 50)],
            status=rng.choice([200, 200, 400, 429, 500]),
            content_type=rng.choice([content_type, "application/json", "text/html", None]),
            headers=rng.choice([[], [("content-encoding", "gzip")], [("x-amzn-ErrorType", ":")]]),
            request_headers=headers,
        )
        assert parse(exchange) is not None
