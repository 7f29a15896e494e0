"""Fake Ollama: `/api/chat`, `/api/generate` and `/api/embed`; JSON answers or NDJSON streams
(the default unless the request says `"stream": false`), with `done_reason`, token counts and
nanosecond durations. Point `ollama.Client(host=server.url)` at it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import _api_common as common
from .provider_server import ReceivedRequest, Reply, _dumps, _embedding, _Event, _tool_schemas

if TYPE_CHECKING:
    from .provider_server import _Handler

_NDJSON = "application/x-ndjson"
_PATHS = ("/api/chat", "/api/generate", "/api/embed")
_NS_PER_TOKEN = 20_000_000  # 20 ms per token, like a small local model
_LOAD_NS = 5_000_000

# status → message; Ollama's errors are `{"error": "<message>"}`
ERRORS: dict[int, str] = {
    400: "invalid request",
    404: 'model "unknown" not found, try pulling it first',
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_reply(status: int, message: str | None) -> Reply:
    default = ERRORS.get(status, "internal error" if status >= 500 else "bad request")
    headers = {"content-type": "application/json; charset=utf-8"}
    return Reply(status=status, headers=headers, body={"error": message or default})


def serve(handler: _Handler, request: ReceivedRequest) -> bool:
    path = request.path.rstrip("/")
    if path not in _PATHS:
        return False
    if common.rejected(handler, "ollama", request):
        return True
    body: dict[str, Any] = request.json
    model = str(body.get("model") or "llama3.2")
    if path == "/api/embed":
        _embed(handler, body, model)
        return True
    chat = path == "/api/chat"
    options = body.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    schemas = _tool_schemas("chat", body) if chat else {}
    gen = common.generation(
        handler,
        "ollama",
        request,
        model=model,
        input_tokens=common.count_words(body.get("messages") if chat else body.get("prompt")),
        limit=limit if isinstance(limit, int) and limit >= 0 else None,
        schemas=schemas,
    )
    reason = gen.finish_reason or ("length" if gen.call.truncated else "stop")
    stats: dict[str, Any] = {"done": True, "done_reason": reason, **_stats(gen)}
    if not chat:
        stats["context"] = list(range(1, gen.call.input_tokens + gen.call.output_tokens + 1))
    tool_calls = _tool_calls(gen)
    if body.get("stream") is False:
        whole = {**_line(gen, chat, "" if tool_calls else gen.text), **stats}
        if tool_calls:
            whole["message"]["tool_calls"] = tool_calls
        common.send_whole(handler, gen, {}, whole)
        return True
    final = {**_line(gen, chat, ""), **stats}
    events: list[_Event] = []
    if tool_calls:
        line = _line(gen, chat, "")
        line["message"]["tool_calls"] = tool_calls
        events.append(("content", _dumps(line) + b"\n"))
    else:
        events += [("content", _dumps(_line(gen, chat, p)) + b"\n") for p in gen.call.pieces]
    events.append(("post", _dumps(final) + b"\n"))
    common.send_stream(handler, gen, {"Content-Type": _NDJSON}, events)
    return True


def _line(gen: common.Generation, chat: bool, piece: str) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    line: dict[str, Any] = {"model": gen.call.model, "created_at": stamp}
    if chat:
        line["message"] = {"role": "assistant", "content": piece}
    else:
        line["response"] = piece
    line["done"] = False
    return line


def _stats(gen: common.Generation) -> dict[str, int]:
    prompt_ns = gen.call.input_tokens * _NS_PER_TOKEN // 10
    eval_ns = gen.call.output_tokens * _NS_PER_TOKEN
    return {
        "total_duration": _LOAD_NS + prompt_ns + eval_ns,
        "load_duration": _LOAD_NS,
        "prompt_eval_count": gen.call.input_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": gen.call.output_tokens,
        "eval_duration": eval_ns,
    }


def _tool_calls(gen: common.Generation) -> list[dict[str, Any]]:
    tool = gen.call.tool
    if tool is None:
        return []
    return [{"function": {"name": tool.name, "arguments": common.tool_arguments(gen)}}]


def _embed(handler: _Handler, body: dict[str, Any], model: str) -> None:
    raw = body.get("input")
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    tokens = common.count_words(*items)
    handler._send_json(
        200,
        {},
        {
            "model": model,
            "embeddings": [_embedding(item, 8) for item in items],
            "total_duration": _LOAD_NS + tokens * _NS_PER_TOKEN // 10,
            "load_duration": _LOAD_NS,
            "prompt_eval_count": tokens,
        },
    )
