"""Atomic artifact files: written to a temporary name in the same directory, then renamed
(`os.replace`), so a reader never sees half a file and an old artifact survives a crash."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically, creating the directory on demand."""
    with AtomicFile(path) as stream:
        stream.write(text)
    return path


class AtomicFile:
    """A text file that appears at `path` only on `commit()` (or a clean `with` exit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.tmp = Path(tmp)
        self.stream: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def write(self, text: str) -> None:
        self.stream.write(text)

    def commit(self) -> Path:
        self.stream.close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.stream.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> IO[str]:
        return self.stream

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
