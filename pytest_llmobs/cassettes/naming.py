"""Where cassettes live.

- a test: `<test dir>/cassettes/<module>/<Class.>test_name[param-id].yaml`, or, with
  ini `llm_cassette_dir = DIR`, `<rootdir>/DIR/<module path from rootdir>/<…>.yaml`;
- `@pytest.mark.llm_cassette("name")`: `name` (`.yaml` added) in that module directory, or
  an absolute path;
- a module-scoped fixture: `fixture-<name>.yaml` in the cassette directory of the module
  it is set up for (a class-scoped one: `fixture-<Class>.<name>.yaml`); a package- or
  session-scoped one: `<dir of the file defining it>/cassettes/<that file>/fixture-<name>.yaml`
  (`[<param index>]` added for parametrized fixtures).

Names are made safe for every file system: characters outside `A-Z a-z 0-9 . _ - [ ] = + , @`
become `_` and a short hash of the original name is appended (so two ids never collide);
names longer than 100 characters are cut and get the hash too. Same test, same file name,
on every machine.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

SUFFIX = ".yaml"
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=+,@]")


def safe_name(name: str) -> str:
    """A file name (without suffix) for `name`: deterministic, portable, collision-free."""
    cleaned = _UNSAFE.sub("_", name).strip(". ") or "_"
    if cleaned != name or len(cleaned) > MAX_NAME:
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
        cleaned = cleaned[: MAX_NAME - len(digest) - 1].rstrip(". ") + "-" + digest
    return cleaned


def module_dir(module_path: Path, rootpath: Path, cassette_dir: str) -> Path:
    """The directory holding the cassettes of the tests (or fixtures) in `module_path`."""
    stem = safe_name(module_path.stem)
    if not cassette_dir:
        return module_path.parent / "cassettes" / stem
    base = Path(cassette_dir)
    if not base.is_absolute():
        base = rootpath / base
    try:
        relative = module_path.parent.relative_to(rootpath)
    except ValueError:
        relative = Path(safe_name(str(module_path.parent).strip("/\\")))
    return base / relative / stem


def test_name(item: pytest.Item) -> str:
    """`Class.test[param]` for a test (nested classes joined with dots)."""
    parts = item.nodeid.split("::")[1:] or [item.name]
    return ".".join(parts)


def test_path(item: pytest.Item, rootpath: Path, cassette_dir: str, name: str | None) -> Path:
    directory = module_dir(Path(item.path), rootpath, cassette_dir)
    if name is None:
        return directory / (safe_name(test_name(item)) + SUFFIX)
    return named_path(directory, name)


def named_path(directory: Path, name: str) -> Path:
    path = Path(name)
    if path.suffix not in (".yaml", ".yml", ".json"):
        path = path.with_name(path.name + SUFFIX)
    return path if path.is_absolute() else directory / path


def fixture_path(fixturedef: Any, request: Any, rootpath: Path, cassette_dir: str) -> Path:
    """Module- and class-scoped fixtures: next to the tests of the module (or class) the
    instance was set up for, since each such module sets them up anew; package- and
    session-scoped ones: next to the file that defines them."""
    scope = str(getattr(fixturedef, "scope", "session"))
    node = getattr(request, "node", None)
    node_path = getattr(node, "path", None)
    name = f"fixture-{fixturedef.argname}"
    if scope in ("module", "class") and node_path is not None:
        base = module_dir(Path(node_path), rootpath, cassette_dir)
        if scope == "class":
            name = f"fixture-{getattr(node, 'name', '')}.{fixturedef.argname}"
    else:
        try:
            source = Path(inspect.getsourcefile(fixturedef.func) or "")
        except TypeError:
            source = Path()
        if not source.name and node_path is not None:
            source = Path(node_path)
        base = module_dir(source, rootpath, cassette_dir)
    if getattr(fixturedef, "params", None) is not None:
        name += f"[{getattr(request, 'param_index', 0)}]"
    return base / (safe_name(name) + SUFFIX)
