"""Google Gemini (`gcp.gemini`) and Vertex AI (`gcp.vertex_ai`) in the chaos catalog's terms.

Errors are google.rpc statuses, `{"error": {"code", "message", "status", "details"}}`:
429 RESOURCE_EXHAUSTED (the Gemini API adds QuotaFailure and a RetryInfo `retryDelay`),
503 UNAVAILABLE, 500 INTERNAL, 400 INVALID_ARGUMENT. google-genai raises
`errors.ClientError` (4xx) / `errors.ServerError` (5xx) with `.code` and `.status`, and
retries 408/429/5xx only when `HttpOptions.retry_options` is set (it does not read
`retryDelay`). A stream (`:streamGenerateContent?alt=sse`) carries one whole
GenerateContentResponse per event and ends with the event that has a `finishReason`; a
failure after the 200 is an event `data: {"error": …}`. Filtering is a 200 either way: a
blocked prompt comes back with `promptFeedback.blockReason` and no candidates, a filtered
answer with `finishReason: SAFETY`.

Not supported: damaging `:streamGenerateContent` without `alt=sse` (a JSON array the SDKs
never ask for); status and transport faults still apply to it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .dialects import (
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
    parse_event,
)

JSON = "application/json; charset=UTF-8"
SSE = "text/event-stream"
_SERVER = ("server", "scaffolding on HTTPServer2")
_RPC = "type.googleapis.com/google.rpc."
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_HARM = {
    "hate": "HARM_CATEGORY_HATE_SPEECH",
    "sexual": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "violence": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "self_harm": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "jailbreak": "HARM_CATEGORY_HARASSMENT",
}
_RATINGS = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
# status → (google.rpc status, message) for server_error's `status` and stream error events
_SERVER_ERRORS: dict[int, tuple[str, str]] = {
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    502: ("INTERNAL", "An internal error has occurred. Please retry."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def _safety_ratings(category: str | None) -> list[dict[str, Any]]:
    blocked = _HARM.get(category or "", "HARM_CATEGORY_DANGEROUS_CONTENT")
    return [
        {"category": name, "probability": "HIGH" if name == blocked else "NEGLIGIBLE"}
        | ({"blocked": True} if name == blocked else {})
        for name in _RATINGS
    ]


class GeminiDialect(Dialect):
    provider = "gcp.gemini"
    apis = ("generate_content",)
    limitation = (
        "answers of `:streamGenerateContent` without `alt=sse` (one JSON array, which "
        "google-genai never asks for) are not damaged; status and transport faults apply"
    )

    def can_damage(self, info: RequestInfo) -> bool:
        return not info.stream or "alt=sse" in info.query

    # -- errors ------------------------------------------------------------------------
    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        if fault == "content_filter":
            return self._prompt_blocked(params, info)
        retry_after = params.get("retry_after")
        details: list[dict[str, Any]] = []
        if fault in ("rate_limit", "long_retry_after"):
            status, code = 429, "RESOURCE_EXHAUSTED"
            message, details = self._rate_limited(info, retry_after)
        elif fault == "quota_exhausted":
            status, code = 429, "RESOURCE_EXHAUSTED"
            message, details = self._quota(info)
        elif fault == "context_length":
            status, code = 400, "INVALID_ARGUMENT"
            limit = int(params.get("limit") or 1048576)
            message = (
                f"The input token count ({limit + 12345}) exceeds the maximum number of tokens "
                f"allowed ({limit})."
            )
        else:  # overloaded, server_error
            status = 503 if fault == "overloaded" else int(params.get("status") or 500)
            code, message = _SERVER_ERRORS.get(status, _SERVER_ERRORS[500])
            if retry_after is not None:
                details = [self._retry_info(retry_after)]
        error: dict[str, Any] = {"code": status, "message": message, "status": code}
        if details:
            error["details"] = details
        headers = [("content-type", JSON), ("vary", "Origin, X-Origin, Referer"), _SERVER]
        return Reply(status, headers, _dumps({"error": error}).encode())

    def _retry_info(self, seconds: float) -> dict[str, Any]:
        return {"@type": _RPC + "RetryInfo", "retryDelay": f"{seconds:g}s"}

    def _rate_limited(
        self, info: RequestInfo, retry_after: float | None
    ) -> tuple[str, list[dict[str, Any]]]:
        wait = 1.0 if retry_after is None else float(retry_after)
        message = (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: {_QUOTA_METRIC}, limit: 15, model: {info.model}\n"
            f"Please retry in {wait:g}s."
        )
        return message, [
            self._help(),
            self._quota_failure(info, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            self._retry_info(wait),
        ]

    def _quota(self, info: RequestInfo) -> tuple[str, list[dict[str, Any]]]:
        """A daily quota used up: the same 429, but no RetryInfo — waiting seconds cannot
        help, so a client that reads the details does not retry."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: {_QUOTA_METRIC}, limit: 250, model: {info.model}"
        )
        return message, [
            self._help(),
            self._quota_failure(info, "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        ]

    def _help(self) -> dict[str, Any]:
        link = {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
        return {"@type": _RPC + "Help", "links": [link]}

    def _quota_failure(self, info: RequestInfo, quota_id: str) -> dict[str, Any]:
        violation = {
            "quotaMetric": _QUOTA_METRIC,
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": info.model},
            "quotaValue": "250" if "PerDay" in quota_id else "15",
        }
        return {"@type": _RPC + "QuotaFailure", "violations": [violation]}

    def _prompt_blocked(self, params: dict[str, Any], info: RequestInfo) -> Reply:
        """A 200 with `promptFeedback.blockReason` and no candidates (whole or one event)."""
        category = str(params.get("category", "violence"))
        feedback: dict[str, Any] = {"blockReason": "SAFETY"}
        if category == "jailbreak":
            feedback = {"blockReason": "JAILBREAK"}
        else:
            feedback["safetyRatings"] = _safety_ratings(category)
        prompt = _count_input(info.body)
        body = {
            "promptFeedback": feedback,
            "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
            "modelVersion": info.model,
            "responseId": secrets.token_urlsafe(16),
        }
        if info.stream and self.can_damage(info):
            return Reply(200, [("content-type", SSE), _SERVER], events=[_event(body)])
        whole: Any = [body] if info.stream else body
        return Reply(200, [("content-type", JSON), _SERVER], _dumps(whole).encode())

    # -- a whole successful answer -------------------------------------------------------
    def synthesize(self, info: RequestInfo, text: str) -> Reply:
        prompt, output = _count_input(info.body), len(text.split())
        response_id = secrets.token_urlsafe(16)

        def envelope(candidate: dict[str, Any], final: bool) -> dict[str, Any]:
            usage: dict[str, Any] = {"promptTokenCount": prompt}
            if final:
                usage["candidatesTokenCount"] = output
            usage["totalTokenCount"] = prompt + (output if final else 0)
            return {
                "candidates": [{**candidate, "index": 0}],
                "usageMetadata": usage,
                "modelVersion": info.model,
                "responseId": response_id,
            }

        def content(piece: str) -> dict[str, Any]:
            return {"content": {"parts": [{"text": piece}], "role": "model"}}

        if not info.stream:
            body = envelope({**content(text), "finishReason": "STOP"}, final=True)
            return Reply(200, [("content-type", JSON), _SERVER], _dumps(body).encode())
        chunks = [envelope(content(piece), final=False) for piece in _words(text)]
        chunks.append(envelope({**content(""), "finishReason": "STOP"}, final=True))
        if not self.can_damage(info):
            return Reply(200, [("content-type", JSON), _SERVER], _dumps(chunks).encode())
        return Reply(200, [("content-type", SSE), _SERVER], events=[_event(c) for c in chunks])

    # -- stream events -------------------------------------------------------------------
    def classify(self, raw: bytes, info: RequestInfo) -> EventKind:
        data = _loads(parse_event(raw)[1].encode())
        if not isinstance(data, dict) or "error" in data:
            return "other"
        if (data.get("promptFeedback") or {}).get("blockReason"):
            return "finish"
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            return "usage" if data.get("usageMetadata") else "pre"
        first = candidates[0] if isinstance(candidates[0], dict) else {}
        if first.get("finishReason"):
            return "finish"
        parts = (first.get("content") or {}).get("parts") or []
        if any(isinstance(p, dict) and (p.get("text") or "functionCall" in p) for p in parts):
            return "content"
        return "pre"

    def error_event(self, params: dict[str, Any], info: RequestInfo) -> bytes:
        kind = params.get("error", "overloaded")
        status = {"overloaded": 503, "rate_limit": 429}.get(kind, 500)
        if status == 429:
            code, message = "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."
        else:
            code, message = _SERVER_ERRORS[status]
        return _event({"error": {"code": status, "message": message, "status": code}})

    def rewrite_finish(self, raw: bytes, kind: FinishKind, info: RequestInfo) -> bytes:
        data = self._open(raw, info)
        if not isinstance(data, dict):
            return raw
        changed = False
        for candidate in data.get("candidates") or []:
            if isinstance(candidate, dict) and (candidate.get("finishReason") or not info.stream):
                changed = True
                if kind == "length":
                    candidate["finishReason"] = "MAX_TOKENS"
                else:
                    candidate["finishReason"] = "SAFETY"
                    candidate["safetyRatings"] = _safety_ratings("violence")
        return self._close(data, info) if changed else raw

    def rewrite_usage(self, raw: bytes, factor: float, info: RequestInfo) -> bytes:
        data = self._open(raw, info)
        if not isinstance(data, dict):
            return raw
        _scale_usage(data, factor)
        return self._close(data, info)

    def blank_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        for candidate in data.get("candidates") or []:
            if isinstance(candidate, dict):
                candidate.pop("content", None)  # a filtered answer is withheld
        return _dumps(data).encode()

    def cut_content(self, raw: bytes, info: RequestInfo) -> bytes:
        data = _loads(raw)
        if not isinstance(data, dict):
            return raw
        for candidate in data.get("candidates") or []:
            parts = ((candidate or {}).get("content") or {}).get("parts") or []
            for part in parts:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = _half(part["text"])
        return _dumps(data).encode()

    def _open(self, raw: bytes, info: RequestInfo) -> Any:
        return _loads(parse_event(raw)[1].encode() if info.stream else raw)

    def _close(self, data: Any, info: RequestInfo) -> bytes:
        return _event(data) if info.stream else _dumps(data).encode()


class VertexDialect(GeminiDialect):
    """Vertex AI speaks the same google.rpc errors, but its 429 is a bare RESOURCE_EXHAUSTED:
    no QuotaFailure, no RetryInfo — it never says how long to wait."""

    provider = "gcp.vertex_ai"
    not_applicable = {
        "long_retry_after": "Vertex AI never asks for a wait: its 429 has no RetryInfo "
        "(use rate_limit)",
    }

    def announced_retry_after(self, fault: str, params: dict[str, Any]) -> float | None:
        return None

    def _rate_limited(
        self, info: RequestInfo, retry_after: float | None
    ) -> tuple[str, list[dict[str, Any]]]:
        return (
            "Resource exhausted. Please try again later. Please refer to "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more "
            "details.",
            [],
        )

    def _quota(self, info: RequestInfo) -> tuple[str, list[dict[str, Any]]]:
        return (
            f"Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_day "
            f"with base model: {info.model}. Please submit a quota increase request. "
            "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
            [],
        )

    def error(self, fault: str, params: dict[str, Any], info: RequestInfo) -> Reply:
        if fault in ("overloaded", "server_error"):
            params = {**params, "retry_after": None}  # no RetryInfo on Vertex
        return super().error(fault, params, info)


def _event(data: Any) -> bytes:
    """One SSE event as the Gemini API frames it."""
    return b"data: " + _dumps(data).encode() + b"\r\n\r\n"


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
