"""JSON as it comes off the wire: parsing that never raises and typed, forgiving access.

Provider bodies are `Any`; these helpers turn "the field I expect" into a value of the
right type or None/empty, so parsers never trip over a gateway's or a chaos fault's idea
of JSON.
"""

from __future__ import annotations

import json
from typing import Any

JSONObject = dict[str, Any]


def load_json(data: bytes | str) -> Any:
    """The parsed document, or None for empty input or anything that is not JSON."""
    if not data:
        return None
    try:
        if isinstance(data, bytes) and data[:1] in b"{[" and data[1:2] != b"\x00":
            # UTF-8, as json.loads would detect: skip its detection (every body comes here)
            return json.loads(data.decode("utf-8", "surrogatepass"))
        return json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None


def obj(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parses_as_json(value: str) -> bool:
    return load_json(value) is not None or value.strip() == "null"


def arguments_ok(arguments: str) -> bool:
    """Tool-call arguments are valid when empty (a no-argument call) or JSON."""
    return not arguments.strip() or parses_as_json(arguments)
