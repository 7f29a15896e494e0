"""`intercept.imports.PostImportHooks`: patches applied when a client module is imported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmobs.intercept.imports import PostImportHooks


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway modules, forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_runs_after_the_module_code_and_only_once(modules: Path) -> None:
    (modules / "late_client.py").write_text("VALUE = 1\n")
    seen: list[object] = []
    hooks = PostImportHooks(seen.append)
    hooks.when_imported("late_client", lambda: seen.append(sys.modules["late_client"].VALUE))
    assert seen == [] and hooks in sys.meta_path
    import late_client

    assert seen == [1]
    assert hooks not in sys.meta_path  # nothing left to wait for
    assert type(late_client.__loader__).__name__ == "SourceFileLoader"  # its real loader
    hooks.when_imported("late_client", lambda: seen.append("again"))  # already imported
    assert seen == [1, "again"]


def test_nested_watchers_run_outer_first_and_a_failing_hook_breaks_no_import(
    modules: Path,
) -> None:
    (modules / "shared_client.py").write_text("VALUE = 2\n")
    order: list[str] = []
    errors: list[BaseException] = []
    outer, inner = PostImportHooks(errors.append), PostImportHooks(errors.append)
    try:
        outer.when_imported("shared_client", lambda: order.append("outer"))
        inner.when_imported("shared_client", lambda: order.append("inner"))
        inner.when_imported("shared_client", lambda: 1 / 0)  # type: ignore[func-returns-value]
        import shared_client

        assert shared_client.VALUE == 2
        assert order == ["outer", "inner"]  # the nested session patches on top
        assert [type(e) for e in errors] == [ZeroDivisionError]
    finally:
        outer.remove()
        inner.remove()
    assert outer not in sys.meta_path and inner not in sys.meta_path


def test_a_failed_import_runs_nothing_and_a_later_one_does(modules: Path) -> None:
    (modules / "broken_client.py").write_text("raise ImportError('not today')\n")
    ran: list[str] = []
    hooks = PostImportHooks(ran.append)
    try:
        hooks.when_imported("broken_client", lambda: ran.append("hook"))
        with pytest.raises(ImportError, match="not today"):
            import broken_client
        assert ran == []
        (modules / "broken_client.py").write_text("VALUE = 3\n")
        import broken_client  # noqa: F401

        assert ran == ["hook"]
    finally:
        hooks.remove()


def test_removed_watcher_runs_nothing(modules: Path) -> None:
    (modules / "unused_client.py").write_text("")
    ran: list[str] = []
    hooks = PostImportHooks(ran.append)
    hooks.when_imported("unused_client", lambda: ran.append("hook"))
    hooks.remove()
    import unused_client  # noqa: F401

    assert ran == [] and hooks not in sys.meta_path
