"""Between live exchanges, stored interactions and canned replies.

`from_exchange` turns a finished exchange into the stored (redacted, decoded, timed) form;
`to_canned` turns a stored response back into what the transports serve; `redact_stored`
applies the redaction rules to an interaction read from disk (upgrades, old cassettes).
"""

from __future__ import annotations

import http
import zlib
from typing import Any

from ..intercept.exchange import CannedResponse, Exchange, decode_content
from ..redaction import Redactor
from .format import (
    Interaction,
    decode_body,
    decode_chunk,
    encode_body,
    encode_chunk,
    headers_from_stored,
    headers_to_stored,
    stream_kind,
)


# -- recording -----------------------------------------------------------------------------
def request_from_exchange(
    exchange: Exchange, redactor: Redactor, *, headers: bool = True
) -> dict[str, Any]:
    """The request as stored and as matched: secrets redacted (PII masked when asked).
    Matching never looks at headers: `headers=False` leaves them out (they are redacted
    only for a request that is going to be recorded)."""
    stored: dict[str, Any] = {"method": exchange.method, "uri": redactor.url(exchange.url)}
    if headers:
        stored["headers"] = redacted_headers(exchange, redactor)
    body = decode_content(exchange.request_body, exchange.request_header("content-encoding"))
    if body:
        # Redacting the raw text first is one regex pass when nothing needs redacting.
        redacted = redactor.body(body, exchange.request_header("content-type") or "")
        stored["body"] = encode_body(redacted, exact=False)
    return stored


def redacted_headers(exchange: Exchange, redactor: Redactor) -> dict[str, list[str]]:
    return headers_to_stored(redactor.headers(exchange.request_headers))


def response_from_exchange(exchange: Exchange, redactor: Redactor) -> dict[str, Any] | None:
    """The response as stored; None when there was none to store (no status line)."""
    if exchange.status_code is None:
        return None
    stored: dict[str, Any] = {"status": exchange.status_code}
    if exchange.reason:
        stored["reason"] = exchange.reason
    stored["headers"] = headers_to_stored(redactor.headers(exchange.response_headers))
    encoding = exchange.response_header("content-encoding")
    pieces, removed = _decoded_pieces(exchange, encoding)
    if removed:
        stored["encoding"] = encoding
    offsets = exchange.chunk_offsets
    content_type = exchange.response_header("content-type")
    timing: dict[str, Any] = {}
    if exchange.headers_offset is not None:
        timing["headers"] = round(exchange.headers_offset, 6)
    kind = stream_kind(content_type)
    if kind is not None:
        stored["stream"] = [
            encode_chunk(t, piece if kind == "binary" else redactor.body(piece, content_type), kind)
            for t, piece in zip(offsets, pieces, strict=False)
            if piece
        ]
    else:
        body = b"".join(pieces)
        redacted = redactor.body(body, content_type)
        if body:
            stored["body"] = encode_body(redacted)
            if redacted is body:
                timing["chunks"] = [
                    [round(t, 6), len(p)] for t, p in zip(offsets, pieces, strict=False) if p
                ]
            else:  # redaction changed the length: the boundaries no longer apply
                timing["chunks"] = [[round(offsets[-1], 6), len(redacted)]]
    if exchange.end_offset is not None:
        timing["end"] = round(exchange.end_offset, 6)
    stored["timing"] = timing
    if not exchange.complete:
        error = exchange.error
        if error is None:
            stored["error"] = "closed"  # the client stopped reading: the rest was never seen
        else:
            stored["error"] = "timeout" if "timeout" in type(error).__name__.lower() else "reset"
    return stored


def from_exchange(exchange: Exchange, redactor: Redactor) -> Interaction | None:
    response = response_from_exchange(exchange, redactor)
    if response is None:
        return None
    return request_from_exchange(exchange, redactor), response


def _decoded_pieces(exchange: Exchange, encoding: str | None) -> tuple[list[bytes], bool]:
    """Body pieces free of content-encoding, one per received chunk where possible, and
    whether an encoding was removed (False: no encoding, or one we could not undo)."""
    chunks = list(exchange.chunks)
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity":
        return chunks, False
    if exchange.body_decoded:  # urllib3 decoded it before we saw it
        return chunks, True
    if enc in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
        try:
            pieces = [inflater.decompress(chunk) for chunk in chunks]
            if inflater.eof or not exchange.complete:
                return pieces, True
        except zlib.error:
            pass
    raw = b"".join(chunks)
    whole = decode_content(raw, encoding)
    if whole is raw:
        return chunks, False
    return [b""] * (len(chunks) - 1) + [whole], True


# -- replaying -----------------------------------------------------------------------------
def to_canned(response: dict[str, Any], pace: float, annotations: dict[str, Any]) -> CannedResponse:
    """What the transports serve for a stored response, on the recorded schedule times the pace."""
    headers = headers_from_stored(response.get("headers"))
    if response.get("encoding"):
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
    timing = response.get("timing") if isinstance(response.get("timing"), dict) else {}
    assert isinstance(timing, dict)
    headers_offset = _float(timing.get("headers")) or 0.0
    chunks = _chunks(response, timing, headers_offset)
    total = sum(len(c) for _, c in chunks)
    headers = [(k, str(total) if k.lower() == "content-length" else v) for k, v in headers]
    status = int(response["status"])
    reason = str(response.get("reason") or _phrase(status))
    # "closed": the client stopped reading (an SDK does after `data: [DONE]`); what would
    # have followed is unknown, so the replay simply ends (truncation checks still see it).
    error = response.get("error") if response.get("error") in ("timeout", "reset") else None
    end = _float(timing.get("end"))
    return CannedResponse(
        status=status,
        headers=headers,
        chunks=chunks,
        reason=reason,
        headers_offset=headers_offset,
        pace=pace,
        fail=("timeout" if error == "timeout" else "reset") if error else None,
        fail_offset=end if error else None,
        source="replay",
        body_decoded=not any(k.lower() == "content-encoding" for k, _ in headers),
        duration_s=end,
        annotations=annotations,
    )


def _chunks(
    response: dict[str, Any], timing: dict[str, Any], headers_offset: float
) -> list[tuple[float, bytes]]:
    stream = response.get("stream")
    if isinstance(stream, list):
        out = []
        for item in stream:
            if isinstance(item, dict):
                data = decode_chunk(item)
                if data:
                    out.append((_float(item.get("t")) or headers_offset, data))
        return out
    body = decode_body(response.get("body"))
    if not body:
        return []
    sizes = timing.get("chunks")
    if isinstance(sizes, list) and sizes:
        try:
            pieces = [(float(t), int(n)) for t, n in sizes]
        except (TypeError, ValueError):
            pieces = []
        if pieces and sum(n for _, n in pieces) == len(body):
            out, pos = [], 0
            for t, n in pieces:
                out.append((t, body[pos : pos + n]))
                pos += n
            return out
        if pieces:  # the body was edited by hand: serve it whole when it was complete
            return [(pieces[-1][0], body)]
    return [(_float(timing.get("end")) or headers_offset, body)]


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# -- redacting stored interactions -----------------------------------------------------------
def redact_stored(interaction: Interaction, redactor: Redactor) -> Interaction:
    """The interaction with the redaction rules applied (idempotent on our own recordings)."""
    request, response = interaction
    request = dict(request)
    request["uri"] = redactor.url(str(request.get("uri", "")))
    request["headers"] = _redact_headers(request.get("headers"), redactor)
    body = request.get("body")
    if isinstance(body, dict) and "json" in body:
        request["body"] = {**body, "json": redactor.json(body["json"])}
    elif body:
        content_type = _header(request.get("headers"), "content-type")
        request["body"] = encode_body(redactor.body(decode_body(body), content_type), exact=False)
    response = dict(response)
    response["headers"] = _redact_headers(response.get("headers"), redactor)
    content_type = _header(response.get("headers"), "content-type")
    if isinstance(response.get("stream"), list):
        kind = stream_kind(content_type) or "sse"
        new_stream = []
        for item in response["stream"]:
            if not isinstance(item, dict) or kind == "binary":
                new_stream.append(item)
                continue
            data = decode_chunk(item)
            redacted = redactor.body(data, content_type)
            new_stream.append(
                item
                if redacted is data
                else encode_chunk(_float(item.get("t")) or 0.0, redacted, kind)
            )
        response["stream"] = new_stream
    elif response.get("body"):
        data = decode_body(response["body"])
        redacted = redactor.body(data, content_type)
        if redacted is not data:
            response["body"] = encode_body(redacted)
            timing = response.get("timing")
            if isinstance(timing, dict) and isinstance(timing.get("chunks"), list):
                last = timing["chunks"][-1] if timing["chunks"] else [0.0, 0]
                response["timing"] = {**timing, "chunks": [[last[0], len(redacted)]]}
    return request, response


def _redact_headers(stored: Any, redactor: Redactor) -> dict[str, list[str]]:
    return headers_to_stored(redactor.headers(headers_from_stored(stored)))


def _header(stored: Any, name: str) -> str | None:
    return next((v for k, v in headers_from_stored(stored) if k.lower() == name), None)
