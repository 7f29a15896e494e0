"""What every wire format shares: the LLMCall fields that come from the exchange itself,
the decoded body, HTTP and transport errors, stream timing and truncation bookkeeping.

Nothing here raises on odd input: bodies come from real servers, gateways and chaos.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..calls import LLMCall
from ..intercept.exchange import Exchange, decode_content
from ..redaction import Redactor
from ._json import JSONObject, integer, load_json, nonempty, number, obj
from .sse import SSEEvent, decode_sse

# The URL ends up in spans and reports; credentials in its query (Azure `api-key`, Gemini
# `key`, SAS `sig`, SigV4 presigning) must not. One rule set for all: redaction.py.
_URL_REDACTOR = Redactor()
_MAX_TOKEN_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


# -- output text -----------------------------------------------------------------------
def tool_call_text(name: str, arguments: str) -> str:
    return f"{name}({arguments})"


def join_output(parts: Iterable[str | None]) -> str:
    return "\n".join(part for part in parts if part)


# -- request -----------------------------------------------------------------------
def request_json(exchange: Exchange) -> JSONObject | None:
    """The request body as a JSON object, or None (then it is no LLM call we know)."""
    raw = decode_content(exchange.request_body, exchange.request_header("content-encoding"))
    body = load_json(raw)
    return body if isinstance(body, dict) else None


def new_call(exchange: Exchange, provider: str, operation: str, request: JSONObject) -> LLMCall:
    """An LLMCall with everything the exchange and the request body say on their own."""
    call = LLMCall(
        provider=provider,
        operation=operation,
        url=redact_url(exchange.url),
        request_model=nonempty(request.get("model")),
        stream=request.get("stream") is True,
        max_tokens=_first_int(request, _MAX_TOKEN_KEYS),
        temperature=number(request.get("temperature")),
        status_code=exchange.status_code,
        attempt=_attempt(exchange),
        started_at=exchange.started_at,
        duration_s=exchange.duration_s,
        time_to_first_chunk_s=exchange.time_to_first_chunk_s,
        chunk_offsets_s=tuple(exchange.chunk_offsets),
        source=exchange.source,
        recorded_duration_s=exchange.recorded_duration_s,
        recorded_time_to_first_chunk_s=_first(recorded_offsets(exchange)),
        server_address=exchange.host or None,
        server_port=exchange.port,
        request_body=request,
    )
    if exchange.error is not None:
        call.error = str(exchange.error) or type(exchange.error).__name__
        call.error_type = type(exchange.error).__name__
    # Injected faults say so on the call and its span: llmobs.chaos.fault, .rule, …
    for key, value in exchange.annotations.items():
        if key.startswith("chaos.") and value is not None:
            call.attributes["llmobs." + key] = value
    return call


def redact_url(url: str) -> str:
    return _URL_REDACTOR.url(url)


def _attempt(exchange: Exchange) -> int:
    value = (exchange.request_header("x-stainless-retry-count") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else 0


def _first_int(body: JSONObject, keys: Sequence[str]) -> int | None:
    for key in keys:
        value = integer(body.get(key))
        if value is not None:
            return value
    return None


def recorded_offsets(exchange: Exchange) -> list[float] | None:
    """When each piece arrived in the recording; None when the recording has no timing.

    A cassette without timing (vcrpy writes none) replays every piece at offset 0 and has no
    end: its time to first chunk is unknown, not 0."""
    if exchange.source == "replay" and exchange.recorded_duration_s is None:
        return None
    return exchange.recorded_chunk_offsets


def _first(values: Sequence[float] | None) -> float | None:
    return values[0] if values else None


# -- response body -------------------------------------------------------------------
def body_pieces(exchange: Exchange) -> list[bytes]:
    """The body as received, content-encoding undone, one piece per received chunk.

    gzip/deflate are inflated chunk by chunk so stream events keep their arrival
    times, and a body cut off mid-stream still yields what did arrive. Other encodings
    are decoded as a whole and attributed to the last chunk.
    """
    chunks = exchange.chunks
    encoding = (exchange.response_header("content-encoding") or "").strip().lower()
    if exchange.body_decoded or encoding in ("", "identity") or not chunks:
        return list(chunks)
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflated = _inflate(chunks)
        if inflated is not None:
            return inflated
    return [b""] * (len(chunks) - 1) + [exchange.response_body]


def _inflate(chunks: Sequence[bytes]) -> list[bytes] | None:
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)  # accepts gzip and zlib headers
    try:
        return [inflater.decompress(chunk) for chunk in chunks]
    except zlib.error:
        return None  # raw deflate or garbage: let decode_content try its variants


def body_json(exchange: Exchange) -> Any:
    return load_json(b"".join(body_pieces(exchange)))


def body_for_record(exchange: Exchange, parsed: Any) -> Any:
    """What LLMCall.response_body keeps: the JSON, else the text (an HTML error page)."""
    if parsed is not None:
        return parsed
    raw = b"".join(body_pieces(exchange))
    return raw.decode("utf-8", "replace") if raw else None


def is_event_stream(exchange: Exchange, requested: bool) -> bool:
    """Whether to read the body as SSE: the content type says so, or the request asked for
    a stream and a successful response gave no content type to say otherwise."""
    content_type = (exchange.response_header("content-type") or "").lower()
    if "text/event-stream" in content_type:
        return True
    status = exchange.status_code
    return requested and not content_type and status is not None and status < 400


def events(exchange: Exchange) -> list[SSEEvent]:
    return decode_sse(body_pieces(exchange))


# -- errors ------------------------------------------------------------------------
def error_info(error: Any) -> tuple[str | None, str | None]:
    """(error_type, message) from a provider error object: code, else type."""
    if isinstance(error, str):
        return None, error or None
    error = obj(error)
    kind = nonempty(error.get("code")) or nonempty(error.get("type"))
    return kind, nonempty(error.get("message"))


def apply_http_error(call: LLMCall, exchange: Exchange, body: Any) -> None:
    """For status >= 400: the provider's error code/message, else the status itself."""
    status = exchange.status_code
    if status is None or status < 400 or call.error_type is not None:
        return
    body = obj(body)
    kind, message = error_info(body.get("error"))
    message = message or nonempty(body.get("message")) or nonempty(body.get("detail"))
    call.error_type = kind or str(status)
    call.error = message or f"HTTP {status} {exchange.reason}".strip()


def mark_truncated(call: LLMCall, reason: str) -> None:
    """Record why the output is partial; the first (most specific) reason wins.

    An error response (non-2xx, the cassette's own miss included) carries no answer to be
    partial: it is an error (`error_type`), never a truncation, whatever the request asked.
    """
    status = call.status_code
    if status is not None and not 200 <= status < 300:
        return
    if not call.truncated:
        call.truncated = True
        call.truncation_reason = reason


def check_body(call: LLMCall, exchange: Exchange, body: Any) -> None:
    """A successful non-stream answer must be a JSON object, or the caller got nothing."""
    status = exchange.status_code
    if status is not None and 200 <= status < 300 and not isinstance(body, dict):
        mark_truncated(call, "invalid_response_body")


# -- streams -------------------------------------------------------------------------
@dataclass
class StreamRead:
    """What reading a stream established, independent of the provider."""

    bodies: list[Any] = field(default_factory=list)
    output_chunks: list[int] = field(default_factory=list)
    terminated: bool = False
    error_type: str | None = None
    error: str | None = None

    def fail(self, error_type: str | None, message: str | None) -> None:
        self.error_type = error_type or "error"
        self.error = message or self.error_type


def finish_stream(call: LLMCall, exchange: Exchange, read: StreamRead) -> None:
    """Timing from the output events, the parsed events as body, and stream-end truncation."""
    call.response_body = read.bodies
    _time_events(call, exchange, read.output_chunks)
    apply_http_error(call, exchange, None)
    if read.error_type is not None:
        call.error, call.error_type = read.error, read.error_type
        mark_truncated(call, f"stream_error: {read.error_type}")
        return
    status = exchange.status_code
    if read.terminated or status is None or status >= 400:
        return
    # An exchange neither complete nor failed was closed by the client before the end
    # (a test that breaks out of the loop): partial too, but by choice.
    ended = exchange.complete or exchange.error is not None
    mark_truncated(call, "stream_ended_without_terminator" if ended else "stream_closed_by_client")


def _time_events(call: LLMCall, exchange: Exchange, indices: list[int]) -> None:
    # A stream's "chunks" in the GenAI sense are its output events, not TCP reads.
    offsets = exchange.chunk_offsets
    valid = [i for i in indices if 0 <= i < len(offsets)]
    if not valid:
        return
    call.chunk_offsets_s = tuple(offsets[i] for i in valid)
    call.time_to_first_chunk_s = offsets[valid[0]]
    recorded = recorded_offsets(exchange)
    # Recorded offsets only line up with ours when the replay kept the chunking.
    if recorded and len(recorded) == len(offsets):
        call.recorded_time_to_first_chunk_s = recorded[valid[0]]
