"""Where content artifacts go and come back from: plain `NAME`, or `NAME.enc` when a key
source is given (`--llm-encrypt-key-env`). Writers and readers (the run, `llmobs merge`,
the HTML report) go through here so encryption is one decision, not one per artifact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import AtomicFile

if TYPE_CHECKING:
    from ..encryption.keys import KeySource

ENC = ".enc"


def open_artifact(path: Path, keys: KeySource | None = None) -> AtomicFile:
    """An atomic text file at `path`, or at `path.enc` with its content encrypted."""
    if keys is None:
        return AtomicFile(path)
    from ..encryption.stream import EncryptedAtomicFile

    return EncryptedAtomicFile(path, keys)


def encrypted(path: Path) -> bool:
    """True when only the encrypted twin of `path` exists."""
    return not path.exists() and path.with_name(path.name + ENC).exists()


def artifact_lines(path: Path, keys: KeySource | None = None) -> Iterator[str]:
    """The non-empty lines of `path` (or of `path.enc`, decrypted chunk by chunk); nothing
    if neither exists; ValueError if it is encrypted and no key was given."""
    if path.exists():
        with path.open(encoding="utf-8") as stream:
            yield from (line.rstrip("\n") for line in stream if line.strip())
        return
    sealed = path.with_name(path.name + ENC)
    if not sealed.exists():
        return
    if keys is None:
        raise ValueError(
            f"{sealed} is encrypted: name the environment variable that holds its key "
            "(llmobs merge --key-env VAR), or decrypt it first (llmobs decrypt)"
        )
    from ..encryption.stream import open_text

    with open_text(sealed, keys) as stream:
        yield from (line.rstrip("\n") for line in stream if line.strip())
