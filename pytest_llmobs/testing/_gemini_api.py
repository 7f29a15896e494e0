"""Fake Gemini API: `…/models/{model}:generateContent` and `:streamGenerateContent`
(`?alt=sse` streams, otherwise one JSON array), with thinking, tool calls, MAX_TOKENS and a
forced finish reason such as SAFETY (`x-fake-finish-reason`).

Point google-genai at it with `http_options=types.HttpOptions(base_url=server.url)`.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import _api_common as common
from .provider_server import ReceivedRequest, Reply, _dumps

if TYPE_CHECKING:
    from .provider_server import _Handler

_PATH = re.compile(
    r"/(?:tunedModels|models)/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
_JSON = "application/json; charset=UTF-8"
_THOUGHT = "Considering the question."
_THOUGHT_TOKENS = 3
_HARM = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)

# status → (google.rpc status, message)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "models/unknown is not found for API version v1beta."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def error_reply(
    status: int, message: str | None, error_type: str | None, retry_after: float | None
) -> Reply:
    """`{"error": {"code", "message", "status", "details"}}`; a 429 carries QuotaFailure and
    RetryInfo details, `retry_after` (seconds) sets RetryInfo's `retryDelay`."""
    default = ERRORS.get(
        status, ("INTERNAL", "Internal error.") if status >= 500 else ("INVALID_ARGUMENT", "Bad.")
    )
    error: dict[str, Any] = {
        "code": status,
        "message": message or default[1],
        "status": error_type or default[0],
    }
    if status == 429 or retry_after is not None:
        delay = 28 if retry_after is None else retry_after
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaValue": "15",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:g}s"},
        ]
    return Reply(status=status, headers={"content-type": _JSON}, body={"error": error})


def serve(handler: _Handler, request: ReceivedRequest) -> bool:
    match = _PATH.search(request.path.rstrip("/"))
    if match is None:
        return False
    if common.rejected(handler, "gemini", request):
        return True
    body: dict[str, Any] = request.json
    config = _dict(_field(body, "generationConfig"))
    limit = _field(config, "maxOutputTokens")
    schemas, forced = _tools(body)
    gen = common.generation(
        handler,
        "gemini",
        request,
        model=unquote(match["model"]),
        input_tokens=common.count_words(*_texts(body)),
        limit=limit if isinstance(limit, int) else None,
        schemas=schemas,
        forced_tool=forced,
    )
    answer = _Answer(gen, config)
    headers = {"Server": "scaffolding on HTTPServer2"}
    if match["method"] == "generateContent":
        common.send_whole(handler, gen, headers, answer.whole())
    elif request.query.get("alt") == "sse":
        events = [(kind, b"data: " + _dumps(data) + b"\r\n\r\n") for kind, data in answer.chunks()]
        common.send_stream(handler, gen, {"Content-Type": "text/event-stream", **headers}, events)
    else:
        whole = [data for _, data in answer.chunks()]
        common.send_whole(handler, gen, headers, whole)
    return True


class _Answer:
    """One generation rendered as a GenerateContentResponse, whole or in stream chunks."""

    def __init__(self, gen: common.Generation, config: dict[str, Any]) -> None:
        self.gen = gen
        thinking = _dict(_field(config, "thinkingConfig"))
        budget = _field(thinking, "thinkingBudget")
        self.include_thoughts = _field(thinking, "includeThoughts") is True
        self.thoughts = (
            _THOUGHT_TOKENS
            if self.include_thoughts or (isinstance(budget, int) and budget > 0)
            else 0
        )
        self.response_id = secrets.token_urlsafe(16)
        call = gen.call
        self.finish = gen.finish_reason or ("MAX_TOKENS" if call.truncated else "STOP")

    def usage(self, final: bool) -> dict[str, Any]:
        call = self.gen.call
        usage: dict[str, Any] = {"promptTokenCount": call.input_tokens}
        if final:
            usage["candidatesTokenCount"] = call.output_tokens
            if self.thoughts:
                usage["thoughtsTokenCount"] = self.thoughts
        usage["totalTokenCount"] = call.input_tokens + (
            call.output_tokens + self.thoughts if final else 0
        )
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": call.input_tokens}]
        return usage

    def envelope(self, candidate: dict[str, Any], final: bool) -> dict[str, Any]:
        return {
            "candidates": [candidate],
            "usageMetadata": self.usage(final),
            "modelVersion": self.gen.call.model,
            "responseId": self.response_id,
        }

    def parts(self) -> list[dict[str, Any]]:
        tool = self.gen.call.tool
        if tool is not None:
            call = {"name": tool.name, "args": common.tool_arguments(self.gen)}
            return [{"functionCall": call}]
        return [{"text": self.gen.text}]

    def whole(self) -> dict[str, Any]:
        parts = self.parts()
        if self.include_thoughts:
            parts = [{"text": _THOUGHT, "thought": True}, *parts]
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if self.finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"):
            candidate = {}  # blocked: the answer is withheld
        return self.envelope(self._finished(candidate), final=True)

    def chunks(self) -> list[tuple[common.Kind, dict[str, Any]]]:
        out: list[tuple[common.Kind, dict[str, Any]]] = []
        if self.include_thoughts:
            thought = {"parts": [{"text": _THOUGHT, "thought": True}], "role": "model"}
            out.append(("pre", self.envelope({"content": thought, "index": 0}, final=False)))
        tool = self.gen.call.tool
        blocked = self.finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST")
        pieces: list[list[dict[str, Any]]] = (
            [self.parts()] if tool is not None else [[{"text": p}] for p in self.gen.call.pieces]
        )
        for parts in [] if blocked else pieces:
            content = {"parts": parts, "role": "model"}
            out.append(("content", self.envelope({"content": content, "index": 0}, final=False)))
        last = self._finished({"content": {"parts": [{"text": ""}], "role": "model"}})
        out.append(("post", self.envelope(last, final=True)))
        return out

    def _finished(self, candidate: dict[str, Any]) -> dict[str, Any]:
        candidate = {**candidate, "finishReason": self.finish, "index": 0}
        if self.finish == "SAFETY":
            candidate["safetyRatings"] = [
                {"category": cat, "probability": "HIGH" if i == 0 else "NEGLIGIBLE"}
                | ({"blocked": True} if i == 0 else {})
                for i, cat in enumerate(_HARM)
            ]
        return candidate


def _tools(body: dict[str, Any]) -> tuple[dict[str, object], str | None]:
    schemas: dict[str, object] = {}
    for tool in body.get("tools") or []:
        for decl in _dict(tool).get("functionDeclarations") or []:
            decl = _dict(decl)
            if isinstance(decl.get("name"), str):
                schemas[decl["name"]] = decl.get("parameters") or decl.get("parametersJsonSchema")
    calling = _dict(_dict(body.get("toolConfig")).get("functionCallingConfig"))
    forced: str | None = None
    if calling.get("mode") == "ANY" and schemas:
        allowed = calling.get("allowedFunctionNames")
        forced = allowed[0] if isinstance(allowed, list) and allowed else next(iter(schemas))
    return schemas, forced


def _texts(body: dict[str, Any]) -> list[str]:
    found: list[str] = []
    contents = body.get("contents")
    system = _dict(body.get("systemInstruction"))
    for content in [system, *(contents if isinstance(contents, list) else [])]:
        for part in _dict(content).get("parts") or []:
            text = _dict(part).get("text")
            if isinstance(text, str):
                found.append(text)
    return found


def _field(data: dict[str, Any], camel: str) -> Any:
    """REST takes both spellings (google-genai sends some nested fields in snake_case)."""
    if camel in data:
        return data[camel]
    return data.get(re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), camel))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
