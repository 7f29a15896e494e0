"""Counted nouns for terminal and CLI lines: "1 LLM call", "2 LLM calls", never "call(s)"."""

from __future__ import annotations

# The irregular plurals these lines use; the rest take an "s".
_IRREGULAR = {
    "directory": "directories",
    "retry": "retries",
    "entry": "entries",
    "was": "were",
}


def plural(n: int, noun: str) -> str:
    """`noun` as it reads after the number `n` (the last word inflected: "LLM call")."""
    if n == 1:
        return noun
    head, _, last = noun.rpartition(" ")
    many = _IRREGULAR.get(last) or (last + "es" if last.endswith(("s", "sh", "ch")) else last + "s")
    return f"{head} {many}" if head else many


def count(n: int, noun: str) -> str:
    """'1 test', '2 tests', '0 tests'."""
    return f"{n} {plural(n, noun)}"
