"""OpenAI chat completions, as a whole body or as a stream of `data:` chunks; and legacy
completions (`…/completions`), whose envelope, usage, finish reasons and stream framing are
chat's, with each choice's text in `text` rather than in a message or a delta.

Both shapes are first reduced to the same `_Reply` (choices with content, refusal and
tool calls), so a streamed answer and its non-streamed twin yield identical fields.
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

_JSON_FORMATS = ("json_object", "json_schema")


@dataclass
class _ToolCall:
    name: str = ""
    arguments: str = ""


@dataclass
class _Choice:
    content: str | None = None
    refusal: str | None = None
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None

    def output(self) -> str:
        if not self.tool_calls and self.refusal is None:  # the common case, once per call
            return self.content or ""
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        tools = [tool_call_text(c.name, c.arguments) for c in calls]
        return join_output([self.content, self.refusal, *tools])


@dataclass
class _Reply:
    response_id: str | None = None
    model: str | None = None
    usage: JSONObject | None = None
    choices: dict[int, _Choice] = field(default_factory=dict)
    prompt_filter_results: Any = None

    def note_envelope(self, data: JSONObject) -> None:
        # Azure's first stream chunk has empty id/model: keep the first real ones.
        self.response_id = self.response_id or nonempty(data.get("id"))
        self.model = self.model or nonempty(data.get("model"))
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        if "prompt_filter_results" in data:
            self.prompt_filter_results = data["prompt_filter_results"]


def parse_chat(call: LLMCall, exchange: Exchange, request: JSONObject) -> None:
    """Fill `call` from a chat or legacy completions response (either shape)."""
    if is_event_stream(exchange, call.stream):
        reply = _read_stream(call, exchange)
    else:
        reply = _read_body(call, exchange)
    _apply(call, reply, request)


# -- whole body ------------------------------------------------------------------------
def _read_body(call: LLMCall, exchange: Exchange) -> _Reply:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    apply_http_error(call, exchange, body)
    check_body(call, exchange, body)
    reply = _Reply()
    data = obj(body)
    reply.note_envelope(data)
    for position, raw in enumerate(arr(data.get("choices"))):
        choice = obj(raw)
        reply.choices[_index(choice, position)] = _message_choice(choice)
    return reply


def _message_choice(data: JSONObject) -> _Choice:
    message = obj(data.get("message"))
    choice = _Choice(
        content=_content(message.get("content", data.get("text"))),  # legacy: choice.text
        refusal=text(message.get("refusal")),
        finish_reason=nonempty(data.get("finish_reason")),
    )
    calls = arr(message.get("tool_calls")) or [{"function": message.get("function_call")}]
    for position, raw in enumerate(calls):
        function = obj(obj(raw).get("function"))
        if function:
            name = text(function.get("name")) or ""
            choice.tool_calls[position] = _ToolCall(name, _arguments(function.get("arguments")))
    return choice


# -- stream ---------------------------------------------------------------------------
def _read_stream(call: LLMCall, exchange: Exchange) -> _Reply:
    read = StreamRead()
    reply = _Reply()
    for event in events(exchange):
        if event.data.startswith("[DONE]"):
            read.terminated = True
            break
        chunk = load_json(event.data)
        if not isinstance(chunk, dict):
            continue
        read.bodies.append(chunk)
        if chunk.get("error"):  # a mid-stream failure, sent as a data line after a 200
            read.fail(*error_info(chunk["error"]))
        elif _merge_chunk(reply, chunk):
            read.output_chunks.append(event.chunk_index)
    finish_stream(call, exchange, read)
    return reply


def _merge_chunk(reply: _Reply, chunk: JSONObject) -> bool:
    """Fold one chunk into the reply; True when it carried output."""
    reply.note_envelope(chunk)
    output = False
    for position, raw in enumerate(arr(chunk.get("choices"))):
        data = obj(raw)
        index = _index(data, position)
        choice = reply.choices.get(index)
        if choice is None:  # not setdefault: that builds a _Choice for every chunk
            choice = reply.choices[index] = _Choice()
        choice.finish_reason = nonempty(data.get("finish_reason")) or choice.finish_reason
        delta = obj(data.get("delta"))
        if "text" in data:  # legacy completions: the piece is on the choice itself
            delta = {"content": data["text"]}
        output = _merge_delta(choice, delta) or output
    return output


def _merge_delta(choice: _Choice, delta: JSONObject) -> bool:
    content = _content(delta.get("content"))
    if content is not None:
        choice.content = (choice.content or "") + content
    refusal = text(delta.get("refusal"))
    if refusal is not None:
        choice.refusal = (choice.refusal or "") + refusal
    output = bool(content or refusal)
    for position, raw in enumerate(arr(delta.get("tool_calls"))):
        output = _merge_tool_call(choice, obj(raw), position) or output
    return output


def _merge_tool_call(choice: _Choice, data: JSONObject, position: int) -> bool:
    # The name comes once, in the first piece; arguments come as fragments to concatenate.
    index = _index(data, position)
    tool_call = choice.tool_calls.get(index)
    if tool_call is None:
        tool_call = choice.tool_calls[index] = _ToolCall()
    function = obj(data.get("function"))
    name = nonempty(function.get("name"))
    if name and not tool_call.name:
        tool_call.name = name
    arguments = _arguments(function.get("arguments"))
    tool_call.arguments += arguments
    return bool(name or arguments)


# -- shared ---------------------------------------------------------------------------
def _apply(call: LLMCall, reply: _Reply, request: JSONObject) -> None:
    call.response_id = reply.response_id
    call.response_model = reply.model
    if reply.usage is not None:
        call.usage = _usage(reply.usage)
    choices = [reply.choices[i] for i in sorted(reply.choices)]
    call.finish_reasons = tuple(c.finish_reason for c in choices if c.finish_reason)
    if choices:
        call.output_text = join_output(c.output() for c in choices)
    if reply.prompt_filter_results is not None:
        call.attributes["azure.prompt_filter_results"] = reply.prompt_filter_results
    if "length" in call.finish_reasons:
        mark_truncated(call, "length")
    if any(_invalid_json(c, _json_requested(request)) for c in choices):
        mark_truncated(call, "invalid_json")


def _invalid_json(choice: _Choice, json_requested: bool) -> bool:
    if any(not arguments_ok(t.arguments) for t in choice.tool_calls.values()):
        return True
    # A refusal, a tool call or a content-filter stop is not the JSON answer asked for.
    if not json_requested or choice.tool_calls or choice.refusal is not None:
        return False
    return choice.finish_reason != "content_filter" and not parses_as_json(choice.content or "")


def _json_requested(request: JSONObject) -> bool:
    return obj(request.get("response_format")).get("type") in _JSON_FORMATS


def _usage(usage: JSONObject) -> Usage:
    return Usage(
        input_tokens=integer(usage.get("prompt_tokens")),
        output_tokens=integer(usage.get("completion_tokens")),
        total_tokens=integer(usage.get("total_tokens")),
        cached_input_tokens=integer(obj(usage.get("prompt_tokens_details")).get("cached_tokens")),
        reasoning_tokens=integer(
            obj(usage.get("completion_tokens_details")).get("reasoning_tokens")
        ),
    )


def _index(data: JSONObject, position: int) -> int:
    index = integer(data.get("index"))
    return position if index is None else index


def _content(value: Any) -> str | None:
    """Message content: a string, or (some compatible servers) a list of text parts."""
    if isinstance(value, str) or value is None:
        return value
    parts = [text(obj(part).get("text")) for part in arr(value)]
    return "".join(p for p in parts if p)


def _arguments(value: Any) -> str:
    # Some compatible servers send arguments as an object rather than JSON text.
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)
