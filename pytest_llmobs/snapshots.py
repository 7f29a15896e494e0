"""Trace-shape golden files: the spans of a test reduced to what should not change from run to
run (names, nesting, kinds, error status and stable attributes), compared with a JSON file
kept next to the test.

Where: ``<test dir>/__llmobs_snapshots__/<test module>/<test name>[.<name>].json``. A missing
snapshot fails the test (as syrupy does), so CI never passes by writing its own golden file;
``--llm-snapshot-update`` (ini ``llm_snapshot_update``) writes missing ones and rewrites
those that differ. Files are written atomically.

Pure apart from reading and writing that one file: the fixture decides what to raise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from .atomic import write_atomic
from .tracetree import Node, build_forest

FORMAT_VERSION = 1
SNAPSHOT_DIR = "__llmobs_snapshots__"
MAX_DIFF_LINES = 40

# Attributes whose value changes from run to run: dropped.
VOLATILE = (
    "gen_ai.usage.*",
    "gen_ai.response.model",  # providers answer with dated model versions
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "*time*",
    "*duration*",
    "*latency*",
    "*.port",
    "llmobs.recorded.*",
    "llmobs.source",
    "code.*",
    "thread.*",
    "process.*",
)
# Attributes whose presence matters but whose value is an identifier: kept as "<id>".
IDENTIFIERS = ("*.id", "*_id", "*.ids")
ID_PLACEHOLDER = "<id>"
# Inside any kept text value: what changes from run to run though the trace does not.
_VOLATILE_TEXT = (
    # ISO 8601 timestamps (first: their "03:04" is no host:port)
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
        ),
        "<time>",
    ),
    # a port after a host name, an IPv4 address or a bracketed IPv6 one (not "12:30")
    (
        re.compile(
            r"(\b(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*"
            r"|\b\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}\b"
        ),
        r"\1:<port>",
    ),
    # UUIDs, trace / span ids (32 / 16 hex digits) and longer hex ids
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
            r"|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b"
        ),
        ID_PLACEHOLDER,
    ),
)


def span_shape(
    spans: Iterable[ReadableSpan],
    *,
    ordered: bool = False,
    drop: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> dict[str, Any]:
    """The stable shape of a trace as plain JSON data.

    Siblings are sorted canonically (by name, then content) so concurrent calls cannot make
    a snapshot flaky; `ordered=True` keeps them in start-time order instead. `drop` adds
    attribute globs to leave out; `keep` names globs to keep verbatim even when volatile.
    """
    rules = _Rules(tuple(drop), tuple(keep))
    roots = [_node_shape(node, rules, ordered) for node in build_forest(spans)]
    if not ordered:
        roots.sort(key=_sort_key)
    return {"llmobs_trace_snapshot": FORMAT_VERSION, "spans": roots}


@dataclass(frozen=True)
class _Rules:
    drop: tuple[str, ...]
    keep: tuple[str, ...]

    def value(self, key: str, value: Any) -> tuple[bool, Any]:
        """(keep it?, value to store)."""
        if any(fnmatchcase(key, pattern) for pattern in self.keep):
            return True, _plain(value)
        if any(fnmatchcase(key, pattern) for pattern in (*VOLATILE, *self.drop)):
            return False, None
        if any(fnmatchcase(key, pattern) for pattern in IDENTIFIERS):
            return True, ID_PLACEHOLDER
        return True, _normalised(_plain(value))


def _normalised(value: Any) -> Any:
    """Ports, ids and timestamps inside text replaced by placeholders (`keep` skips this)."""
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    if not isinstance(value, str):
        return value
    for pattern, replacement in _VOLATILE_TEXT:
        value = pattern.sub(replacement, value)
    return value


def _node_shape(node: Node, rules: _Rules, ordered: bool) -> dict[str, Any]:
    span = node.span
    attributes: dict[str, Any] = {}
    for key in sorted(node.attributes):
        keep, value = rules.value(key, node.attributes[key])
        if keep:
            attributes[key] = value
    shape: dict[str, Any] = {"name": _normalised(span.name)}
    if span.kind != SpanKind.INTERNAL:
        shape["kind"] = span.kind.name
    if span.status.status_code == StatusCode.ERROR:
        shape["status"] = "ERROR"
    if attributes:
        shape["attributes"] = attributes
    children = [_node_shape(child, rules, ordered) for child in node.children]
    if not ordered:
        children.sort(key=_sort_key)
    if children:
        shape["children"] = children
    return shape


def _sort_key(shape: Mapping[str, Any]) -> tuple[str, str]:
    return (str(shape["name"]), json.dumps(shape, sort_keys=True, default=str))


def _plain(value: Any) -> Any:
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)


# -- files ---------------------------------------------------------------------------------


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]=,+@]")


@dataclass
class SnapshotTarget:
    """Where one test's snapshots live, and whether this run may write them."""

    directory: Path
    test_name: str
    update: bool = False
    _unnamed: int = field(default=0, repr=False)

    @classmethod
    def for_test(cls, test_file: Path, nodeid: str, update: bool = False) -> SnapshotTarget:
        """`tests/test_rag.py::TestX::test_y[p]` → `tests/__llmobs_snapshots__/test_rag/`
        and name `TestX.test_y[p]`."""
        parts = nodeid.split("::")[1:] or [nodeid]
        name = _UNSAFE.sub("_", ".".join(parts))
        return cls(test_file.parent / SNAPSHOT_DIR / test_file.stem, name, update)

    def path(self, name: str | None = None) -> Path:
        """The file for snapshot `name`; unnamed ones are numbered in call order
        (`test.json`, `test.1.json`, …)."""
        if name is None:
            suffix = "" if self._unnamed == 0 else f".{self._unnamed}"
            self._unnamed += 1
        else:
            suffix = "." + _UNSAFE.sub("_", name)
        return self.directory / f"{self.test_name}{suffix}.json"


Outcome = Literal["matched", "created", "updated", "missing", "differs"]


@dataclass
class SnapshotResult:
    outcome: Outcome
    path: Path
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("missing", "differs")


def check_snapshot(shape: dict[str, Any], path: Path, update: bool) -> SnapshotResult:
    """Compare `shape` with the golden file at `path`; write it when `update` allows."""
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if update:
            write_atomic(path, dumps(shape))
            return SnapshotResult("created", path)
        return SnapshotResult(
            "missing",
            path,
            f"trace snapshot {path} does not exist.\n"
            "Run pytest with --llm-snapshot-update to create it, review it, and commit it.\n\n"
            f"The trace it would record:\n{dumps(shape)}",
        )
    except (OSError, ValueError) as exc:
        if update:
            write_atomic(path, dumps(shape))
            return SnapshotResult("updated", path)
        return SnapshotResult(
            "differs",
            path,
            f"trace snapshot {path} cannot be read ({exc}); "
            "fix it or rewrite it with --llm-snapshot-update",
        )
    if golden == json.loads(dumps(shape)):
        return SnapshotResult("matched", path)
    if update:
        write_atomic(path, dumps(shape))
        return SnapshotResult("updated", path)
    lines = diff_lines(golden, json.loads(dumps(shape)))
    return SnapshotResult(
        "differs",
        path,
        f"trace does not match snapshot {path}\n"
        + "\n".join(f"  {line}" for line in lines)
        + "\n(run pytest with --llm-snapshot-update to accept the new trace)",
    )


def dumps(shape: Mapping[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(shape, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- readable diff -------------------------------------------------------------------------


def diff_lines(golden: Any, actual: Any) -> list[str]:
    """DeepDiff of two shapes, each change on one line with a path made of span names:
    `rag.answer > chat gpt-4o: attribute gen_ai.request.model: 'gpt-4o' -> 'gpt-4o-mini'`."""
    from deepdiff import DeepDiff

    diff = DeepDiff(golden, actual, ignore_order=False, view="tree", verbose_level=2)
    found: list[tuple[list[Any], str]] = []
    for kind in (
        "values_changed",
        "type_changes",
        "dictionary_item_removed",
        "dictionary_item_added",
        "iterable_item_removed",
        "iterable_item_added",
    ):
        for level in diff.get(kind, []):
            path = level.path(output_format="list")
            found.append((path, _describe(kind, path, level.t1, level.t2, (golden, actual))))
    # Grouped span by span, in document order (stable sort keeps removed before added).
    found.sort(key=lambda item: [(isinstance(p, str), p) for p in item[0]])
    lines = [line for _, line in found]
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more differences"]
    return lines or ["(the files differ only in formatting)"]


def _describe(kind: str, path: list[Any], old: Any, new: Any, docs: Sequence[Any]) -> str:
    where, rest = _span_path(path, docs)
    if kind in ("values_changed", "type_changes"):
        change = f"{_short(old)} -> {_short(new)}"
    elif kind.endswith("_added"):
        change = f"added {_short(new)}"
    else:
        change = f"removed {_short(old)}"
    return f"{where}: {rest + ': ' if rest else ''}{change}"


def _span_path(path: list[Any], docs: Sequence[Any]) -> tuple[str, str]:
    """Split a DeepDiff path (`['spans', 0, 'children', 1, 'attributes', 'k']`) into the
    span names leading to it (looked up in the golden document, else the new one) and the
    part inside the last span."""
    names: list[str] = []
    rest: list[str] = []
    nodes: list[Any] = list(docs)
    i = 0
    while i < len(path):
        key = path[i]
        if key in ("spans", "children") and i + 1 < len(path) and isinstance(path[i + 1], int):
            index = path[i + 1]
            if i + 2 < len(path):  # a span on the way: name it
                nodes = [_child(node, key, index) for node in nodes]
                names.append(next((n["name"] for n in nodes if n is not None), f"#{index}"))
            else:  # the change is the whole span: _short names it
                rest.append("child span" if key == "children" else "root span")
            i += 2
            continue
        rest.append("attribute" if key == "attributes" and i + 1 < len(path) else str(key))
        nodes = [node.get(key) if isinstance(node, Mapping) else None for node in nodes]
        i += 1
    return (" > ".join(names) or "trace"), " ".join(rest)


def _child(node: Any, key: str, index: int) -> Any:
    if not isinstance(node, Mapping):
        return None
    items = node.get(key) or []
    return items[index] if index < len(items) else None


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and "name" in value:
        kids = value.get("children") or []
        return f"span {value['name']!r}" + (f" (+{_count(kids)} below)" if kids else "")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _count(children: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 + _count(child.get("children") or []) for child in children)
