"""Cassettes written by vcrpy / pytest-recording: read as they are, and written back.

Reading (`convert_interactions`): both vcrpy layouts are understood: `response: {status:
{code, message}, headers, body: {string: …}}` (string or `!!binary`, usually still
gzip-compressed) and the older httpx one (`status_code`, `headers`, `content`). Request
bodies may be strings, bytes, `BytesIO` or iterators (old python/* tags). The result is our
stored form with nothing dropped: bodies decompressed (the original `Content-Encoding`
noted in `encoding` and kept in the headers), no timing (vcrpy never had any), a buffered
stream as one chunk of events.

Writing (`dumps_vcrpy`, for `llmobs cassettes downgrade` and for the plugin saving into a
file that was vcrpy's, see `vcrpy_serializer`): what replay serves, in vcrpy's version-1
layout that vcrpy 7, 8 and 9 load with their default (YAML) serializer. Streams are joined
back into the bytes received; bodies stored decoded are written decoded, without their
Content-Encoding header (Content-Length set to match), as vcrpy's own
`decode_compressed_response=True` writes them; binary bodies become `!!binary`; timing is
dropped, vcrpy has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from ..intercept.exchange import decode_content
from .format import (
    FORMAT_KEY,
    CassetteError,
    CassetteMissing,
    Document,
    Interaction,
    decode_body,
    encode_body,
    encode_chunk,
    headers_from_stored,
    headers_to_stored,
    read_document,
    stream_kind,
)
from .interactions import to_canned


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


# -- the other direction: our stored form → vcrpy -----------------------------------------
# vcrpy's serializers, as `VCR(serializer=…)` names them: YAML is vcrpy's default.
Serializer = Literal["yaml", "json"]
_OURS = re.compile(rb'\s*\{\s*"' + FORMAT_KEY.encode() + rb'"')


def to_vcrpy(interaction: Interaction) -> dict[str, Any]:
    """One stored interaction as vcrpy writes it. The response is what replay serves
    (`to_canned`): streams joined, every chunk's bytes as received; a body stored decoded
    (`encoding`) goes without its Content-Encoding header, Content-Length set to the decoded
    length (what vcrpy's `decode_compressed_response=True` writes); timing dropped (vcrpy
    has none). Raises ValueError for a response that ended in a connection failure: vcrpy
    would serve its partial body as a complete answer."""
    request, response = interaction
    canned = to_canned(response, 0.0, {})
    if canned.fail:
        raise ValueError(
            f"its response ended in a recorded {canned.fail}, which vcrpy's format cannot "
            "replay (it would serve the partial body as a complete answer)"
        )
    body = decode_body(request.get("body"))
    return {  # keys in the order vcrpy's YAML has them (it sorts them)
        "request": {
            "body": _text_or_bytes(body) if body else None,
            "headers": headers_to_stored(headers_from_stored(request.get("headers"))),
            "method": str(request.get("method", "GET")).upper(),
            "uri": str(request.get("uri", "")),
        },
        "response": {
            "body": {"string": _text_or_bytes(b"".join(chunk for _, chunk in canned.chunks))},
            "headers": headers_to_stored(canned.headers),
            "status": {"code": canned.status, "message": canned.reason},
        },
    }


def dumps_vcrpy(
    interactions: Iterable[Interaction], path: Path, serializer: Serializer = "yaml"
) -> str:
    """A vcrpy cassette (version 1) as text, for vcrpy's `serializer`; raises
    CassetteError naming the interaction it cannot write. Headers keep their recorded order
    (vcrpy sorts them; its readers do not care). Text is read back before it is returned:
    every body must come back as the same bytes."""
    items: list[dict[str, Any]] = []
    for i, interaction in enumerate(interactions):
        try:
            items.append(to_vcrpy(interaction))
        except ValueError as exc:
            raise CassetteError(path, f"interaction {i + 1}: {exc}") from None
    doc = {"interactions": items, "version": 1}
    if serializer == "json":
        binary = next((i for i, item in enumerate(items) if _has_bytes(item)), None)
        if binary is not None:
            raise CassetteError(
                path,
                f"interaction {binary + 1} has a binary body, which vcrpy's json serializer "
                "cannot hold (use its yaml serializer, or the llmobs format)",
            )
        text = json.dumps(doc, indent=4) + "\n"
        again = json.loads(text)
    else:
        import yaml

        from .yaml_loader import load_yaml

        try:
            dumper: Any = yaml.CSafeDumper
        except AttributeError:  # PyYAML built without libyaml
            dumper = yaml.SafeDumper
        text = yaml.dump(doc, Dumper=dumper, sort_keys=False)
        again = load_yaml(text)
    for i, (item, back) in enumerate(zip(items, again["interactions"], strict=True)):
        if item != back:  # belt and braces: never write a lossy form
            raise CassetteError(
                path, f"interaction {i + 1} would not survive vcrpy's {serializer} serializer"
            )
    return text


def vcrpy_serializer(path: Path) -> Serializer | None:
    """The vcrpy serializer the cassette at `path` was written with, or None when it is not
    a vcrpy cassette: missing, empty, unreadable or in the llmobs format."""
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.strip() or _OURS.match(head):
        return None
    try:
        doc = read_document(path)
    except (CassetteError, CassetteMissing):
        return None
    if FORMAT_KEY in doc or "interactions" not in doc:
        return None
    return "json" if head.lstrip().startswith(b"{") else "yaml"


def _text_or_bytes(data: bytes) -> str | bytes:
    """What vcrpy's serializers keep: text when the bytes are UTF-8, else bytes (YAML
    `!!binary`)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _has_bytes(item: dict[str, Any]) -> bool:
    return isinstance(item["request"]["body"], bytes) or isinstance(
        item["response"]["body"]["string"], bytes
    )
