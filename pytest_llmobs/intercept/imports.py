"""Run a function once a module has been imported: at once if it already is, else right
after the import that loads it finishes.

The client patches use it so that a run pays for importing only the HTTP clients the code
under test uses (aiohttp and botocore take tens of milliseconds each), yet a client
imported late, inside a test, is patched before its first request.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Hook = Callable[[], None]


class PostImportHooks(importlib.abc.MetaPathFinder):
    """A finder that finds nothing itself: for a watched module it asks the finders after
    it, then wraps the loader so the hooks run after the module's code."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._waiting: dict[str, list[Hook]] = {}
        self._on_error = on_error
        # Names being looked up through the other finders: another session's hooks (a
        # nested pytest run) ask us back while we ask them.
        self._resolving: set[str] = set()

    def when_imported(self, name: str, hook: Hook) -> None:
        if name in sys.modules:
            self._run([hook])
            return
        self._waiting.setdefault(name, []).append(hook)
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        self._waiting.clear()
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._waiting or fullname in self._resolving:
            return None
        self._resolving.add(fullname)
        try:
            spec = self._others_spec(fullname, path, target)
        finally:
            self._resolving.discard(fullname)
        if spec is None:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenRun(spec.loader, lambda: self._imported(fullname))
        return spec

    def _others_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return spec
        return None

    def _imported(self, name: str) -> None:
        self._run(self._waiting.pop(name, []))
        if not self._waiting and self in sys.meta_path:
            sys.meta_path.remove(self)

    def _run(self, hooks: list[Hook]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception as exc:  # never break the app's import over our patch
                self._on_error(exc)


class _ThenRun(importlib.abc.Loader):
    """The module's own loader, then `after` once its code ran without raising."""

    def __init__(self, loader: Any, after: Hook) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the module keeps its real loader (resources …)
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._after()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
