"""Amazon Bedrock runtime (`aws.bedrock`) in the chaos catalog's terms.

Errors are named in the `x-amzn-ErrorType` header over a body of only `{"message": …}`, as
Bedrock sends them: botocore raises `ClientError` with that code and retries the codes it
knows (ThrottlingException, 5xx). Streams are binary `application/vnd.amazon.eventstream`
frames — Converse events by name, InvokeModel chunks carrying the model's own JSON in
base64 — and a mid-stream failure is an exception frame (`throttlingException`,
`modelStreamErrorException` …) that botocore raises as `EventStreamError`.

What Bedrock cannot do: it never asks for a wait (a ThrottlingException carries no
Retry-After), so `long_retry_after` does not apply and `retry_after` is not sent. InvokeModel
bodies are the model's own, so answers are synthesized and damaged for Anthropic Messages and
Llama-style (`prompt` → `generation`) bodies only; status and transport faults apply to every
model.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..providers.eventstream import (
    decode_frame,
    encode_frame,
    event_frame,
    exception_frame,
    split_frames,
)
from .dialects import (
    JSON_TYPE,
    AnthropicDialect,
    Dialect,
    EventKind,
    FinishKind,
    Reply,
    RequestInfo,
    _count_input,
    _dumps,
    _half,
    _scale_usage,
    _words,
    corrupt_json,
    parse_event,
)

EVENTSTREAM = "application/vnd.amazon.eventstream"
BLOCKED = "Sorry, the model cannot answer this question."
_METRICS = "amazon-bedrock-invocationMetrics"
_GUARDRAIL = "amazon-bedrock-guardrailAction"
_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

# fault → (status, x-amzn-ErrorType, message), as Bedrock words them
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    ),
    "quota_exhausted": (
        400,
        "ServiceQuotaExceededException",
        "Your request exceeds the service quota for your account. You can view your quotas at "
        "https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html. You "
        "can resubmit your request later.",
    ),
    "overloaded": (
        503,
        "ServiceUnavailableException",
        "Bedrock is unable to process your request.",
    ),
    "server_error": (
        500,
        "InternalServerException",
        "The server encountered an internal error while processing the request.",
    ),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
}
# stream_error_event's `error` → the exception frame Bedrock sends mid-stream
_STREAM_ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "rate_limit": ("throttlingException", {"message": _ERRORS["rate_limit"][2]}),
    "overloaded": ("serviceUnavailableException", {"message": _ERRORS["overloaded"][2]}),
    "server_error": (
        "modelStreamErrorException",
        {
            "message": "An error occurred while streaming the response. Retry your request.",
            "originalStatusCode": 500,
            "originalMessage": "Internal server error",
        },
    ),
}
_CONVERSE_KINDS: dict[str, EventKind] = {
    "messageStart": "pre",
    "contentBlockStart": "pre",
    "contentBlockDelta": "content",
    "contentBlockStop": "finish",
    "messageStop": "finish",
    "metadata": "usage",
}
_ANTHROPIC_KINDS: dict[str, EventKind] = {
    "message_start": "pre",
    "content_block_start": "pre",
    "ping": "pre",
    "content_block_delta": "content",
    "content_block_stop": "finish",
    "message_delta": "finish",
    "message_stop": "end",
}
_CONVERSE_STOPS = {"length": "max_tokens", "content_filter": "content_filtered"}


def family(info: RequestInfo) -> str | None:
    """Whose body an answer has: `converse`, or on invoke `anthropic` / `llama`; None for
    other InvokeModel bodies (Titan, Cohere, Mistral …), which are not synthesized."""
    if info.api == "converse":
        return "converse"
    body = info.body
    if "anthropic_version" in body or (
        "anthropic." in info.model and isinstance(body.get("messages"), list)
    ):
        return "anthropic"
    if isinstance(body.get("prompt"), str) and ("llama" in info.model or "max_gen_len" in body):
        return "llama"
    return None


@dataclass
class _Event:
    """One event frame opened up: its headers, the outer payload, and the JSON the event is
    about (for an invoke `chunk`, the model's own JSON from the base64 `bytes`)."""

    headers: dict[str, str]
    outer: dict[str, Any]
    data: Any
    chunk: bool

    @classmethod
    def read(cls, raw: bytes) -> _Event | None:
        decoded = decode_frame(raw)
        if decoded is None or decoded[0].get(":message-type") != "event":
            return None
        headers, payload = decoded
        try:
            outer = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(outer, dict):
            return None
        if headers.get(":event-type") != "chunk":
            return cls(headers, outer, outer, False)
        try:
            inner = json.loads(base64.b64decode(str(outer.get("bytes", "")), validate=False))
        except (binascii.Error, ValueError):
            return None
        return cls(headers, outer, inner, True)

    @property
    def name(self) -> str:
        return self.headers.get(":event-type", "")

    def encode(self, raw_data: bytes | None = None) -> bytes:
        inner = raw_data if raw_data is not None else _dumps(self.data).encode()
        if self.chunk:
            payload = _dumps({**self.outer, "bytes": base64.b64encode(inner).decode()}).encode()
        else:
            payload = inner
        return encode_frame(self.headers, payload)


class BedrockDialect(Dialect):
    provider = "aws.bedrock"
    apis = ("converse", "invoke")
    not_applicable = {
        "long_retry_after": "Bedrock never asks for a wait: a ThrottlingException carries no "
        "Retry-After (use rate_limit)",
    }
    limitation = (
        "InvokeModel answers are the model's own JSON: stream faults, `truncate_length`, "
        "`token_spike` and `content_filter` apply to Anthropic Messages and Llama (`prompt` → "
        "`generation`) bodies only; Converse and every status and transport fault work for "
        "any model"
    )

    def can_damage(self, info: RequestInfo) -> bool:
        return family(info) is not None

    def supports(self, fault: str, params: dict[str, Any], info: RequestInfo) -> bool:
        # The prompt filter answers with a synthesized guardrail reply.
        return fault != "content_filter" or self.can_damage(info)

    def announced_retry_after(self, fault: str, params: dict[str, Any]) -> float | None:
        return None

    def content_type(self, info: RequestInfo) -> str:
        return EVENTSTREAM if info.stream else JSON_TYPE

    # -- errors ------------------------------------------------------------------------
    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        if fault == "content_filter":
            return self._guardrail(info)
        status, kind, message = _ERRORS[fault]
        if fault == "server_error":
            status = int(params.get("status") or status)
            if status == 503:
                kind, message = _ERRORS["overloaded"][1:]
        elif fault == "context_length" and info.api == "converse":
            limit = int(params.get("limit") or 200000)
            message = (
                "The model returned the following errors: prompt is too long: "
                f"{limit + 12345} tokens > {limit} maximum"
            )
        headers = [
            ("content-type", JSON_TYPE),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("x-amzn-ErrorType", kind + _ERROR_TYPE_SUFFIX),
        ]
        return Reply(status, headers, _dumps({"message": message}).encode())

    def _guardrail(self, info: RequestInfo) -> Reply:
        """A guardrail blocking the prompt: a 200 whose answer is the blocked-input message,
        `stopReason: guardrail_intervened` (Converse) or `amazon-bedrock-guardrailAction:
        INTERVENED` (InvokeModel)."""
        reply = self.synthesize(info, BLOCKED)
        if reply.events is None:
            reply.body = self._intervened(reply.body, info)
        else:
            reply.events = [
                self._intervened(raw, info)
                if self.classify(raw, info) in ("finish", "end", "usage")
                else raw
                for raw in reply.events
            ]
        return reply

    def _intervened(self, raw: bytes, info: RequestInfo) -> bytes:
        event, data = self._open(raw, info)
        if not isinstance(data, dict):
            return raw
        if family(info) == "converse":
            if "stopReason" not in data:
                return raw
            data["stopReason"] = "guardrail_intervened"
        elif info.stream and not (_METRICS in data or data.get("type") == "message_stop"):
            return raw  # the action travels on the last chunk only
        else:
            data[_GUARDRAIL] = "INTERVENED"
        return self._close(raw, event, data, info)

    # -- a whole successful answer -------------------------------------------------------
    def synthesize(self, info: RequestInfo, text: str) -> Reply:
        usage_in, usage_out = _count_input(info.body), len(text.split())
        kind = family(info)
        if kind == "converse":
            return self._converse(info, text, usage_in, usage_out)
        metrics = {
            "inputTokenCount": usage_in,
            "outputTokenCount": usage_out,
            "invocationLatency": 120,
            "firstByteLatency": 40,
        }
        if kind == "anthropic":
            base = AnthropicDialect().synthesize(
                replace(info, provider="anthropic", api="messages"), text
            )
            if not info.stream:
                body = json.loads(base.body)
                body["id"] = "msg_bdrk_" + uuid.uuid4().hex[:24]
                return self._whole(body, usage_in, usage_out)
            events = []
            for raw in base.events or []:
                name, data = parse_event(raw)
                if name == "ping":
                    continue  # Bedrock does not relay Anthropic's pings
                event = json.loads(data)
                if name == "message_stop":
                    event[_METRICS] = metrics
                events.append(_chunk(event))
            return Reply(200, self._stream_headers(), events=events)
        if not info.stream:
            body = {
                "generation": text,
                "prompt_token_count": usage_in,
                "generation_token_count": usage_out,
                "stop_reason": "stop",
            }
            return self._whole(body, usage_in, usage_out)
        events = [
            _chunk(
                {
                    "generation": piece,
                    "prompt_token_count": usage_in if count == 1 else None,
                    "generation_token_count": count,
                    "stop_reason": None,
                }
            )
            for count, piece in enumerate(_words(text), start=1)
        ]
        final = {
            "generation": "",
            "prompt_token_count": None,
            "generation_token_count": usage_out,
            "stop_reason": "stop",
            _METRICS: metrics,
        }
        events.append(_chunk(final))
        return Reply(200, self._stream_headers(), events=events)

    def _converse(self, info: RequestInfo, text: str, usage_in: int, usage_out: int) -> Reply:
        usage = {
            "inputTokens": usage_in,
            "outputTokens": usage_out,
            "totalTokens": usage_in + usage_out,
        }
        if not info.stream:
            body = {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": usage,
                "metrics": {"latencyMs": 120},
            }
            headers = [("content-type", JSON_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
            return Reply(200, headers, _dumps(body).encode())
        where = {"contentBlockIndex": 0}
        events = [event_frame("messageStart", {"role": "assistant"})]
        events += [
            event_frame("contentBlockDelta", {"delta": {"text": piece}, **where})
            for piece in _words(text)
        ]
        events.append(event_frame("contentBlockStop", where))
        events.append(event_frame("messageStop", {"stopReason": "end_turn"}))
        events.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 120}}))
        return Reply(200, self._stream_headers(), events=events)

    def _whole(self, body: dict[str, Any], usage_in: int, usage_out: int) -> Reply:
        headers = [
            ("content-type", JSON_TYPE),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("X-Amzn-Bedrock-Invocation-Latency", "120"),
            ("X-Amzn-Bedrock-Input-Token-Count", str(usage_in)),
            ("X-Amzn-Bedrock-Output-Token-Count", str(usage_out)),
        ]
        return Reply(200, headers, _dumps(body).encode())

    def _stream_headers(self) -> list[tuple[str, str]]:
        return [
            ("content-type", EVENTSTREAM),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("X-Amzn-Bedrock-Content-Type", JSON_TYPE),
        ]

    # -- stream events ---------------------------------------------------------------------
    def split(self, buffer: bytes, info: RequestInfo) -> tuple[list[bytes], bytes]:
        return split_frames(buffer)

    def classify(self, raw: bytes, info: RequestInfo) -> EventKind:
        event = _Event.read(raw)
        if event is None:
            return "other"  # an exception frame, or bytes that are no frame
        if not event.chunk:
            return _CONVERSE_KINDS.get(event.name, "other")
        data = event.data if isinstance(event.data, dict) else {}
        if isinstance(data.get("type"), str):
            return _ANTHROPIC_KINDS.get(data["type"], "other")
        if data.get("stop_reason"):
            return "finish"
        return "content" if data.get("generation") else "pre"

    def error_event(self, params: dict[str, Any], info: RequestInfo) -> bytes:
        kind, payload = _STREAM_ERRORS.get(
            str(params.get("error", "server_error")), _STREAM_ERRORS["server_error"]
        )
        if list(payload) == ["message"]:
            return exception_frame(kind, payload["message"])
        headers = {
            ":exception-type": kind,
            ":content-type": JSON_TYPE,
            ":message-type": "exception",
        }
        return encode_frame(headers, _dumps(payload).encode())

    def corrupt(self, raw: bytes, info: RequestInfo) -> bytes:
        """A frame whose (model) JSON is cut off; the frame itself stays valid, so botocore
        hands the damage on (an invoke chunk the app cannot parse, a Converse event without
        its fields) instead of failing a checksum."""
        event = _Event.read(raw) if info.stream else None
        if event is None:
            return corrupt_json(raw)
        text = _dumps(event.data).encode()
        return event.encode(raw_data=text[: max(2, len(text) // 2)])

    def rewrite_finish(self, raw: bytes, kind: FinishKind, info: RequestInfo) -> bytes:
        event, data = self._open(raw, info)
        if not isinstance(data, dict):
            return raw
        style = family(info)
        if style == "converse":
            if "stopReason" not in data:
                return raw
            data["stopReason"] = _CONVERSE_STOPS[kind]
        elif style == "anthropic":
            target = data.get("delta") if info.stream else data
            if not isinstance(target, dict) or "stop_reason" not in target:
                return raw
            target["stop_reason"] = "max_tokens" if kind == "length" else "refusal"
        elif kind == "length":
            if data.get("stop_reason") is None:
                return raw
            data["stop_reason"] = "length"
        else:  # Llama has no filter reason of its own: Bedrock's guardrail says it
            return self._intervened(raw, info)
        return self._close(raw, event, data, info)

    def rewrite_usage(self, raw: bytes, factor: float, info: RequestInfo) -> bytes:
        event, data = self._open(raw, info)
        if not isinstance(data, dict):
            return raw
        _scale_usage(data, factor)
        for key in ("prompt_token_count", "generation_token_count"):  # Llama, at top level
            if isinstance(data.get(key), int) and not isinstance(data[key], bool):
                data[key] = round(data[key] * factor)
        return self._close(raw, event, data, info)

    def damage_headers(
        self, headers: list[tuple[str, str]], fault: str, params: dict[str, Any], info: RequestInfo
    ) -> list[tuple[str, str]]:
        """InvokeModel also reports usage in headers: a token spike inflates them too."""
        if fault != "token_spike":
            return headers
        factor = float(params.get("factor", 10))
        counts = ("x-amzn-bedrock-input-token-count", "x-amzn-bedrock-output-token-count")
        return [
            (k, str(round(int(v) * factor)) if k.lower() in counts and v.isdigit() else v)
            for k, v in headers
        ]

    def blank_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        message = data.get("output", {}).get("message") if family(info) == "converse" else None
        if isinstance(message, dict):
            message["content"] = []
        elif "content" in data:
            data["content"] = []
        elif "generation" in data:
            data["generation"] = ""
        return _dumps(data).encode()

    def cut_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        output = data.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        blocks = message.get("content") if isinstance(message, dict) else data.get("content")
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                block["text"] = _half(block["text"])
        if isinstance(data.get("generation"), str):
            data["generation"] = _half(data["generation"])
        return _dumps(data).encode()

    # -- one event or body, opened and closed again -----------------------------------------
    def _open(self, raw: bytes, info: RequestInfo) -> tuple[_Event | None, Any]:
        if not info.stream:
            return None, _loads(raw)
        event = _Event.read(raw)
        return event, (event.data if event is not None else None)

    def _close(self, raw: bytes, event: _Event | None, data: Any, info: RequestInfo) -> bytes:
        if not info.stream:
            return _dumps(data).encode()
        if event is None:
            return raw
        event.data = data
        return event.encode()


def _chunk(model_event: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream `chunk` frame (with Bedrock's padding)."""
    raw = base64.b64encode(_dumps(model_event).encode()).decode("ascii")
    return event_frame("chunk", {"bytes": raw})


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
