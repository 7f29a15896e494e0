"""Trace structure checks: match an expected span tree against the finished spans of a test.

Pure: spans in, a `TraceMismatch` (or `None`) out; the fixture decides to raise.

The expected tree is written with `Span` or with plain dicts, lists and strings::

    {"rag.answer": {                        # a span named exactly "rag.answer", whose
        "rag.retrieve": {},                 #   children are: "rag.retrieve" (no children),
        "chat *": 2,                        #   two spans matching the glob "chat *",
        "embeddings *": {"count": (1, 3),   #   one to three "embeddings *" spans, each
                         "attrs": {"gen_ai.request.model": "text-embedding-3-small"}},
    }}

    Span("rag.answer",
         Span("rag.retrieve"),
         Span("chat *", count=2, attrs={"gen_ai.usage.output_tokens": Range(1, 100)}))

In a dict, a value is the span's children (a dict, list or name), a count (an int, a
`(min, max)` tuple, a `Range`), or an options dict whose keys are all among `count`,
`attrs` and `children` (spell a span literally named so with `Span`). A list holds siblings;
a dict keeps its keys' order, which is the sibling order `strict` checks.

A name written `"... glob"` (or `Span(..., descendant=True)`) is a span at any depth below
its parent, order-free; the spans between are not checked. `Span` also takes `status=`
(`UNSET`/`OK`/`ERROR`), `kind=` (a `SpanKind` or its name), `duration_lt=` and
`duration_gt=` (seconds); an options dict takes the same keys.

Names are `fnmatch` globs (case-sensitive). Attribute predicates: a plain value (equality;
lists compare with sequence attributes), `Range(min, max)` or a `(min, max)` tuple of numbers
(inclusive, `None` = open), a type (isinstance), a compiled regex (full match on the text), a
callable (truthy result), `...` (present, any value) and `None` (absent). Counts: an int, a
`(min, max)` tuple or a `Range`; the default is exactly one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan

Mode = Literal["strict", "unordered", "subset", "superset"]
MODES: tuple[Mode, ...] = ("strict", "unordered", "subset", "superset")
OPTION_KEYS = frozenset(
    {"count", "attrs", "children", "status", "kind", "duration_lt", "duration_gt", "descendant"}
)
DESCENDANT_PREFIX = "... "  # a name glob written "... chat *": at any depth below its parent
STATUSES = ("UNSET", "OK", "ERROR")
KINDS = ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
MAX_LINES = 200  # per side of the side-by-side rendering
COLUMN_WIDTH = 64


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range; `None` leaves that end open: `Range(1, None)` is ">= 1"."""

    min: float | None = None
    max: float | None = None

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        lo = "" if self.min is None else _num(self.min)
        hi = "" if self.max is None else _num(self.max)
        if lo and lo == hi:
            return lo
        return f"{lo}..{hi}"


CountLike: TypeAlias = "int | tuple[int | None, int | None] | Range"
SpecLike: TypeAlias = "Span | str | Mapping[str, Any] | Sequence[Any]"


class Span:
    """One expected span: a name glob, how many siblings it stands for, attribute
    predicates, and its expected children (positional and/or `children=`).

    Attribute keyword arguments use `__` for dots, as `llmobs.find_spans` does:
    `Span("chat *", gen_ai__request__model="gpt-4o")`.
    """

    __slots__ = (
        "attrs",
        "children",
        "count",
        "descendant",
        "duration_gt",
        "duration_lt",
        "kind",
        "name",
        "status",
    )

    def __init__(
        self,
        name: str,
        *children: SpecLike,
        count: CountLike = 1,
        attrs: Mapping[str, Any] | None = None,
        status: str | None = None,
        kind: Any = None,
        duration_lt: float | None = None,
        duration_gt: float | None = None,
        descendant: bool = False,
        **attr_kwargs: Any,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Span name must be a str glob, got {name!r}")
        if name.startswith(DESCENDANT_PREFIX):
            name, descendant = name[len(DESCENDANT_PREFIX) :].lstrip(), True
        self.name = name
        self.descendant = bool(descendant)
        self.count = _count(count, name)
        self.status = _choice(status, STATUSES, "status", name)
        self.kind = _choice(getattr(kind, "name", kind), KINDS, "kind", name)
        for bound, value in (("duration_lt", duration_lt), ("duration_gt", duration_gt)):
            if value is not None and (not _is_number(value) or value < 0):
                raise TypeError(
                    f"expected trace: {name!r}: {bound} is a duration in seconds >= 0, "
                    f"got {value!r}"
                )
        self.duration_lt = duration_lt
        self.duration_gt = duration_gt
        merged = dict(attrs or {})
        merged.update({key.replace("__", "."): value for key, value in attr_kwargs.items()})
        self.attrs: dict[str, Any] = merged
        self.children: tuple[Span, ...] = tuple(
            spec for child in children for spec in compile_spec(child)
        )

    def __repr__(self) -> str:
        parts = [repr(self.name)]
        if self.count != Range(1, 1):
            parts.append(f"count={self.count}")
        if self.attrs:
            parts.append(f"attrs={self.attrs!r}")
        parts.extend(f"{key}={value!r}" for key, value in self._extras())
        if self.descendant:
            parts.append("descendant=True")
        parts.extend(repr(child) for child in self.children)
        return f"Span({', '.join(parts)})"

    def _extras(self) -> list[tuple[str, Any]]:
        pairs = [
            ("status", self.status),
            ("kind", self.kind),
            ("duration_lt", self.duration_lt),
            ("duration_gt", self.duration_gt),
        ]
        return [(key, value) for key, value in pairs if value is not None]

    @property
    def label(self) -> str:
        """One line: name, count when not one, predicates."""
        text = (DESCENDANT_PREFIX if self.descendant else "") + self.name
        if self.count != Range(1, 1):
            text += f" (x{self.count})"
        preds = [f"{k}{_pred_text(v)}" for k, v in self.attrs.items()]
        preds += [_extra_text(key, value) for key, value in self._extras()]
        if preds:
            text += " [" + ", ".join(preds) + "]"
        return text


def compile_spec(expected: Any) -> tuple[Span, ...]:
    """Normalize any accepted form of an expected tree into a tuple of root `Span`s."""
    if isinstance(expected, Span):
        return (expected,)
    if isinstance(expected, str):
        return (Span(expected),)
    if isinstance(expected, Mapping):
        return tuple(_entry(name, value) for name, value in expected.items())
    if isinstance(expected, Sequence):
        out: list[Span] = []
        for item in expected:
            if isinstance(item, Sequence) and not isinstance(item, str):
                raise TypeError(
                    f"expected trace: a list inside a list ({item!r}) has no parent span; "
                    'give it one: {"parent": [...]} or Span("parent", ...)'
                )
            out.extend(compile_spec(item))
        return tuple(out)
    raise TypeError(
        f"expected trace: {expected!r} is not a span; use a name glob, a dict "
        "{name: children}, a list of siblings, or Span(...)"
    )


def _entry(name: Any, value: Any) -> Span:
    if not isinstance(name, str):
        raise TypeError(f"expected trace: dict keys are span name globs, got {name!r}")
    if value is None or (isinstance(value, Mapping | list | tuple) and not value):
        return Span(name)
    if isinstance(value, bool):
        raise TypeError(f"expected trace: {name!r}: {value!r} is neither a count nor children")
    if isinstance(value, int | Range) or _is_range_tuple(value):
        return Span(name, count=value)
    if isinstance(value, Mapping) and set(value) <= OPTION_KEYS:
        children = value.get("children")
        return Span(
            name,
            *(() if children is None else (children,)),
            count=value.get("count", 1),
            attrs=value.get("attrs"),
            status=value.get("status"),
            kind=value.get("kind"),
            duration_lt=value.get("duration_lt"),
            duration_gt=value.get("duration_gt"),
            descendant=bool(value.get("descendant", False)),
        )
    return Span(name, value)


def _choice(value: Any, allowed: tuple[str, ...], what: str, name: str) -> str | None:
    if value is None:
        return None
    text = str(value).upper()
    if text not in allowed:
        raise TypeError(
            f"expected trace: {name!r}: {what} must be one of {', '.join(allowed)}; got {value!r}"
        )
    return text


def _extra_text(key: str, value: Any) -> str:
    if key == "duration_lt":
        return f"duration < {_num(value)}s"
    if key == "duration_gt":
        return f"duration > {_num(value)}s"
    return f"{key}={value}"


def _count(count: Any, name: str) -> Range:
    if isinstance(count, Range):
        lo, hi = count.min, count.max
    elif isinstance(count, int) and not isinstance(count, bool):
        lo, hi = count, count
    elif isinstance(count, tuple) and len(count) == 2:
        lo, hi = count
    else:
        raise TypeError(
            f"expected trace: {name!r}: count must be an int, a (min, max) tuple or a Range, "
            f"got {count!r}"
        )
    lo = 0 if lo is None else lo
    for bound in (lo, hi):
        if bound is not None and (not _is_int(bound) or bound < 0):
            raise TypeError(f"expected trace: {name!r}: count bounds must be ints >= 0: {count!r}")
    if hi is not None and hi < lo:
        raise TypeError(f"expected trace: {name!r}: count {count!r} has max < min")
    return Range(int(lo), None if hi is None else int(hi))


# -- the actual side -----------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """A finished span placed in its tree; children ordered by start time."""

    span: ReadableSpan
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.span.attributes or {}

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None when either is unknown)."""
        start, end = self.span.start_time, self.span.end_time
        return None if start is None or end is None else (end - start) / 1e9

    @property
    def path(self) -> str:
        """`root > … > this`, by span names."""
        names = []
        node: Node | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return " > ".join(reversed(names))

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def build_forest(spans: Iterable[ReadableSpan]) -> list[Node]:
    """Spans as trees: a span whose parent was not captured (or has none) is a root."""
    nodes: dict[tuple[int, int], Node] = {}
    for span in spans:
        if span.context is not None:
            nodes[(span.context.trace_id, span.context.span_id)] = Node(span)
    roots: list[Node] = []
    for node in nodes.values():
        parent_ctx = node.span.parent
        parent = (
            nodes.get((parent_ctx.trace_id, parent_ctx.span_id)) if parent_ctx is not None else None
        )
        if parent is None:
            roots.append(node)
        else:
            node.parent = parent
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=_order)
    roots.sort(key=_order)
    return roots


def _order(node: Node) -> tuple[int, int, str]:
    return (node.span.start_time or 0, node.span.end_time or 0, node.name)


# -- predicates ----------------------------------------------------------------------------


def attribute_problem(key: str, predicate: Any, attributes: Mapping[str, Any]) -> str | None:
    """Why `attributes[key]` fails `predicate`, or None when it passes."""
    present = key in attributes
    value = attributes.get(key)
    if predicate is None:
        return None if not present else f"{key}: expected absent, got {value!r}"
    if not present:
        return f"{key}: missing (expected {_pred_desc(predicate)})"
    if predicate is Ellipsis:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = list(value)
    ok: bool
    if isinstance(predicate, Range) or _is_range_tuple(predicate):
        rng = predicate if isinstance(predicate, Range) else Range(*predicate)
        ok = value in rng
    elif isinstance(predicate, type):
        ok = isinstance(value, predicate)
    elif isinstance(predicate, re.Pattern):
        ok = predicate.fullmatch(str(value)) is not None
    elif callable(predicate):
        try:
            ok = bool(predicate(value))
        except Exception as exc:
            return f"{key}: {_pred_text(predicate)} raised {exc!r} on {value!r}"
    else:
        expected = list(predicate) if isinstance(predicate, tuple) else predicate
        ok = value == expected
    return None if ok else f"{key}: expected {_pred_desc(predicate)}, got {value!r}"


def _is_range_tuple(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(v is None or _is_number(v) for v in value)
        and value != (None, None)
    )


def _pred_desc(predicate: Any) -> str:
    return _pred_text(predicate).lstrip("=: ")


def _pred_text(predicate: Any) -> str:
    if predicate is None:
        return " absent"
    if predicate is Ellipsis:
        return " present"
    if isinstance(predicate, Range) or _is_range_tuple(predicate):
        rng = predicate if isinstance(predicate, Range) else Range(*predicate)
        return f" in {rng}"
    if isinstance(predicate, type):
        return f": {predicate.__name__}"
    if isinstance(predicate, re.Pattern):
        return f" ~ /{predicate.pattern}/"
    if callable(predicate):
        return f" satisfies {getattr(predicate, '__name__', type(predicate).__name__)}"
    return f"={predicate!r}"


def shallow_problem(spec: Span, node: Node) -> str | None:
    """Name and attributes only (children not looked at)."""
    if not fnmatchcase(node.name, spec.name):
        return f"name {node.name!r} does not match {spec.name!r}"
    for key, predicate in spec.attrs.items():
        problem = attribute_problem(key, predicate, node.attributes)
        if problem:
            return problem
    if spec.status is not None and node.span.status.status_code.name != spec.status:
        return f"status: expected {spec.status}, got {node.span.status.status_code.name}"
    if spec.kind is not None and node.span.kind.name != spec.kind:
        return f"kind: expected {spec.kind}, got {node.span.kind.name}"
    duration = node.duration
    if spec.duration_lt is not None and (duration is None or duration >= spec.duration_lt):
        return f"duration: expected < {_num(spec.duration_lt)}s, got {_secs(duration)}"
    if spec.duration_gt is not None and (duration is None or duration <= spec.duration_gt):
        return f"duration: expected > {_num(spec.duration_gt)}s, got {_secs(duration)}"
    return None


def _secs(duration: float | None) -> str:
    return "unknown" if duration is None else f"{duration:.6f}s"


# -- matching ------------------------------------------------------------------------------


class _Matcher:
    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._cache: dict[tuple[int, int], bool] = {}

    def node_matches(self, spec: Span, node: Node) -> bool:
        key = (id(spec), id(node))
        if key not in self._cache:
            self._cache[key] = False  # a cycle cannot happen in a tree; guard anyway
            self._cache[key] = shallow_problem(spec, node) is None and self.children_match(
                spec.children, node.children
            )
        return self._cache[key]

    def children_match(self, specs: Sequence[Span], nodes: Sequence[Node]) -> bool:
        direct, deep = _split(specs)
        found = self.descendants(deep, nodes)
        if found is not None and found.missing:
            return False
        skippable = self.covered(found, nodes)
        if self.mode == "strict":
            return _ordered(direct, nodes, self.node_matches, skippable)
        return self.assign(direct, nodes, self.node_matches, skippable).ok

    def descendants(self, deep: Sequence[Span], nodes: Sequence[Node]) -> _Assignment | None:
        """`... name` specs against every span at any depth below (order-free)."""
        if not deep:
            return None
        pool = _pool(nodes)
        return _assign(
            deep,
            pool,
            self.node_matches,
            enforce_min=self.mode != "superset",
            allow_extra=True,
            pool=True,
        )

    @staticmethod
    def covered(found: _Assignment | None, nodes: Sequence[Node]) -> list[bool]:
        """Which of `nodes` a descendant match went through (or is): not extra spans."""
        if found is None or not found.nodes:
            return [False] * len(nodes)
        level = {id(node) for node in nodes}
        covered: set[int] = set()
        for j in found.node_to_spec:
            walker: Node | None = found.nodes[j]
            while walker is not None and id(walker) not in covered:
                covered.add(id(walker))
                if id(walker) in level:
                    break
                walker = walker.parent
        return [id(node) in covered for node in nodes]

    def assign(
        self,
        specs: Sequence[Span],
        nodes: Sequence[Node],
        pred: Callable[[Span, Node], bool],
        skippable: Sequence[bool] = (),
    ) -> _Assignment:
        enforce_min = self.mode in ("unordered", "subset")
        allow_extra = self.mode == "subset"
        found = _assign(specs, nodes, pred, enforce_min=enforce_min, allow_extra=allow_extra)
        if skippable and not allow_extra:
            found.extra = [j for j in found.extra if not skippable[j]]
            found.ok = not found.missing and not found.extra
        return found


def _split(specs: Sequence[Span]) -> tuple[list[Span], list[Span]]:
    return [s for s in specs if not s.descendant], [s for s in specs if s.descendant]


def _pool(nodes: Sequence[Node]) -> list[Node]:
    seen: set[int] = set()
    out: list[Node] = []
    for node in nodes:
        for below in node.walk():
            if id(below) not in seen:
                seen.add(id(below))
                out.append(below)
    return out


def _ordered(
    specs: Sequence[Span],
    nodes: Sequence[Node],
    pred: Callable[[Span, Node], bool],
    skippable: Sequence[bool] = (),
) -> bool:
    """Specs, each repeated within its count, consume the nodes exactly, in order (a
    skippable node, one a descendant match went through, may also be passed over)."""
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        result = False
        if j < len(nodes) and skippable and skippable[j] and go(i, j + 1):
            result = True
        elif i == len(specs):
            result = j == len(nodes)
        else:
            spec = specs[i]
            lo, hi = int(spec.count.min or 0), spec.count.max
            if lo == 0 and go(i + 1, j):
                result = True
            k = 0
            while not result and j + k < len(nodes) and (hi is None or k < hi):
                if not pred(spec, nodes[j + k]):
                    break
                k += 1
                if k >= lo and go(i + 1, j + k):
                    result = True
        memo[(i, j)] = result
        return result

    return go(0, 0)


@dataclass
class _Assignment:
    ok: bool
    node_to_spec: dict[int, int]  # node index -> spec index
    missing: list[int]  # spec indexes short of their minimum
    extra: list[int]  # node indexes no spec took (only a failure when extras are not allowed)
    nodes: Sequence[Node] = ()  # the candidates, when they are a descendant pool


def _assign(
    specs: Sequence[Span],
    nodes: Sequence[Node],
    pred: Callable[[Span, Node], bool],
    *,
    enforce_min: bool,
    allow_extra: bool,
    pool: bool = False,
) -> _Assignment:
    """Give each node at most one spec, each spec between its min and max nodes.

    A bipartite matching of spec "slots" (one per allowed repetition) to nodes, by augmenting
    paths: required slots first, then optional ones. Augmenting never unmatches a matched
    slot, so the result is a maximum matching that fills every fillable required slot.
    """
    slots: list[int] = []  # slot -> spec index
    required: list[bool] = []
    for i, spec in enumerate(specs):
        lo = int(spec.count.min or 0) if enforce_min else 0
        hi = len(nodes) if spec.count.max is None else min(int(spec.count.max), len(nodes))
        hi = max(hi, min(lo, len(nodes)))
        for n in range(hi):
            slots.append(i)
            required.append(n < lo)
    edges = {
        i: [j for j, node in enumerate(nodes) if pred(spec, node)] for i, spec in enumerate(specs)
    }
    node_slot: dict[int, int] = {}

    def augment(slot: int, seen: set[int]) -> bool:
        for j in edges[slots[slot]]:
            if j in seen:
                continue
            seen.add(j)
            if j not in node_slot or augment(node_slot[j], seen):
                node_slot[j] = slot
                return True
        return False

    for slot in [s for s in range(len(slots)) if required[s]]:
        augment(slot, set())
    for slot in [s for s in range(len(slots)) if not required[s]]:
        augment(slot, set())
    node_to_spec = {j: slots[s] for j, s in node_slot.items()}
    taken = [0] * len(specs)
    for i in node_to_spec.values():
        taken[i] += 1
    missing = [
        i for i, spec in enumerate(specs) if enforce_min and taken[i] < int(spec.count.min or 0)
    ]
    extra = [j for j in range(len(nodes)) if j not in node_to_spec]
    ok = not missing and (allow_extra or not extra)
    return _Assignment(ok, node_to_spec, missing, extra, nodes if pool else ())


# -- result and explanation ----------------------------------------------------------------


@dataclass
class Difference:
    """One difference: why, and which expected spec / actual span it is about."""

    reason: str
    spec: Span | None = None
    node: Node | None = None


@dataclass
class TraceMismatch:
    mode: Mode
    differences: list[Difference]
    expected: tuple[Span, ...]
    actual: list[Node]

    @property
    def difference(self) -> Difference:
        """The first difference."""
        return self.differences[0]

    @property
    def message(self) -> str:
        header = f"trace does not match the expected tree (mode={self.mode}): "
        if len(self.differences) == 1:
            header += self.difference.reason
        else:
            header += f"{len(self.differences)} differences\n" + "\n".join(
                f"  {n}. {d.reason}" for n, d in enumerate(self.differences, 1)
            )
        return header + "\n\n" + side_by_side(self.expected, self.actual, *self.differences)

    def __str__(self) -> str:
        return self.message


def match_trace(
    expected: Any, spans: Iterable[ReadableSpan], mode: Mode = "strict"
) -> TraceMismatch | None:
    """None when the finished spans form the expected tree under `mode`, else the mismatch
    with every difference found.

    - strict: the same tree, siblings in the same order (by start time);
    - unordered: the same tree, siblings in any order;
    - subset: every expected span is there (the expected roots may sit anywhere in the trace;
      below them, parent/child pairs must be direct); the trace may have more;
    - superset: every span of the trace is one of the expected ones; some may be missing.

    In every mode a spec written `... name` (or `Span(..., descendant=True)`) is a span at
    any depth below its parent, in any order; the spans on the way to it are not checked.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    specs = compile_spec(expected)
    forest = build_forest(spans)
    matcher = _Matcher(mode)
    candidates = _root_candidates(forest, mode)
    if matcher.children_match(specs, candidates):
        return None
    differences = _explain(matcher, specs, candidates, None)
    if not differences:
        differences = [Difference("the trees differ (see below)")]
    return TraceMismatch(mode, differences, specs, forest)


def _root_candidates(forest: list[Node], mode: Mode) -> list[Node]:
    if mode == "subset":
        return [node for root in forest for node in root.walk()]
    return forest


def _where(parent: Node | None) -> str:
    return f"under {parent.path!r}" if parent is not None else "at the top level"


def _explain(
    matcher: _Matcher, specs: Sequence[Span], nodes: Sequence[Node], parent: Node | None
) -> list[Difference]:
    direct, deep = _split(specs)
    found = matcher.descendants(deep, nodes)
    out = _explain_deep(matcher, deep, found, parent) if found is not None else []
    skippable = matcher.covered(found, nodes)
    # Spans a descendant match went through are not the direct specs' business.
    rest = [n for n, skip in zip(nodes, skippable, strict=True) if not skip]
    if matcher.mode == "strict":
        out += _explain_ordered(matcher, direct, rest, parent)
    else:
        out += _explain_unordered(matcher, direct, rest, parent)
    return out


def _explain_deep(
    matcher: _Matcher, deep: Sequence[Span], found: _Assignment, parent: Node | None
) -> list[Difference]:
    out: list[Difference] = []
    taken = set(found.node_to_spec)
    for i in found.missing:
        spec = deep[i]
        free = [n for j, n in enumerate(found.nodes) if j not in taken]
        named = [n for n in free if fnmatchcase(n.name, spec.name)]
        right = [n for n in named if shallow_problem(spec, n) is None]
        if right:
            out += _explain(matcher, spec.children, right[0].children, right[0])
            continue
        if named:
            problem = shallow_problem(spec, named[0])
            out.append(
                Difference(
                    f"{_where(parent)} (any depth): {named[0].path!r}: {problem}", spec, named[0]
                )
            )
            continue
        count = sum(1 for s in found.node_to_spec.values() if s == i)
        out.append(
            Difference(
                f"{_where(parent)} (any depth): expected {_times(spec)}{spec.name!r}, "
                f"found {count or 'none'}",
                spec,
                parent,
            )
        )
    return out


def _explain_ordered(
    matcher: _Matcher, specs: Sequence[Span], nodes: Sequence[Node], parent: Node | None
) -> list[Difference]:
    """Walk specs and spans side by side; after a difference, realign and go on. When only
    the order is wrong (the spans would match unordered), the first misplaced one says so."""
    out: list[Difference] = []
    order_only = _assign(specs, nodes, matcher.node_matches, enforce_min=True, allow_extra=False).ok
    j = 0
    i = 0
    while i < len(specs):
        spec = specs[i]
        lo, hi = int(spec.count.min or 0), spec.count.max
        k = 0
        while j < len(nodes) and (hi is None or k < hi) and matcher.node_matches(spec, nodes[j]):
            j += 1
            k += 1
        if k >= lo:
            i += 1
            continue
        node = nodes[j] if j < len(nodes) else None
        if node is None:
            out.append(
                Difference(
                    f"{_where(parent)}: expected {_times(spec)}{spec.name!r}, found {k or 'none'}",
                    spec,
                    parent,
                )
            )
            i += 1
            continue
        if fnmatchcase(node.name, spec.name):  # the right span, wrong inside: say why
            out += _explain_pair(matcher, spec, node, parent, found=k)
            j += 1
            if k + 1 >= lo:
                i += 1
            continue
        later = any(shallow_problem(other, node) is None for other in specs[i + 1 :])
        following = j + 1 < len(nodes) and shallow_problem(spec, nodes[j + 1]) is None
        if following and not later:  # an extra span before the expected one
            out.append(
                Difference(
                    f"{_where(parent)}: unexpected span {node.name!r} (position {j + 1})",
                    None,
                    node,
                )
            )
            j += 1
            continue
        out += _explain_pair(matcher, spec, node, parent, found=k)
        if order_only:
            return out
        i += 1
        if not later:
            j += 1
    for extra in nodes[j:]:
        out.append(
            Difference(
                f"{_where(parent)}: unexpected span {extra.name!r} "
                f"(position {nodes.index(extra) + 1})",
                None,
                extra,
            )
        )
    return out


def _explain_pair(
    matcher: _Matcher, spec: Span, node: Node, parent: Node | None, found: int = 0
) -> list[Difference]:
    problem = shallow_problem(spec, node)
    if problem is None:  # the span itself is right: the difference is deeper
        return _explain(matcher, spec.children, node.children, node)
    what = f"expected {spec.name!r}" + (f" (#{found + 1})" if found else "")
    detail = f": {problem}" if fnmatchcase(node.name, spec.name) else ""
    return [Difference(f"{_where(parent)}: {what}, got {node.name!r}{detail}", spec, node)]


def _explain_unordered(
    matcher: _Matcher, specs: Sequence[Span], nodes: Sequence[Node], parent: Node | None
) -> list[Difference]:
    out: list[Difference] = []
    deep = matcher.assign(specs, nodes, matcher.node_matches)
    free = [nodes[j] for j in deep.extra]
    for i in deep.missing:
        spec = specs[i]
        named = [n for n in free if fnmatchcase(n.name, spec.name)]
        right = [n for n in named if shallow_problem(spec, n) is None]
        if right:  # name and attributes fit: the problem is below it
            free.remove(right[0])
            out += _explain(matcher, spec.children, right[0].children, right[0])
            continue
        if named:
            free.remove(named[0])
            out += _explain_pair(matcher, spec, named[0], parent)
            continue
        taken = sum(1 for s in deep.node_to_spec.values() if s == i)
        reason = f"{_where(parent)}: expected {_times(spec)}{spec.name!r}, found {taken or 'none'}"
        node: Node | None = parent
        if free and matcher.mode != "subset":
            node = free.pop(0)  # named here: not reported again as unexpected
            reason += f"; left over: {node.name!r}"
        out.append(Difference(reason, spec, node))
    if matcher.mode == "subset":
        return out
    for node in free:
        for i, spec in enumerate(specs):
            if shallow_problem(spec, node) is not None:
                continue
            taken = sum(1 for s in deep.node_to_spec.values() if s == i)
            if spec.count.max is not None and taken >= spec.count.max:
                out.append(
                    Difference(
                        f"{_where(parent)}: one {spec.name!r} too many "
                        f"(expected {spec.count}, found {taken + 1})",
                        spec,
                        node,
                    )
                )
            else:
                out += _explain(matcher, spec.children, node.children, node)
            break
        else:
            out.append(
                Difference(
                    f"{_where(parent)}: unexpected span {node.name!r}"
                    + (" (not in the expected tree)" if matcher.mode == "superset" else ""),
                    None,
                    node,
                )
            )
    return out


def _times(spec: Span) -> str:
    """'' for exactly one, else '3 x ' / '1..3 x '."""
    return "" if spec.count == Range(1, 1) else f"{spec.count} x "


# -- rendering -----------------------------------------------------------------------------


def tree_lines(
    items: Sequence[Any], label: Callable[[Any], str], children: Callable[[Any], Sequence[Any]]
) -> list[tuple[Any, str]]:
    """ASCII tree lines (`|-- `, `` `-- ``), each with the item it shows."""
    out: list[tuple[Any, str]] = []

    def walk(item: Any, prefix: str, connector: str) -> None:
        out.append((item, prefix + connector + label(item)))
        kids = children(item)
        extension = "" if not connector else ("|   " if connector == "|-- " else "    ")
        for n, kid in enumerate(kids):
            walk(kid, prefix + extension, "`-- " if n == len(kids) - 1 else "|-- ")

    for item in items:
        walk(item, "", "")
    return out


def side_by_side(expected: Sequence[Span], actual: Sequence[Node], *differences: Difference) -> str:
    """Expected and actual trees in two columns; `>>` marks the lines the differences are
    about."""
    left = tree_lines(expected, lambda s: s.label, lambda s: s.children)
    right = tree_lines(actual, lambda n: n.name, lambda n: n.children)
    specs = {id(d.spec) for d in differences if d.spec is not None}
    nodes = {id(d.node) for d in differences if d.node is not None}
    left_text = [_mark(id(item) in specs, text) for item, text in left] or ["   (nothing)"]
    right_text = [_mark(id(item) in nodes, text) for item, text in right] or ["   (no spans)"]
    left_text, right_text = _clip(left_text), _clip(right_text)
    width = min(max(len(line) for line in [*left_text, "   expected"]), COLUMN_WIDTH)
    right_width = min(max(len(line) for line in [*right_text, "   actual"]), COLUMN_WIDTH)
    rows = [f"{'   expected':<{width}} |    actual", f"{'-' * width}-+-{'-' * right_width}"]
    for n in range(max(len(left_text), len(right_text))):
        a = left_text[n] if n < len(left_text) else ""
        b = right_text[n] if n < len(right_text) else ""
        rows.append(f"{_fit(a, width):<{width}} | {b}".rstrip())
    return "\n".join(rows)


def _mark(marked: bool, text: str) -> str:
    return (">> " if marked else "   ") + text


def _clip(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"   ... {len(lines) - MAX_LINES} more"]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render_forest(spans: Iterable[ReadableSpan]) -> str:
    """The captured spans as an ASCII tree (for messages and debugging)."""
    return "\n".join(text for _, text in tree_lines(build_forest(spans), _name, _kids))


def _name(node: Node) -> str:
    return node.name


def _kids(node: Node) -> list[Node]:
    return node.children


def _num(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and value == int(value) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
