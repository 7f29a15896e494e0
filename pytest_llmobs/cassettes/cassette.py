"""vcrpy's `Cassette` over our file format and our matcher.

We keep vcrpy's cassette machinery — record modes and what each allows
(`can_play_response_for`, `write_protected`), play counts so identical requests replay
their responses in order, the `match_on` matcher protocol (so `find_requests_with_most_matches`
and the "all" mode's re-record merge work), the persister/serializer hooks and `_save` —
and none of its transport patching (the interceptor sees every byte and its timing).

Two things are changed, both for speed and both invisible in behaviour:

- `_responses` looks requests up in an index keyed by the normalized request instead of
  running every matcher against every stored request (O(1) instead of O(n) per request:
  a 10,000-interaction cassette replays in seconds, not hours);
- stored requests and responses wrap the dicts read from the file and are materialised
  lazily (vcrpy deep-copies every response it appends; ours copy in O(1)).

The persister raises `CassetteError` for a file that exists but cannot be read, which
vcrpy lets through (it would treat a `CassetteDecodeError` as an empty cassette and
overwrite it on save: we never touch such a file).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vcr.cassette import Cassette
from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.record_mode import RecordMode
from vcr.request import HeadersDict, Request

from ..redaction import Redactor
from .format import (
    CassetteMissing,
    Stored,
    decode_body,
    dumps_document,
    headers_from_stored,
    load,
    write_atomic,
)
from .interactions import redact_stored
from .matching import Key, MatchRules, Normalized

_VCR_MODES = {
    "none": RecordMode.NONE,
    "once": RecordMode.ONCE,
    "new_episodes": RecordMode.NEW_EPISODES,
    "all": RecordMode.ALL,
    "rewrite": RecordMode.ALL,  # + nothing loaded + only what this run recorded is saved
}


class StoredRequest(Request):  # type: ignore[misc]
    """A vcrpy `Request` over a stored request; parsed, headers and body built on demand."""

    def __init__(self, stored: Stored | dict[str, Any], *, foreign: bool = False) -> None:
        # vcrpy's __init__ would parse the URL, headers and body right away: not needed.
        self.raw = stored if isinstance(stored, Stored) else Stored(stored)
        self.foreign = foreign  # read from a vcrpy cassette: not redacted yet
        self.normalized: Normalized | None = None
        self.started_at = 0.0
        self._was_file = False
        self._was_iter = False
        self._headers_value: HeadersDict | None = None
        self._body_value: bytes | None = None

    @property
    def stored(self) -> dict[str, Any]:
        return self.raw.value

    @property
    def method(self) -> str:
        return str(self.stored.get("method", "GET")).upper()

    @method.setter
    def method(self, value: str) -> None:
        self.stored["method"] = value

    @property
    def _uri(self) -> str:
        return str(self.stored.get("uri", ""))

    @cached_property
    def parsed_uri(self) -> Any:
        return urlparse(self._uri)

    @property
    def headers(self) -> Any:
        if self._headers_value is None:
            self._headers_value = HeadersDict(headers_from_stored(self.stored.get("headers")))
        return self._headers_value

    @headers.setter
    def headers(self, value: Any) -> None:
        self._headers_value = value if isinstance(value, HeadersDict) else HeadersDict(value)

    @property
    def body(self) -> bytes:
        if self._body_value is None:
            self._body_value = decode_body(self.stored.get("body"))
        return self._body_value

    @body.setter
    def body(self, value: Any) -> None:
        self._body_value = value.encode("utf-8") if isinstance(value, str) else value

    def __str__(self) -> str:
        return f"<Request ({self.method}) {self._uri}>"


class StoredResponse:
    """A stored response; immutable once built, so copying it is free."""

    __slots__ = ("foreign", "raw")

    def __init__(self, stored: Stored | dict[str, Any], *, foreign: bool = False) -> None:
        self.raw = stored if isinstance(stored, Stored) else Stored(stored, kind="response")
        self.foreign = foreign

    @property
    def stored(self) -> dict[str, Any]:
        return self.raw.value

    def __deepcopy__(self, memo: Any) -> StoredResponse:
        return self


def _normalized(request: Any) -> Normalized:
    normalized = getattr(request, "normalized", None)
    if normalized is None:
        raise AssertionError(f"{request!r} was not normalized by its cassette")
    return normalized  # type: ignore[no-any-return]


def method(r1: Any, r2: Any) -> None:
    a, b = _normalized(r1).method, _normalized(r2).method
    assert a == b, f"{a} != {b}"


def llm_url(r1: Any, r2: Any) -> None:
    a, b = _normalized(r1).url, _normalized(r2).url
    assert a == b, f"{a} != {b}"


def llm_body(r1: Any, r2: Any) -> None:
    assert _normalized(r1).key[2] == _normalized(r2).key[2], "bodies differ"


MATCH_ON = (method, llm_url, llm_body)


class _Serializer:
    """What our persister writes: interactions read from a vcrpy file are redacted first;
    ours go back as they were read (byte for byte when this run did not parse them)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def dumps(self, requests: list[Any], responses: list[Any]) -> str:
        pairs: list[tuple[Any, Any]] = []
        for request, response in zip(requests, responses, strict=True):
            if getattr(request, "foreign", False):
                pairs.append(redact_stored((request.stored, response.stored), self.redactor))
            else:
                pairs.append((request.raw, response.raw))
        return dumps_document(pairs)


class Persister:
    """vcrpy persister protocol over `format`: safe loading, atomic saving."""

    @staticmethod
    def load_cassette(cassette_path: Any, serializer: Any) -> tuple[list[Any], list[Any]]:
        try:
            pairs, ours = load(Path(cassette_path))
        except CassetteMissing:
            raise CassetteNotFoundError() from None
        return (
            [StoredRequest(req, foreign=not ours) for req, _ in pairs],
            [StoredResponse(resp, foreign=not ours) for _, resp in pairs],
        )

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: dict[str, Any], serializer: Any) -> None:
        text = serializer.dumps(cassette_dict["requests"], cassette_dict["responses"])
        write_atomic(Path(cassette_path), text)


class LLMCassette(Cassette):  # type: ignore[misc]
    """One cassette file, open for one test (or one higher-scoped fixture)."""

    data: list[tuple[Any, Any]]

    def __init__(self, path: Path, mode: str, rules: MatchRules, redactor: Redactor) -> None:
        super().__init__(
            path,
            serializer=_Serializer(redactor),
            persister=Persister,
            record_mode=_VCR_MODES[mode],
            match_on=MATCH_ON,
            drop_unused_requests=mode == "rewrite",
        )
        self.mode = mode
        self.rules = rules
        self.redactor = redactor
        self._index: dict[Key, list[int]] | None = None
        self.recorded = 0

    @classmethod
    def open(cls, path: Path, mode: str, rules: MatchRules, redactor: Redactor) -> LLMCassette:
        """Load the cassette (not in rewrite mode); a broken file raises `CassetteError`."""
        cassette = cls(path, mode, rules, redactor)
        if mode != "rewrite":
            cassette._load()
        return cassette

    @property
    def exists(self) -> bool:
        """Whether a cassette file was loaded (vcrpy: the cassette was rewound)."""
        return bool(self.rewound)

    # -- matching ---------------------------------------------------------------------------
    def normalize(self, request: StoredRequest) -> Normalized:
        if request.normalized is None:
            stored = request.stored
            if request.foreign:
                stored = redact_stored((stored, {"status": 0}), self.redactor)[0]
            request.normalized = self.rules.normalize(stored)
        return request.normalized

    def _ensure_index(self) -> dict[Key, list[int]]:
        if self._index is None:
            index: dict[Key, list[int]] = {}
            for i, (request, _) in enumerate(self.data):
                index.setdefault(self.normalize(request).key, []).append(i)
            self._index = index
        return self._index

    def _responses(self, request: Any) -> Iterator[tuple[int, Any]]:
        index = self._ensure_index()
        for i in index.get(self.normalize(request).key, ()):
            yield i, self.data[i][1]

    def append(self, request: Any, response: Any) -> None:
        before = len(self.data)
        super().append(request, response)
        if self._index is not None and len(self.data) > before:
            self._index.setdefault(self.normalize(request).key, []).append(before)

    def record(self, request: StoredRequest, response: StoredResponse) -> None:
        """Add what this run received live. It counts as played: a second identical
        request in the same run goes live too (vcrpy would replay the first one to it)."""
        self._ensure_index()
        self.append(request, response)
        self.play_counts[len(self.data) - 1] += 1
        self.recorded += 1

    def times_recorded(self, request: StoredRequest) -> int:
        return len(self._ensure_index().get(self.normalize(request).key, ()))

    def save(self) -> bool:
        """Write the cassette if this run changed it; True when a file was written."""
        if not self.dirty:
            return False
        for request, _ in self.data:
            self.normalize(request)
        # Concurrent calls finish in any order: store this run's in the order they started.
        loaded = self.data[: self._loaded_count]
        fresh = sorted(self.data[self._loaded_count :], key=lambda pair: pair[0].started_at)
        self.data = loaded + fresh
        self._index = None
        self._save()
        return True
