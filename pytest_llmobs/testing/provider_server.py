"""A local fake LLM provider speaking the OpenAI (chat, Responses, legacy completions,
embeddings), Azure OpenAI and Anthropic wire formats, and (through `_more_apis`) Amazon
Bedrock, Gemini and Ollama.

Standard library only. Responses are built so that the official SDKs parse them (also with
``_strict_response_validation=True``, except legacy completion stream chunks: their
``finish_reason`` is null until the last, as the real API sends them and as openai's strict
type does not allow): JSON bodies carry ``Content-Length``, streams use
``Transfer-Encoding: chunked`` with every server-sent event flushed as its own chunk.

Per-request overrides are read from request headers (see ``HEADER_*``); defaults come from
:meth:`ProviderServer.configure`; exact scripted replies come from :meth:`ProviderServer.enqueue`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "DEFAULT_REPLY",
    "HEADER_CHUNK_DELAY_MS",
    "HEADER_FINISH_REASON",
    "HEADER_REPLY",
    "HEADER_STATUS",
    "HEADER_STREAM_CUT_AFTER",
    "HEADER_STREAM_TRUNCATE_AFTER",
    "HEADER_TOOL_CALL",
    "HEADER_TTFT_MS",
    "HEADER_USAGE_OMIT",
    "ProviderServer",
    "ReceivedRequest",
    "Reply",
    "error_reply",
    "main",
]

DEFAULT_REPLY: Final = "Hello from the fake provider"
HEADER_REPLY: Final = "x-fake-reply"
HEADER_TTFT_MS: Final = "x-fake-ttft-ms"
HEADER_CHUNK_DELAY_MS: Final = "x-fake-chunk-delay-ms"
HEADER_TOOL_CALL: Final = "x-fake-tool-call"
HEADER_STATUS: Final = "x-fake-status"
HEADER_STREAM_CUT_AFTER: Final = "x-fake-stream-cut-after"
HEADER_STREAM_TRUNCATE_AFTER: Final = "x-fake-stream-truncate-after"
# Bedrock, Gemini, Ollama: the finish reason to report (e.g. SAFETY, content_filtered).
HEADER_FINISH_REASON: Final = "x-fake-finish-reason"
# Bedrock Amazon Nova on InvokeModel: usage fields left out of the body (comma-separated,
# e.g. `outputTokens,totalTokens`), as Nova sometimes reports only part of its usage.
HEADER_USAGE_OMIT: Final = "x-fake-usage-omit"

Provider = Literal["openai", "azure", "anthropic", "bedrock", "gemini", "ollama"]
_Kind = Literal["pre", "content", "post"]
_Event = tuple[_Kind, bytes]

_EMBEDDING_DIM: Final = 8
# The legacy completions API stops at 16 tokens when the request sets no max_tokens.
_COMPLETIONS_DEFAULT_MAX_TOKENS: Final = 16
_SSE_CONTENT_TYPE: Final = "text/event-stream; charset=utf-8"
_JSON_CONTENT_TYPE: Final = "application/json"
_WORD_RE: Final = re.compile(r"\s*\S+")


class _Unset:
    """Marker for arguments that were not passed."""


_UNSET: Final = _Unset()


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it (``received_at`` is ``time.time()``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    received_at: float


@dataclass
class Reply:
    """A scripted reply, sent verbatim by the next matching request.

    Give ``body`` (bytes/str sent as is, dict/list JSON-encoded) or ``events``
    (``(delay_s, raw_bytes)`` pieces sent as chunks of a chunked stream). ``match`` limits
    which request paths consume the reply (substring). ``delay_s`` waits before the status
    line. ``cut`` drops the connection after the events without the terminating chunk.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    events: list[tuple[float, bytes]] | None = None
    match: str | None = None
    delay_s: float = 0.0
    cut: bool = False


@dataclass
class _Defaults:
    reply: str = DEFAULT_REPLY
    ttft_s: float = 0.0
    chunk_delay_s: float = 0.0
    tool_call: str | None = None
    model: str | None = None
    gzip: bool = False


@dataclass
class _Tool:
    name: str
    arguments: str
    pieces: list[str]


@dataclass
class _Call:
    """Everything needed to render one successful generation."""

    provider: Provider
    model: str
    body: dict[str, Any]
    pieces: list[str]
    truncated: bool
    input_tokens: int
    output_tokens: int
    tool: _Tool | None
    created: int

    @property
    def text(self) -> str:
        """The (possibly truncated) reply text."""
        return "".join(self.pieces)

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


# --------------------------------------------------------------------------- helpers


def _dumps(value: object, *, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=2).encode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _split_words(text: str) -> list[str]:
    """Split into words, each later word keeping its leading whitespace; joins back exactly."""
    pieces = _WORD_RE.findall(text)
    tail = text[len("".join(pieces)) :]
    if pieces and tail:
        pieces[-1] += tail
    return pieces


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("text", "content", "output"):
            if key in value:
                yield from _texts(value[key])


def _count_words(*values: object) -> int:
    return sum(len(text.split()) for value in values for text in _texts(value))


def _rand_id(prefix: str, length: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _header_ms(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw) / 1000.0
    except ValueError:
        return None


def _fake_value(schema: object, name: str) -> object:
    if not isinstance(schema, dict):
        return "example"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    values: dict[object, object] = {
        "string": f"example {name}",
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": _fake_arguments(schema),
        "null": None,
    }
    return values.get(kind, "example")


def _fake_arguments(schema: object) -> dict[str, object]:
    """Deterministic arguments that fit a JSON schema's top-level properties."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    return {str(name): _fake_value(prop, str(name)) for name, prop in props.items()}


def _tool_schemas(api: str, body: Mapping[str, Any]) -> dict[str, object]:
    """Map tool name -> parameters schema for the request's function tools."""
    tools = body.get("tools")
    found: dict[str, object] = {}
    if not isinstance(tools, list):
        return found
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if api == "chat" and isinstance(tool.get("function"), dict):
            fn = tool["function"]
            if isinstance(fn.get("name"), str):
                found[fn["name"]] = fn.get("parameters")
        elif api == "responses" and tool.get("type") == "function":
            if isinstance(tool.get("name"), str):
                found[tool["name"]] = tool.get("parameters")
        elif (
            api == "messages"
            and tool.get("type") in (None, "custom")
            and isinstance(tool.get("name"), str)
        ):
            found[tool["name"]] = tool.get("input_schema")
    return found


def _forced_tool(body: Mapping[str, Any], names: list[str]) -> str | None:
    """The tool the request's ``tool_choice`` forces, if any."""
    choice = body.get("tool_choice")
    if choice in ("required", "any") and names:
        return names[0]
    if isinstance(choice, dict):
        if choice.get("type") in ("any",) and names:
            return names[0]
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        if choice.get("type") in ("tool", "function") and isinstance(choice.get("name"), str):
            return str(choice["name"])
    return None


def _max_tokens(api: str, body: Mapping[str, Any]) -> int | None:
    keys = {
        "chat": ("max_completion_tokens", "max_tokens"),
        "responses": ("max_output_tokens",),
        "messages": ("max_tokens",),
        "completions": ("max_tokens",),
    }[api]
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return _COMPLETIONS_DEFAULT_MAX_TOKENS if api == "completions" else None


def _input_tokens(api: str, body: Mapping[str, Any]) -> int:
    if api == "chat":
        return _count_words(body.get("messages"))
    if api == "completions":
        return _prompt_tokens(body.get("prompt"))
    if api == "responses":
        return _count_words(body.get("instructions"), body.get("input"))
    return _count_words(body.get("system"), body.get("messages"))


def _prompt_tokens(prompt: object) -> int:
    """A legacy prompt: text, a list of texts, token ids, or a list of token id lists."""
    if isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        return len(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return sum(_prompt_tokens(p) for p in prompt)
    return _count_words(prompt)


def _embedding(item: object, dim: int) -> list[float]:
    """Deterministic vector with float32-exact components in [-1, 1)."""
    seed = _dumps(item)
    raw = b""
    counter = 0
    while len(raw) < dim:
        raw += hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        counter += 1
    return [(b - 128) / 128.0 for b in raw[:dim]]


# --------------------------------------------------------------------------- errors

_OPENAI_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", "conflict", "The request conflicts with another request."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1. "
        "Please try again in 120ms.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "server_is_overloaded", "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}

_ANTHROPIC_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_reply(
    provider: str,
    status: int,
    message: str | None = None,
    *,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A :class:`Reply` carrying ``provider``'s error body for ``status``.

    ``provider`` is ``openai``, ``azure``, ``anthropic``, ``bedrock``, ``gemini`` or
    ``ollama``. ``retry_after`` (seconds) adds ``retry-after`` (and ``retry-after-ms`` for
    OpenAI/Azure); for Gemini it is the ``RetryInfo.retryDelay`` of the body instead, and
    Bedrock and Ollama send no retry hint at all.
    """
    if provider in ("bedrock", "gemini", "ollama"):
        from . import _more_apis  # imports this module

        reply = _more_apis.error_reply(provider, status, message, error_type, retry_after)
        reply.headers.update({k.lower(): v for k, v in (headers or {}).items()})
        return reply
    out: dict[str, str] = {"content-type": _JSON_CONTENT_TYPE}
    request_id = _rand_id("req_", 24)
    body: dict[str, Any]
    if provider == "anthropic":
        default_type, default_message = _ANTHROPIC_ERRORS.get(
            status,
            ("api_error", "Internal server error")
            if status >= 500
            else ("invalid_request_error", "Error"),
        )
        body = {
            "type": "error",
            "error": {"type": error_type or default_type, "message": message or default_message},
            "request_id": request_id,
        }
        out["request-id"] = request_id
        if status == 429:
            out["anthropic-ratelimit-requests-limit"] = "50"
            out["anthropic-ratelimit-requests-remaining"] = "0"
    elif provider in ("openai", "azure"):
        default = _OPENAI_ERRORS.get(
            status,
            ("server_error", None, "Server error.")
            if status >= 500
            else ("invalid_request_error", None, "Error."),
        )
        if provider == "azure" and status == 429:
            wait = retry_after if retry_after is not None else 1
            body = {
                "error": {
                    "code": code or "429",
                    "message": message
                    or "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
                    "API have exceeded token rate limit of your current tier. "
                    f"Please retry after {wait:g} seconds.",
                }
            }
        else:
            body = {
                "error": {
                    "message": message or default[2],
                    "type": error_type or default[0],
                    "param": param,
                    "code": code if code is not None else default[1],
                }
            }
        out["x-request-id"] = request_id
        if status == 429:
            out["x-ratelimit-limit-requests"] = "500"
            out["x-ratelimit-remaining-requests"] = "0"
            out["x-ratelimit-reset-requests"] = "120ms"
    else:
        raise ValueError(f"unknown provider {provider!r}")
    if retry_after is not None:
        out["retry-after"] = f"{retry_after:g}"
        if provider != "anthropic":
            out["retry-after-ms"] = f"{retry_after * 1000:g}"
    if headers:
        out.update({k.lower(): v for k, v in headers.items()})
    return Reply(status=status, headers=out, body=body)


# --------------------------------------------------------------------------- renderers


def _openai_usage(call: _Call) -> dict[str, Any]:
    return {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _azure_filters(prompt: bool) -> dict[str, Any]:
    safe = {"filtered": False, "severity": "safe"}
    result: dict[str, Any] = {
        cat: dict(safe) for cat in ("hate", "self_harm", "sexual", "violence")
    }
    if prompt:
        result["jailbreak"] = {"filtered": False, "detected": False}
    else:
        result["protected_material_code"] = {"filtered": False, "detected": False}
        result["protected_material_text"] = {"filtered": False, "detected": False}
    return result


def _chat_finish(call: _Call) -> str:
    if call.tool is not None:
        return "tool_calls"
    return "length" if call.truncated else "stop"


def _chat_body(call: _Call, cid: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if call.tool else call.text}
    message["refusal"] = None
    message["annotations"] = []
    if call.tool is not None:
        message["tool_calls"] = [
            {
                "id": _rand_id("call_"),
                "type": "function",
                "function": {"name": call.tool.name, "arguments": call.tool.arguments},
            }
        ]
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _chat_finish(call),
    }
    if call.provider == "azure":
        choice["content_filter_results"] = _azure_filters(prompt=False)
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": call.created,
        "model": call.model,
        "choices": [choice],
        "usage": _openai_usage(call),
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
    }
    if call.provider == "azure":
        body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": _azure_filters(prompt=True)}
        ]
    return body


def _chat_events(call: _Call, cid: str) -> list[_Event]:
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    azure = call.provider == "azure"

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": call.created,
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
            "choices": choices,
        }
        if include_usage:
            data["usage"] = usage
        return b"data: " + _dumps(data) + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if azure and finish is None:
            c["content_filter_results"] = (
                _azure_filters(prompt=False) if delta.get("content") else {}
            )
        return c

    events: list[_Event] = []
    if azure:
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": _azure_filters(prompt=True)}
            ],
        }
        events.append(("pre", b"data: " + _dumps(first) + b"\n\n"))
    if call.tool is not None:
        head = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": _rand_id("call_"),
                    "type": "function",
                    "function": {"name": call.tool.name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        events.append(("pre", chunk([choice(head)])))
        for piece in call.tool.pieces:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            events.append(("content", chunk([choice(delta)])))
    else:
        events.append(
            ("pre", chunk([choice({"role": "assistant", "content": "", "refusal": None})]))
        )
        for piece in call.pieces:
            events.append(("content", chunk([choice({"content": piece})])))
    events.append(("post", chunk([choice({}, _chat_finish(call))])))
    if include_usage:
        events.append(("post", chunk([], _openai_usage(call))))
    events.append(("post", b"data: [DONE]\n\n"))
    return events


def _completion_choice(text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}


def _completion_usage(call: _Call) -> dict[str, Any]:
    return {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.total_tokens,
    }


def _completions_body(call: _Call, cid: str) -> dict[str, Any]:
    """A legacy completion (`POST /v1/completions`): the text sits on the choice itself."""
    return {
        "id": cid,
        "object": "text_completion",
        "created": call.created,
        "model": call.model,
        "choices": [_completion_choice(call.text, _chat_finish(call))],
        "usage": _completion_usage(call),
    }


def _completions_events(call: _Call, cid: str) -> list[_Event]:
    """A streamed legacy completion: the same object per chunk (text pieces, then an empty
    text with the finish reason), the usage chunk when asked for, then `[DONE]`."""
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": cid,
            "object": "text_completion",
            "created": call.created,
            "choices": choices,
            "model": call.model,
        }
        if include_usage:
            data["usage"] = usage
        return b"data: " + _dumps(data) + b"\n\n"

    events: list[_Event] = [
        ("content", chunk([_completion_choice(piece, None)])) for piece in call.pieces
    ]
    events.append(("post", chunk([_completion_choice("", _chat_finish(call))])))
    if include_usage:
        events.append(("post", chunk([], _completion_usage(call))))
    events.append(("post", b"data: [DONE]\n\n"))
    return events


def _responses_usage(call: _Call) -> dict[str, Any]:
    return {
        "input_tokens": call.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": call.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": call.total_tokens,
    }


def _responses_item(call: _Call, item_id: str, call_id: str, done: bool) -> dict[str, Any]:
    status = ("incomplete" if call.truncated else "completed") if done else "in_progress"
    if call.tool is not None:
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": call.tool.arguments if done else "",
            "call_id": call_id,
            "name": call.tool.name,
        }
    content = (
        [{"type": "output_text", "annotations": [], "logprobs": [], "text": call.text}]
        if done
        else []
    )
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _responses_body(
    call: _Call, rid: str, item_id: str, call_id: str, state: str
) -> dict[str, Any]:
    body = call.body
    done = state != "in_progress"
    raw_tools = body.get("tools")
    tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
    raw_text = body.get("text")
    text_config: dict[str, Any] = raw_text if isinstance(raw_text, dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": call.created,
        "status": state,
        "background": False,
        "completed_at": int(time.time()) if state == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if state == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": call.model,
        "output": [_responses_item(call, item_id, call_id, True)] if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium", **text_config},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _responses_usage(call) if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _responses_events(call: _Call, rid: str, item_id: str, call_id: str) -> list[_Event]:
    events: list[_Event] = []
    seq = 0

    def add(kind: _Kind, data: dict[str, Any]) -> None:
        nonlocal seq
        data = {
            "type": data["type"],
            "sequence_number": seq,
            **{k: v for k, v in data.items() if k != "type"},
        }
        seq += 1
        events.append(
            (kind, f"event: {data['type']}\n".encode() + b"data: " + _dumps(data) + b"\n\n")
        )

    final = "incomplete" if call.truncated else "completed"
    add(
        "pre",
        {
            "type": "response.created",
            "response": _responses_body(call, rid, item_id, call_id, "in_progress"),
        },
    )
    add(
        "pre",
        {
            "type": "response.in_progress",
            "response": _responses_body(call, rid, item_id, call_id, "in_progress"),
        },
    )
    where = {"item_id": item_id, "output_index": 0}
    add(
        "pre",
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _responses_item(call, item_id, call_id, False),
        },
    )
    if call.tool is not None:
        for piece in call.tool.pieces:
            add(
                "content",
                {"type": "response.function_call_arguments.delta", **where, "delta": piece},
            )
        add(
            "post",
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.tool.name,
                "arguments": call.tool.arguments,
            },
        )
    else:
        where_part = {**where, "content_index": 0}
        empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        add("pre", {"type": "response.content_part.added", **where_part, "part": empty_part})
        for piece in call.pieces:
            add(
                "content",
                {
                    "type": "response.output_text.delta",
                    **where_part,
                    "delta": piece,
                    "logprobs": [],
                },
            )
        add(
            "post",
            {"type": "response.output_text.done", **where_part, "text": call.text, "logprobs": []},
        )
        add(
            "post",
            {
                "type": "response.content_part.done",
                **where_part,
                "part": {**empty_part, "text": call.text},
            },
        )
    add(
        "post",
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _responses_item(call, item_id, call_id, True),
        },
    )
    add(
        "post",
        {
            "type": f"response.{final}",
            "response": _responses_body(call, rid, item_id, call_id, final),
        },
    )
    return events


def _anthropic_usage(call: _Call, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": call.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_stop(call: _Call) -> str:
    if call.tool is not None:
        return "tool_use"
    return "max_tokens" if call.truncated else "end_turn"


def _anthropic_body(call: _Call, mid: str, tool_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]]
    if call.tool is not None:
        content = [
            {
                "type": "tool_use",
                "id": tool_id,
                "name": call.tool.name,
                "input": json.loads(call.tool.arguments),
            }
        ]
    else:
        content = [{"type": "text", "text": call.text}]
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": _anthropic_stop(call),
        "stop_sequence": None,
        "usage": _anthropic_usage(call, call.output_tokens),
    }


def _anthropic_events(call: _Call, mid: str, tool_id: str) -> list[_Event]:
    events: list[_Event] = []

    def add(kind: _Kind, data: dict[str, Any]) -> None:
        events.append(
            (kind, f"event: {data['type']}\n".encode() + b"data: " + _dumps(data) + b"\n\n")
        )

    start = {**_anthropic_body(call, mid, tool_id), "content": [], "stop_reason": None}
    start["usage"] = _anthropic_usage(call, 1)
    add("pre", {"type": "message_start", "message": start})
    if call.tool is not None:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": tool_id,
            "name": call.tool.name,
            "input": {},
        }
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *call.tool.pieces]]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in call.pieces]
    add("pre", {"type": "content_block_start", "index": 0, "content_block": block})
    add("pre", {"type": "ping"})
    for delta in deltas:
        add("content", {"type": "content_block_delta", "index": 0, "delta": delta})
    add("post", {"type": "content_block_stop", "index": 0})
    add(
        "post",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _anthropic_stop(call), "stop_sequence": None},
            "usage": {"output_tokens": call.output_tokens},
        },
    )
    add("post", {"type": "message_stop"})
    return events


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ProviderServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore connections the client dropped; report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Abort(Exception):
    """Drop the connection without finishing the response."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm-provider/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer
    _started = False
    _gzip = False  # this response may be gzip-compressed (configured, and the client accepts it)
    _gz: Any = None  # the running compressor of a chunked (streamed) gzip response

    def setup(self) -> None:
        """Track the connection so stop() can close idle keep-alive sockets."""
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        """Untrack the connection."""
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Handle PUT."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Handle PATCH."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch()

    # ----------------------------------------------------------------- reading

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _received(self) -> ReceivedRequest:
        body = self._read_body()
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            value = value.encode("latin-1", "replace").decode("utf-8", "replace")
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        return ReceivedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            json=parsed,
            received_at=time.time(),
        )

    # ----------------------------------------------------------------- writing

    def _start(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        self._started = True
        self.send_response(status)
        lowered = {k.lower() for k in headers}
        if length is None and self._gzip and "content-encoding" not in lowered:
            # streams as real providers send them behind a CDN: one gzip member, each
            # chunk flushed on its own so the client can decode it as it arrives
            self._gz = zlib.compressobj(wbits=31)
            headers = {**headers, "Content-Encoding": "gzip"}
        for key, value in headers.items():
            self.send_header(key, value)
        if length is None:
            if "transfer-encoding" not in lowered:
                self.send_header("Transfer-Encoding", "chunked")
        elif "content-length" not in lowered:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_body(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if self._gzip and body and "content-encoding" not in {k.lower() for k in headers}:
            body = zlib.compress(body, wbits=31)
            headers = {**headers, "Content-Encoding": "gzip"}
        self._start(status, headers, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self, status: int, headers: Mapping[str, str], data: object, *, pretty: bool = False
    ) -> None:
        self._send_body(
            status, {"Content-Type": _JSON_CONTENT_TYPE, **headers}, _dumps(data, pretty=pretty)
        )

    def _chunk(self, data: bytes) -> None:
        if data and self._gz is not None:
            data = self._gz.compress(data) + self._gz.flush(zlib.Z_SYNC_FLUSH)
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        if self._gz is not None:
            tail, self._gz = self._gz.flush(), None
            self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
        self.wfile.write(b"0\r\n\r\n")

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.owner._stopping.wait(seconds):
            raise _Abort

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_stream(
        self,
        status: int,
        headers: Mapping[str, str],
        events: list[_Event],
        *,
        ttft_s: float,
        chunk_delay_s: float,
        cut_after: int | None,
        truncate_after: int | None,
    ) -> None:
        base = {"Content-Type": _SSE_CONTENT_TYPE, "Cache-Control": "no-cache"}
        self._start(status, {**base, **headers}, None)
        if truncate_after is not None:
            events = [e for e in events if e[0] != "post"][: max(truncate_after, 0)]
        self._wait(ttft_s)
        first_content = True
        for index, (kind, data) in enumerate(events):
            if cut_after is not None and index >= cut_after:
                break
            if kind == "content":
                if not first_content:
                    self._wait(chunk_delay_s)
                first_content = False
            self._chunk(data)
        if cut_after is not None:
            raise _Abort
        self._end_chunks()

    def _send_reply(self, reply: Reply) -> None:
        self._wait(reply.delay_s)
        headers = dict(reply.headers)
        lowered = {k.lower() for k in headers}
        if reply.events is not None:
            if "content-type" not in lowered:
                headers["Content-Type"] = _SSE_CONTENT_TYPE
            self._start(reply.status, headers, None)
            for delay, data in reply.events:
                self._wait(delay)
                self._chunk(data)
            if reply.cut:
                raise _Abort
            self._end_chunks()
            return
        body: bytes
        if isinstance(reply.body, bytes):
            body = reply.body
        elif isinstance(reply.body, str):
            body = reply.body.encode()
        elif reply.body is None:
            body = b""
        else:
            body = _dumps(reply.body)
            if "content-type" not in lowered:
                headers["Content-Type"] = _JSON_CONTENT_TYPE
        if reply.cut:
            self._start(reply.status, headers, len(body) + 1)
            self.wfile.write(body)
            raise _Abort
        self._send_body(reply.status, headers, body)

    # ----------------------------------------------------------------- routing

    def _dispatch(self) -> None:
        owner = self.server.owner
        self._started = False
        self._gz = None
        try:
            request = self._received()
            self._gzip = owner._snapshot().gzip and "gzip" in request.headers.get(
                "accept-encoding", ""
            )
            owner._record(request)
            scripted = owner._take(request.path)
            if scripted is not None:
                self._send_reply(scripted)
            else:
                self._generate(request)
            self.wfile.flush()
        except _Abort:
            self._abort()
        except OSError:
            self.close_connection = True
        except Exception as exc:  # a bug here must not look like a network fault
            traceback.print_exc()
            if self._started:
                self._abort()
                return
            message = f"fake provider failed: {exc!r}"
            error = {
                "error": {"message": message, "type": "server_error", "param": None, "code": None}
            }
            with contextlib.suppress(OSError):
                self._send_json(500, {"x-should-retry": "false"}, error)

    def _generate(self, request: ReceivedRequest) -> None:
        from . import _more_apis  # imports this module

        if _more_apis.serve(self, request):
            return
        started = time.monotonic()
        path = request.path.rstrip("/")
        api: str
        provider: Provider
        if path.endswith("/messages/count_tokens"):
            api, provider = "count_tokens", "anthropic"
        elif path.endswith("/messages"):
            api, provider = "messages", "anthropic"
        elif path.endswith("/chat/completions"):
            api, provider = "chat", "azure" if "/openai/deployments/" in path else "openai"
        elif path.endswith("/completions"):  # legacy completions, after chat's longer suffix
            api, provider = "completions", "azure" if "/openai/deployments/" in path else "openai"
        elif path.endswith("/responses"):
            api, provider = "responses", "openai"
        elif path.endswith("/embeddings"):
            api, provider = "embeddings", "azure" if "/openai/deployments/" in path else "openai"
        else:
            message = f"Invalid URL ({request.method} {request.path})"
            error = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            self._send_json(404, {}, error)
            return
        headers = request.headers
        status = _as_int(headers.get(HEADER_STATUS))
        if status is not None and status >= 400:
            self._send_reply(error_reply(provider, status))
            return
        if request.method != "POST":
            self._send_reply(error_reply(provider, 405, f"Method {request.method} not allowed"))
            return
        body = request.json
        if not isinstance(body, dict):
            self._send_reply(
                error_reply(provider, 400, "We could not parse the JSON body of your request.")
            )
            return
        if api == "count_tokens":
            self._send_json(200, {}, {"input_tokens": _input_tokens("messages", body)})
            return
        defaults = self.server.owner._snapshot()
        model = defaults.model or str(body.get("model") or "fake-model")
        if api == "embeddings":
            self._send_json(200, self._meta(provider, started), self._embeddings(body, model))
            return
        call = self._call(api, provider, body, model, headers, defaults)
        ttft = _header_ms(headers, HEADER_TTFT_MS)
        delay = _header_ms(headers, HEADER_CHUNK_DELAY_MS)
        ttft_s = defaults.ttft_s if ttft is None else ttft
        delay_s = defaults.chunk_delay_s if delay is None else delay
        # cid: response id; item_id: Responses output item id; tool_id: tool call id.
        if api == "chat":
            cid, item_id, tool_id = _rand_id("chatcmpl-", 29), "", ""
        elif api == "completions":
            cid, item_id, tool_id = _rand_id("cmpl-", 29), "", ""
        elif api == "responses":
            cid = "resp_" + secrets.token_hex(24)
            item_id = ("fc_" if call.tool else "msg_") + secrets.token_hex(24)
            tool_id = _rand_id("call_")
        else:
            cid, item_id, tool_id = _rand_id("msg_01"), "", _rand_id("toolu_01")
        if body.get("stream") is True:
            if api == "chat":
                events = _chat_events(call, cid)
            elif api == "completions":
                events = _completions_events(call, cid)
            elif api == "responses":
                events = _responses_events(call, cid, item_id, tool_id)
            else:
                events = _anthropic_events(call, cid, tool_id)
            self._send_stream(
                200,
                self._meta(provider, started),
                events,
                ttft_s=ttft_s,
                chunk_delay_s=delay_s,
                cut_after=_as_int(headers.get(HEADER_STREAM_CUT_AFTER)),
                truncate_after=_as_int(headers.get(HEADER_STREAM_TRUNCATE_AFTER)),
            )
            return
        n_pieces = len(call.tool.pieces) if call.tool else len(call.pieces)
        self._wait(ttft_s + delay_s * max(n_pieces - 1, 0))
        if api == "chat":
            self._send_json(200, self._meta(provider, started), _chat_body(call, cid), pretty=True)
        elif api == "completions":
            data = _completions_body(call, cid)
            self._send_json(200, self._meta(provider, started), data, pretty=True)
        elif api == "responses":
            data = _responses_body(
                call, cid, item_id, tool_id, "incomplete" if call.truncated else "completed"
            )
            self._send_json(200, self._meta(provider, started), data, pretty=True)
        else:
            self._send_json(200, self._meta(provider, started), _anthropic_body(call, cid, tool_id))

    def _call(
        self,
        api: str,
        provider: Provider,
        body: dict[str, Any],
        model: str,
        headers: Mapping[str, str],
        defaults: _Defaults,
    ) -> _Call:
        schemas = _tool_schemas(api, body)
        wanted = (
            headers.get(HEADER_TOOL_CALL) or defaults.tool_call or _forced_tool(body, list(schemas))
        )
        tool: _Tool | None = None
        if wanted and schemas:
            arguments = json.dumps(_fake_arguments(schemas.get(wanted)))
            tool = _Tool(wanted, arguments, _split_words(arguments))
        text = headers.get(HEADER_REPLY, defaults.reply)
        pieces = _split_words(text)
        limit = _max_tokens(api, body)
        truncated = tool is None and limit is not None and limit < len(pieces)
        if truncated and limit is not None:
            pieces = pieces[: max(limit, 0)]
        return _Call(
            provider=provider,
            model=model,
            body=body,
            pieces=pieces,
            truncated=truncated,
            input_tokens=_input_tokens(api, body),
            output_tokens=len(tool.pieces) if tool else len(pieces),
            tool=tool,
            created=int(time.time()),
        )

    def _embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        raw = body.get("input")
        items: list[Any]
        if isinstance(raw, list) and raw and not all(isinstance(x, int) for x in raw):
            items = raw
        else:
            items = [raw]
        dims = _as_int(body.get("dimensions")) or _EMBEDDING_DIM
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        tokens = 0
        for index, item in enumerate(items):
            tokens += len(item) if isinstance(item, list) else _count_words(item)
            vector = _embedding(item, dims)
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _meta(self, provider: Provider, started: float) -> dict[str, str]:
        request_id = _rand_id("req_", 24)
        if provider == "anthropic":
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
            meta = {
                "request-id": request_id,
                "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
            }
            for kind, limit in (
                ("requests", 4000),
                ("tokens", 2000000),
                ("input-tokens", 1600000),
                ("output-tokens", 400000),
            ):
                meta[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
                meta[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - 1)
                meta[f"anthropic-ratelimit-{kind}-reset"] = reset
            return meta
        meta = {
            "x-request-id": request_id,
            "openai-organization": "fake-org",
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": "29999990",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
        }
        if provider == "azure":
            meta["apim-request-id"] = request_id
            meta["x-ms-region"] = "East US"
        return meta


# --------------------------------------------------------------------------- public server


class ProviderServer:
    """Fake OpenAI / Azure OpenAI / Anthropic server on ``host:port`` (port 0: ephemeral)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        self._defaults = _Defaults()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ProviderServer:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ProviderServer:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        if self._httpd is None:
            raise RuntimeError("ProviderServer is not running; call start() first")
        return f"http://{self.host}:{self._port}"

    # ----------------------------------------------------------------- scripting

    def configure(
        self,
        *,
        reply: str | _Unset = _UNSET,
        ttft_s: float | _Unset = _UNSET,
        chunk_delay_s: float | _Unset = _UNSET,
        tool_call: str | _Unset | None = _UNSET,
        model: str | _Unset | None = _UNSET,
        gzip: bool | _Unset = _UNSET,
    ) -> None:
        """Set defaults for later requests; only the arguments given change. `gzip`:
        compress responses (bodies whole, streams chunk by chunk) for clients that send
        `Accept-Encoding: gzip`, as real providers do."""
        with self._lock:
            if not isinstance(reply, _Unset):
                self._defaults.reply = reply
            if not isinstance(ttft_s, _Unset):
                self._defaults.ttft_s = ttft_s
            if not isinstance(chunk_delay_s, _Unset):
                self._defaults.chunk_delay_s = chunk_delay_s
            if not isinstance(tool_call, _Unset):
                self._defaults.tool_call = tool_call
            if not isinstance(model, _Unset):
                self._defaults.model = model
            if not isinstance(gzip, _Unset):
                self._defaults.gzip = gzip

    def enqueue(self, *replies: Reply) -> None:
        """Queue one-shot scripted replies (FIFO), each consumed by one matching request."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Number of scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Clear queued replies, recorded requests and configured defaults."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._defaults = _Defaults()

    # ----------------------------------------------------------------- internals

    def _snapshot(self) -> _Defaults:
        with self._lock:
            d = self._defaults
            return _Defaults(d.reply, d.ttft_s, d.chunk_delay_s, d.tool_call, d.model, d.gzip)

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take(self, path: str) -> Reply | None:
        with self._lock:
            for reply in self._queue:
                if reply.match is None or reply.match in path:
                    self._queue.remove(reply)
                    return reply
        return None

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmobs.testing.provider_server", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    server = ProviderServer(args.host, args.port)
    server.configure(
        reply=args.reply,
        ttft_s=args.ttft_ms / 1000.0,
        chunk_delay_s=args.chunk_delay_ms / 1000.0,
        model=args.model,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(server.url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
