"""Matching and filtering requests the way vcrpy does, with vcrpy's own functions.

A request (ours, or one read from a vcrpy cassette) becomes a plain `vcr.request.Request`
and goes through vcrpy's filters (`vcr.filters.replace_*`) and matchers (`vcr.matchers`), so
a cassette vcrpy wrote matches here exactly as the installed vcrpy would match it: same
matcher names, same defaults, same body transformers, same quirks. Both sides are redacted
by the plugin's rules first, so a secret in an old cassette compares equal to the same
secret sent now.

Imported only once a cassette is open (vcrpy is slow to import).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vcr import filters as vcr_filters
from vcr import matchers as vcr_matchers
from vcr.request import Request

from .format import decode_body, encode_body, headers_from_stored, headers_to_stored
from .matching import VCRPY_MATCHERS

if TYPE_CHECKING:
    from .matching import RequestFilters


def matcher(name_or_function: Any) -> Callable[[Any, Any], Any]:
    """vcrpy's matcher for a name of its registry, or the user's own function."""
    if callable(name_or_function):
        return name_or_function  # type: ignore[no-any-return]
    name = "uri" if name_or_function == "url" else name_or_function
    if name not in VCRPY_MATCHERS:
        raise ValueError(f"{name_or_function!r} is not a vcrpy matcher")
    function: Callable[[Any, Any], Any] = getattr(vcr_matchers, name)
    return function


def to_request(stored: dict[str, Any]) -> Request:
    """A plain vcrpy Request for a stored request (ours or converted from vcrpy's)."""
    body = decode_body(stored.get("body")) or None
    headers = headers_from_stored(stored.get("headers"))
    method = str(stored.get("method", "GET")).upper()
    return Request(method, str(stored.get("uri", "")), body, headers)


def apply_filters(stored: dict[str, Any], filters: RequestFilters) -> dict[str, Any]:
    """The stored request after vcrpy's filter_headers / filter_query_parameters /
    filter_post_data_parameters (vcrpy's functions, so its semantics and its version's)."""
    request = filtered(to_request(stored), filters)
    out = dict(stored)
    out["uri"] = request.uri
    if "headers" in stored:
        out["headers"] = headers_to_stored(request.headers.items())
    body = request.body
    if body:
        out["body"] = encode_body(body if isinstance(body, bytes) else bytes(body), exact=False)
    else:
        out.pop("body", None)
    return out


def filtered(request: Request, filters: RequestFilters | None) -> Request:
    if filters is None:
        return request
    if filters.headers:
        request = vcr_filters.replace_headers(request, list(filters.headers))
    if filters.query:
        request = vcr_filters.replace_query_parameters(request, list(filters.query))
    if filters.post_data:
        request = vcr_filters.replace_post_data_parameters(request, list(filters.post_data))
    return request


def view(stored: dict[str, Any], filters: RequestFilters | None) -> Request:
    """What vcrpy's matchers compare: the (redacted) request, filtered."""
    return filtered(to_request(stored), filters)


def matches(live: Request, recorded: Request, match_on: Sequence[Any]) -> bool:
    """vcrpy's own `requests_match` (the request being made first, as vcrpy calls it)."""
    return bool(vcr_matchers.requests_match(live, recorded, [matcher(m) for m in match_on]))


def differences(live: Request, recorded: Request, match_on: Sequence[Any]) -> list[str]:
    """The matchers that fail, with vcrpy's reason when it is one line (`port (8080 != 9)`)."""
    _, failures = vcr_matchers.get_matchers_results(live, recorded, [matcher(m) for m in match_on])
    out = []
    for name, message in failures:  # a one-line reason is shown; a body diff is not
        lines = str(message or "").strip().splitlines()
        out.append(f"{name} ({lines[0][:120]})" if len(lines) == 1 else str(name))
    return out
