"""Encode AWS event-stream frames (`application/vnd.amazon.eventstream`), as Bedrock sends them.

A frame is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the
headers (name length, name, type 7 = string, value length, value), the payload and a CRC32
of everything before it. botocore's `EventStreamBuffer` decodes exactly this. Standard
library only, for the fake provider server, tests and chaos faults that need Bedrock bytes.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["chunk_frame", "encode_frame", "event_frame", "exception_frame"]

_STRING = 7
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
