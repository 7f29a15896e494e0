"""Google Gemini: `POST …/models/{model}:generateContent` and `:streamGenerateContent`, on the
Gemini API (`gcp.gemini`) or Vertex AI (`…/publishers/google/models/…`, `gcp.vertex_ai`).

A stream (`?alt=sse`, or without it a JSON array) carries one whole `GenerateContentResponse`
per event; they are folded into one response (parts appended, the last finish reason and
usage kept), so both shapes go through the same field extraction.

Usage follows the GenAI convention used for the other providers: output tokens include the
model's thinking (`candidatesTokenCount + thoughtsTokenCount`, which is also what is billed
as output), `reasoning_tokens` says how many of them were thoughts; input tokens include
the tool-use prompt and cached content.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..calls import LLMCall, Usage
from ..intercept.exchange import Exchange
from ._common import (
    StreamRead,
    body_for_record,
    body_json,
    check_body,
    events,
    finish_stream,
    is_event_stream,
    join_output,
    mark_truncated,
    new_call,
    tool_call_text,
)
from ._json import JSONObject, arr, integer, load_json, nonempty, number, obj, parses_as_json, text

GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"

_PATH = re.compile(r"/(?:tunedModels|models)/(?P<model>[^/:]+):(?P<method>\w+)$")
_METHODS = ("generateContent", "streamGenerateContent")
_TRUNCATING = frozenset({"MAX_TOKENS"})
# Stops that end the answer for a reason of their own: no JSON to expect from them.
_BLOCKED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "OTHER"}
)
_JSON_TYPES = ("application/json",)
_VERTEX_HOST = "aiplatform.googleapis.com"


def parse(exchange: Exchange, request: JSONObject, provider: str | None = None) -> LLMCall | None:
    """The call, or None when this is not a generateContent request."""
    match = _PATH.search(exchange.path.rstrip("/"))
    if match is None or match["method"] not in _METHODS:
        return None
    if provider is None:
        vertex = "/publishers/" in exchange.path or exchange.host.endswith(_VERTEX_HOST)
        provider = VERTEX if vertex else GEMINI
    call = new_call(exchange, provider, "generate_content", request)
    call.request_model = unquote(match["model"])
    call.stream = match["method"] == "streamGenerateContent"
    config = _generation_config(request)
    call.max_tokens = integer(_get(config, "maxOutputTokens", "max_output_tokens"))
    call.temperature = number(config.get("temperature"))
    if is_event_stream(exchange, call.stream and "alt=sse" in exchange.url):
        response = _read_sse(call, exchange)
    else:
        response = _read_body(call, exchange)
    _apply(call, response, request)
    return call


def detects(exchange: Exchange, request: JSONObject, provider: str | None = None) -> bool:
    """Whether `parse` makes a call of this request (the response plays no part)."""
    match = _PATH.search(exchange.path.rstrip("/"))
    return match is not None and match["method"] in _METHODS


def _generation_config(request: JSONObject) -> JSONObject:
    return obj(_get(request, "generationConfig", "generation_config"))


def _get(data: JSONObject, camel: str, snake: str) -> Any:
    """REST accepts both spellings of a field; the SDK sends camelCase."""
    return data[camel] if camel in data else data.get(snake)


# -- reading --------------------------------------------------------------------------
@dataclass
class _Candidate:
    parts: list[JSONObject] = field(default_factory=list)
    finish_reason: str | None = None

    def add_parts(self, parts: list[Any]) -> bool:
        """Append a chunk's parts, joining consecutive text; True when any carried output."""
        output = False
        for raw in parts:
            part = dict(obj(raw))
            if not part:
                continue
            output = output or bool(text(part.get("text"))) or "functionCall" in part
            last = self.parts[-1] if self.parts else None
            if last is not None and _same_text_kind(last, part):
                last["text"] = (text(last.get("text")) or "") + (text(part.get("text")) or "")
            else:
                self.parts.append(part)
        return output


def _same_text_kind(a: JSONObject, b: JSONObject) -> bool:
    return "text" in a and "text" in b and bool(a.get("thought")) == bool(b.get("thought"))


@dataclass
class _Response:
    """The response a stream has built so far (or a whole body)."""

    envelope: JSONObject = field(default_factory=dict)
    candidates: dict[int, _Candidate] = field(default_factory=dict)

    def merge(self, data: JSONObject) -> bool:
        """Fold one GenerateContentResponse in; True when it carried output."""
        for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback"):
            if key in data:
                self.envelope[key] = data[key]
        output = False
        for position, raw in enumerate(arr(data.get("candidates"))):
            item = obj(raw)
            index = integer(item.get("index"))
            slot = position if index is None else index
            candidate = self.candidates.get(slot)
            if candidate is None:
                candidate = self.candidates[slot] = _Candidate()
            output = candidate.add_parts(arr(obj(item.get("content")).get("parts"))) or output
            candidate.finish_reason = nonempty(item.get("finishReason")) or candidate.finish_reason
        return output

    @property
    def finished(self) -> bool:
        blocked = nonempty(obj(self.envelope.get("promptFeedback")).get("blockReason"))
        return blocked is not None or any(c.finish_reason for c in self.candidates.values())


def _read_body(call: LLMCall, exchange: Exchange) -> _Response:
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    _apply_google_error(call, exchange, body)
    response = _Response()
    if isinstance(body, list) and call.stream:  # streamGenerateContent without alt=sse
        read = StreamRead(bodies=list(body))
        for item in body:
            if _merge_item(read, response, item):
                read.output_chunks.append(len(exchange.chunks) - 1)
        finish_stream(call, exchange, read)
        call.response_body = body
        return response
    check_body(call, exchange, body)
    if isinstance(body, dict):
        response.merge(body)
    return response


def _read_sse(call: LLMCall, exchange: Exchange) -> _Response:
    read = StreamRead()
    response = _Response()
    for event in events(exchange):
        data = load_json(event.data)
        if not isinstance(data, dict):
            continue
        read.bodies.append(data)
        if _merge_item(read, response, data):
            read.output_chunks.append(event.chunk_index)
    finish_stream(call, exchange, read)
    return response


def _merge_item(read: StreamRead, response: _Response, item: Any) -> bool:
    data = obj(item)
    if data.get("error") is not None:  # a failure sent as a stream event after the 200
        read.fail(*_error_info(data["error"]))
        return False
    output = response.merge(data)
    read.terminated = read.terminated or response.finished
    return output


def _apply_google_error(call: LLMCall, exchange: Exchange, body: Any) -> None:
    """`{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": …}}`."""
    status = exchange.status_code
    if status is None or status < 400 or call.error_type is not None:
        return
    data = obj(body[0] if isinstance(body, list) and body else body)
    kind, message = _error_info(data.get("error"))
    call.error_type = kind or str(status)
    call.error = message or f"HTTP {status} {exchange.reason}".strip()
    retry = _retry_delay(obj(data.get("error")))
    if retry is not None:
        call.attributes["gcp.gemini.retry_delay"] = retry


def _error_info(error: Any) -> tuple[str | None, str | None]:
    if isinstance(error, str):
        return None, error or None
    error = obj(error)
    code = integer(error.get("code"))
    kind = nonempty(error.get("status")) or (str(code) if code is not None else None)
    return kind, nonempty(error.get("message"))


def _retry_delay(error: JSONObject) -> str | None:
    for detail in arr(error.get("details")):
        detail = obj(detail)
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return nonempty(detail.get("retryDelay"))
    return None


# -- fields ---------------------------------------------------------------------------
def _apply(call: LLMCall, response: _Response, request: JSONObject) -> None:
    envelope = response.envelope
    call.response_id = nonempty(envelope.get("responseId"))
    call.response_model = nonempty(envelope.get("modelVersion"))
    usage = obj(envelope.get("usageMetadata"))
    if usage:
        call.usage = _usage(usage)
    candidates = [response.candidates[i] for i in sorted(response.candidates)]
    call.finish_reasons = tuple(c.finish_reason for c in candidates if c.finish_reason)
    blocked = nonempty(obj(envelope.get("promptFeedback")).get("blockReason"))
    if blocked is not None and not candidates:
        call.finish_reasons = (blocked,)  # the prompt itself was refused: no candidate at all
        call.attributes["gcp.gemini.prompt_block_reason"] = blocked
    if candidates:
        call.output_text = join_output(_candidate_text(c) for c in candidates)
    truncating = [reason for reason in call.finish_reasons if reason in _TRUNCATING]
    if truncating:
        mark_truncated(call, truncating[0])
    if _json_requested(request) and any(_invalid_json(c) for c in candidates):
        mark_truncated(call, "invalid_json")


def _candidate_text(candidate: _Candidate) -> str:
    pieces: list[str | None] = []
    for part in candidate.parts:
        call = obj(part.get("functionCall"))
        if call:
            arguments = json.dumps(call.get("args") or {})
            pieces.append(tool_call_text(text(call.get("name")) or "", arguments))
        elif not part.get("thought"):
            pieces.append(text(part.get("text")))
    return join_output(pieces)


def _answer(candidate: _Candidate) -> str:
    return "".join(
        text(part.get("text")) or "" for part in candidate.parts if not part.get("thought")
    )


def _invalid_json(candidate: _Candidate) -> bool:
    if candidate.finish_reason in _BLOCKED or any("functionCall" in p for p in candidate.parts):
        return False
    return not parses_as_json(_answer(candidate))


def _json_requested(request: JSONObject) -> bool:
    config = _generation_config(request)
    mime = text(_get(config, "responseMimeType", "response_mime_type")) or ""
    return mime.split(";")[0].strip().lower() in _JSON_TYPES


def _usage(usage: JSONObject) -> Usage:
    prompt = integer(usage.get("promptTokenCount"))
    tool_prompt = integer(usage.get("toolUsePromptTokenCount"))
    candidates = integer(usage.get("candidatesTokenCount"))
    thoughts = integer(usage.get("thoughtsTokenCount"))
    output = None
    if candidates is not None or thoughts is not None:
        output = (candidates or 0) + (thoughts or 0)
    return Usage(
        input_tokens=None if prompt is None else prompt + (tool_prompt or 0),
        output_tokens=output,
        total_tokens=integer(usage.get("totalTokenCount")),
        cached_input_tokens=integer(usage.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )
