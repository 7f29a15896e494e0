"""Newline-delimited JSON streams (`application/x-ndjson`, Ollama), decoded incrementally.

Lines are split at the byte level, so a chunk boundary inside a line or inside a multi-byte
character is harmless; each line is tagged with the chunk that completed it, for timing.
A last line without its newline still counts when it parses: servers differ on that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._json import load_json

CONTENT_TYPE = "application/x-ndjson"


@dataclass(frozen=True)
class JSONLine:
    """One parsed line (None when it is not JSON) and the chunk that completed it."""

    value: Any
    chunk_index: int


def decode_ndjson(chunks: Iterable[bytes]) -> list[JSONLine]:
    lines: list[JSONLine] = []
    pending = bytearray()
    index = -1
    for index, chunk in enumerate(chunks):
        pending += chunk
        *complete, rest = bytes(pending).split(b"\n")
        pending = bytearray(rest)
        lines.extend(JSONLine(load_json(line), index) for line in complete if line.strip())
    if pending.strip():
        lines.append(JSONLine(load_json(bytes(pending)), index))
    return lines
