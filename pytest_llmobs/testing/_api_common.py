"""What the Bedrock, Gemini and Ollama fakes share with the rest of the provider server:
one generation (`_Call`) built from the request and the per-request overrides, and timing."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .provider_server import (
    HEADER_CHUNK_DELAY_MS,
    HEADER_FINISH_REASON,
    HEADER_REPLY,
    HEADER_STATUS,
    HEADER_STREAM_CUT_AFTER,
    HEADER_STREAM_TRUNCATE_AFTER,
    HEADER_TOOL_CALL,
    HEADER_TTFT_MS,
    Provider,
    ReceivedRequest,
    _as_int,
    _Call,
    _count_words,
    _Event,
    _fake_arguments,
    _header_ms,
    _Kind,
    _split_words,
    _Tool,
    error_reply,
)

if TYPE_CHECKING:
    from .provider_server import _Handler

__all__ = ["Generation", "Kind", "count_words", "error_reply"]

Kind = _Kind


def count_words(*values: object) -> int:
    return _count_words(*values)


@dataclass
class Generation:
    """A request the fake will answer: the generation, the forced finish, the pacing."""

    call: _Call
    finish_reason: str | None
    ttft_s: float
    chunk_delay_s: float
    cut_after: int | None
    truncate_after: int | None

    @property
    def text(self) -> str:
        return self.call.text

    @property
    def n_pieces(self) -> int:
        return len(self.call.tool.pieces) if self.call.tool else len(self.call.pieces)


def rejected(handler: _Handler, provider: str, request: ReceivedRequest) -> bool:
    """Send the error the request asks for (`x-fake-status`, a bad method or body)."""
    status = _as_int(request.headers.get(HEADER_STATUS))
    if status is not None and status >= 400:
        handler._send_reply(error_reply(provider, status))
        return True
    if request.method != "POST":
        handler._send_reply(error_reply(provider, 405, f"Method {request.method} not allowed"))
        return True
    if not isinstance(request.json, dict):
        handler._send_reply(error_reply(provider, 400, "Malformed input request."))
        return True
    return False


def generation(
    handler: _Handler,
    provider: Provider,
    request: ReceivedRequest,
    *,
    model: str,
    input_tokens: int,
    limit: int | None,
    schemas: Mapping[str, object],
    forced_tool: str | None = None,
) -> Generation:
    """What to answer, from the reply/tool/timing overrides and the request's own limits."""
    headers = request.headers
    defaults = handler.server.owner._snapshot()
    wanted = headers.get(HEADER_TOOL_CALL) or defaults.tool_call or forced_tool
    tool: _Tool | None = None
    if wanted and schemas:
        arguments = json.dumps(_fake_arguments(schemas.get(wanted)))
        tool = _Tool(wanted, arguments, _split_words(arguments))
    pieces = _split_words(headers.get(HEADER_REPLY, defaults.reply))
    truncated = tool is None and limit is not None and limit < len(pieces)
    if truncated and limit is not None:
        pieces = pieces[: max(limit, 0)]
    call = _Call(
        provider=provider,
        model=defaults.model or model,
        body=request.json,
        pieces=pieces,
        truncated=truncated,
        input_tokens=input_tokens,
        output_tokens=len(tool.pieces) if tool else len(pieces),
        tool=tool,
        created=int(time.time()),
    )
    ttft = _header_ms(headers, HEADER_TTFT_MS)
    delay = _header_ms(headers, HEADER_CHUNK_DELAY_MS)
    return Generation(
        call=call,
        finish_reason=headers.get(HEADER_FINISH_REASON) or None,
        ttft_s=defaults.ttft_s if ttft is None else ttft,
        chunk_delay_s=defaults.chunk_delay_s if delay is None else delay,
        cut_after=_as_int(headers.get(HEADER_STREAM_CUT_AFTER)),
        truncate_after=_as_int(headers.get(HEADER_STREAM_TRUNCATE_AFTER)),
    )


def send_whole(handler: _Handler, gen: Generation, headers: Mapping[str, str], body: Any) -> None:
    """A JSON answer, sent after the time a stream of the same answer would take."""
    handler._wait(gen.ttft_s + gen.chunk_delay_s * max(gen.n_pieces - 1, 0))
    handler._send_json(200, headers, body)


def send_stream(
    handler: _Handler, gen: Generation, headers: Mapping[str, str], events: list[_Event]
) -> None:
    handler._send_stream(
        200,
        headers,
        events,
        ttft_s=gen.ttft_s,
        chunk_delay_s=gen.chunk_delay_s,
        cut_after=gen.cut_after,
        truncate_after=gen.truncate_after,
    )


def tool_arguments(gen: Generation) -> dict[str, Any]:
    tool = gen.call.tool
    parsed = json.loads(tool.arguments) if tool else {}
    return parsed if isinstance(parsed, dict) else {}
