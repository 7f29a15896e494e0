"""Cassettes written by vcrpy / pytest-recording, read as they are.

Both vcrpy layouts are understood: `response: {status: {code, message}, headers, body:
{string: …}}` (string or `!!binary`, usually still gzip-compressed) and the older httpx one
(`status_code`, `headers`, `content`). Request bodies may be strings, bytes, `BytesIO` or
iterators (old python/* tags). The result is our stored form with nothing dropped: bodies
decompressed (the original `Content-Encoding` noted in `encoding` and kept in the
headers), no timing (vcrpy never had any), a buffered stream as one chunk of events.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

from ..intercept.exchange import decode_content
from .format import (
    CassetteError,
    Document,
    Interaction,
    encode_body,
    encode_chunk,
    headers_from_stored,
    headers_to_stored,
    stream_kind,
)


def convert_interactions(doc: Document, path: Path) -> list[Interaction]:
    items = doc.get("interactions")
    if not isinstance(items, list):
        raise CassetteError(path, "'interactions' must be a list")
    out: list[Interaction] = []
    for i, item in enumerate(items):
        try:
            out.append(_convert(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CassetteError(
                path, f"interaction {i + 1}: not a vcrpy interaction ({type(exc).__name__}: {exc})"
            ) from None
    return out


def _convert(item: dict[str, Any]) -> Interaction:
    request, response = item["request"], item["response"]
    stored_request: dict[str, Any] = {
        "method": str(request["method"]).upper(),
        "uri": str(request["uri"]),
        "headers": headers_to_stored(headers_from_stored(request.get("headers") or {})),
    }
    body = _bytes(request.get("body"))
    if body:
        stored_request["body"] = encode_body(body, exact=False)
    return stored_request, convert_response(response)


def convert_response(response: dict[str, Any]) -> dict[str, Any]:
    if "status_code" in response:  # vcrpy's old httpx layout
        status, reason = int(response["status_code"]), ""
        raw = _bytes(response.get("content"))
    else:
        status_field = response["status"]
        if isinstance(status_field, dict):
            status, reason = int(status_field["code"]), str(status_field.get("message") or "")
        else:
            status, reason = int(status_field), ""
        body_field = response.get("body")
        raw = _bytes(body_field.get("string") if isinstance(body_field, dict) else body_field)
    headers = headers_from_stored(response.get("headers") or {})
    stored: dict[str, Any] = {"status": status}
    if reason:
        stored["reason"] = reason
    stored["headers"] = headers_to_stored(headers)
    encoding = _header(headers, "content-encoding")
    if raw and encoding and encoding.strip().lower() != "identity":
        decoded = decode_content(raw, encoding)
        if decoded is not raw:  # decode_content hands back `raw` itself when it cannot decode
            stored["encoding"] = encoding
            raw = decoded
    if raw:
        kind = stream_kind(_header(headers, "content-type"))
        if kind is not None:
            stored["stream"] = [encode_chunk(0.0, raw, kind)]
        else:
            stored["body"] = encode_body(raw)
    return stored


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, BytesIO):
        return value.getvalue()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple | Iterator):
        return b"".join(_bytes(part) for part in value)
    if isinstance(value, dict):  # a body mapping ({string: …}) where a plain value was expected
        return _bytes(value.get("string"))
    return str(value).encode("utf-8")
