"""OpenAI Responses API (`POST …/responses`), as a whole body or as a typed event stream.

A stream's terminal event (response.completed / .incomplete / .failed) carries the whole
response object, so it is read exactly like a non-stream body. The deltas only matter
when the stream stopped before that event: then the output is rebuilt from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_ENVELOPE = ("response.created", "response.in_progress", "response.queued")
_ITEM = ("response.output_item.added", "response.output_item.done")
_PART_DELTAS = {"response.output_text.delta": "output_text", "response.refusal.delta": "refusal"}
_JSON_FORMATS = ("json_object", "json_schema")


def parse_responses(call: LLMCall, exchange: Exchange, request: JSONObject) -> None:
    """Fill `call` from a Responses API response (either shape)."""
    if is_event_stream(exchange, call.stream):
        response = _read_stream(call, exchange)
    else:
        response = _read_body(call, exchange)
    _apply(call, response, request)


def _read_body(call: LLMCall, exchange: Exchange) -> JSONObject:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    apply_http_error(call, exchange, body)
    check_body(call, exchange, body)
    return obj(body)


# -- stream ---------------------------------------------------------------------------
@dataclass
class _Partial:
    """The response as far as the deltas got, for streams without a terminal event."""

    envelope: JSONObject = field(default_factory=dict)
    items: dict[int, JSONObject] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    parts: dict[int, dict[int, tuple[str, str]]] = field(default_factory=dict)
    arguments: dict[int, str] = field(default_factory=dict)

    def merge(self, kind: str, data: JSONObject) -> bool:
        """Fold one event in; True when it carried output."""
        index = integer(data.get("output_index")) or 0
        delta = text(data.get("delta")) or ""
        if kind in _ENVELOPE:
            self.envelope = obj(data.get("response"))
        elif kind in _ITEM:
            self.items[index] = obj(data.get("item"))
            if kind.endswith(".done"):
                self.done.add(index)
        elif kind in _PART_DELTAS:
            parts = self.parts.setdefault(index, {})
            content_index = integer(data.get("content_index")) or 0
            part_type, so_far = parts.get(content_index, (_PART_DELTAS[kind], ""))
            parts[content_index] = (part_type, so_far + delta)
            return bool(delta)
        elif kind == "response.function_call_arguments.delta":
            self.arguments[index] = self.arguments.get(index, "") + delta
            return bool(delta)
        return False

    def response(self) -> JSONObject:
        # No status: "in_progress" from response.created is no finish reason.
        indices = sorted(set(self.items) | set(self.parts) | set(self.arguments))
        output = [self._item(i) for i in indices]
        return {**self.envelope, "status": None, "output": output}

    def _item(self, index: int) -> JSONObject:
        item = dict(self.items.get(index, {}))
        if index in self.done:
            return item
        if index in self.parts:
            parts = self.parts[index]
            item.setdefault("type", "message")
            item["content"] = [_part(*parts[i]) for i in sorted(parts)]
        if index in self.arguments:
            item.setdefault("type", "function_call")
            item["arguments"] = self.arguments[index]
        return item


def _part(part_type: str, value: str) -> JSONObject:
    return {"type": part_type, "refusal" if part_type == "refusal" else "text": value}


def _read_stream(call: LLMCall, exchange: Exchange) -> JSONObject:
    read = StreamRead()
    partial = _Partial()
    final: JSONObject | None = None
    for event in events(exchange):
        data = load_json(event.data)
        if not isinstance(data, dict):
            continue
        read.bodies.append(data)
        kind = nonempty(data.get("type")) or event.event
        if kind in _TERMINAL:
            final = obj(data.get("response"))
            read.terminated = True
        elif kind == "error":
            read.fail(*error_info(data.get("error") or data))
        elif partial.merge(kind, data):
            read.output_chunks.append(event.chunk_index)
    if final is not None and final.get("status") == "failed":
        read.fail(*error_info(final.get("error")))
    finish_stream(call, exchange, read)
    return final if final is not None else partial.response()


# -- shared ---------------------------------------------------------------------------
def _apply(call: LLMCall, response: JSONObject, request: JSONObject) -> None:
    call.response_id = nonempty(response.get("id"))
    call.response_model = nonempty(response.get("model"))
    if isinstance(response.get("usage"), dict):
        call.usage = _usage(response["usage"])
    status = nonempty(response.get("status"))
    call.finish_reasons = (status,) if status else ()
    items = [obj(item) for item in arr(response.get("output"))]
    if items or status:
        call.output_text = join_output(_item_text(item) for item in items)
    if status == "incomplete":
        details = obj(response.get("incomplete_details"))
        mark_truncated(call, nonempty(details.get("reason")) or "incomplete")
    if status == "failed" and call.error_type is None:
        kind, message = error_info(response.get("error"))
        call.error_type, call.error = kind or "failed", message or "response failed"
    if _invalid_json(items, _json_requested(request)):
        mark_truncated(call, "invalid_json")


def _item_text(item: JSONObject) -> str | None:
    kind = item.get("type")
    if kind == "message":
        return join_output(_part_text(obj(part)) for part in arr(item.get("content")))
    if kind == "function_call":
        return tool_call_text(text(item.get("name")) or "", text(item.get("arguments")) or "")
    if kind == "custom_tool_call":
        return tool_call_text(text(item.get("name")) or "", text(item.get("input")) or "")
    return None  # reasoning, built-in tool calls: not assistant text


def _part_text(part: JSONObject) -> str | None:
    return text(part.get("refusal" if part.get("type") == "refusal" else "text"))


def _invalid_json(items: list[JSONObject], json_requested: bool) -> bool:
    calls = [item for item in items if item.get("type") == "function_call"]
    if any(not arguments_ok(text(item.get("arguments")) or "") for item in calls):
        return True
    messages = [item for item in items if item.get("type") == "message"]
    if not json_requested or not messages:
        return False
    parts = [obj(part) for item in messages for part in arr(item.get("content"))]
    if any(part.get("type") == "refusal" for part in parts):
        return False
    answer = "".join(text(part.get("text")) or "" for part in parts)
    return not parses_as_json(answer)


def _json_requested(request: JSONObject) -> bool:
    return obj(obj(request.get("text")).get("format")).get("type") in _JSON_FORMATS


def _usage(usage: JSONObject) -> Usage:
    details = obj(usage.get("input_tokens_details"))
    return Usage(
        input_tokens=integer(usage.get("input_tokens")),
        output_tokens=integer(usage.get("output_tokens")),
        total_tokens=integer(usage.get("total_tokens")),
        cached_input_tokens=integer(details.get("cached_tokens")),
        cache_creation_input_tokens=integer(details.get("cache_write_tokens")),
        reasoning_tokens=integer(obj(usage.get("output_tokens_details")).get("reasoning_tokens")),
    )
