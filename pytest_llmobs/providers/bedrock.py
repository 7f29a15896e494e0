"""Amazon Bedrock runtime: `POST …/model/{modelId}/converse`, `/converse-stream`, `/invoke`,
`/invoke-with-response-stream`.

Converse speaks one format for every model. Invoke carries the model's own body: Anthropic
Messages (read by the anthropic module's folding), Amazon Nova (Converse-shaped), and the
other families (Llama, Mistral, Titan, Cohere Command and Command R, OpenAI-style) through
the few fields they share. Bedrock itself reports usage for every model, in the
`x-amzn-bedrock-*-token-count` headers (whole bodies) or the invocation metrics of the last
stream chunk: each count the body leaves out (Nova sometimes reports only part of its usage)
is taken from there. Streams are binary event-stream frames, decoded by `eventstream`.

Usage is normalised as for Anthropic: `input_tokens` counts every input token, so Converse's
`cacheReadInputTokens` / `cacheWriteInputTokens` are added to its `inputTokens`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from ..calls import LLMCall, Usage
from ..intercept.exchange import Exchange
from . import anthropic
from ._common import (
    StreamRead,
    body_for_record,
    body_json,
    body_pieces,
    check_body,
    finish_stream,
    join_output,
    mark_truncated,
    new_call,
    tool_call_text,
)
from ._json import JSONObject, arguments_ok, arr, integer, load_json, nonempty, number, obj, text
from .eventstream import CONTENT_TYPE, StreamFrame, decode_event_stream

BEDROCK = "aws.bedrock"

_PATH = re.compile(
    r"/model/(?P<model>[^/]+)/"
    r"(?P<action>converse-stream|converse|invoke-with-response-stream|invoke)$"
)
_STREAMING = ("converse-stream", "invoke-with-response-stream")
# Cohere says MAX_TOKENS (Command's `generations[].finish_reason`, Command R's `finish_reason`).
_TRUNCATING = frozenset(
    {"max_tokens", "MAX_TOKENS", "length", "LENGTH", "model_context_window_exceeded"}
)
_METRICS = "amazon-bedrock-invocationMetrics"
_CONVERSE_EVENTS = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop"}
    | {"messageStop", "metadata"}
)
_ATTEMPT = re.compile(r"attempt=(\d+)")


def parse(exchange: Exchange, request: JSONObject, provider: str | None = None) -> LLMCall | None:
    """The call, or None when this is no Bedrock runtime request.

    `provider` comes from a user route: then any host and any signature counts.
    """
    match = _PATH.search(exchange.path.rstrip("/"))
    if match is None or not detects(exchange, request, provider):
        return None
    action, model = match["action"], unquote(match["model"])
    family = "converse" if action.startswith("converse") else _family(request, model)
    call = new_call(exchange, BEDROCK, _operation(family, request, model), request)
    call.request_model = model
    call.stream = action in _STREAMING
    call.attempt = _sdk_attempt(exchange, call.attempt)
    call.request_id = exchange.response_header("x-amzn-requestid")
    _request_params(call, request)
    streamed = _is_event_stream(exchange, call.stream)
    metrics: JSONObject = {}
    if family == "anthropic":
        metrics = _read_anthropic(call, exchange, request, streamed)
    elif family in ("converse", "nova"):
        metrics = _read_converse(call, exchange, streamed)
    else:
        metrics = _read_native(call, exchange, streamed)
    _fallback_usage(call, exchange, metrics)
    return call


def detects(exchange: Exchange, request: JSONObject, provider: str | None = None) -> bool:
    """Whether `parse` makes a call of this request (the response plays no part)."""
    if _PATH.search(exchange.path.rstrip("/")) is None:
        return False
    return provider is not None or _is_aws_request(exchange)


def _is_aws_request(exchange: Exchange) -> bool:
    # The path alone is generic enough to clash: insist on Bedrock's host or an AWS-signed
    # request (SigV4 or the SDK's own headers), which replays carry too.
    auth = exchange.request_header("authorization") or ""
    return (
        "bedrock" in exchange.host
        or auth.startswith("AWS4-")
        or exchange.request_header("x-amz-date") is not None
        or exchange.request_header("amz-sdk-invocation-id") is not None
    )


def _family(request: JSONObject, model: str) -> str:
    if "anthropic_version" in request or (
        "anthropic." in model and isinstance(request.get("messages"), list)
    ):
        return "anthropic"
    messages, config = request.get("messages"), request.get("inferenceConfig")
    if request.get("schemaVersion") == "messages-v1" or (
        isinstance(messages, list) and isinstance(config, dict)
    ):
        return "nova"
    return "native"


def _operation(family: str, request: JSONObject, model: str) -> str:
    if family != "native" or isinstance(request.get("messages"), list):
        return "chat"
    if "embed" in model.lower() or "texts" in request:
        return "embeddings"
    return "text_completion"


def _sdk_attempt(exchange: Exchange, default: int) -> int:
    """botocore numbers its attempts in `amz-sdk-request: attempt=N; max=M` (from 1)."""
    found = _ATTEMPT.search(exchange.request_header("amz-sdk-request") or "")
    return int(found.group(1)) - 1 if found else default


def _request_params(call: LLMCall, request: JSONObject) -> None:
    config = obj(request.get("inferenceConfig"))
    titan = obj(request.get("textGenerationConfig"))
    if call.max_tokens is None:
        candidates = (
            config.get("maxTokens"),
            config.get("max_new_tokens"),
            titan.get("maxTokenCount"),
            request.get("max_gen_len"),
            request.get("max_tokens_to_sample"),
        )
        call.max_tokens = next((v for v in map(integer, candidates) if v is not None), None)
    if call.temperature is None:
        temperatures = (number(config.get("temperature")), number(titan.get("temperature")))
        call.temperature = next((t for t in temperatures if t is not None), None)


def _is_event_stream(exchange: Exchange, requested: bool) -> bool:
    content_type = (exchange.response_header("content-type") or "").lower()
    if CONTENT_TYPE in content_type:
        return True
    status = exchange.status_code
    return requested and not content_type and status is not None and status < 400


# -- whole bodies and errors ------------------------------------------------------------
def _read_body(call: LLMCall, exchange: Exchange) -> JSONObject:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    _apply_aws_error(call, exchange, body)
    check_body(call, exchange, body)
    return obj(body)


def _apply_aws_error(call: LLMCall, exchange: Exchange, body: Any) -> None:
    """Bedrock names the error in `x-amzn-ErrorType` (`ThrottlingException:…`); the body
    has only `{"message": …}`."""
    status = exchange.status_code
    if status is None or status < 400 or call.error_type is not None:
        return
    data = obj(body)
    kind = _error_kind(exchange.response_header("x-amzn-errortype")) or _error_kind(
        nonempty(data.get("__type")) or nonempty(data.get("code"))
    )
    message = nonempty(data.get("message")) or nonempty(data.get("Message"))
    call.error_type = kind or str(status)
    call.error = message or f"HTTP {status} {exchange.reason}".strip()


def _error_kind(value: str | None) -> str | None:
    if not value:
        return None
    # `ThrottlingException:http://internal…`, `com.amazon.coral.service#ExpiredTokenException`
    return nonempty(value.split(":", 1)[0].rsplit("#", 1)[-1].strip())


# -- streams ----------------------------------------------------------------------------
@dataclass
class _Frames:
    """A stream's event frames, its failures noted on `read`."""

    read: StreamRead = field(default_factory=StreamRead)
    events: list[tuple[str, JSONObject, int]] = field(default_factory=list)


def _frames(exchange: Exchange) -> _Frames:
    result = _Frames()
    decoded = decode_event_stream(body_pieces(exchange))
    for frame in decoded.frames:
        data = load_json(frame.payload)
        if frame.message_type != "event":
            result.read.fail(*_frame_error(frame, data))
        elif isinstance(data, dict):
            result.events.append((frame.kind, data, frame.chunk_index))
    if decoded.error is not None and result.read.error_type is None:
        result.read.fail("invalid_event_stream", decoded.error)
    return result


def _frame_error(frame: StreamFrame, data: Any) -> tuple[str, str | None]:
    # In-stream exceptions are named in camelCase (`throttlingException`); capitalise them
    # so they match the same error sent as an HTTP status (`ThrottlingException`).
    kind = frame.kind[:1].upper() + frame.kind[1:] if frame.kind else frame.message_type
    message = nonempty(obj(data).get("message")) or nonempty(obj(data).get("Message"))
    header = frame.headers.get(":error-message")
    return kind, message or (header if isinstance(header, str) else None)


def _chunk_payload(data: JSONObject) -> Any:
    """An invoke stream's `chunk` event: `{"bytes": base64(model JSON)}`."""
    raw = data.get("bytes")
    if not isinstance(raw, str):
        return None
    try:
        return load_json(base64.b64decode(raw, validate=False))
    except (binascii.Error, ValueError):
        return None


# -- Converse (and Nova on invoke, which shares its shapes) ------------------------------
@dataclass
class _ConverseFold:
    """The Converse response a stream has built so far."""

    role: str | None = None
    blocks: dict[int, JSONObject] = field(default_factory=dict)
    stop_reason: str | None = None
    usage: JSONObject = field(default_factory=dict)
    metrics: JSONObject = field(default_factory=dict)

    def merge(self, kind: str, data: JSONObject) -> bool:
        """Fold one event in; True when it carried output."""
        index = integer(data.get("contentBlockIndex")) or 0
        if kind == "messageStart":
            self.role = nonempty(data.get("role"))
        elif kind == "contentBlockStart":
            tool = obj(obj(data.get("start")).get("toolUse"))
            if tool:  # streamed tool input arrives as JSON text fragments
                self.blocks[index] = {"toolUse": {**tool, "input": ""}}
        elif kind == "contentBlockDelta":
            return _merge_delta(self.blocks.setdefault(index, {}), obj(data.get("delta")))
        elif kind == "messageStop":
            self.stop_reason = nonempty(data.get("stopReason")) or self.stop_reason
        elif kind == "metadata":
            self.usage.update(obj(data.get("usage")))
            self.metrics.update(obj(data.get("metrics")))
        return False

    def response(self) -> JSONObject:
        content = [self.blocks[i] for i in sorted(self.blocks)]
        message = {"role": self.role or "assistant", "content": content}
        return {
            "output": {"message": message},
            "stopReason": self.stop_reason,
            "usage": self.usage,
            "metrics": self.metrics,
        }


def _merge_delta(block: JSONObject, delta: JSONObject) -> bool:
    piece = text(delta.get("text"))
    if piece is not None:
        block["text"] = (text(block.get("text")) or "") + piece
        return bool(piece)
    if "toolUse" in delta:
        tool = block.setdefault("toolUse", {"input": ""})
        fragment = text(obj(delta["toolUse"]).get("input")) or ""
        tool["input"] = (text(tool.get("input")) or "") + fragment
        return bool(fragment)
    reasoning = obj(delta.get("reasoningContent"))
    piece = text(reasoning.get("text"))
    if piece is not None:
        thought = obj(block.setdefault("reasoningContent", {"reasoningText": {"text": ""}}))
        holder = obj(thought.setdefault("reasoningText", {"text": ""}))
        holder["text"] = (text(holder.get("text")) or "") + piece
        return bool(piece)
    return False


def _read_converse(call: LLMCall, exchange: Exchange, streamed: bool) -> JSONObject:
    if not streamed:
        response = _read_body(call, exchange)
        _apply_converse(call, response)
        return {}
    frames = _frames(exchange)
    fold = _ConverseFold()
    metrics: JSONObject = {}
    for kind, data, index in frames.events:
        # Converse names the event in the frame header; Nova on invoke wraps it in a
        # base64 chunk as `{"contentBlockDelta": {...}}`.
        events = [(kind, data)]
        if kind == "chunk":
            payload = obj(_chunk_payload(data))
            metrics.update(obj(payload.get(_METRICS)))
            events = [(k, obj(v)) for k, v in payload.items() if k in _CONVERSE_EVENTS]
            frames.read.bodies.append(payload)
        else:
            frames.read.bodies.append({kind: data})
        for name, event in events:
            if fold.merge(name, event):
                frames.read.output_chunks.append(index)
            frames.read.terminated = frames.read.terminated or name == "messageStop"
    finish_stream(call, exchange, frames.read)
    if frames.events:
        _apply_converse(call, fold.response())
    return metrics


def _apply_converse(call: LLMCall, response: JSONObject) -> None:
    message = obj(obj(response.get("output")).get("message"))
    blocks = [obj(block) for block in arr(message.get("content"))]
    stop = nonempty(response.get("stopReason"))
    call.finish_reasons = (stop,) if stop else ()
    if message:
        call.output_text = join_output(_block_text(block) for block in blocks)
    usage = obj(response.get("usage"))
    if usage:
        call.usage = _converse_usage(usage)
    latency = integer(obj(response.get("metrics")).get("latencyMs"))
    if latency is not None:
        call.attributes["aws.bedrock.latency_ms"] = latency
    if stop in _TRUNCATING:
        mark_truncated(call, stop)
    streamed_inputs = [obj(b.get("toolUse")).get("input") for b in blocks if "toolUse" in b]
    if any(isinstance(raw, str) and not arguments_ok(raw) for raw in streamed_inputs):
        mark_truncated(call, "invalid_json")


def _block_text(block: JSONObject) -> str | None:
    if "text" in block:
        return text(block.get("text"))
    tool = obj(block.get("toolUse"))
    if tool:
        raw = tool.get("input")
        parsed = load_json(raw) if isinstance(raw, str) else raw
        arguments = raw if isinstance(raw, str) and parsed is None else json.dumps(parsed or {})
        return tool_call_text(text(tool.get("name")) or "", arguments)
    return None  # reasoning, images, citations: no answer text of their own


def _converse_usage(usage: JSONObject) -> Usage:
    uncached = integer(usage.get("inputTokens"))
    # Converse says `cacheReadInputTokens`; Nova's invoke body says `…TokenCount`.
    cache_read = _first_int(usage, "cacheReadInputTokens", "cacheReadInputTokenCount")
    cache_write = _first_int(usage, "cacheWriteInputTokens", "cacheWriteInputTokenCount")
    return Usage(
        input_tokens=None
        if uncached is None
        else uncached + (cache_read or 0) + (cache_write or 0),
        output_tokens=integer(usage.get("outputTokens")),
        total_tokens=integer(usage.get("totalTokens")),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


def _first_int(data: JSONObject, *keys: str) -> int | None:
    return next((v for v in (integer(data.get(k)) for k in keys) if v is not None), None)


# -- Anthropic Messages on invoke -------------------------------------------------------
def _read_anthropic(
    call: LLMCall, exchange: Exchange, request: JSONObject, streamed: bool
) -> JSONObject:
    if not streamed:
        anthropic.apply_message(call, _read_body(call, exchange), request)
        return {}
    frames = _frames(exchange)
    message = anthropic.StreamedMessage()
    metrics: JSONObject = {}
    for kind, data, index in frames.events:
        payload = _chunk_payload(data) if kind == "chunk" else None
        if not isinstance(payload, dict):
            continue
        frames.read.bodies.append(payload)
        metrics.update(obj(payload.get(_METRICS)))
        event = nonempty(payload.get("type")) or ""
        if event == "message_stop":
            frames.read.terminated = True
        elif event == "error":
            error = obj(payload.get("error"))
            frames.read.fail(nonempty(error.get("type")), nonempty(error.get("message")))
        elif message.merge(event, payload):
            frames.read.output_chunks.append(index)
    finish_stream(call, exchange, frames.read)
    if message.envelope or message.blocks:
        anthropic.apply_message(call, message.message(), request)
    return metrics


# -- other model families on invoke -----------------------------------------------------
def _read_native(call: LLMCall, exchange: Exchange, streamed: bool) -> JSONObject:
    if not streamed:
        body = _read_body(call, exchange)
        _apply_native(call, [body] if body else [])
        return {}
    frames = _frames(exchange)
    chunks: list[JSONObject] = []
    metrics: JSONObject = {}
    for kind, data, index in frames.events:
        payload = _chunk_payload(data) if kind == "chunk" else None
        if not isinstance(payload, dict):
            continue
        frames.read.bodies.append(payload)
        chunks.append(payload)
        metrics.update(obj(payload.get(_METRICS)))
        piece, finish = _native_piece(payload)
        if piece:
            frames.read.output_chunks.append(index)
        ended = finish is not None or _METRICS in payload or payload.get("is_finished") is True
        frames.read.terminated = frames.read.terminated or ended
    finish_stream(call, exchange, frames.read)
    _apply_native(call, chunks)
    return metrics


def _native_piece(data: JSONObject) -> tuple[str, str | None]:
    """(text, finish reason) of one body or stream chunk, whatever the model family."""
    texts: list[str | None] = [
        text(data.get(key)) for key in ("generation", "outputText", "completion", "text")
    ]
    finishes: list[Any] = [
        data.get(key) for key in ("stop_reason", "completionReason", "finish_reason")
    ]
    # Titan `results`, Mistral `outputs`, Cohere Command `generations`
    for item in arr(data.get("results")) + arr(data.get("outputs")) + arr(data.get("generations")):
        texts.append(text(obj(item).get("outputText")) or text(obj(item).get("text")))
        finishes += [
            obj(item).get(key) for key in ("completionReason", "stop_reason", "finish_reason")
        ]
    for item in arr(data.get("choices")):  # OpenAI-style bodies (gpt-oss, DeepSeek)
        choice = obj(item)
        message = obj(choice.get("message")) or obj(choice.get("delta"))
        texts.append(text(message.get("content")) or text(choice.get("text")))
        finishes.append(choice.get("finish_reason"))
    finish = next((f for f in map(nonempty, finishes) if f is not None), None)
    return "".join(t for t in texts if t), finish


def _apply_native(call: LLMCall, chunks: list[JSONObject]) -> None:
    pieces = [_native_piece(chunk) for chunk in chunks]
    finishes = [finish for _, finish in pieces if finish is not None]
    call.finish_reasons = (finishes[-1],) if finishes else ()
    if call.operation != "embeddings" and chunks:
        call.output_text = "".join(piece for piece, _ in pieces)
    if finishes and finishes[-1] in _TRUNCATING:
        mark_truncated(call, finishes[-1])
    usage = _native_usage(chunks)
    if usage is not None:
        call.usage = usage


def _native_usage(chunks: list[JSONObject]) -> Usage | None:
    """Counts a model reports in its own body (Llama, Titan, OpenAI-style); the last wins."""
    found: Usage | None = None
    for data in chunks:
        usage = obj(data.get("usage"))
        prompt = _first_int(data, "prompt_token_count", "inputTextTokenCount")
        if prompt is None:
            prompt = _first_int(usage, "prompt_tokens", "input_tokens")
        output = _first_int(data, "generation_token_count", "totalOutputTextTokenCount")
        if output is None:
            output = _first_int(usage, "completion_tokens", "output_tokens")
        if output is None:
            counts = [integer(obj(r).get("tokenCount")) for r in arr(data.get("results"))]
            output = sum(c for c in counts if c is not None) if any(counts) else None
        if prompt is None and output is None:
            continue
        previous = found or Usage()
        found = Usage(
            input_tokens=prompt if prompt is not None else previous.input_tokens,
            output_tokens=output if output is not None else previous.output_tokens,
        )
    return found


def _fallback_usage(call: LLMCall, exchange: Exchange, metrics: JSONObject) -> None:
    """Bedrock's own counts, for every model (stream metrics, else the response headers),
    for each count the body did not give: a body with partial usage keeps what it says."""
    if metrics:
        latency = integer(metrics.get("invocationLatency"))
        first_byte = integer(metrics.get("firstByteLatency"))
        if latency is not None:
            call.attributes["aws.bedrock.invocation_latency_ms"] = latency
        if first_byte is not None:
            call.attributes["aws.bedrock.first_byte_latency_ms"] = first_byte
    usage = call.usage
    if usage.input_tokens is not None and usage.output_tokens is not None:
        return
    prompt = usage.input_tokens
    if prompt is None:
        prompt = integer(metrics.get("inputTokenCount"))
        if prompt is None:
            prompt = _header_int(exchange, "x-amzn-bedrock-input-token-count")
    output = usage.output_tokens
    if output is None and call.operation != "embeddings":  # an embedding has no output
        output = integer(metrics.get("outputTokenCount"))
        if output is None:
            output = _header_int(exchange, "x-amzn-bedrock-output-token-count")
    if (prompt, output) != (usage.input_tokens, usage.output_tokens):
        call.usage = replace(usage, input_tokens=prompt, output_tokens=output)


def _header_int(exchange: Exchange, name: str) -> int | None:
    value = (exchange.response_header(name) or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None
