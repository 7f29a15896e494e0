"""`llmobs scan PATH…`: find credentials and unmasked PII in cassettes and artifacts.

Uses the very rules `Redactor` applies (`find_secrets`, and `find_in_header` for header
values), so anything the plugin wrote scans clean and anything it would have redacted is
reported. Files of any size are read streaming, a window of text at a time. Values the text
rules cannot see are decoded first: vcrpy's `!!binary` values (boto3's header values, compressed
bodies, inflated when gzip or zlib) and header values that are base64 text.

Exit status: 0 clean, 1 findings, 2 when a path is missing or a file could not be read (each
named with the reason): a scan that could not look everywhere never passes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import codecs
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .redaction import Finding, find_in_header, find_secrets, is_secret_header
from .words import count

__all__ = ["SCANNED_SUFFIXES", "FileFinding", "register_cli", "scan_file", "scan_paths"]

SCANNED_SUFFIXES: Final = frozenset(
    {".yaml", ".yml", ".json", ".jsonl", ".ndjson", ".xml", ".html", ".htm", ".txt", ".md"}
    | {".log", ".har"}
)
"""File kinds picked up when walking a directory; files named explicitly are always read."""

_SKIP_DIRS: Final = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox"}
    | {".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
_SNIFF_BYTES: Final = 8192
_READ_BYTES: Final = 1 << 20
_WINDOW: Final = 1 << 20  # characters scanned at a time, cut at a line end where there is one
# Already-scanned text kept in front of the next window, so that a value spanning the cut (a
# private key block, a YAML list item on the next line, an AWS key pair) is still seen whole.
_OVERLAP: Final = 8192
_MAX_DECODED: Final = 64 << 20  # a !!binary value larger than this is not decoded
_MAX_LINE: Final = 1 << 20  # a longer line is not looked at for `!!binary` (text rules only)

# vcrpy YAML: `Name:` then its `- value` items; JSON: `"name": ["value", …]`.
_YAML_LIST: Final = re.compile(
    r"^(?P<indent>[ \t]*)(?P<name>[A-Za-z0-9][\w.\-]{0,99}):[ \t]*\r?\n"
    r"(?P<items>(?:(?P=indent)[ \t]*-[ \t]+[^\r\n]*\r?\n)+)",
    re.M,
)
_YAML_ITEM: Final = re.compile(r"[ \t]*-[ \t]+([^\r\n]*)")
_JSON_STR: Final = r'"(?:[^"\\\r\n]|\\.)*"'
_JSON_LIST: Final = re.compile(
    r'"(?P<name>[A-Za-z0-9][\w.\-]{0,99})"[ \t]*:[ \t]*\[(?P<items>[ \t\r\n]*'
    + _JSON_STR
    + r"(?:[ \t\r\n]*,[ \t\r\n]*"
    + _JSON_STR
    + r")*)[ \t\r\n]*\]"
)
_JSON_ITEM: Final = re.compile(_JSON_STR)
# A header object: JSON cassettes (ours, vcrpy's JSON serializer) keep lists of strings in it.
_JSON_HEADERS: Final = re.compile(r'"headers"[ \t]*:[ \t]*\{(?P<body>[^{}]*)\}')
_BASE64_VALUE: Final = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
# `- !!binary |`, `string: !!binary |`, `key: !!binary "c2stLi4u"` (PyYAML's forms)
_BINARY_LINE: Final = re.compile(
    r"(?P<indent>[ \t]*)(?:-[ \t]+)?(?:(?P<key>[^\s:#'\"-][^:#]*?):[ \t]+)?!!binary"
    r"(?:[ \t]+(?:(?P<block>[|>][-+0-9]*)|(?P<inline>[\"']?[A-Za-z0-9+/=]+[\"']?)))?[ \t]*\r?$"
)
_KEY_LINE: Final = re.compile(r"[ \t]*(?P<key>[^\s:#'\"-][^:#]*?):[ \t]*\r?$")

Note = Callable[[Path, str], None]


@dataclass(frozen=True)
class FileFinding:
    """One suspicious value: where it is, what it looks like, and a starred excerpt."""

    path: Path
    line: int
    column: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.excerpt}"


def scan_paths(
    paths: Iterable[str | os.PathLike[str]], *, pii: bool = True, on_skip: Note | None = None
) -> list[FileFinding]:
    """Scan files and directory trees; raises FileNotFoundError for a missing path.

    Directories are walked (sorted, not following symlinked directories, skipping VCS and
    tool caches) for `SCANNED_SUFFIXES`. Whatever could not be read — an unreadable or
    binary file, an undecodable `!!binary` value — is reported through
    `on_skip(path, reason)`; the findings found before are kept.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(root)
    findings: list[FileFinding] = []
    for file in _files(roots):
        findings += scan_file(file, pii=pii, on_skip=on_skip)
    return findings


def scan_file(path: Path, *, pii: bool = True, on_skip: Note | None = None) -> list[FileFinding]:
    """Scan one file (whatever its name or size), reading it a block at a time."""
    scan = _Scan(path, pii)
    try:
        with path.open("rb") as handle:
            block = handle.read(_READ_BYTES)
            if b"\0" in block[:_SNIFF_BYTES]:
                _skip(on_skip, path, "binary (not text), not scanned")
                return []
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while block:
                scan.feed(decoder.decode(block))
                block = handle.read(_READ_BYTES)
            scan.feed(decoder.decode(b"", final=True), final=True)
    except OSError as exc:
        scan.problems.append(f"unreadable ({exc.strerror or exc})")
    for problem in scan.problems:
        _skip(on_skip, path, problem)
    return sorted(scan.findings, key=lambda f: (f.line, f.column))


@dataclass
class _Binary:
    """A `!!binary |` block being read: whose value it is, where, and its base64 so far."""

    key: str | None
    indent: int
    line: int
    column: int
    parts: list[str] = field(default_factory=list)
    size: int = 0


@dataclass
class _Scan:
    """One file's text, a window at a time: `carry` (scanned, kept for context) + new text."""

    path: Path
    pii: bool
    findings: list[FileFinding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pending: str = ""
    carry: str = ""
    base: int = 0  # absolute offset of carry[0]
    newlines: int = 0  # newlines before `base`
    line_start: int = 0  # absolute offset of the start of the line holding `base`
    seen: set[int] = field(default_factory=set)  # absolute offsets reported
    binary: _Binary | None = None
    partial_line: str = ""  # the end of a window cut inside a line, for `!!binary` lines

    def feed(self, text: str, final: bool = False) -> None:
        self.pending += text
        while len(self.pending) >= _WINDOW or (final and self.pending):
            cut = len(self.pending)
            if cut > _WINDOW or not final:
                newline = self.pending.rfind("\n", 0, _WINDOW)
                cut = newline + 1 if newline >= 0 else _WINDOW
            new, self.pending = self.pending[:cut], self.pending[cut:]
            self._window(new, last=final and not self.pending)
        if final:
            self._end_binary(None)

    # -- one window ----------------------------------------------------------------------
    def _window(self, new: str, *, last: bool) -> None:
        text = self.carry + new
        start = len(self.carry)
        found: list[tuple[int, str, str]] = []
        spans: list[tuple[int, int]] = []
        for f in find_secrets(text, pii=self.pii):
            found.append((f.start, f.kind, f.excerpt))
            spans.append((f.start, f.end))
        self._header_lists(text if not last else text + "\n", found, spans)
        self._report(text, found)
        self._binaries(text, start, last)
        self._advance(text)

    def _report(self, text: str, found: list[tuple[int, str, str]]) -> None:
        line, pos = self.newlines + 1, 0
        last_newline = self.line_start - 1 - self.base  # may be before the window
        for at, kind, excerpt in sorted(found):
            absolute = self.base + at
            if absolute in self.seen:
                continue
            self.seen.add(absolute)
            line += text.count("\n", pos, at)
            newline = text.rfind("\n", pos, at)
            if newline >= 0:
                last_newline = newline
            pos = at
            self.findings.append(FileFinding(self.path, line, at - last_newline, kind, excerpt))

    def _where(self, text: str, at: int) -> tuple[int, int]:
        """(line, column) of window position `at` (for the few `!!binary` blocks)."""
        newline = text.rfind("\n", 0, at)
        column = at - newline if newline >= 0 else self.base + at - self.line_start + 1
        return self.newlines + 1 + text.count("\n", 0, at), column

    def _advance(self, text: str) -> None:
        keep = max(0, len(text) - _OVERLAP)
        newline = text.rfind("\n", 0, keep)
        self.newlines += text.count("\n", 0, keep)
        if newline >= 0:
            self.line_start = self.base + newline + 1
        self.base += keep
        self.carry = text[keep:]
        self.seen = {at for at in self.seen if at >= self.base}

    # -- header values: the header rules, and base64 text decoded ----------------------------
    def _header_lists(
        self, text: str, found: list[tuple[int, str, str]], spans: list[tuple[int, int]]
    ) -> None:
        starts = [start for start, _ in spans]
        for match in _YAML_LIST.finditer(text):
            name, at = match["name"], match.start("items")
            for item in _YAML_ITEM.finditer(match["items"]):
                raw = item.group(1).rstrip()
                if raw and not raw.startswith("!"):  # `!!binary` values: see `_binaries`
                    quoted = raw[0] in "'\"" and len(raw) > 1
                    where = at + item.start(1) + quoted
                    self._header(name, raw, _yaml_scalar, where, found, spans, starts)
        for headers in _JSON_HEADERS.finditer(text):
            offset = headers.start("body")
            for match in _JSON_LIST.finditer(headers["body"]):
                name, at = match["name"], offset + match.start("items")
                for item in _JSON_ITEM.finditer(match["items"]):
                    where = at + item.start() + 1
                    self._header(name, item.group(), _json_string, where, found, spans, starts)

    def _header(
        self,
        name: str,
        raw: str,
        decode: Callable[[str], str],
        at: int,
        found: list[tuple[int, str, str]],
        spans: list[tuple[int, int]],
        starts: list[int],
    ) -> None:
        """One header value (`raw` as written, `decode` to its value, at window position
        `at`): the header rules for a secret header, base64 text decoded for any other."""
        secret = is_secret_header(name)
        bare = raw.strip("'\"")
        if not secret and _BASE64_VALUE.fullmatch(bare) is None:
            return  # the text rules have seen it as it is
        i = bisect.bisect_right(starts, at)
        if (i and spans[i - 1][1] > at) or (i < len(starts) and starts[i] < at + len(bare)):
            return  # the text rules found something in it already
        if secret:
            for f in find_in_header(name, decode(raw), pii=self.pii):
                found.append((at + f.start, f.kind, f.excerpt))
        elif (decoded := _base64_text(bare)) is not None:
            for f in find_in_header(name, decoded, pii=self.pii):
                found.append((at, f"{f.kind} (base64)", f.excerpt))

    # -- vcrpy's `!!binary` values -----------------------------------------------------------
    def _binaries(self, text: str, start: int, last: bool) -> None:
        """Each line of the window's new text once, when a `!!binary` block is open or the
        text holds one (most windows hold none: a substring search skips them)."""
        new = self.partial_line + text[start:]
        offset = start - len(self.partial_line)
        self.partial_line = ""
        if self.binary is None and "!!binary" not in new:
            return
        lines = new.split("\n")
        rest = lines.pop()  # "" after a final newline, else a line the window cut
        if last:
            lines.append(rest)
        elif len(rest) <= _OVERLAP:  # still in the carry next time; a longer one is skipped
            self.partial_line = rest
        pos = offset
        for line in lines:
            self._binary_line(text, line, pos)
            pos += len(line) + 1

    def _binary_line(self, text: str, line: str, at: int) -> None:
        block = self.binary
        if block is not None:
            stripped = line.strip()
            indent = len(line) - len(line.lstrip(" \t"))
            if not stripped or indent > block.indent:
                if block.size <= _MAX_DECODED:
                    block.parts.append(stripped)
                    block.size += len(stripped)
                return
            self._end_binary(block)
        if "!!binary" not in line:
            return
        match = _BINARY_LINE.fullmatch(line)
        if match is None:
            return
        indent = len(match["indent"])
        key = match["key"].strip() if match["key"] else _list_key(text, at, indent)
        if match["inline"]:
            value = match["inline"].strip("\"'")
            where = at + match.start("inline")
            self._decoded(key, value, *self._where(text, where))
        elif match["block"]:
            line_no, _ = self._where(text, at)
            self.binary = _Binary(key, indent, line_no + 1, indent + 3)  # content: 2 deeper

    def _end_binary(self, block: _Binary | None) -> None:
        block = block or self.binary
        self.binary = None
        if block is None:
            return
        if block.size > _MAX_DECODED:
            self.problems.append(
                f"line {block.line}: a !!binary value over {_MAX_DECODED >> 20} MB was not decoded"
            )
            return
        self._decoded(block.key, "".join(block.parts), block.line, block.column)

    def _decoded(self, key: str | None, value: str, line: int, column: int) -> None:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.problems.append(f"line {line}: a !!binary value is not valid base64")
            return
        text = _as_text(_inflated(data))
        if text is None:
            return  # binary data (an image, an AWS event stream): no text to scan
        found: list[Finding] = (
            find_in_header(key, text, pii=self.pii) if key else find_secrets(text, pii=self.pii)
        )
        for f in found:
            self.findings.append(
                FileFinding(self.path, line, column, f"{f.kind} (!!binary)", f.excerpt)
            )


def _json_string(raw: str) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw[1:-1]
    return value if isinstance(value, str) else raw[1:-1]


def _yaml_scalar(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            value = json.loads(raw)
        except ValueError:
            return raw[1:-1]
        return value if isinstance(value, str) else raw[1:-1]
    return raw


def _list_key(text: str, at: int, indent: int) -> str | None:
    """The key of the YAML list whose item line starts at `at` (item at `indent`): the
    nearest line above at most that indented that is not an item of the same list."""
    end = at
    for _ in range(256):
        if end <= 0:
            return None
        start = text.rfind("\n", 0, end - 1) + 1
        line = text[start : end - 1]
        end = start
        depth = len(line) - len(line.lstrip(" \t"))
        if not line.strip() or depth > indent or line.lstrip().startswith("- "):
            continue  # an earlier item, or the content of one
        match = _KEY_LINE.fullmatch(line)
        return match["key"].strip() if match is not None else None
    return None


def _base64_text(value: str) -> str | None:
    """A header value that is base64 of UTF-8 text, decoded; None for anything else."""
    if len(value) % 4:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(data)


def _inflated(data: bytes) -> bytes:
    """A gzip or zlib body (vcrpy keeps compressed bodies as they came) inflated, bounded."""
    if data[:2] != b"\x1f\x8b" and not (data[:1] == b"\x78" and len(data) > 2):
        return data
    try:
        return zlib.decompressobj(47).decompress(data, _MAX_DECODED)
    except zlib.error:
        return data


def _as_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text[:4096] if c.isprintable() or c in "\r\n\t")
    return text if text and printable >= 0.95 * min(len(text), 4096) else None


def _files(roots: list[Path]) -> Iterator[Path]:
    seen: set[Path] = set()
    for root in roots:
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
                for name in sorted(filenames):
                    file = Path(dirpath, name)
                    if file.suffix.lower() in SCANNED_SUFFIXES and file not in seen:
                        seen.add(file)
                        yield file
        elif root not in seen:
            seen.add(root)
            yield root


def _skip(on_skip: Note | None, path: Path, reason: str) -> None:
    if on_skip is not None:
        on_skip(path, reason)


# -- command line -------------------------------------------------------------------------
def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="find credentials and unmasked PII in cassettes and artifacts",
        description=(
            "List file:line for anything that looks like a credential (API keys, tokens, "
            "AWS keys, JWTs, private keys, secret-named fields and headers, also inside "
            "vcrpy's !!binary values and base64 header values) or, unless --no-pii, "
            "unmasked PII (emails, phone numbers, card numbers, IBANs). Redaction markers "
            "and PII placeholders are ignored. Files of any size are read streaming. Exit "
            "status: 0 clean, 1 findings, 2 error (a missing path, or a file that could not "
            "be read: the scan is incomplete)."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument(
        "--no-pii", dest="pii", action="store_false", help="report credentials only"
    )
    parser.add_argument(
        "--format",
        choices=("text", "github", "json"),
        default="text",
        help="text: PATH:LINE: KIND: EXCERPT, then a result line; github: workflow ::error "
        "annotations; json: one object (files_scanned, findings, skipped)",
    )
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `llmobs scan` command; returns the exit status."""
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for p in missing:
            print(f"llmobs scan: error: no such file or directory: {p}", file=sys.stderr)
        return 2
    # A file that could not be read makes the scan incomplete: exit 2, whatever was found.
    skipped: list[tuple[Path, str]] = []

    def note(path: Path, reason: str) -> None:
        skipped.append((path, reason))

    findings = scan_paths(args.paths, pii=args.pii, on_skip=note)
    scanned = sum(1 for _ in _files([Path(p) for p in args.paths]))
    status = 2 if skipped else 1 if findings else 0
    if args.format == "json":
        print(json.dumps(_json(findings, scanned, skipped), indent=2))
        return status
    for f in findings:
        print(_github(f) if args.format == "github" else str(f))
    for path, reason in skipped:
        print(f"llmobs scan: error: could not read {path}: {reason}", file=sys.stderr)
    files = len({f.path for f in findings})
    if findings:
        print(
            f"llmobs scan: {count(len(findings), 'finding')} in {count(files, 'file')} "
            f"(of {scanned} scanned); redact them (pytest-llmobs redacts new recordings) or "
            "rotate the credential",
            file=sys.stderr,
        )
    if skipped:
        print(
            f"llmobs scan: incomplete: {count(len(skipped), 'file')} could not be read",
            file=sys.stderr,
        )
    elif not findings:
        what = "credentials or unmasked PII" if args.pii else "credentials"
        print(f"llmobs scan: no {what} found in {count(scanned, 'file')}")
    return status


def _json(
    findings: list[FileFinding], scanned: int, skipped: list[tuple[Path, str]]
) -> dict[str, object]:
    return {
        "files_scanned": scanned,
        "findings": [
            {
                "path": str(f.path),
                "line": f.line,
                "column": f.column,
                "kind": f.kind,
                "excerpt": f.excerpt,
            }
            for f in findings
        ],
        "skipped": [{"path": str(path), "reason": reason} for path, reason in skipped],
    }


def _github(f: FileFinding) -> str:
    # Workflow-command escaping: properties also escape `:` and `,`.
    def prop(s: str) -> str:
        return _data(s).replace(":", "%3A").replace(",", "%2C")

    return (
        f"::error file={prop(str(f.path))},line={f.line},col={f.column},"
        f"title={prop('llmobs scan: ' + f.kind)}::{_data(f'{f.kind}: {f.excerpt}')}"
    )


def _data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
