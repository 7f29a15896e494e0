"""`llmobs scan PATH…`: find credentials and unmasked PII in cassettes and artifacts.

Uses the very rules `Redactor` applies (`find_secrets`), so anything the plugin wrote scans
clean and anything it would have redacted is reported. Exit status: 0 clean, 1 findings,
2 usage error (such as a missing path) — made for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .redaction import find_secrets
from .words import count

__all__ = ["SCANNED_SUFFIXES", "FileFinding", "register_cli", "scan_file", "scan_paths"]

SCANNED_SUFFIXES: Final = frozenset(
    {".yaml", ".yml", ".json", ".jsonl", ".ndjson", ".xml", ".html", ".htm", ".txt", ".md"}
    | {".log", ".har"}
)
"""File kinds picked up when walking a directory; files named explicitly are always read."""

MAX_BYTES: Final = 50 * 1024 * 1024
_SKIP_DIRS: Final = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox"}
    | {".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
_SNIFF_BYTES: Final = 8192

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
    tool caches) for `SCANNED_SUFFIXES`. Binary files and files over 50 MB are skipped and
    reported through `on_skip(path, reason)`.
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
    """Scan one file (whatever its name); [] for a skipped one."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            _skip(on_skip, path, f"larger than {MAX_BYTES // (1024 * 1024)} MB ({size} bytes)")
            return []
        data = path.read_bytes()
    except OSError as exc:
        _skip(on_skip, path, f"unreadable ({exc.strerror or exc})")
        return []
    if b"\0" in data[:_SNIFF_BYTES]:
        _skip(on_skip, path, "binary")
        return []
    text = data.decode("utf-8", errors="replace")
    found = find_secrets(text, pii=pii)
    if not found:
        return []
    out: list[FileFinding] = []
    line, pos = 1, 0
    for f in found:  # sorted by offset: count newlines incrementally, in C
        line += text.count("\n", pos, f.start)
        pos = f.start
        column = f.start - text.rfind("\n", 0, f.start)
        out.append(FileFinding(path, line, column, f.kind, f.excerpt))
    return out


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
            "AWS keys, JWTs, private keys, secret-named fields) or, unless --no-pii, "
            "unmasked PII (emails, phone numbers, card numbers, IBANs). Redaction markers "
            "and PII placeholders are ignored. Exit status: 0 clean, 1 findings, 2 error."
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
    skipped: list[tuple[Path, str]] = []

    def note(path: Path, reason: str) -> None:
        skipped.append((path, reason))

    findings = scan_paths(args.paths, pii=args.pii, on_skip=note)
    scanned = sum(1 for _ in _files([Path(p) for p in args.paths]))
    for path, reason in skipped:
        print(f"llmobs scan: note: skipped {path}: {reason}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(_json(findings, scanned, skipped), indent=2))
        return 1 if findings else 0
    for f in findings:
        print(_github(f) if args.format == "github" else str(f))
    files = len({f.path for f in findings})
    if findings:
        print(
            f"llmobs scan: {count(len(findings), 'finding')} in {count(files, 'file')} "
            f"(of {scanned} scanned); redact them (pytest-llmobs redacts new recordings) or "
            "rotate the credential",
            file=sys.stderr,
        )
        return 1
    what = "credentials or unmasked PII" if args.pii else "credentials"
    print(f"llmobs scan: no {what} found in {count(scanned, 'file')}")
    return 0


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
