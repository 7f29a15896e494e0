"""AWS event streams (`application/vnd.amazon.eventstream`): the one home of their codec.

Reading what a client received: `decode_event_stream`, with botocore's parser.

Frames are binary: a prelude with lengths and a CRC, typed headers, a payload and a
message CRC. botocore's `EventStreamBuffer` is the reference decoder (the same code the SDK
runs on the same bytes), so we feed it the chunks exactly as received and note which chunk
completed each frame, for timing. A bad CRC or a malformed frame stops decoding there and
is reported, never raised: what decoded before it still counts.

Writing and relaying frames (the chaos faults and proxy, the fake provider server):
`encode_frame`, `event_frame`, `chunk_frame`, `exception_frame`, and `split_frames` /
`decode_frame`, which cut and read frames being relayed without checking CRCs (botocore
checks what clients get). A frame is a 12-byte prelude (total length, headers length,
CRC32 of those 8 bytes), the headers (name length, name, type 7 = string, value length,
value), the payload and a CRC32 of everything before it. Standard library only.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterable, Mapping
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


# -- writing and relaying frames ------------------------------------------------------------
_STRING = 7
# Bytes a header value of each type takes (after the type byte); -1: a 2-byte length first.
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16, 6: -1, 7: -1}
_MAX_FRAME = 16 * 1024 * 1024  # botocore's limit too
# Bedrock pads event payloads with a `p` field of varying length (against length side
# channels); clients must ignore it, so the fake sends it too.
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One complete frame with correct CRCs."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: Mapping[str, Any], *, pad: bool = True) -> bytes:
    """An `event` frame with a JSON payload (`messageStart`, `contentBlockDelta`, `chunk` …)."""
    body = dict(payload)
    if pad:
        body["p"] = _PADDING[: 1 + len(json.dumps(payload)) % len(_PADDING)]
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_frame(headers, _dumps(body))


def chunk_frame(model_event: Mapping[str, Any]) -> bytes:
    """InvokeModelWithResponseStream's `chunk`: the model's own JSON, base64 in `bytes`."""
    raw = base64.b64encode(_dumps(model_event)).decode("ascii")
    return event_frame("chunk", {"bytes": raw})


def exception_frame(exception_type: str, message: str) -> bytes:
    """An in-stream failure, e.g. `throttlingException`, `modelStreamErrorException`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, _dumps({"message": message}))


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete frames at the start of `buffer`, and the bytes left over.

    Lengths are taken from each prelude; what cannot be a frame (a length out of range)
    is handed back as one "frame" so a caller relays it rather than waiting forever.
    """
    frames: list[bytes] = []
    while len(buffer) >= 12:
        total = struct.unpack(">I", buffer[:4])[0]
        if total < 16 or total > _MAX_FRAME:
            frames.append(buffer)
            return frames, b""
        if len(buffer) < total:
            break
        frames.append(buffer[:total])
        buffer = buffer[total:]
    return frames, buffer


def decode_frame(frame: bytes) -> tuple[dict[str, str], bytes] | None:
    """(string headers, payload) of one complete frame, or None when it is no valid frame.
    CRCs are not checked: this reads frames we relay, botocore checks what clients get."""
    if len(frame) < 16:
        return None
    total, headers_length = struct.unpack(">II", frame[:8])
    if total != len(frame) or 12 + headers_length + 4 > total:
        return None
    raw, headers, position = frame[12 : 12 + headers_length], {}, 0
    try:
        while position < len(raw):
            size = raw[position]
            name = raw[position + 1 : position + 1 + size].decode("utf-8")
            kind = raw[position + 1 + size]
            position += 2 + size
            width = _FIXED[kind]
            if width < 0:
                length = struct.unpack(">H", raw[position : position + 2])[0]
                value = raw[position + 2 : position + 2 + length]
                position += 2 + length
                if kind == _STRING:
                    headers[name] = value.decode("utf-8")
            else:
                position += width
    except (IndexError, KeyError, UnicodeDecodeError, struct.error):
        return None
    return headers, frame[12 + headers_length : total - 4]


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
