"""vcrpy's `Cassette` over our file format and our matcher.

We keep vcrpy's public cassette surface — record modes and what each allows
(`can_play_response_for`, `write_protected`), play counts so identical requests replay
their responses in order (`play_response`), `data`, `append`, `dirty`, `rewound`, and the
`match_on` matcher protocol — and none of its transport patching (the interceptor sees
every byte and its timing).

Loading and saving are ours: vcrpy's `_load`/`_save` and what they keep (`_loaded_count`,
`drop_unused_requests`, the "all" mode's re-record merge) differ from one vcrpy release to
the next, and we read and write the files ourselves (our format; vcrpy's for a file that
was vcrpy's, see `_dumps`). So the plugin works the same with every vcrpy from 7.0 on
(`vcrpy_version` checks the floor when pytest starts).

Interactions read from a cassette vcrpy wrote (`foreign`) match the way vcrpy would when
the rules say so (`MatchRules.vcrpy_match_on`, vcrpy_matching.py): a linear scan with vcrpy's
own matchers over them, as vcrpy does; ours keep the O(1) LLM-aware index.

One vcrpy internal is used, for speed: `_responses`, see `LLMCassette._responses`. Stored
requests and responses wrap the dicts read from the file and are materialised lazily
(vcrpy deep-copies every response it appends; ours copy in O(1)).

Loading raises `CassetteError` for a file that exists but cannot be read (vcrpy would treat
it as an empty cassette and overwrite it on save: we never touch such a file).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vcr.cassette import Cassette
from vcr.record_mode import RecordMode
from vcr.request import HeadersDict, Request

from ..atomic import write_atomic
from ..redaction import Redactor
from .format import (
    CassetteMissing,
    Stored,
    decode_body,
    dumps_document,
    headers_from_stored,
    load,
)
from .interactions import redact_stored
from .matching import Key, MatchRules, Normalized

_VCR_MODES = {
    "none": RecordMode.NONE,
    "once": RecordMode.ONCE,
    "new_episodes": RecordMode.NEW_EPISODES,
    "all": RecordMode.ALL,
    "rewrite": RecordMode.ALL,  # + nothing loaded, so only what this run recorded is saved
}


class StoredRequest(Request):  # type: ignore[misc]
    """A vcrpy `Request` over a stored request; parsed, headers and body built on demand."""

    def __init__(self, stored: Stored | dict[str, Any], *, foreign: bool = False) -> None:
        # vcrpy's __init__ would parse the URL, headers and body right away: not needed.
        self.raw = stored if isinstance(stored, Stored) else Stored(stored)
        self.foreign = foreign  # read from a vcrpy cassette: not redacted yet
        self.normalized: Normalized | None = None
        self.vcr_view: Any = None  # what vcrpy's matchers compare (vcrpy_matching.view)
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

    @property
    def uri(self) -> str:  # vcrpy 8+ reads `_uri` here; 7.0 set a plain attribute in __init__
        return self._uri

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

    def __getitem__(self, key: str) -> Any:
        """vcrpy's response layout (`["status"]["code"]`, `["headers"]`, `["body"]["string"]`)
        for code that reads `cassette.responses` the way it did under pytest-recording;
        the body is the one clients are served (decompressed)."""
        return _vcrpy_response(self.stored)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return _vcrpy_response(self.stored).get(key, default)


def _vcrpy_response(stored: dict[str, Any]) -> dict[str, Any]:
    from .interactions import to_canned

    canned = to_canned(stored, 0.0, {})
    headers: dict[str, list[str]] = {}
    for name, value in canned.headers:
        headers.setdefault(name, []).append(value)
    return {
        "status": {"code": canned.status, "message": canned.reason},
        "headers": headers,
        "body": {"string": b"".join(chunk for _, chunk in canned.chunks)},
    }


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


class LLMCassette(Cassette):  # type: ignore[misc]
    """One cassette file, open for one test (or one higher-scoped fixture)."""

    data: list[tuple[Any, Any]]
    dirty: bool
    rewound: bool

    def __init__(self, path: Path, mode: str, rules: MatchRules, redactor: Redactor) -> None:
        # Only arguments every supported vcrpy takes: loading and saving are ours, so vcrpy's
        # persister, serializer and drop_unused_requests (8.0+) are never used.
        super().__init__(path, record_mode=_VCR_MODES[mode], match_on=MATCH_ON)
        self._file = path
        self.mode = mode
        self.rules = rules
        self.redactor = redactor
        self._index: dict[Key, list[int]] | None = None
        self.loaded = 0  # the first `loaded` interactions in `data` came from the file
        self.recorded = 0
        self.foreign = False  # the file was written by vcrpy (its interactions are `foreign`)
        self._vcr_views: list[Any] | None = None  # of the foreign requests, for vcrpy matching

    @classmethod
    def open(cls, path: Path, mode: str, rules: MatchRules, redactor: Redactor) -> LLMCassette:
        """Load the cassette (not in rewrite mode); a broken file raises `CassetteError`."""
        cassette = cls(path, mode, rules, redactor)
        if mode != "rewrite":
            cassette._read()
        return cassette

    @property
    def path(self) -> Path:
        """The cassette file (vcrpy 9 has this property too; 7 and 8 do not)."""
        return self._file

    @property
    def exists(self) -> bool:
        """Whether a cassette file was loaded (vcrpy: the cassette was rewound)."""
        return bool(self.rewound)

    def _read(self) -> None:
        try:
            pairs, ours = load(self.path)
        except CassetteMissing:
            return
        foreign = not ours
        self.foreign = foreign and bool(pairs)
        # Straight into `data`: `append` would mark the cassette changed.
        self.data.extend(
            (StoredRequest(req, foreign=foreign), StoredResponse(resp, foreign=foreign))
            for req, resp in pairs
        )
        self.loaded = len(self.data)
        self.rewound = True  # vcrpy's record modes read this as "a cassette file was loaded"

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
        """vcrpy internal, the only one we override: (index, response) for each stored
        interaction matching `request`. vcrpy 7.0 to 9.x's `__contains__` and `play_response`
        (so `can_play_response_for`) find candidates through it; ours looks the request up
        in an index keyed by the normalized request instead of running every matcher
        against every stored request (O(1) instead of O(n): a 10,000-interaction cassette
        replays in seconds, not hours). tests/test_vcrpy_versions.py checks that the
        installed vcrpy still calls it.

        Interactions from a vcrpy file, when the rules match those the vcrpy way, are found
        by vcrpy's matchers instead, in file order (they come first in `data`)."""
        vcrpy = self.vcrpy_matching
        if vcrpy:
            for i in self._vcrpy_matches(request):
                yield i, self.data[i][1]
        index = self._ensure_index()
        for i in index.get(self.normalize(request).key, ()):
            if not (vcrpy and self.data[i][0].foreign):
                yield i, self.data[i][1]

    @property
    def vcrpy_matching(self) -> bool:
        """Whether this cassette's vcrpy-written interactions match the way vcrpy would."""
        return self.foreign and self.rules.vcrpy_match_on is not None

    def _vcrpy_view(self, request: StoredRequest) -> Any:
        from .vcrpy_matching import view

        if request.vcr_view is None:
            stored = request.stored
            if request.foreign:  # compared after the same redaction as what is sent now
                stored = redact_stored((stored, {"status": 0}), self.redactor)[0]
            request.vcr_view = view(stored, self.rules.filters)
        return request.vcr_view

    def _foreign_views(self) -> list[tuple[int, Any]]:
        if self._vcr_views is None:
            self._vcr_views = [
                (i, self._vcrpy_view(request))
                for i, (request, _) in enumerate(self.data[: self.loaded])
                if request.foreign
            ]
        return self._vcr_views

    def _vcrpy_matches(self, request: StoredRequest) -> Iterator[int]:
        from .vcrpy_matching import matches

        live = self._vcrpy_view(request)
        match_on = self.rules.vcrpy_match_on or ()
        for i, recorded in self._foreign_views():
            if matches(live, recorded, match_on):
                yield i

    def vcrpy_differences(self, request: StoredRequest, index: int) -> list[str]:
        """vcrpy's reasons why `request` does not match the stored interaction `index`."""
        from .vcrpy_matching import differences

        recorded = self.data[index][0]
        if not (self.vcrpy_matching and recorded.foreign):
            return []
        live = self._vcrpy_view(request)
        return differences(live, self._vcrpy_view(recorded), self.rules.vcrpy_match_on or ())

    def append(self, request: Any, response: Any) -> None:
        before = len(self.data)
        super().append(request, response)
        if self._index is not None and len(self.data) > before:
            self._index.setdefault(self.normalize(request).key, []).append(before)

    def record(self, request: StoredRequest, response: StoredResponse) -> None:
        """Add what this run received live. It counts as played: a second identical
        request in the same run goes live too (vcrpy would replay the first one to it).
        A pytest-recording test's vcrpy filters apply to what is stored."""
        if self.rules.filters is not None:
            kept = request
            request = StoredRequest(self.rules.filters.apply(kept.stored))
            request.normalized, request.started_at = self.normalize(kept), kept.started_at
        self._ensure_index()
        self.append(request, response)
        self.play_counts[len(self.data) - 1] += 1
        self.recorded += 1

    def times_recorded(self, request: StoredRequest) -> int:
        if self.vcrpy_matching:
            key = self.normalize(request).key
            ours = [i for i in self._ensure_index().get(key, ()) if not self.data[i][0].foreign]
            return len(ours) + sum(1 for _ in self._vcrpy_matches(request))
        return len(self._ensure_index().get(self.normalize(request).key, ()))

    # -- saving -------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the cassette if this run changed it; True when a file was written."""
        if not self.dirty:
            return False
        for request, _ in self.data:  # a broken stored request fails here, before writing
            self.normalize(request)
        # Concurrent calls finish in any order: store this run's in the order they started.
        loaded = self.data[: self.loaded]
        fresh = sorted(self.data[self.loaded :], key=lambda pair: pair[0].started_at)
        self.data = loaded + fresh
        self._index = None
        write_atomic(self.path, self._dumps(self._kept(loaded, fresh)))
        self.dirty = False
        return True

    def _kept(self, loaded: list[Any], fresh: list[Any]) -> list[Any]:
        """What the file gets: once/new_episodes add to it; all re-records (what this run
        made replaces the loaded interactions with the same request, the rest stay);
        rewrite loaded nothing, so only this run's is kept."""
        if self.record_mode != RecordMode.ALL:
            return loaded + fresh
        replaced = {self.normalize(request).key for request, _ in fresh}
        kept = [pair for pair in loaded if self.normalize(pair[0]).key not in replaced]
        return kept + fresh

    def _dumps(self, pairs: list[tuple[Any, Any]]) -> str:
        """The file's text. A file that is a vcrpy cassette stays one (pytest-recording and
        vcrpy keep reading it; this run's interactions lose their timing there); any other
        file, new ones included, is written in our format. Interactions read from a vcrpy
        file are redacted first; ours go back as they were read (byte for byte when this
        run did not parse them)."""
        from .vcrpy_compat import dumps_vcrpy, vcrpy_serializer

        serializer = vcrpy_serializer(self.path)
        out: list[tuple[Any, Any]] = []
        for request, response in pairs:
            if request.foreign:
                out.append(redact_stored((request.stored, response.stored), self.redactor))
            elif serializer is not None:
                out.append((request.stored, response.stored))
            else:
                out.append((request.raw, response.raw))
        if serializer is not None:
            return dumps_vcrpy(out, self.path, serializer)
        return dumps_document(out)
