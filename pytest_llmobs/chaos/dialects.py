"""Each provider's own wire format for the chaos faults: error bodies and headers, a
synthesized answer to damage, and how its stream events are told apart and rewritten.

One `Dialect` per `gen_ai.provider.name`: OpenAI, Azure and Anthropic here, Bedrock and
Gemini (binary event streams, google.rpc errors) in their own modules. Adding a provider
means writing one more subclass and listing it in `DIALECTS`; the catalog, the injector,
the proxy and the verdict do not change.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

EventKind = Literal["pre", "content", "finish", "usage", "end", "other"]
FinishKind = Literal["length", "content_filter"]

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True)
class RequestInfo:
    """What a fault needs to know about the request it answers."""

    provider: str
    api: str  # chat | responses | messages | embeddings | converse | invoke | generate_content
    model: str
    stream: bool
    include_usage: bool = False
    path: str = ""
    host: str = ""
    query: str = ""
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Reply:
    """A whole response: status, headers, and either one body or a list of SSE events."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    events: list[bytes] | None = None


# -- SSE events as raw bytes ------------------------------------------------------------
def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else _dumps(data)
    head = f"event: {event}\n" if event else ""
    return (head + f"data: {payload}\n\n").encode()


def parse_event(raw: bytes) -> tuple[str | None, str]:
    """(event name, data) of one raw event; data lines joined with newlines."""
    name: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return name, "\n".join(data)


def _event_json(raw: bytes, info: RequestInfo) -> tuple[str | None, Any]:
    """(event name, parsed data) of a stream event, or (None, parsed body) of a JSON body."""
    name, data = parse_event(raw) if info.stream else (None, raw.decode("utf-8", "replace"))
    try:
        return name, json.loads(data)
    except ValueError:
        return name, None


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def split_sse(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete SSE events at the start of `buffer` (each with its blank line), and
    the rest."""
    events: list[bytes] = []
    while (match := _EVENT_END.search(buffer)) is not None:
        events.append(buffer[: match.end()])
        buffer = buffer[match.end() :]
    return events, buffer


def corrupt_json(raw: bytes) -> bytes:
    """The event (or body) with its JSON cut off mid-value: no parser accepts it."""
    text = raw.rstrip(b"\r\n")
    ending = raw[len(text) :]
    head, sep, data = text.rpartition(b"data: ")
    if sep and data.startswith(b"{"):
        return head + sep + data[: max(2, len(data) // 2)] + (ending or b"\n\n")
    return text[: max(2, len(text) // 2)] + ending


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words) if w or i == 0]


def _count_input(body: dict[str, Any]) -> int:
    def texts(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [t for item in value for t in texts(item)]
        if isinstance(value, dict):
            return [
                t
                for key in ("text", "content", "input", "parts")
                if key in value
                for t in texts(value[key])
            ]
        return []

    found = [
        text
        for key in ("messages", "input", "system", "contents", "prompt")
        for text in texts(body.get(key))
    ]
    return max(1, sum(len(t.split()) for t in found))


def _seconds(value: float) -> str:
    return f"{value:g}"


def _request_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Dialect:
    """Base: the provider-independent parts; subclasses supply the wire format."""

    provider: str = ""
    apis: tuple[str, ...] = ()
    # fault → why it cannot happen with this provider (the catalog skips it, the docs say why)
    not_applicable: dict[str, str] = {}
    limitation = ""  # requests whose answers cannot be synthesized or damaged, for the docs

    def can_damage(self, info: RequestInfo) -> bool:
        """Whether this answer's body can be synthesized and damaged (stream faults)."""
        return True

    def supports(self, fault: str, params: dict[str, Any], info: RequestInfo) -> bool:
        """Whether `fault` can be rendered for this request (beyond `not_applicable`)."""
        return True

    def announced_retry_after(self, fault: str, params: dict[str, Any]) -> float | None:
        """The wait the rendered error asks for, as the client can read it (None: none)."""
        value = params.get("retry_after")
        return None if value is None else float(value)

    # -- framing of a streamed body --------------------------------------------------------
    def split(self, buffer: bytes, info: RequestInfo) -> tuple[list[bytes], bytes]:
        """Complete events at the start of `buffer`, and the bytes of an unfinished one."""
        return split_sse(buffer)

    def corrupt(self, raw: bytes, info: RequestInfo) -> bytes:
        """An event (or whole body) whose JSON no longer parses."""
        return corrupt_json(raw)

    def damage_headers(
        self, headers: list[tuple[str, str]], fault: str, params: dict[str, Any], info: RequestInfo
    ) -> list[tuple[str, str]]:
        """Response headers of a damaged answer (usage some providers report in headers)."""
        return headers

    # -- status faults ---------------------------------------------------------------------
    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        raise NotImplementedError

    # -- a whole successful answer, to damage ----------------------------------------------
    def synthesize(self, info: RequestInfo, text: str) -> Reply:
        raise NotImplementedError

    def content_type(self, info: RequestInfo) -> str:
        return SSE_TYPE if info.stream else JSON_TYPE

    # -- stream events -------------------------------------------------------------------
    def classify(self, raw: bytes, info: RequestInfo) -> EventKind:
        raise NotImplementedError

    def error_event(self, params: dict[str, Any], info: RequestInfo) -> bytes:
        raise NotImplementedError

    def rewrite_finish(self, raw: bytes, kind: FinishKind, info: RequestInfo) -> bytes:
        """The finish event (or whole body) saying `length` / `content_filter`."""
        raise NotImplementedError

    def rewrite_usage(self, raw: bytes, factor: float, info: RequestInfo) -> bytes:
        """An event (or whole body) with every usage count multiplied by `factor`."""
        name, data = _event_json(raw, info)
        if data is None:
            return raw
        _scale_usage(data, factor)
        return self._reencode(raw, name, data, info)

    def blank_content(self, raw: bytes, info: RequestInfo) -> bytes:
        """A non-stream body with its output removed (content filtered)."""
        return raw

    def cut_content(self, raw: bytes, info: RequestInfo) -> bytes:
        """A non-stream body with its output text cut to about half."""
        return raw

    def _reencode(self, raw: bytes, name: str | None, data: Any, info: RequestInfo) -> bytes:
        if not info.stream:
            return _dumps(data).encode()
        return sse(data, name)


_USAGE_KEYS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    # Bedrock Converse, Bedrock invocation metrics, Gemini usageMetadata
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "inputTokenCount",
    "outputTokenCount",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
)
_USAGE_OBJECTS = ("usage", "usageMetadata", "amazon-bedrock-invocationMetrics")


def _scale_usage(data: Any, factor: float) -> None:
    """Multiply the token counts of every usage object found in `data`, in place."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _USAGE_OBJECTS and isinstance(value, dict):
                for name in _USAGE_KEYS:
                    count = value.get(name)
                    if isinstance(count, int) and not isinstance(count, bool):
                        value[name] = math.ceil(count * factor)
            else:
                _scale_usage(value, factor)
    elif isinstance(data, list):
        for item in data:
            _scale_usage(item, factor)


def _half(text: str) -> str:
    words = text.split(" ")
    return " ".join(words[: max(1, len(words) // 2)])


# -- OpenAI (and OpenAI-compatible) ------------------------------------------------------
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str | None, str]] = {
    # fault → (status, type, param, code, message)
    "rate_limit": (
        429,
        "requests",
        None,
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-chaos on requests per min (RPM): "
        "Limit 500, Used 500, Requested 1. Please try again in {wait}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    "quota_exhausted": (
        429,
        "insufficient_quota",
        None,
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    "overloaded": (
        503,
        "server_error",
        None,
        "server_is_overloaded",
        "The server is overloaded or not ready yet.",
    ),
    "server_error": (
        500,
        "server_error",
        None,
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "context_length": (
        400,
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
        "This model's maximum context length is {limit} tokens. However, your messages "
        "resulted in {size} tokens. Please reduce the length of the messages.",
    ),
    "content_filter": (
        400,
        "invalid_request_error",
        None,
        "invalid_prompt",
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
        "Please try again with a different prompt: "
        "https://platform.openai.com/docs/guides/reasoning#advice-on-prompting",
    ),
}


class OpenAIDialect(Dialect):
    provider = "openai"
    apis = ("chat", "responses", "embeddings")

    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        key = "rate_limit" if fault == "long_retry_after" else fault
        status, kind, param, code, template = _OPENAI_ERRORS[key]
        if key == "context_length" and info.api == "responses":
            param = "input"
        status = int(params.get("status") or status)
        retry_after = params.get("retry_after")
        message = template.format(
            model=info.model or "the model",
            wait=f"{retry_after:g}s" if retry_after is not None else "1s",
            limit=params.get("limit") or 128000,
            size=int(params.get("limit") or 128000) + 3072,
        )
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        headers = [("content-type", JSON_TYPE), ("x-request-id", _request_id("req_"))]
        headers += self._limit_headers(key, retry_after)
        headers += _retry_headers(fault, retry_after, ms=True)
        return Reply(status, headers, _dumps(body).encode())

    def _limit_headers(self, key: str, retry_after: float | None) -> list[tuple[str, str]]:
        if key != "rate_limit":
            return []
        reset = f"{int((retry_after or 1) * 1000)}ms"
        return [
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "29000"),
            ("x-ratelimit-reset-requests", reset),
            ("x-ratelimit-reset-tokens", "2ms"),
        ]

    # -- synthesized answers -------------------------------------------------------------
    def synthesize(self, info: RequestInfo, text: str) -> Reply:
        headers = [
            ("content-type", self.content_type(info)),
            ("x-request-id", _request_id("req_")),
            ("openai-processing-ms", "12"),
        ]
        usage_in, usage_out = _count_input(info.body), len(text.split())
        if info.api == "responses":
            return self._responses(info, text, headers, usage_in, usage_out)
        cid = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        usage = {
            "prompt_tokens": usage_in,
            "completion_tokens": usage_out,
            "total_tokens": usage_in + usage_out,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        base = {
            "id": cid,
            "created": created,
            "model": info.model,
            "system_fingerprint": "fp_chaos",
        }
        if not info.stream:
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            message["annotations"] = []
            body = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
            return Reply(200, headers, _dumps(self._decorate_body(body)).encode())

        def chunk(choices: list[Any], with_usage: Any = None) -> bytes:
            data: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": choices}
            if info.include_usage:
                data["usage"] = with_usage
            return sse(data)

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        events = self._prelude()
        events.append(chunk([choice({"role": "assistant", "content": "", "refusal": None})]))
        events += [chunk([choice({"content": piece})]) for piece in _words(text)]
        events.append(chunk([choice({}, "stop")]))
        if info.include_usage:
            events.append(chunk([], usage))
        events.append(b"data: [DONE]\n\n")
        return Reply(200, headers, events=events)

    def _prelude(self) -> list[bytes]:
        return []

    def _decorate_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def _responses(
        self,
        info: RequestInfo,
        text: str,
        headers: list[tuple[str, str]],
        usage_in: int,
        usage_out: int,
    ) -> Reply:
        rid, item_id = "resp_" + secrets.token_hex(12), "msg_" + secrets.token_hex(12)
        usage = {
            "input_tokens": usage_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage_in + usage_out,
        }
        part = {"type": "output_text", "annotations": [], "text": text}
        item = {"id": item_id, "type": "message", "status": "completed", "role": "assistant"}

        def response(status: str) -> dict[str, Any]:
            done = status != "in_progress"
            return {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "model": info.model,
                "output": [{**item, "content": [part]}] if done else [],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": usage if done else None,
            }

        if not info.stream:
            return Reply(200, headers, _dumps(response("completed")).encode())
        events: list[bytes] = []

        def add(data: dict[str, Any]) -> None:
            data = {"type": data["type"], "sequence_number": len(events), **data}
            events.append(sse(data, data["type"]))

        add({"type": "response.created", "response": response("in_progress")})
        add({"type": "response.in_progress", "response": response("in_progress")})
        added = {**item, "status": "in_progress", "content": []}
        add({"type": "response.output_item.added", "output_index": 0, "item": added})
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        add({"type": "response.content_part.added", **where, "part": {**part, "text": ""}})
        for piece in _words(text):
            add({"type": "response.output_text.delta", **where, "delta": piece})
        add({"type": "response.output_text.done", **where, "text": text})
        add({"type": "response.content_part.done", **where, "part": part})
        add(
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": {**item, "content": [part]},
            }
        )
        add({"type": "response.completed", "response": response("completed")})
        return Reply(200, headers, events=events)

    # -- events -------------------------------------------------------------------------
    def classify(self, raw: bytes, info: RequestInfo) -> EventKind:
        name, data = parse_event(raw)
        if info.api == "responses":
            if name in ("response.completed", "response.incomplete", "response.failed"):
                return "end"
            if name in ("response.output_text.delta", "response.function_call_arguments.delta"):
                return "content"
            if name in (
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
            ):
                return "pre"
            return "finish"  # the *.done events close the output
        if data.strip() == "[DONE]":
            return "end"
        try:
            chunk = json.loads(data)
        except ValueError:
            return "other"
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            return "usage" if isinstance(chunk, dict) and chunk.get("usage") else "pre"
        first = choices[0] if isinstance(choices[0], dict) else {}
        if first.get("finish_reason"):
            return "finish"
        delta = first.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return "content"
        return "pre"

    def error_event(self, params: dict[str, Any], info: RequestInfo) -> bytes:
        kind = params.get("error", "server_error")
        message = {
            "overloaded": "The server is overloaded or not ready yet.",
            "rate_limit": "Rate limit reached. Please try again later.",
        }.get(kind, "The server had an error while processing your request. Sorry about that!")
        code = {"overloaded": "server_is_overloaded", "rate_limit": "rate_limit_exceeded"}.get(kind)
        if info.api == "responses":
            data = {
                "type": "error",
                "sequence_number": 0,
                "code": code or "server_error",
                "message": message,
                "param": None,
            }
            return sse(data, "error")
        return sse(
            {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
        )

    def rewrite_finish(self, raw: bytes, kind: FinishKind, info: RequestInfo) -> bytes:
        name, data = _event_json(raw, info)
        if not isinstance(data, dict):
            return raw
        if info.api == "responses":
            response = data.get("response") if info.stream else data
            if isinstance(response, dict):
                reason = "max_output_tokens" if kind == "length" else "content_filter"
                response["status"] = "incomplete"
                response["incomplete_details"] = {"reason": reason}
                if info.stream and name == "response.completed":
                    name = data["type"] = "response.incomplete"
            return self._reencode(raw, name, data, info)
        for choice in data.get("choices") or []:
            if isinstance(choice, dict) and (choice.get("finish_reason") or not info.stream):
                choice["finish_reason"] = kind
                if kind == "content_filter":
                    self._filtered(choice)
        return self._reencode(raw, name, data, info)

    def _filtered(self, choice: dict[str, Any]) -> None:
        return None

    def blank_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        for choice in data.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                message["content"] = None
        for item in data.get("output") or []:
            if isinstance(item, dict):
                item["content"] = []
        return _dumps(data).encode()

    def cut_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        for choice in data.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] = _half(message["content"])
        for item in data.get("output") or []:
            for part in (item.get("content") if isinstance(item, dict) else None) or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = _half(part["text"])
        return _dumps(data).encode()


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _retry_headers(fault: str, retry_after: float | None, *, ms: bool) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("retry-after", _seconds(retry_after)))
        if ms:
            headers.append(("retry-after-ms", _seconds(retry_after * 1000)))
    if fault == "quota_exhausted":
        headers.append(("x-should-retry", "false"))
    return headers


# -- Azure OpenAI --------------------------------------------------------------------------
_AZURE_CATEGORIES = ("hate", "jailbreak", "self_harm", "sexual", "violence")


def _azure_filter_result(category: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in _AZURE_CATEGORIES:
        hit = name == category
        if name == "jailbreak":
            result[name] = {"filtered": hit, "detected": hit}
        else:
            result[name] = {"filtered": hit, "severity": "high" if hit else "safe"}
    return result


class AzureDialect(OpenAIDialect):
    provider = "azure.ai.openai"
    apis = ("chat", "responses", "embeddings")

    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        retry_after = params.get("retry_after")
        headers = [
            ("content-type", JSON_TYPE),
            ("apim-request-id", _request_id("")),
            ("x-ms-region", "East US"),
        ]
        body: dict[str, Any]
        if fault in ("rate_limit", "long_retry_after"):
            wait = retry_after if retry_after is not None else 1
            status = 429
            body = {
                "error": {
                    "code": "429",
                    "message": (
                        "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
                        "API version 2024-10-21 have exceeded token rate limit of your current "
                        f"OpenAI S0 pricing tier. Please retry after {wait:g} seconds. Please go "
                        "here: https://aka.ms/oai/quotaincrease if you would like to further "
                        "increase the default rate limit."
                    ),
                }
            }
            headers += [
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "0"),
            ]
        elif fault == "quota_exhausted":
            status = 429
            body = {
                "error": {
                    "code": "insufficient_quota",
                    "message": (
                        "The quota for this Azure OpenAI resource has been exhausted for the "
                        "current billing period. Please increase your quota or try again in the "
                        "next period."
                    ),
                }
            }
        elif fault == "overloaded":
            status = 503
            body = {
                "error": {
                    "code": "ServiceUnavailable",
                    "message": (
                        "The service is temporarily unable to process your request. Please try "
                        "again later."
                    ),
                }
            }
        elif fault == "server_error":
            status = int(params.get("status") or 500)
            body = {
                "error": {
                    "code": "InternalServerError",
                    "message": "The server had an error while processing your request. "
                    "Sorry about that!",
                }
            }
        elif fault == "content_filter":
            status = 400
            category = str(params.get("category", "violence"))
            body = {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure "
                    "OpenAI's content management policy. Please modify your prompt and retry. To "
                    "learn more about our content filtering policies please read our "
                    "documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": _azure_filter_result(category),
                    },
                }
            }
        else:  # context_length: Azure passes OpenAI's own error through
            return super().error(fault, params, info)
        headers += _retry_headers(fault, retry_after, ms=True)
        return Reply(status, headers, _dumps(body).encode())

    def _prelude(self) -> list[bytes]:
        filters = [{"prompt_index": 0, "content_filter_results": _azure_filter_result(None)}]
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": filters,
        }
        return [sse(first)]

    def _decorate_body(self, body: dict[str, Any]) -> dict[str, Any]:
        body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": _azure_filter_result(None)}
        ]
        for choice in body.get("choices", []):
            choice["content_filter_results"] = {
                k: v for k, v in _azure_filter_result(None).items() if k != "jailbreak"
            }
        return body

    def _filtered(self, choice: dict[str, Any]) -> None:
        result = _azure_filter_result("violence")
        result.pop("jailbreak", None)
        choice["content_filter_results"] = result


# -- Anthropic ------------------------------------------------------------------------------
_ANTHROPIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage. Please reduce the prompt length or the "
        "maximum tokens requested, or try again later.",
    ),
    # A 429 the SDK maps to EnforcedSpendLimitReachedError (details.error_code below).
    "quota_exhausted": (
        429,
        "rate_limit_error",
        "Your organization has crossed the monthly API usage threshold of its API tier. You "
        "can raise your limits at https://console.anthropic.com/settings/limits.",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "context_length": (
        400,
        "invalid_request_error",
        "prompt is too long: {size} tokens > {limit} maximum",
    ),
}


class AnthropicDialect(Dialect):
    provider = "anthropic"
    apis = ("messages",)

    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        key = "rate_limit" if fault == "long_retry_after" else fault
        status, kind, template = _ANTHROPIC_ERRORS[key]
        status = int(params.get("status") or status)
        limit = int(params.get("limit") or 200000)
        request_id = _request_id("req_")
        error: dict[str, Any] = {
            "type": kind,
            "message": template.format(limit=limit, size=limit + 12345),
        }
        if fault == "quota_exhausted":
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        body = {"type": "error", "error": error, "request_id": request_id}
        retry_after = params.get("retry_after")
        headers = [("content-type", JSON_TYPE), ("request-id", request_id)]
        if key == "rate_limit":
            reset = datetime.now(UTC) + timedelta(seconds=retry_after or 1)
            stamp = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
            headers += [
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", stamp),
                ("anthropic-ratelimit-tokens-limit", "40000"),
                ("anthropic-ratelimit-tokens-remaining", "0"),
                ("anthropic-ratelimit-tokens-reset", stamp),
            ]
        if fault != "quota_exhausted" and (status in (429, 529) or status >= 500):
            headers.append(("x-should-retry", "true"))
        headers += _retry_headers(fault, retry_after, ms=False)
        return Reply(status, headers, _dumps(body).encode())

    def synthesize(self, info: RequestInfo, text: str) -> Reply:
        mid = "msg_" + secrets.token_hex(12)
        request_id = _request_id("req_")
        headers = [("content-type", self.content_type(info)), ("request-id", request_id)]
        usage_in, usage_out = _count_input(info.body), len(text.split())

        def usage(output: int) -> dict[str, Any]:
            return {
                "input_tokens": usage_in,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output,
                "service_tier": "standard",
            }

        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": info.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage(usage_out),
        }
        if not info.stream:
            return Reply(200, headers, _dumps(message).encode())
        start = {**message, "content": [], "stop_reason": None, "usage": usage(1)}
        events = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]
        for piece in _words(text):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            events.append(sse(delta, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage_out},
                },
                "message_delta",
            )
        )
        events.append(sse({"type": "message_stop"}, "message_stop"))
        return Reply(200, headers, events=events)

    def classify(self, raw: bytes, info: RequestInfo) -> EventKind:
        name, _ = parse_event(raw)
        if name == "message_stop":
            return "end"
        if name == "content_block_delta":
            return "content"
        if name in ("message_delta", "content_block_stop"):
            return "finish"
        if name in ("message_start", "content_block_start", "ping"):
            return "pre"
        return "other"

    def error_event(self, params: dict[str, Any], info: RequestInfo) -> bytes:
        kind = params.get("error", "overloaded")
        error = {
            "overloaded": ("overloaded_error", "Overloaded"),
            "rate_limit": ("rate_limit_error", "Rate limited"),
        }.get(kind, ("api_error", "Internal server error"))
        data = {
            "type": "error",
            "error": {"type": error[0], "message": error[1]},
            "request_id": _request_id("req_"),
        }
        return sse(data, "error")

    def rewrite_finish(self, raw: bytes, kind: FinishKind, info: RequestInfo) -> bytes:
        name, data = _event_json(raw, info)
        if not isinstance(data, dict):
            return raw
        reason = "max_tokens" if kind == "length" else "refusal"
        target = data.get("delta") if info.stream else data
        if isinstance(target, dict) and "stop_reason" in target:
            target["stop_reason"] = reason
            return self._reencode(raw, name, data, info)
        return raw

    def blank_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        data["content"] = []
        return _dumps(data).encode()

    def cut_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        for block in data.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                block["text"] = _half(block["text"])
        return _dumps(data).encode()


# Imported here, not at the top: they subclass `Dialect` from this module.
from ._bedrock_dialect import BedrockDialect  # noqa: E402
from ._gemini_dialect import GeminiDialect, VertexDialect  # noqa: E402

_ALL: tuple[Dialect, ...] = (
    OpenAIDialect(),
    AzureDialect(),
    AnthropicDialect(),
    BedrockDialect(),
    GeminiDialect(),
    VertexDialect(),
)
DIALECTS: dict[str, Dialect] = {dialect.provider: dialect for dialect in _ALL}
