"""Ollama's native API: `POST …/api/chat`, `/api/generate` (JSON, or NDJSON streams — the
default when the request does not say `"stream": false`) and `/api/embed`.

A stream's lines are folded into the object a non-stream call returns (content appended,
the final `done: true` line's counts and reason kept). The server's own timings come in
nanoseconds and are kept as `ollama.*_duration_ns` attributes: they tell load time from
prompt evaluation from generation, which the client-side timing cannot.
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
    body_pieces,
    check_body,
    error_info,
    finish_stream,
    join_output,
    mark_truncated,
    new_call,
    tool_call_text,
)
from ._json import JSONObject, arr, integer, nonempty, number, obj, parses_as_json, text
from .ndjson import CONTENT_TYPE, decode_ndjson

OLLAMA = "ollama"

# path suffix → operation
_ENDPOINTS = {"/api/chat": "chat", "/api/generate": "text_completion", "/api/embed": "embeddings"}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def parse(exchange: Exchange, request: JSONObject, provider: str | None = None) -> LLMCall | None:
    """The call, or None when the path or body is no Ollama request."""
    path = exchange.path.rstrip("/")
    suffix = next((s for s in _ENDPOINTS if path.endswith(s)), None)
    if suffix is None or (provider is None and not _looks_like(suffix, request)):
        return None
    operation = _ENDPOINTS[suffix]
    call = new_call(exchange, OLLAMA, operation, request)
    options = obj(request.get("options"))
    call.max_tokens = integer(options.get("num_predict"))
    call.temperature = number(options.get("temperature"))
    # Ollama streams unless told not to.
    call.stream = operation != "embeddings" and request.get("stream") is not False
    if _is_ndjson(exchange, call.stream):
        reply = _read_stream(call, exchange)
    else:
        reply = _read_body(call, exchange)
    _apply(call, reply, request)
    return call


def detects(exchange: Exchange, request: JSONObject, provider: str | None = None) -> bool:
    """Whether `parse` makes a call of this request (the response plays no part)."""
    path = exchange.path.rstrip("/")
    suffix = next((s for s in _ENDPOINTS if path.endswith(s)), None)
    return suffix is not None and (provider is not None or _looks_like(suffix, request))


def _looks_like(suffix: str, request: JSONObject) -> bool:
    if nonempty(request.get("model")) is None:
        return False
    if suffix == "/api/chat":
        return isinstance(request.get("messages"), list)
    if suffix == "/api/generate":
        return isinstance(request.get("prompt"), str)
    return "input" in request


def _is_ndjson(exchange: Exchange, requested: bool) -> bool:
    content_type = (exchange.response_header("content-type") or "").lower()
    if CONTENT_TYPE in content_type:
        return True
    status = exchange.status_code
    return requested and not content_type and status is not None and status < 400


# -- reading ----------------------------------------------------------------------------
@dataclass
class _Reply:
    """The answer a stream has built so far (or a whole body)."""

    final: JSONObject = field(default_factory=dict)
    content: str = ""
    tool_calls: list[JSONObject] = field(default_factory=list)
    done: bool = False

    def merge(self, data: JSONObject) -> bool:
        """Fold one line in; True when it carried output."""
        message = obj(data.get("message"))
        piece = text(message.get("content")) or text(data.get("response")) or ""
        self.content += piece
        calls = [obj(c) for c in arr(message.get("tool_calls"))]
        self.tool_calls += calls
        thinking = text(message.get("thinking")) or text(data.get("thinking"))
        if data.get("done") is True:
            self.done = True
            self.final = data
        elif not self.final:
            self.final = {"model": data.get("model")}
        return bool(piece or calls or thinking)


def _read_body(call: LLMCall, exchange: Exchange) -> _Reply:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    apply_http_error(call, exchange, body)
    check_body(call, exchange, body)
    reply = _Reply()
    data = obj(body)
    if data and data.get("error") is None:
        reply.merge(data)
        reply.final = data
    return reply


def _read_stream(call: LLMCall, exchange: Exchange) -> _Reply:
    read = StreamRead()
    reply = _Reply()
    for line in decode_ndjson(body_pieces(exchange)):
        data = line.value
        if not isinstance(data, dict):
            continue
        read.bodies.append(data)
        if data.get("error") is not None:  # a failure sent as a line after the 200
            read.fail(*error_info(data["error"]))
        elif reply.merge(data):
            read.output_chunks.append(line.chunk_index)
        read.terminated = read.terminated or reply.done
    finish_stream(call, exchange, read)
    return reply


# -- fields -----------------------------------------------------------------------------
def _apply(call: LLMCall, reply: _Reply, request: JSONObject) -> None:
    final = reply.final
    call.response_model = nonempty(final.get("model"))
    prompt, output = integer(final.get("prompt_eval_count")), integer(final.get("eval_count"))
    if prompt is not None or output is not None:
        call.usage = Usage(input_tokens=prompt, output_tokens=output)
    reason = nonempty(final.get("done_reason"))
    call.finish_reasons = (reason,) if reason else ()
    for name in _DURATIONS:
        value = integer(final.get(name))
        if value is not None:
            call.attributes[f"ollama.{name}_ns"] = value
    if call.operation == "embeddings" or not final:
        return
    tools = [_tool_text(c) for c in reply.tool_calls]
    call.output_text = join_output([reply.content, *tools])
    if reason == "length":
        mark_truncated(call, reason)
    if _json_requested(request) and not reply.tool_calls and not parses_as_json(reply.content):
        mark_truncated(call, "invalid_json")


def _tool_text(tool_call: JSONObject) -> str:
    function = obj(tool_call.get("function"))
    arguments: Any = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {})
    return tool_call_text(text(function.get("name")) or "", arguments)


def _json_requested(request: JSONObject) -> bool:
    fmt = request.get("format")
    return fmt == "json" or isinstance(fmt, dict)
