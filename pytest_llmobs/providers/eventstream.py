"""AWS event streams (`application/vnd.amazon.eventstream`), decoded with botocore's parser.

Frames are binary: a prelude with lengths and a CRC, typed headers, a payload and a
message CRC. botocore's `EventStreamBuffer` is the reference decoder (the same code the SDK
runs on the same bytes), so we feed it the chunks exactly as received and note which chunk
completed each frame, for timing. A bad CRC or a malformed frame stops decoding there and
is reported, never raised: what decoded before it still counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"


@dataclass(frozen=True)
class StreamFrame:
    """One decoded frame.

    `message_type` is `event`, `exception` or `error`; `kind` the event type, the exception
    type or the error code accordingly; `chunk_index` the chunk whose bytes completed it.
    """

    message_type: str
    kind: str
    payload: bytes
    headers: dict[str, Any]
    chunk_index: int


@dataclass
class DecodedStream:
    frames: list[StreamFrame] = field(default_factory=list)
    error: str | None = None  # why decoding stopped early; None when every byte decoded


def decode_event_stream(chunks: Iterable[bytes]) -> DecodedStream:
    """All complete frames in the chunks; a frame cut off by the end is not returned."""
    result = DecodedStream()
    try:
        from botocore.eventstream import EventStreamBuffer
    except ImportError:
        result.error = "botocore is not installed: cannot decode AWS event streams"
        return result
    buffer = EventStreamBuffer()
    for index, chunk in enumerate(chunks):
        buffer.add_data(chunk)
        try:
            for message in buffer:
                result.frames.append(_frame(message.headers, message.payload, index))
        except Exception as exc:  # ChecksumMismatch, bad lengths, garbage headers
            result.error = f"{type(exc).__name__}: {exc}"
            return result
    return result


def _frame(headers: dict[str, Any], payload: bytes, index: int) -> StreamFrame:
    message_type = _text(headers.get(":message-type")) or "event"
    key = {"exception": ":exception-type", "error": ":error-code"}.get(message_type, ":event-type")
    return StreamFrame(
        message_type=message_type,
        kind=_text(headers.get(key)) or "",
        payload=bytes(payload),
        headers=dict(headers),
        chunk_index=index,
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
