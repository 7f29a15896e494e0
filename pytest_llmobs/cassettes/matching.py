"""LLM-aware request matching: what makes two requests "the same call".

Compared, after redaction (and PII masking, when on) of both sides:

- the method;
- the URL, with volatile and secret query parameters dropped, the rest sorted, default
  ports dropped, and the port of loopback hosts (127.0.0.1, localhost, ::1) ignored, since
  local test servers listen on a new ephemeral port every run;
- the JSON body, semantically (key order never matters) minus the ignored paths (`user`,
  `metadata`, … and your own); a non-JSON body byte for byte.

Headers are never compared (SDK versions, retry counters, idempotency keys, auth).
Each request is reduced once to a hashable key, so lookups stay O(1) in cassettes with
thousands of interactions; deepdiff explains a miss against the closest recorded request.

Interactions read from a cassette vcrpy wrote can instead be matched the way vcrpy matches
them (`MatchRules.vcrpy_match_on`, see vcrpy_matching.py); and a test under pytest-recording's
`vcr` marker may filter requests (`RequestFilters`: vcrpy's filter_headers,
filter_query_parameters, filter_post_data_parameters) before they are matched or recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .format import decode_body

DEFAULT_IGNORE_PATHS: tuple[str, ...] = ("user", "metadata", "safety_identifier", "idempotency_key")
DEFAULT_IGNORE_QUERY: frozenset[str] = frozenset(
    {
        "key",
        "api_key",
        "api-key",
        "apikey",
        "access_token",
        "token",
        "sig",
        "signature",
        "x-amz-date",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-expires",
        "x-goog-signature",
        "x-goog-credential",
        "x-goog-date",
        "_",
    }
)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Key = tuple[str, str, bytes]
# vcrpy's own default (VCR(match_on=…)): what it compares when a suite does not say
VCRPY_DEFAULT_MATCH_ON: tuple[str, ...] = ("method", "scheme", "host", "port", "path", "query")
# vcrpy's matcher registry (`VCR().matchers`), by name; "url" is its old alias of "uri"
VCRPY_MATCHERS: tuple[str, ...] = (
    "method",
    "uri",
    "url",
    "scheme",
    "host",
    "port",
    "path",
    "query",
    "headers",
    "raw_body",
    "body",
)
# a filter: (name, replacement); None drops the name, a callable is vcrpy's (key, value, request)
Replacement = tuple[str, Any]


def is_loopback(host: str) -> bool:
    """Whether a (lower-case) host name or address is this machine."""
    return host in _LOOPBACK or host.startswith("127.")


@dataclass(frozen=True)
class Normalized:
    """A request as matching sees it."""

    method: str
    url: str
    body: Any  # JSON value (ignored paths removed), or bytes

    @property
    def key(self) -> Key:
        if isinstance(self.body, bytes):
            digest = b"b" + hashlib.blake2b(self.body, digest_size=16).digest()
        else:
            text = json.dumps(
                self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
            )
            digest = b"j" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        return (self.method, self.url, digest)


@dataclass(frozen=True)
class RequestFilters:
    """vcrpy's request filters, applied with vcrpy's own functions to every request before
    it is matched and before it is recorded (both sides then look the same)."""

    headers: tuple[Replacement, ...] = ()
    query: tuple[Replacement, ...] = ()
    post_data: tuple[Replacement, ...] = ()

    def apply(self, stored_request: dict[str, Any]) -> dict[str, Any]:
        from .vcrpy_matching import apply_filters  # imports vcrpy: only once a cassette is open

        return apply_filters(stored_request, self)


@dataclass(frozen=True)
class MatchRules:
    """Which parts of a request are ignored; built once per session from the settings.

    `vcrpy_match_on` (vcrpy matcher names or callables) makes interactions read from a
    vcrpy-written cassette match the way vcrpy would; None keeps them LLM-aware like ours.
    `filters`: a pytest-recording test's vcrpy filters."""

    ignore_paths: tuple[str, ...] = DEFAULT_IGNORE_PATHS
    ignore_query: frozenset[str] = DEFAULT_IGNORE_QUERY
    vcrpy_match_on: tuple[Any, ...] | None = None
    filters: RequestFilters | None = None
    _paths: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        paths = tuple(
            tuple(p.strip().strip(".").split(".")) for p in self.ignore_paths if p.strip()
        )
        object.__setattr__(self, "_paths", paths)
        object.__setattr__(self, "ignore_query", frozenset(q.lower() for q in self.ignore_query))

    @classmethod
    def build(
        cls,
        extra_paths: Iterable[str] = (),
        extra_query: Iterable[str] = (),
        vcrpy_match_on: tuple[Any, ...] | None = None,
    ) -> MatchRules:
        return cls(
            ignore_paths=tuple(dict.fromkeys((*DEFAULT_IGNORE_PATHS, *extra_paths))),
            ignore_query=DEFAULT_IGNORE_QUERY | {q.strip() for q in extra_query if q.strip()},
            vcrpy_match_on=vcrpy_match_on,
        )

    def with_paths(self, extra: Sequence[str]) -> MatchRules:
        if not extra:
            return self
        return replace(self, ignore_paths=tuple(dict.fromkeys((*self.ignore_paths, *extra))))

    def with_vcrpy(
        self, match_on: tuple[Any, ...] | None, filters: RequestFilters | None
    ) -> MatchRules:
        """These rules for a test under pytest-recording's `vcr` marker."""
        return replace(self, vcrpy_match_on=match_on, filters=filters)

    @property
    def wants_headers(self) -> bool:
        """Whether matching reads request headers (vcrpy filters and matchers may)."""
        return self.filters is not None or self.vcrpy_match_on is not None

    def normalize(self, stored_request: dict[str, Any]) -> Normalized:
        if self.filters is not None:
            stored_request = self.filters.apply(stored_request)
        method = str(stored_request.get("method", "GET")).upper()
        url = normalize_url(str(stored_request.get("uri", "")), self.ignore_query)
        body = stored_request.get("body")
        value: Any
        if isinstance(body, dict) and "json" in body:
            value = body["json"]
            for path in self._paths:
                value = _drop(value, path)
        else:
            value = decode_body(body)
        return Normalized(method, url, value)


@lru_cache(maxsize=4096)  # a suite sends to a handful of URLs, thousands of times
def normalize_url(uri: str, ignore_query: frozenset[str] = DEFAULT_IGNORE_QUERY) -> str:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return uri
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if is_loopback(host):
        port = None
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        port = None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in ignore_query
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def _drop(value: Any, path: tuple[str, ...]) -> Any:
    """`value` without what `path` names (`*` is any key or index); copies only along it."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else ([head] if head in value else [])
        if not keys:
            return value
        out = dict(value)
        for key in keys:
            if rest:
                out[key] = _drop(value[key], rest)
            else:
                del out[key]
        return out
    if isinstance(value, list):
        if head == "*":
            indices = range(len(value))
        elif head.lstrip("-").isdigit() and -len(value) <= int(head) < len(value):
            indices = range(int(head) % len(value), int(head) % len(value) + 1)
        else:
            return value
        if not rest:
            return [item for i, item in enumerate(value) if i not in indices]
        items = list(value)
        for i in indices:
            items[i] = _drop(items[i], rest)
        return items
    return value
