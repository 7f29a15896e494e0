"""Other HTTP recorders and mocks in the same process: vcrpy (pytest-recording), respx,
responses, requests-mock, pytest-httpx, aioresponses, httpretty, `unittest.mock` patches.

They patch the clients we patch, above or below our own patches, while their cassette or
mock is active. While one is, it owns the answers: the cassette layer steps aside (never
replays, records or blocks), and we only observe what the client received. `answerer`
says, for one client and at this moment, which of them has replaced a function on that
client's path; it is asked once per request, so a cassette entered inside a test counts
from its first request on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Import name of each library that answers requests itself → the name users know.
ANSWERERS = {
    "vcr": "vcrpy",
    "respx": "respx",
    "responses": "responses",
    "requests_mock": "requests-mock",
    "pytest_httpx": "pytest-httpx",
    "aioresponses": "aioresponses",
    "httpretty": "httpretty",
    "pook": "pook",
}
MOCK = "unittest.mock"
UNKNOWN = "another patch"  # answered above our patches by something not in ANSWERERS
ANSWERED_BY = "answered_by"  # the exchange annotation naming it

# Where each of them patches, per client (module, class, attribute): our own patch point,
# the layers below it, and, for httpx, the one above it that vcrpy 7 used.
_HTTPX_PATH = (
    ("{httpx}", "Client", "_send_single_request"),
    ("{httpx}", "AsyncClient", "_send_single_request"),
    ("{httpx}", "HTTPTransport", "handle_request"),
    ("{httpx}", "AsyncHTTPTransport", "handle_async_request"),
    ("{core}", "ConnectionPool", "handle_request"),
    ("{core}", "AsyncConnectionPool", "handle_async_request"),
)
_URLLIB3_PATH = (
    ("urllib3.connectionpool", "HTTPConnectionPool", "ConnectionCls"),
    ("urllib3.connectionpool", "HTTPSConnectionPool", "ConnectionCls"),
    ("urllib3.connectionpool", "HTTPConnectionPool", "_get_conn"),
)
PATHS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "httpx": tuple((m.format(httpx="httpx", core="httpcore"), c, a) for m, c, a in _HTTPX_PATH),
    "httpx2": tuple((m.format(httpx="httpx2", core="httpcore2"), c, a) for m, c, a in _HTTPX_PATH),
    "requests": (
        ("requests.sessions", "Session", "send"),
        ("requests.sessions", "Session", "get_adapter"),
        ("requests.adapters", "HTTPAdapter", "send"),
        *_URLLIB3_PATH,
    ),
    "botocore": (
        ("botocore.httpsession", "URLLib3Session", "send"),
        ("botocore.awsrequest", "AWSHTTPConnectionPool", "ConnectionCls"),
        ("botocore.awsrequest", "AWSHTTPSConnectionPool", "ConnectionCls"),
        *_URLLIB3_PATH,
    ),
    "aiohttp": (
        ("aiohttp.client", "ClientSession", "_request"),
        ("aiohttp.connector", "TCPConnector", "_create_connection"),
    ),
}


def answerer(client: str) -> str | None:
    """The library answering `client`'s requests instead of the network right now, or None.
    Asked for every request: a run that loaded none of them pays a few dict lookups."""
    places = _loaded_answerers()
    if not places and MOCK not in sys.modules:
        return None
    for module, owner, attribute in PATHS.get(client, ()):
        loaded = sys.modules.get(module)
        cls = getattr(loaded, owner, None) if loaded is not None else None
        if cls is None:
            continue
        value = cls.__dict__.get(attribute)
        if value is None:  # inherited: whoever patched did it on the base class
            value = getattr(cls, attribute, None)
        name = library_of(value, places)
        if name is not None:
            return name
    return None


def _loaded_answerers() -> list[tuple[str, str]]:
    """(directory prefix, name) of each answering library imported so far."""
    places = []
    for package, name in ANSWERERS.items():
        location = getattr(sys.modules.get(package), "__file__", None)
        if location:
            places.append((os.path.dirname(location) + os.sep, name))
    return places


def library_of(value: Any, places: list[tuple[str, str]] | None = None) -> str | None:
    """The answering library that defined `value` (a function, class or mock), or None;
    `places`: `_loaded_answerers()`, when the caller has it already."""
    if value is None or ours(value):
        return None
    if _is_mock(value):
        return MOCK
    if isinstance(value, type):
        return ANSWERERS.get(value.__module__.partition(".")[0])
    # A function's own file, not its `__module__`: functools.wraps copies that from the
    # function it wraps (vcrpy's stubs do), a wrapt proxy (OpenTelemetry's instrumentations)
    # forwards both to what it wraps, which is right: those observe and never answer.
    filename = _filename(value)
    if not filename:
        return None
    for prefix, name in _loaded_answerers() if places is None else places:
        if filename.startswith(prefix):
            return name
    return None


def ours(value: Any) -> bool:
    """Whether `value` is one of our own patches (its code lives in this package)."""
    return _filename(value).startswith(_PACKAGE)


def _filename(value: Any) -> str:
    code = getattr(getattr(value, "__func__", value), "__code__", None)
    return code.co_filename if code is not None else ""


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_mock(value: Any) -> bool:
    mock = sys.modules.get(MOCK)
    if mock is None:
        return False
    base = mock.NonCallableMock
    # `autospec=True` makes a plain function that carries its mock.
    return isinstance(value, base) or isinstance(getattr(value, "mock", None), base)
