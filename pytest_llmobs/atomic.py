"""Files that appear whole or not at all: cassettes, snapshots, baselines, artifacts.

The content goes to a temporary file beside the target (`.NAME.<random>.tmp`), is flushed
and fsynced, gets the mode the target already had (a new file: 0666 less the umask, as
`open` would give it; the process umask is never changed), and is renamed over the target
(`os.replace`); then the directory is fsynced. A crash, Ctrl-C or full disk leaves the old
file or the new one, never a half-written or empty one. A temporary file left by a killed
process (`kill -9` mid-save) is removed the next time that target is written, once it is
older than STALE_S: younger ones may belong to another process writing now (xdist).
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import secrets
import time
from pathlib import Path
from typing import IO, BinaryIO

STALE_S = 3600.0


class AtomicFile:
    """A file that appears at `path` only on `commit()` (or a clean `with` exit).

    `binary` is the raw byte stream of the temporary file; `stream` is a UTF-8 text view of
    it (newlines as written), for writers that produce text.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        self.tmp, fd = _create_beside(path)
        self.binary: BinaryIO = os.fdopen(fd, "wb")
        self._text: io.TextIOWrapper | None = None

    @property
    def stream(self) -> IO[str]:
        if self._text is None:
            self._text = io.TextIOWrapper(
                self.binary, encoding="utf-8", newline="\n", write_through=True
            )
        return self._text

    def write(self, text: str) -> None:
        self.stream.write(text)

    def _close_layers(self) -> None:
        """Push everything written through any layers over `binary` (subclasses add some)."""
        if self._text is not None:
            self._text.flush()

    def commit(self) -> Path:
        try:
            self._close_layers()
            self.binary.flush()
            os.fsync(self.binary.fileno())
            self.binary.close()
            if self.path.exists():
                os.chmod(self.tmp, self.path.stat().st_mode & 0o7777)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        _sync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.binary.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> IO[str]:
        return self.stream

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Replace `path` with `data` (text is written as UTF-8) all at once."""
    target = AtomicFile(path)
    try:
        target.binary.write(data.encode("utf-8") if isinstance(data, str) else data)
    except BaseException:
        target.discard()
        raise
    return target.commit()


def _create_beside(path: Path) -> tuple[Path, int]:
    # 0o666 through the umask, like any new file; mkstemp would make it 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _remove_stale(path: Path) -> None:
    cutoff = time.time() - STALE_S
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows, or a file system that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
