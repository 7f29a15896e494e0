"""`LLMObs`: what the `llmobs` fixture hands a test."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import reduce
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .calls import LLMCall, Usage
from .capture import TestCapture


class LLMObs:
    """A live view of the current test's LLM calls and spans."""

    def __init__(self, capture: TestCapture) -> None:
        self._capture = capture

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call (one per HTTP attempt) so far, in completion order."""
        return list(self._capture.calls)

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every finished span so far: the app's, instrumentations', and ours."""
        return list(self._capture.spans)

    @property
    def usage(self) -> Usage:
        """Token usage summed over all calls."""
        return reduce(lambda a, b: a + b, (c.usage for c in self._capture.calls), Usage())

    def find_spans(self, name: str | None = None, **attributes: Any) -> list[ReadableSpan]:
        """Spans whose name matches the glob `name` and whose attributes equal the given ones.

        Attribute keys use `__` for dots: `find_spans(gen_ai__request__model="gpt-4o")`;
        a dict can be passed too: `find_spans(**{"gen_ai.request.model": "gpt-4o"})`.
        """
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        return [
            span
            for span in self._capture.spans
            if (name is None or fnmatchcase(span.name, name)) and _has(span, wanted)
        ]


def _has(span: ReadableSpan, wanted: dict[str, Any]) -> bool:
    attrs = span.attributes or {}
    for key, value in wanted.items():
        actual = attrs.get(key)
        if isinstance(actual, Sequence) and not isinstance(actual, str):
            actual = list(actual)
        if actual != value:
            return False
    return True
