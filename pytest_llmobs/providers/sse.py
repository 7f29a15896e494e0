"""Incremental Server-Sent Events decoding, per the WHATWG "event stream interpretation".

Bytes go in exactly as the client received them. Lines are split on CRLF, LF or CR at the
byte level (a CR at the end of one chunk and an LF at the start of the next are one line
end), and each line is decoded as UTF-8 only once it is whole, so a chunk boundary in the
middle of a multi-byte character is harmless. Every dispatched event carries the index of
the chunk whose bytes completed it: callers time events with the chunks' arrival offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LINE_END = re.compile(rb"[\r\n]")
_BOM = b"\xef\xbb\xbf"
_CR, _LF = 0x0D, 0x0A


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event.

    `event` is the event type ("message" when the stream named none), `data` the data
    lines joined with "\\n", `id` the last event ID in effect ("" if never set), `retry`
    the reconnection time the stream last asked for, `chunk_index` the chunk that
    completed the event.
    """

    event: str
    data: str
    id: str
    retry: int | None
    chunk_index: int


class SSEDecoder:
    """Feed chunks in arrival order; get back the events each one completed."""

    def __init__(self) -> None:
        self._line = bytearray()
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """True when an event or line was started but not finished (the stream stopped in it)."""
        return bool(self._line or self._data or self._event)

    def feed(self, chunk: bytes, chunk_index: int) -> list[SSEEvent]:
        if not self._line and not self._skip_lf and b"\r" not in chunk:
            return self._feed_lines(chunk, chunk_index)
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_END.finditer(chunk):
            end = match.start()
            if self._skip_lf and end == start and chunk[end] == _LF:
                self._skip_lf = False
                start = end + 1
                continue
            self._line += chunk[start:end]
            self._skip_lf = chunk[end] == _CR
            start = end + 1
            event = self._process(bytes(self._line), chunk_index)
            self._line.clear()
            if event is not None:
                events.append(event)
        if start < len(chunk):
            self._skip_lf = False
            self._line += chunk[start:]
        return events

    def _feed_lines(self, chunk: bytes, chunk_index: int) -> list[SSEEvent]:
        """The usual chunk: no partial line before it and only LF line ends. Its whole
        lines are decoded at once (a UTF-8 sequence never spans an LF, so this decodes
        exactly as line by line would)."""
        whole, newline, rest = chunk.rpartition(b"\n")
        if rest:
            self._line += rest
        if not newline:
            return []
        if self._first_line:
            self._first_line = False
            whole = whole.removeprefix(_BOM)
        events: list[SSEEvent] = []
        for line in whole.decode("utf-8", "replace").split("\n"):
            event = self._process_text(line, chunk_index)
            if event is not None:
                events.append(event)
        return events

    def _process(self, raw: bytes, chunk_index: int) -> SSEEvent | None:
        if self._first_line:
            self._first_line = False
            raw = raw.removeprefix(_BOM)
        return self._process_text(raw.decode("utf-8", "replace"), chunk_index)

    def _process_text(self, line: str, chunk_index: int) -> SSEEvent | None:
        if not line:
            return self._dispatch(chunk_index)
        if line.startswith(":"):
            return None  # comment (keep-alives, proxies' padding)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._set_field(name, value)
        return None

    def _set_field(self, name: str, value: str) -> None:
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)

    def _dispatch(self, chunk_index: int) -> SSEEvent | None:
        # The spec drops an event that has no data lines (and its type with it).
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
            chunk_index=chunk_index,
        )
        self._event = ""
        self._data = []
        return event


def decode_sse(chunks: Iterable[bytes]) -> list[SSEEvent]:
    """All events in a finished stream; an event cut off by the end is not dispatched."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for index, chunk in enumerate(chunks):
        events.extend(decoder.feed(chunk, index))
    return events
