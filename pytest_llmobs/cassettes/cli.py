"""`llmobs cassettes upgrade|downgrade PATH…`: move cassettes between vcrpy's format and ours.

`upgrade` rewrites vcrpy / pytest-recording cassettes in the readable llmobs format.
Upgraded files are read by pytest-llmobs only: vcrpy and pytest-recording can no longer
load them (the command says so). `downgrade` writes llmobs-format cassettes back in vcrpy's
format (version 1, YAML), which vcrpy 7, 8 and 9 replay: streams joined into the bytes
received, bodies stored decoded written decoded (without their Content-Encoding header),
binary bodies as `!!binary`. Timing is lost: vcrpy has none (the command says so).

Each file is converted in memory, written to text, read back and compared with what was
read (status, reason, every header, every served byte of every body and stream, the
request); only then is it replaced, atomically. Secrets are redacted on the way (as
recording would have done) unless `--keep-secrets`. A file that cannot be read is
reported on stderr and left untouched; so is one already in the target format. `--check`
changes nothing and lists each file with its format and what would happen. Exit status:
1 when a file failed, or (with `--check`) when any file would change; else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..redaction import Redactor
from .format import (
    CassetteError,
    CassetteMissing,
    Interaction,
    StoredPair,
    dumps_document,
    interactions_of,
    load,
)
from .interactions import redact_stored, to_canned

_UPGRADE = """\
Rewrite vcrpy / pytest-recording cassettes in the readable llmobs format.

Upgraded files are read by pytest-llmobs only: vcrpy and pytest-recording can no longer
load them. `llmobs cassettes downgrade PATH…` writes them back in vcrpy's format.

Each file is converted in memory, written to text, read back and compared with what was
read (status, reason, every header, every served byte of every body and stream, the
request); only then is it replaced, atomically. Secrets are redacted on the way unless
--keep-secrets. A file that cannot be read is reported and left untouched; so is one
already in the llmobs format. --check lists each file with its format and what would
happen, and changes nothing. Exit status 1 when a file failed (or, with --check, would be
upgraded), else 0.
"""

_DOWNGRADE = """\
Rewrite llmobs-format cassettes in vcrpy's format, for vcrpy / pytest-recording.

The files are vcrpy version-1 YAML cassettes that vcrpy 7, 8 and 9 load with their default
serializer. Every recorded byte is kept: streams are joined back into the bytes received,
binary bodies (AWS event streams) become !!binary. Bodies the recording stored decoded from
gzip (etc.) are written decoded and their Content-Encoding header is dropped (Content-Length
set to match), as vcrpy's decode_compressed_response=True writes them: the client gets the
same parsed answer. Timing is lost: vcrpy has none, so replays serve each answer at once.
A response that ended in a recorded connection failure cannot be written (vcrpy would serve
its partial body as a complete answer): that file is reported and left untouched.

Each file is converted in memory, written to text, read back and compared (status, reason,
headers, every served byte, the request); only then is it replaced, atomically. Secrets are
redacted on the way unless --keep-secrets. A file that cannot be read is reported and left
untouched; so is one already in vcrpy's format. --check lists each file with its format and
what would happen, and changes nothing. Exit status 1 when a file failed (or, with --check,
would be downgraded), else 0.
"""

_UPGRADE_NOTE = (
    "note: upgraded cassettes are read by pytest-llmobs only; vcrpy and pytest-recording "
    "can no longer load them. `llmobs cassettes downgrade PATH…` writes them back in vcrpy's "
    "format."
)
_DOWNGRADE_NOTE = (
    "note: vcrpy cassettes have no timing: the downgraded files keep every byte, but replays "
    "serve each answer at once (stream chunk timing and time to first token are dropped)."
)


def register_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cassettes",
        help="work with cassette files (upgrade to / downgrade from the llmobs format)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="cassettes_command", metavar="ACTION")
    for name, help_text, description, func, change in (
        (
            "upgrade",
            "rewrite vcrpy / pytest-recording cassettes in the readable llmobs format "
            "(read by pytest-llmobs only)",
            _UPGRADE,
            run_upgrade,
            "upgraded",
        ),
        (
            "downgrade",
            "rewrite llmobs-format cassettes in vcrpy's format, for vcrpy / pytest-recording "
            "(timing is lost)",
            _DOWNGRADE,
            run_downgrade,
            "downgraded",
        ),
    ):
        action = actions.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        action.add_argument(
            "paths",
            nargs="+",
            type=Path,
            metavar="PATH",
            help="cassette files, or directories to search for *.yaml / *.yml",
        )
        action.add_argument(
            "--check",
            action="store_true",
            help=f"change nothing: list each file, its format and what would happen; exit 1 "
            f"if any file would be {change}",
        )
        action.add_argument(
            "--keep-secrets",
            action="store_true",
            help="do not redact credentials (they are redacted by default)",
        )
        action.add_argument(
            "--json",
            action="store_true",
            help="print the result as one JSON object: each file with its status (current, "
            f"{change}, would be {change}, failed) and error, and the counts",
        )
        action.set_defaults(func=func)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def run_upgrade(args: argparse.Namespace) -> int:
    return _run(args, upgrade_file, "upgrade", "vcrpy", "llmobs", _UPGRADE_NOTE)


def run_downgrade(args: argparse.Namespace) -> int:
    return _run(args, downgrade_file, "downgrade", "llmobs", "vcrpy", _DOWNGRADE_NOTE)


def _run(
    args: argparse.Namespace,
    convert: Callable[..., str],
    verb: str,
    source: str,
    target: str,
    note: str,
) -> int:
    """One pass over the files for either direction: a line per file, the note once (or,
    with --json, one object)."""
    redactor = None if args.keep_secrets else Redactor()
    files: list[dict[str, str]] = []
    for path in _files(args.paths):
        try:
            status = convert(path, redactor, write=not args.check)
        except CassetteError as exc:
            files.append({"path": str(path), "status": "failed", "error": str(exc)})
            if not args.json:
                print(f"error: {exc} (left untouched)", file=sys.stderr)
            continue
        if status != "current":
            status = f"would be {verb}d" if args.check else f"{verb}d"
        files.append({"path": str(path), "status": status})
        if args.json:
            continue
        if status == "current":
            print(f"ok (already {target} format): {path}")
        elif args.check:
            print(f"would {verb} ({source} format → {target} format): {path}")
        else:
            print(f"{verb}d ({source} format → {target} format): {path}")
    counts = {s: sum(1 for f in files if f["status"] == s) for s in ("current", "failed")}
    changed = sum(1 for f in files if f["status"] not in counts)
    failed, current = counts["failed"], counts["current"]
    if args.json:
        result = {"files": files, "changed": changed, "current": current, "failed": failed}
        result.update(check=args.check, note=note if changed else None)
        print(json.dumps(result, indent=2))
    elif args.check:
        print(f"{changed} would be {verb}d, {current} already {target} format, {failed} failed")
    else:
        print(f"{changed} {verb}d, {current} already {target} format, {failed} failed")
    if changed and not args.json:
        print(note)
    return 1 if failed or (args.check and changed) else 0


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def upgrade_file(path: Path, redactor: Redactor | None, *, write: bool = True) -> str:
    """ "current" (nothing to do) or "upgraded"; raises CassetteError, touching nothing."""
    pairs, ours = _load(path)
    if ours:
        return "current"
    interactions = _values(pairs, redactor)
    text = dumps_document(interactions)
    again, _ = interactions_of(json.loads(text), path)
    _compare(path, interactions, again, "the upgrade", encoding=True)
    if write:
        write_atomic(path, text)
    return "upgraded"


def downgrade_file(path: Path, redactor: Redactor | None, *, write: bool = True) -> str:
    """ "current" (already vcrpy's format) or "downgraded"; raises CassetteError, touching
    nothing."""
    from .vcrpy_compat import dumps_vcrpy
    from .yaml_loader import load_yaml

    pairs, ours = _load(path)
    if not ours:
        return "current"
    interactions = _values(pairs, redactor)
    text = dumps_vcrpy(interactions, path)
    again, _ = interactions_of(load_yaml(text), path)
    # Read back as the plugin reads vcrpy files: bodies come back decoded either way, so the
    # `encoding` note (gone with the Content-Encoding header) is not compared.
    _compare(path, interactions, again, "the downgrade", encoding=False)
    if write:
        write_atomic(path, text)
    return "downgraded"


def _load(path: Path) -> tuple[list[StoredPair], bool]:
    try:
        return load(path)
    except CassetteMissing:
        raise CassetteError(path, "no such file, or it is empty") from None


def _values(pairs: list[StoredPair], redactor: Redactor | None) -> list[Interaction]:
    interactions = [(request.value, response.value) for request, response in pairs]
    if redactor is not None:
        interactions = [redact_stored(pair, redactor) for pair in interactions]
    return interactions


def _compare(
    path: Path,
    before: list[Interaction],
    after: list[Interaction],
    what: str,
    *,
    encoding: bool,
) -> None:
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        if _served(old, encoding=encoding) != _served(new, encoding=encoding):
            raise CassetteError(path, f"interaction {i + 1} would not survive {what}")


def _served(pair: Interaction, *, encoding: bool = True) -> tuple[Any, ...]:
    """Everything replay serves and matching compares for one interaction (and, with
    `encoding`, whether the body was stored decoded from a content-encoding)."""
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
        response.get("encoding") if encoding else None,
    )
