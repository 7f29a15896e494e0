"""The `llmobs` command. Each subcommand lives with the module that does its work and
registers itself through a `register_cli(subparsers)` function listed here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__

# module path → each exposes `register_cli(subparsers)`; parsers set `func(args) -> int`.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "pytest_llmobs.chaos.proxy",
    "pytest_llmobs.scan",
    "pytest_llmobs.cassettes.cli",
    "pytest_llmobs.report.merge",
    "pytest_llmobs.report.diff",
    "pytest_llmobs.encryption.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmobs",
        description="pytest-llmobs companion command: cassettes, scans, artifacts, chaos proxy.",
        epilog="`llmobs COMMAND --help` explains a command; the README's Reference section "
        "lists them all, with the pytest options, markers and fixtures.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (pytest-llmobs) {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`llmobs … | head`): nothing of ours failed. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
