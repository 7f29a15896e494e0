"""Reading YAML cassettes safely, whatever vcrpy is installed.

vcrpy's own YAML loader became a safe one in 8.5; before that it was PyYAML's full loader,
which runs `!!python/object/apply:…` tags (any function, with any arguments) from the file.
A cassette is data from a pull request: this loader is libyaml's safe one (PyYAML's when
libyaml is missing) plus the few benign python/* tags old vcrpy cassettes contain — the
ones vcrpy 8.5+ reads too. Every other python/* tag is refused (a `ConstructorError`).

Imported only when a YAML cassette is read (an xdist controller never reads one).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_TAG = "tag:yaml.org,2002:python/"


class CassetteLoader(_SafeLoader):
    """The safe loader plus the python/* tags vcrpy wrote for plain values and bodies."""


def _string(loader: Any, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)


def _tuple(loader: Any, node: yaml.Node) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node))


def _bytes_io(loader: Any, node: yaml.Node) -> BytesIO:
    # A file-like request body, pickled as `_io.BytesIO` with its bytes first in `state`:
    # rebuilt from those bytes only, never through PyYAML's object machinery.
    state: Any = loader.construct_mapping(node, deep=True).get("state") or (b"",)
    data = state[0] if state else b""
    return BytesIO(data.encode("utf-8") if isinstance(data, str) else data or b"")


def _iterator(loader: Any, node: yaml.Node) -> Any:
    # An iterator request body, stored as `builtins.iter` applied to a list: `iter` is the
    # only callable ever called.
    args: Any = loader.construct_mapping(node, deep=True).get("args") or ([],)
    return iter(args[0] if args else [])


CassetteLoader.add_constructor(_TAG + "str", _string)
CassetteLoader.add_constructor(_TAG + "unicode", _string)
CassetteLoader.add_constructor(_TAG + "tuple", _tuple)
CassetteLoader.add_constructor(_TAG + "object/new:_io.BytesIO", _bytes_io)
CassetteLoader.add_constructor(_TAG + "object/apply:builtins.iter", _iterator)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=CassetteLoader)
