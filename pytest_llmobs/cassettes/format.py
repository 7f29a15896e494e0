"""The cassette file: readable in a pull request, lossless, and fast to load.

A cassette is one pretty-printed JSON document in a `.yaml` file. JSON is YAML, so YAML
tools and editors read it, but it loads with `json.loads` (C speed, no YAML constructors):
a 10,000-interaction cassette loads in a fraction of a second where vcrpy's YAML takes
many seconds. Real YAML (vcrpy / pytest-recording cassettes, hand-converted files) is
read with libyaml's safe loader and converted on the fly.

Layout (`llmobs_cassette: 1`)::

    {
      "llmobs_cassette": 1,
      "interactions": [
        {
          "request": {"method": "POST", "uri": "...", "headers": {...}, "body": {"json": {...}}},
          "response": {
            "status": 200, "reason": "OK", "headers": {"content-type": ["..."]},
            "body": {"json": {...}},                       # or "text" / "base64"
            "timing": {"headers": 0.012, "chunks": [[0.31, 812]], "end": 0.31}
          }
        },
        {
          ...
          "response": {
            "status": 200, "headers": {...},
            "stream": [                                    # one line per received chunk
              {"t": 0.101, "data": {"id": "chatcmpl-1", ...}},
              {"t": 0.152, "event": "content_block_delta", "data": {...}},
              {"t": 0.201, "text": "data: [DONE]\\n\\n"}
            ],
            "timing": {"headers": 0.1, "end": 0.201}
          }
        }
      ]
    }

Bodies are stored decoded (`"encoding": "gzip"` says a content-encoding was removed; it is
left off on replay too). Every body and stream chunk reproduces the received bytes exactly:
a JSON form is used only when re-encoding it in a known style (compact, spaced, indented;
ASCII-escaped or not) gives back the same bytes, else the text (or base64) is kept. Chunk
boundaries and per-chunk arrival offsets (seconds from the request) are kept as received.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

FORMAT_KEY = "llmobs_cassette"
FORMAT_VERSION = 1

Document = dict[str, Any]
Interaction = tuple[dict[str, Any], dict[str, Any]]  # (stored request, stored response)


class CassetteError(Exception):
    """A cassette that cannot be used; the file is never modified because of one."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cassette {self.path}: {problem}")


class CassetteMissing(Exception):
    """No cassette file (or an empty one, which vcrpy also treats as missing)."""


# -- loading -------------------------------------------------------------------------------
class Stored:
    """One stored request or response: a dict, or its text from the file parsed on first
    use (so opening a cassette costs a scan, not a parse, and an interaction the run never
    touches is written back byte for byte)."""

    __slots__ = ("_strings", "_text", "_value", "kind", "line", "path")

    def __init__(
        self,
        value: dict[str, Any] | None = None,
        *,
        text: bytes | None = None,
        line: int = 1,
        path: Path | None = None,
        kind: str = "request",
        strings: dict[str, str] | None = None,
    ) -> None:
        self._value = value
        self._text = text
        self._strings = strings
        self.line = line
        self.path = path
        self.kind = kind

    @property
    def value(self) -> dict[str, Any]:
        if self._value is None:
            text = self._text or b"{}"
            try:
                value = json.loads(text)
            except UnicodeDecodeError as exc:
                line = self.line + text.count(b"\n", 0, exc.start)
                raise CassetteError(
                    self.path or Path("?"), f"line {line}: not UTF-8 text ({exc.reason})"
                ) from None
            except json.JSONDecodeError as exc:
                # The text starts after `      "request": ` on its first line.
                first = len(self.kind) + 10
                column = exc.colno + (first if exc.lineno == 1 else 0)
                raise CassetteError(
                    self.path or Path("?"),
                    f"line {self.line + exc.lineno - 1}, column {column}: invalid JSON in a "
                    f"{self.kind}: {exc.msg}",
                ) from None
            problem = _check(self.kind, value)
            if problem:
                raise CassetteError(
                    self.path or Path("?"), f"line {self.line}: {self.kind} {problem}"
                )
            if self._strings is not None:
                _share_headers(value, self._strings)
            self._value = value
            if self.kind == "request":  # requests are all parsed (matching): keep one copy
                self._text = None
        return self._value

    @property
    def text(self) -> str | None:
        """The text as read from the file (None for values built in this run)."""
        if self._text is None:
            return None
        try:
            return self._text.decode("utf-8")
        except UnicodeDecodeError:
            self.value  # noqa: B018 - raises the CassetteError that names the line
            raise

    def __deepcopy__(self, memo: Any) -> Stored:
        return self  # never mutated once built


StoredPair = tuple[Stored, Stored]


def _share_headers(value: dict[str, Any], strings: dict[str, str]) -> None:
    """One string object per distinct header name and value across a cassette's requests
    (every request repeats the same dozen headers): a parsed request then costs about its
    text's size, not three times it."""
    headers = value.get("headers")
    if isinstance(headers, dict):
        share = strings.setdefault
        for values in headers.values():
            if isinstance(values, list):
                values[:] = [share(v, v) if isinstance(v, str) else v for v in values]
        value["headers"] = {share(name, name): values for name, values in headers.items()}


def load(path: Path) -> tuple[list[StoredPair], bool]:
    """The interactions of the cassette at `path` and whether it is in our format.

    Raises CassetteMissing, or CassetteError naming the problem (for a syntax error, its
    line and column); never modifies the file. A file we wrote is read in blocks and split
    as it streams (memory: about the file once, never the whole text twice), and a
    truncated one is reported when the scan reaches its end, without a full parse.
    """
    try:
        with path.open("rb") as stream:
            pairs = scan_stream(stream, path)
    except FileNotFoundError:
        raise CassetteMissing(str(path)) from None
    except OSError as exc:
        raise CassetteError(path, f"cannot be read: {exc.strerror or exc}") from None
    if pairs is not None:
        return pairs, True
    raw = _read_bytes(path)
    doc = _parse(_decode(raw, path), path)
    del raw
    try:
        items, ours = interactions_of(doc, path)
    except CassetteError:
        # A "{" file that is not JSON but happened to parse as YAML: the JSON error is
        # the one that helps.
        json_error = doc.get(_JSON_ERROR) if isinstance(doc, _YamlFallback) else None
        if json_error is not None:
            raise json_error from None
        raise
    return [
        (Stored(r, path=path, kind="request"), Stored(s, path=path, kind="response"))
        for r, s in items
    ], ours


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CassetteMissing(str(path)) from None
    except OSError as exc:
        raise CassetteError(path, f"cannot be read: {exc.strerror or exc}") from None
    if not raw or raw.isspace():
        raise CassetteMissing(str(path))
    return raw


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw, exc.start)
        raise CassetteError(
            path, f"line {line}, column {column}: not UTF-8 text ({exc.reason})"
        ) from None


_HEAD = '{\n  "llmobs_cassette": 1,\n  "interactions": ['
_OPEN = '\n    {\n      "request": '
_MIDDLE = ',\n      "response": '
_CLOSE = "\n    }"
_TAIL = "\n  ]\n}\n"
_B_HEAD, _B_OPEN, _B_MIDDLE, _B_CLOSE, _B_TAIL = (
    t.encode() for t in (_HEAD, _OPEN, _MIDDLE, _CLOSE, _TAIL)
)


BLOCK_SIZE = 1 << 18  # bytes read at a time by the streaming scan (more for a big interaction)


class _Reader:
    """A window on a binary stream: `buf[pos:]` is unread, `base` is `buf[0]`'s offset in
    the file. Blocks are appended as the scan needs them; consumed bytes are dropped."""

    __slots__ = ("base", "buf", "eof", "pos", "stream")

    def __init__(self, stream: BinaryIO, start: bytes) -> None:
        self.stream = stream
        self.buf = start
        self.base = 0
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Read another block; False at the end of the file."""
        if self.eof:
            return False
        # As much again as is unread: an interaction bigger than a block costs linear time.
        block = self.stream.read(max(BLOCK_SIZE, len(self.buf) - self.pos))
        if not block:
            self.eof = True
            return False
        self.base += self.pos
        self.buf = self.buf[self.pos :] + block
        self.pos = 0
        return True

    def ensure(self, n: int) -> bytes:
        """At least `n` unread bytes (fewer only at the end of the file), without consuming."""
        while len(self.buf) - self.pos < n and self.more():
            pass
        return self.buf[self.pos : self.pos + n]

    def find(self, needle: bytes, start: int) -> int:
        """Index in `buf` of `needle` at or after `start` (an index in `buf`), reading on
        as needed; -1 at the end of the file. Indexes shift when `more()` drops consumed
        bytes: `start - self.pos` is what stays valid."""
        offset = start - self.pos
        searched = offset
        while True:
            found = self.buf.find(needle, self.pos + searched)
            if found >= 0:
                return found
            searched = max(offset, len(self.buf) - self.pos - len(needle) + 1)
            if not self.more():
                return -1


def scan_stream(stream: BinaryIO, path: Path) -> list[StoredPair] | None:
    """Split a file we wrote into its interactions without parsing them, block by block.

    Our writer puts each interaction between a line `    {` and a line `    }` and its
    request and response at indent 6; JSON strings hold no raw newlines, so those lines
    cannot occur anywhere else. A file that ends inside that layout (truncated) raises
    CassetteError with the position; anything else (a hand-reformatted file) returns None
    and is parsed in full instead. Each byte is read once.
    """
    head = stream.read(len(_B_HEAD))
    if head != _B_HEAD:
        return None
    reader = _Reader(stream, b"")
    reader.base = len(_B_HEAD)
    if reader.ensure(3) == b"]\n}":
        rest = reader.ensure(len(_B_TAIL) + 1)[3:]
        return [] if not rest.strip() and len(rest) <= len(_B_TAIL) else None
    pairs: list[StoredPair] = []
    strings: dict[str, str] = {}
    line = 3
    while True:
        opening = reader.ensure(len(_B_OPEN))
        if opening != _B_OPEN:
            if reader.eof and _B_OPEN.startswith(opening):
                raise _truncated(path, reader, line, pairs, inside=False)
            return None
        request_at = reader.pos + len(_B_OPEN)
        close = reader.find(_B_CLOSE, request_at)
        request_at = reader.pos + len(_B_OPEN)  # `find` may have dropped consumed bytes
        if close < 0:
            raise _truncated(path, reader, line, pairs, inside=True)
        text = reader.buf
        middle = text.find(_B_MIDDLE, request_at, close)
        if middle < 0:
            return None
        request_text = text[request_at:middle]
        response_text = text[middle + len(_B_MIDDLE) : close]
        request_line = line + 2
        response_line = request_line + request_text.count(b"\n") + 1
        pairs.append(
            (
                Stored(text=request_text, line=request_line, path=path, strings=strings),
                Stored(text=response_text, line=response_line, path=path, kind="response"),
            )
        )
        line = response_line + response_text.count(b"\n") + 1
        reader.pos = close + len(_B_CLOSE)
        if reader.ensure(1) == b",":
            reader.pos += 1
            continue
        rest = reader.ensure(len(_B_TAIL) + 1)
        if rest in (_B_TAIL, _B_TAIL[:-1]):
            return pairs
        if reader.eof and _B_TAIL.startswith(rest):
            raise _truncated(path, reader, line, pairs, inside=False)
        return None


def _truncated(
    path: Path, reader: _Reader, line: int, pairs: list[StoredPair], *, inside: bool
) -> CassetteError:
    end = reader.base + len(reader.buf)
    last_line = line + reader.buf.count(b"\n", reader.pos)
    where = (
        f"inside interaction {len(pairs) + 1} (which starts on line {line})"
        if inside
        else f"after interaction {len(pairs)}, before the closing brackets"
    )
    return CassetteError(
        path,
        f"truncated: the file ends at byte {end:,} (line {last_line}) {where}; "
        f"the {len(pairs)} interactions before it are complete. The file was left as it "
        "is: restore it from version control or re-record it (--llm-record-mode=rewrite)",
    )


def _parse(text: str, path: Path) -> Document:
    import yaml  # here, not at import: an xdist controller never reads a cassette

    first = re.search(r"\S", text)
    if first is not None and first.group() == "{":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            error = CassetteError(
                path, f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
            )
            # Maybe a hand edit made it YAML (comments …) that still starts with "{". Not
            # when the text just stops (truncated: YAML cannot finish it either) nor for a
            # big file: libyaml takes minutes and gigabytes on hundreds of MB.
            if exc.pos >= len(text.rstrip()) or len(text) > YAML_FALLBACK_MAX:
                raise error from None
            try:
                loaded = _load_yaml(text)
            except yaml.YAMLError:
                raise error from None
            if not isinstance(loaded, dict):
                raise error from None
            doc = _YamlFallback(loaded)
            doc[_JSON_ERROR] = error
    else:
        try:
            doc = _load_yaml(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = exc.problem or exc.context or "invalid"
            raise CassetteError(path, f"{where}invalid YAML: {problem}") from None
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise CassetteError(path, f"invalid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise CassetteError(path, f"not a cassette (the document is a {type(doc).__name__})")
    return doc


_JSON_ERROR = "\x00json_error"
YAML_FALLBACK_MAX = 16 << 20  # characters: a "{" file is retried as YAML up to this size


class _YamlFallback(dict[str, Any]):
    """A document that failed as JSON and was read as YAML (remembers the JSON error)."""


def read_document(path: Path) -> Document:
    """The whole cassette at `path` as a dict (our format or vcrpy's)."""
    return _parse(_decode(_read_bytes(path), path), path)


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def _load_yaml(text: str) -> Any:
    # libyaml's safe loader plus the few benign python/* tags old vcrpy cassettes contain;
    # never the arbitrary-object ones (vcrpy's own loader ran those before 8.5).
    from .yaml_loader import load_yaml

    return load_yaml(text)


def interactions_of(doc: Document, path: Path) -> tuple[list[Interaction], bool]:
    """(interactions in our stored form, whether the file was already in our format)."""
    if FORMAT_KEY in doc:
        version = doc[FORMAT_KEY]
        if version != FORMAT_VERSION:
            raise CassetteError(
                path,
                f"format version {version!r} is not supported by this pytest-llmobs "
                f"(it reads version {FORMAT_VERSION}); upgrade pytest-llmobs",
            )
        items = doc.get("interactions")
        if not isinstance(items, list):
            raise CassetteError(path, "'interactions' must be a list")
        out: list[Interaction] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise CassetteError(path, f"interaction {i + 1}: must be a mapping")
            request, response = item.get("request"), item.get("response")
            problem = _check("request", request) or _check("response", response)
            if problem:
                raise CassetteError(path, f"interaction {i + 1}: {problem}")
            assert isinstance(request, dict) and isinstance(response, dict)
            out.append((request, response))
        return out, True
    if "interactions" in doc:
        from .vcrpy_compat import convert_interactions

        return convert_interactions(doc, path), False
    raise CassetteError(
        path, f"not a cassette: no '{FORMAT_KEY}' or 'interactions' key at the top level"
    )


def _check(kind: str, stored: Any) -> str | None:
    if not isinstance(stored, dict):
        return f"{kind} must be a mapping"
    if kind == "request":
        if not isinstance(stored.get("method"), str) or not isinstance(stored.get("uri"), str):
            return "request needs a 'method' and a 'uri'"
    elif not isinstance(stored.get("status"), int):
        return "response needs an integer 'status'"
    if not isinstance(stored.get("headers", {}), dict):
        return f"{kind} 'headers' must be a mapping of name to a list of values"
    if "stream" in stored and not isinstance(stored["stream"], list):
        return "response 'stream' must be a list of chunks"
    return None


# -- saving --------------------------------------------------------------------------------
def dumps_document(interactions: Iterable[tuple[Any, Any]]) -> str:
    """Our format as text: pretty where it helps a reviewer, one line per stream chunk.

    Takes dicts or `Stored` values; a `Stored` still holding its file text is written
    back verbatim."""
    out: list[str] = [_HEAD]
    first = True
    for request, response in interactions:
        out.append(_OPEN if first else "," + _OPEN)
        first = False
        _emit_stored(request, out)
        out.append(_MIDDLE)
        _emit_stored(response, out)
        out.append(_CLOSE)
    out.append("]\n}\n" if first else _TAIL)
    return _yaml_safe("".join(out))


def _emit_stored(value: Any, out: list[str]) -> None:
    if isinstance(value, Stored):
        if value.text is not None:
            out.append(value.text)
            return
        value = value.value
    _emit(value, 6, out, ())


_INLINE_WIDTH = 96
_SMALL = 24  # containers with more scalars than this are never written on one line
# Keys whose values are always written on one line (a stream chunk, a header's values,
# the timing): a diff then shows one changed line per changed chunk.
_INLINE_KEYS = frozenset({"headers_values", "stream_item", "timing"})


def _emit(value: Any, indent: int, out: list[str], path: tuple[str, ...]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inline = _inline(value, indent, path)
        if inline is not None:
            out.append(inline)
            return
        pad = " " * (indent + 2)
        out.append("{")
        sep = "\n"
        for key, item in value.items():
            out.append(f"{sep}{pad}{_dumps_str(str(key))}: ")
            sep = ",\n"
            _emit(item, indent + 2, out, (*path[-1:], _child_kind(path, str(key))))
        out.append("\n" + " " * indent + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        inline = _inline(value, indent, path)
        if inline is not None:
            out.append(inline)
            return
        pad = " " * (indent + 2)
        kind = "stream_item" if path and path[-1] == "stream" else "item"
        out.append("[")
        sep = "\n"
        for item in value:
            out.append(f"{sep}{pad}")
            sep = ",\n"
            _emit(item, indent + 2, out, (*path[-1:], kind))
        out.append("\n" + " " * indent + "]")
    else:
        out.append(_dumps_scalar(value))


def _child_kind(path: tuple[str, ...], key: str) -> str:
    if path and path[-1] == "headers":
        return "headers_values"
    return key


def _inline(value: dict[str, Any] | list[Any], indent: int, path: tuple[str, ...]) -> str | None:
    kind = path[-1] if path else ""
    if kind in _INLINE_KEYS:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if _scalars(value, _SMALL) > _SMALL:
        return None
    if not (kind in ("item", "headers") or not _has_nested_container(value)):
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) + indent <= _INLINE_WIDTH else None


def _scalars(value: Any, limit: int) -> int:
    """How many scalars `value` holds, counting no further than just past `limit`."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return 1
    total = 0
    for item in value:
        total += _scalars(item, limit - total)
        if total > limit:
            break
    return total


def _has_nested_container(value: dict[str, Any] | list[Any]) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(item, dict | list) and item for item in items)


def _dumps_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _dumps_scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# Characters JSON allows raw in strings but YAML 1.1 readers treat as line breaks or reject.
_YAML_UNSAFE = re.compile("[\u0085\u2028\u2029\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _yaml_safe(text: str) -> str:
    if not _YAML_UNSAFE.search(text):
        return text
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- bodies ----------------------------------------------------------------------------------
# (name, json.dumps keyword arguments): tried in order; the first that reproduces the bytes
# wins. "compact" is the default and is not written to the file.
_STYLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("compact", {"separators": (",", ":")}),
    ("spaced", {"separators": (", ", ": ")}),
    ("indent2", {"indent": 2}),
    ("indent4", {"indent": 4}),
)
# One encoder per (style, ascii): `json.dumps` with arguments builds a new one per call,
# which costs as much as encoding a stream chunk.
_ENCODERS = {
    (name, ascii_): json.JSONEncoder(ensure_ascii=ascii_, **kwargs)
    for name, kwargs in _STYLES
    for ascii_ in (False, True)
}


def _json_form(text: str) -> tuple[Any, dict[str, Any]] | None:
    """(value, style fields) when `text` is JSON that one of our styles reproduces exactly."""
    head = text[:1]
    if head not in ("{", "["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    body, newline = (text[:-1], True) if text.endswith("\n") else (text, False)
    ascii_ = body.isascii() and "\\u" in body
    for name, _ in _STYLES:
        if _ENCODERS[name, ascii_].encode(value) == body:
            style: dict[str, Any] = {}
            if name != "compact":
                style["style"] = name
            if ascii_:
                style["ascii"] = True
            if newline:
                style["newline"] = True
            return value, style
    return None


def _json_bytes(value: Any, fields: Mapping[str, Any]) -> bytes:
    ascii_ = bool(fields.get("ascii"))
    encoder = _ENCODERS.get((str(fields.get("style", "compact")), ascii_))
    encoder = encoder or _ENCODERS["compact", ascii_]
    text = encoder.encode(value)
    if fields.get("newline"):
        text += "\n"
    return text.encode("utf-8")


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _as_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def encode_body(data: bytes, *, exact: bool = True) -> dict[str, Any]:
    """A body as stored: `{"json": …}` (+ style), `{"text": …}` or `{"base64": …}`.

    With `exact=False` (request bodies, which are matched, never served) any JSON is kept
    as JSON, however it was formatted."""
    text = _as_text(data)
    if text is None:
        return {"base64": base64.b64encode(data).decode("ascii")}
    if exact:
        form = _json_form(text)
        if form is not None:
            return {"json": form[0], **form[1]}
    elif text[:1] in ("{", "["):
        try:
            return {"json": json.loads(text)}
        except ValueError:
            pass
    return {"text": text}


def decode_body(body: Any) -> bytes:
    """The bytes a stored body stands for (an absent body is empty)."""
    if not body:
        return b""
    if not isinstance(body, dict):  # hand-written shortcut: a bare string
        return str(body).encode("utf-8")
    if "json" in body:
        return _json_bytes(body["json"], body)
    if "text" in body:
        return str(body["text"]).encode("utf-8")
    if "base64" in body:
        try:
            return base64.b64decode(str(body["base64"]), validate=False)
        except (binascii.Error, ValueError):
            return b""
    return b""


# -- stream chunks --------------------------------------------------------------------------
_SSE_EVENT = re.compile(r"(?:event: ([^\n]*)\n)?data: ([^\n]*)")


def encode_chunk(offset: float, data: bytes, kind: str) -> dict[str, Any]:
    """One received chunk of a stream: its events as JSON where that is exact, else text.

    `kind` is "sse" (`data: {…}` events), "ndjson" (one JSON value per line) or "binary".
    """
    item: dict[str, Any] = {"t": round(offset, 6)}
    text = _as_text(data) if kind != "binary" else None
    if text is None:
        item["base64"] = base64.b64encode(data).decode("ascii")
        return item
    parsed = _sse_events(text) if kind == "sse" else _ndjson_lines(text)
    if parsed is None:
        item["text"] = text
    elif len(parsed) == 1:
        item.update(parsed[0])
    else:
        item["events" if kind == "sse" else "lines"] = parsed
    if decode_chunk(item) != data:  # belt and braces: never store a lossy form
        item = {"t": item["t"], "text": text}
    return item


def _sse_events(text: str) -> list[dict[str, Any]] | None:
    if not text.endswith("\n\n"):
        return None
    events: list[dict[str, Any]] = []
    for block in text[:-2].split("\n\n"):
        match = _SSE_EVENT.fullmatch(block)
        if match is None:
            return None
        form = _json_form(match.group(2))
        if form is None:
            return None
        event: dict[str, Any] = {}
        if match.group(1) is not None:
            event["event"] = match.group(1)
        event["data"] = form[0]
        event.update(form[1])
        events.append(event)
    return events


def _ndjson_lines(text: str) -> list[dict[str, Any]] | None:
    if not text.endswith("\n"):
        return None
    lines: list[dict[str, Any]] = []
    for line in text[:-1].split("\n"):
        form = _json_form(line)
        if form is None:
            return None
        lines.append({"line": form[0], **form[1]})
    return lines


def decode_chunk(item: Mapping[str, Any]) -> bytes:
    """The bytes one stored stream chunk stands for."""
    if "text" in item:
        return str(item["text"]).encode("utf-8")
    if "base64" in item:
        return decode_body({"base64": item["base64"]})
    if "data" in item or "event" in item:
        return _sse_bytes(item)
    if "line" in item:
        return _json_bytes(item["line"], item) + b"\n"
    if "events" in item:
        return b"".join(_sse_bytes(event) for event in item["events"])
    if "lines" in item:
        return b"".join(_json_bytes(line["line"], line) + b"\n" for line in item["lines"])
    return b""


def _sse_bytes(event: Mapping[str, Any]) -> bytes:
    head = f"event: {event['event']}\n".encode() if "event" in event else b""
    return head + b"data: " + _json_bytes(event.get("data"), event) + b"\n\n"


def stream_kind(content_type: str | None) -> str | None:
    """How a body with this content type is stored: as a stream of chunks, or None."""
    ct = (content_type or "").lower()
    if "event-stream" in ct:
        return "sse"
    if any(t in ct for t in ("ndjson", "jsonl", "json-seq", "jsonlines")):
        return "ndjson"
    if "eventstream" in ct:
        return "binary"
    return None


# -- headers ---------------------------------------------------------------------------------
def headers_to_stored(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    stored: dict[str, list[str]] = {}
    for name, value in headers:
        stored.setdefault(name, []).append(value)
    return stored


def headers_from_stored(stored: Any) -> list[tuple[str, str]]:
    if not isinstance(stored, dict):
        return []
    out: list[tuple[str, str]] = []
    for name, values in stored.items():
        if isinstance(values, list | tuple):
            out.extend((str(name), str(v)) for v in values)
        elif values is not None:
            out.append((str(name), str(values)))
    return out
