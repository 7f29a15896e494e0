"""The one atomic writer (pytest_llmobs/atomic.py) every file of the plugin goes through."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pytest_llmobs.atomic import STALE_S, AtomicFile, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_default_and_the_umask_stays(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.yaml", "x")
        assert _mode(tmp_path / "new.yaml") == 0o640
        assert os.umask(0o027) == 0o027  # unchanged by the write
    finally:
        os.umask(old)


def test_an_existing_files_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "kept.yaml"
    path.write_text("old")
    path.chmod(0o604)
    write_atomic(path, b"new")
    assert (path.read_bytes(), _mode(path)) == (b"new", 0o604)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "c[1].yaml"
    path.write_text("old")
    with pytest.raises(RuntimeError), AtomicFile(path) as stream:
        stream.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c[1].yaml"]


def test_text_and_bytes_land_exactly(tmp_path: Path) -> None:
    assert write_atomic(tmp_path / "t", "é\nline\r\n").read_bytes() == "é\nline\r\n".encode()
    with AtomicFile(tmp_path / "s") as stream:
        stream.write("a\n")
        stream.write("b")
    assert (tmp_path / "s").read_bytes() == b"a\nb"


def test_stale_temporaries_of_a_killed_save_are_removed_young_ones_kept(tmp_path: Path) -> None:
    """A `kill -9` during a save leaves `.NAME.<random>.tmp`; the next save of NAME removes
    it once it is old enough that no other process can still be writing it."""
    path = tmp_path / "test_x[a-b].yaml"
    stale = tmp_path / f".{path.name}.dead0001.tmp"
    young = tmp_path / f".{path.name}.live0002.tmp"
    other = tmp_path / ".other.yaml.dead0003.tmp"
    for tmp in (stale, young, other):
        tmp.write_text("partial")
    old = time.time() - STALE_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    write_atomic(path, "done")
    assert not stale.exists()
    assert young.exists() and other.exists()
    assert path.read_text() == "done"
