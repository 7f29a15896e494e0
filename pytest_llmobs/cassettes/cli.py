"""`llmobs cassettes upgrade PATH…`: vcrpy / pytest-recording cassettes → the readable format.

Each file is converted in memory, written to text, read back and compared with what was
read (status, reason, every header, every served byte of every body and stream, the
request); only then is it replaced, atomically. Secrets are redacted on the way (as
recording would have done) unless `--keep-secrets`. A file that cannot be read is
reported and left untouched; so is one already in the llmobs format.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..redaction import Redactor
from .format import (
    CassetteError,
    CassetteMissing,
    Interaction,
    dumps_document,
    interactions_of,
    load,
    write_atomic,
)
from .interactions import redact_stored, to_canned


def register_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cassettes", help="work with cassette files", description="Work with cassette files."
    )
    actions = parser.add_subparsers(dest="cassettes_command", metavar="ACTION")
    upgrade = actions.add_parser(
        "upgrade",
        help="rewrite vcrpy / pytest-recording cassettes in the readable llmobs format",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="cassette files, or directories to search for *.yaml / *.yml",
    )
    upgrade.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any file would be upgraded"
    )
    upgrade.add_argument(
        "--keep-secrets",
        action="store_true",
        help="do not redact credentials (they are redacted by default)",
    )
    upgrade.set_defaults(func=run_upgrade)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def run_upgrade(args: argparse.Namespace) -> int:
    redactor = None if args.keep_secrets else Redactor()
    failed = pending = upgraded = 0
    for path in _files(args.paths):
        try:
            status = upgrade_file(path, redactor, write=not args.check)
        except CassetteError as exc:
            print(f"error: {exc} (left untouched)", file=sys.stderr)
            failed += 1
            continue
        if status == "current":
            print(f"ok (already llmobs format): {path}")
        elif args.check:
            print(f"would upgrade: {path}")
            pending += 1
        else:
            print(f"upgraded: {path}")
            upgraded += 1
    if not args.check:
        print(f"{upgraded} upgraded, {failed} failed")
    return 1 if failed or pending else 0


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def upgrade_file(path: Path, redactor: Redactor | None, *, write: bool = True) -> str:
    """ "current" (nothing to do) or "upgraded"; raises CassetteError, touching nothing."""
    try:
        pairs, ours = load(path)
    except CassetteMissing:
        raise CassetteError(path, "no such file, or it is empty") from None
    if ours:
        return "current"
    interactions = [(request.value, response.value) for request, response in pairs]
    if redactor is not None:
        interactions = [redact_stored(pair, redactor) for pair in interactions]
    text = dumps_document(interactions)
    again, _ = interactions_of(json.loads(text), path)
    for i, (before, after) in enumerate(zip(interactions, again, strict=True)):
        if _served(before) != _served(after):
            raise CassetteError(path, f"interaction {i + 1} would not survive the upgrade")
    if write:
        write_atomic(path, text)
    return "upgraded"


def _served(pair: Interaction) -> tuple[Any, ...]:
    """Everything replay serves and matching compares for one interaction."""
    request, response = pair
    canned = to_canned(response, 0.0, {})
    return (
        request.get("method"),
        request.get("uri"),
        request.get("headers"),
        json.dumps(request.get("body"), sort_keys=True),
        canned.status,
        canned.reason,
        canned.headers,
        b"".join(chunk for _, chunk in canned.chunks),
        canned.fail,
        response.get("encoding"),
    )
