"""`llmobs keygen` (a new local artifact key) and `llmobs decrypt FILE… [-o OUT]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .keys import DEFAULT_KEY_ENV, AwsKmsKeySource, KeySource, KeySourceError, key_source_from_env
from .keys import generate_key as new_key
from .stream import SUFFIX, DecryptError, decrypt_file, read_header


def register_cli(subparsers: Any) -> None:
    keygen = subparsers.add_parser(
        "keygen",
        help="print a new key for encrypted artifacts",
        description="Print a new random 256-bit key (base64). Keep it in a CI secret and "
        f"expose it as an environment variable, e.g. {DEFAULT_KEY_ENV}, then run pytest "
        f"with --llm-encrypt-key-env={DEFAULT_KEY_ENV}.",
    )
    keygen.set_defaults(func=_keygen_cmd)
    decrypt = subparsers.add_parser(
        "decrypt",
        help="decrypt encrypted artifacts (FILE.enc → FILE)",
        description="Decrypt .enc artifacts written with --llm-encrypt-key-env. A directory "
        "means every .enc file in it. The key comes from the environment variable given by "
        f"--key-env (default {DEFAULT_KEY_ENV}); files encrypted with AWS KMS need only AWS "
        "credentials. Exit status: 0 done, 1 wrong key or damaged file (nothing written), "
        "2 bad arguments.",
    )
    decrypt.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="an encrypted artifact (FILE.enc) or a directory of them",
    )
    decrypt.add_argument(
        "-o", "--output", type=Path, default=None, metavar="OUT", help="output file (one FILE)"
    )
    decrypt.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the key (default {DEFAULT_KEY_ENV})",
    )
    decrypt.set_defaults(func=_decrypt_cmd)


def _keygen_cmd(args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def _decrypt_cmd(args: argparse.Namespace) -> int:
    try:
        files = _inputs(args.paths)
        if args.output is not None and len(files) != 1:
            raise ValueError("-o/--output takes one encrypted FILE")
        jobs = [(f, args.output or _plain_name(f)) for f in files]
    except (OSError, ValueError) as exc:
        print(f"llmobs decrypt: {exc}", file=sys.stderr)
        return 2
    sources: dict[str, KeySource] = {}
    for path, output in jobs:
        try:
            decrypt_file(path, output, _source(path, args.key_env, sources))
        except (KeySourceError, DecryptError) as exc:
            print(f"llmobs decrypt: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"llmobs decrypt: {exc}", file=sys.stderr)
            return 2
        print(f"llmobs decrypt: {path} → {output}")
    return 0


def _inputs(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*" + SUFFIX))
            if not found:
                raise ValueError(f"{path}: no {SUFFIX} files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file")
    return files


def _plain_name(path: Path) -> Path:
    if path.suffix != SUFFIX:
        raise ValueError(f"{path}: not named *{SUFFIX}; say where to write with -o OUT")
    return path.with_suffix("")


def _source(path: Path, key_env: str, cache: dict[str, KeySource]) -> KeySource:
    """The key in `key_env` when set, else (for KMS files) boto3's configured KMS."""
    with path.open("rb") as raw:
        header, _ = read_header(raw, str(path))
    scheme = str(header["key"].get("source"))
    if os.environ.get(key_env, "").strip():
        if "env" not in cache:
            cache["env"] = key_source_from_env(key_env)
        return cache["env"]
    if scheme == AwsKmsKeySource.scheme:
        return cache.setdefault(scheme, AwsKmsKeySource())
    raise KeySourceError(
        f"{path} was encrypted with key {header['key'].get('id')} ({scheme}); "
        f"put that key in {key_env} or name its variable with --key-env VAR"
    )
