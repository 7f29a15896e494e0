"""The Anthropic Messages API (`POST …/v1/messages`), as a whole body or as an event stream.

A stream is folded back into the message object a non-stream call returns (content
blocks, stop_reason, usage), so both shapes go through the same field extraction.
Usage is normalised to the GenAI convention (as for OpenAI): `input_tokens` counts every
input token, so Anthropic's cache reads and writes are added to its own `input_tokens`;
`cached_input_tokens` / `cache_creation_input_tokens` keep the parts for pricing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..calls import LLMCall, Usage
from ..intercept.exchange import Exchange
from ._common import (
    StreamRead,
    apply_http_error,
    body_for_record,
    body_json,
    check_body,
    error_info,
    events,
    finish_stream,
    is_event_stream,
    join_output,
    mark_truncated,
    new_call,
    tool_call_text,
)
from ._json import (
    JSONObject,
    arguments_ok,
    arr,
    integer,
    load_json,
    nonempty,
    obj,
    parses_as_json,
    text,
)

ANTHROPIC = "anthropic"
_TRUNCATING = ("max_tokens", "model_context_window_exceeded")
# delta type → the field that carries its fragment, in the delta and in the block
_DELTA_FIELDS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}


def parse(exchange: Exchange, request: JSONObject, provider: str | None = None) -> LLMCall | None:
    """The call, or None when this is not a Messages request.

    `provider` comes from a user route: any `…/messages` path on that host counts.
    """
    if not detects(exchange, request, provider):
        return None
    call = new_call(exchange, ANTHROPIC, "chat", request)
    call.request_id = exchange.response_header("request-id")
    if is_event_stream(exchange, call.stream):
        message = _read_stream(call, exchange)
    else:
        message = _read_body(call, exchange)
    apply_message(call, message, request)
    return call


def detects(exchange: Exchange, request: JSONObject, provider: str | None = None) -> bool:
    """Whether `parse` makes a call of this request (the response plays no part)."""
    return _is_messages(exchange, request, routed=provider is not None)


def _is_messages(exchange: Exchange, request: JSONObject, *, routed: bool) -> bool:
    path = exchange.path.rstrip("/")
    if not path.endswith("/messages"):
        return False
    if routed or exchange.request_header("anthropic-version"):
        return True
    # Plenty of non-LLM APIs have a /v1/messages: insist on the Messages body shape.
    has_model = nonempty(request.get("model")) is not None
    return path.endswith("/v1/messages") and has_model and isinstance(request.get("messages"), list)


def _read_body(call: LLMCall, exchange: Exchange) -> JSONObject:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    apply_http_error(call, exchange, body)
    check_body(call, exchange, body)
    call.request_id = call.request_id or nonempty(obj(body).get("request_id"))
    return obj(body)


# -- stream ---------------------------------------------------------------------------
@dataclass
class StreamedMessage:
    """The message a stream has built so far."""

    envelope: JSONObject = field(default_factory=dict)
    blocks: dict[int, JSONObject] = field(default_factory=dict)
    usage: JSONObject = field(default_factory=dict)

    def merge(self, kind: str, data: JSONObject) -> bool:
        """Fold one event in; True when it carried output."""
        index = integer(data.get("index")) or 0
        if kind == "message_start":
            self.envelope = dict(obj(data.get("message")))
            self.usage.update(_present(obj(self.envelope.get("usage"))))
        elif kind == "content_block_start":
            self.blocks[index] = dict(obj(data.get("content_block")))
        elif kind == "content_block_delta":
            return _merge_delta(self.blocks.setdefault(index, {}), obj(data.get("delta")))
        elif kind == "message_delta":
            # stop_reason arrives here; usage here is cumulative, so it overrides.
            self.envelope.update(_present(obj(data.get("delta"))))
            self.usage.update(_present(obj(data.get("usage"))))
        return False

    def message(self) -> JSONObject:
        content = [self.blocks[i] for i in sorted(self.blocks)]
        return {**self.envelope, "content": content, "usage": self.usage}


def _merge_delta(block: JSONObject, delta: JSONObject) -> bool:
    key = _DELTA_FIELDS.get(str(delta.get("type")))
    if key is None:
        return False  # signature / citations: no output of their own
    piece = text(delta.get(key)) or ""
    block[key] = (text(block.get(key)) or "") + piece
    return bool(piece)


def _present(data: JSONObject) -> JSONObject:
    return {key: value for key, value in data.items() if value is not None}


def _read_stream(call: LLMCall, exchange: Exchange) -> JSONObject:
    read = StreamRead()
    message = StreamedMessage()
    for event in events(exchange):
        data = load_json(event.data)
        if not isinstance(data, dict):
            continue
        read.bodies.append(data)
        kind = nonempty(data.get("type")) or event.event
        if kind == "message_stop":
            read.terminated = True
        elif kind == "error":  # may follow an HTTP 200 (overloaded_error mid-stream)
            read.fail(*error_info(data.get("error")))
            call.request_id = call.request_id or nonempty(data.get("request_id"))
        elif message.merge(kind, data):
            read.output_chunks.append(event.chunk_index)
    finish_stream(call, exchange, read)
    return message.message() if message.envelope or message.blocks else {}


# -- shared ---------------------------------------------------------------------------
def apply_message(call: LLMCall, message: JSONObject, request: JSONObject) -> None:
    """Fill `call` from a Messages API message (also the body of Anthropic on Bedrock)."""
    call.response_id = nonempty(message.get("id"))
    call.response_model = nonempty(message.get("model"))
    if obj(message.get("usage")):
        call.usage = _usage(message["usage"])
    stop = nonempty(message.get("stop_reason"))
    call.finish_reasons = (stop,) if stop else ()
    blocks = [obj(block) for block in arr(message.get("content"))]
    if message.get("type") == "message" or blocks:
        call.output_text = join_output(_block_text(block) for block in blocks)
    if stop in _TRUNCATING:
        mark_truncated(call, stop)
    if _invalid_json(blocks, _json_requested(request) and stop != "refusal"):
        mark_truncated(call, "invalid_json")


def _block_text(block: JSONObject) -> str | None:
    kind = text(block.get("type")) or ""
    if kind == "text":
        return text(block.get("text"))
    if kind.endswith("tool_use"):  # tool_use, server_tool_use
        return tool_call_text(text(block.get("name")) or "", _arguments(block))
    return None  # thinking, redacted_thinking, tool results


def _arguments(block: JSONObject) -> str:
    """Tool input as JSON text; streamed input is re-serialised so both shapes match."""
    if "partial_json" not in block:
        return json.dumps(block.get("input") or {})
    raw = text(block.get("partial_json")) or ""
    parsed: Any = load_json(raw)
    if parsed is None:
        return raw if raw.strip() else "{}"
    return json.dumps(parsed)


def _invalid_json(blocks: list[JSONObject], json_requested: bool) -> bool:
    streamed = [text(b.get("partial_json")) or "" for b in blocks if "partial_json" in b]
    if any(not arguments_ok(raw) for raw in streamed):
        return True
    if not json_requested:
        return False
    answer = "".join(text(b.get("text")) or "" for b in blocks if b.get("type") == "text")
    return not parses_as_json(answer)


def _json_requested(request: JSONObject) -> bool:
    # Structured outputs: `output_config.format` (GA) or `output_format` (beta).
    formats = (obj(request.get("output_config")).get("format"), request.get("output_format"))
    return any(obj(fmt).get("type") == "json_schema" for fmt in formats)


def _usage(usage: JSONObject) -> Usage:
    uncached = integer(usage.get("input_tokens"))
    cache_read = integer(usage.get("cache_read_input_tokens"))
    cache_write = integer(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=None
        if uncached is None
        else uncached + (cache_read or 0) + (cache_write or 0),
        output_tokens=integer(usage.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
        reasoning_tokens=integer(obj(usage.get("output_tokens_details")).get("thinking_tokens")),
    )
