"""Patches for `requests` (over urllib3).

`HTTPAdapter.send` is one HTTP attempt; it hands back a response whose body is still
unread. The body then flows out of urllib3's `HTTPResponse.read` / `read1` /
`read_chunked`, which we wrap at class level but act on only for responses we marked,
so each piece is timestamped as the app receives it (already content-decoded).

`Session.send` is watched too: responses and requests-mock answer above the adapter, so
such a request is recorded from the response `Session.send` returns (interceptor.py).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from .botocore_client import TimedRaw
from .exchange import CannedResponse, Exchange
from .interceptor import Interceptor, Unpatch, fail_delay, wait_until

_MARK = "_llmobs_exchange"


def install(interceptor: Interceptor) -> list[Unpatch]:
    try:
        import requests.adapters
    except ImportError:
        return []
    return [
        _patch_send(requests.adapters.HTTPAdapter, interceptor),
        _patch_session_send(requests.sessions.Session, interceptor),
        _patch_reads(interceptor),
    ]


def _patch_session_send(session_cls: Any, interceptor: Interceptor) -> Unpatch:
    original = session_cls.send

    def send(session: Any, request: Any, **kwargs: Any) -> Any:
        if interceptor.bypassed:
            return original(session, request, **kwargs)
        started = (time.time(), time.perf_counter())
        with interceptor.watching() as seen:
            try:
                response = original(session, request, **kwargs)
            except BaseException as exc:
                if not seen:
                    interceptor.finish(_observed(interceptor, request, started), error=exc)
                raise
        if not seen:
            exchange = _observed(interceptor, request, started)
            exchange.body_decoded = True
            exchange.got_headers(
                response.status_code, list(response.headers.items()), response.reason or ""
            )
            if response._content_consumed:  # read inside send (stream=False)
                exchange.got_chunk(response.content or b"")
                interceptor.finish(exchange, complete=True)
            else:
                _follow_body(response, exchange, interceptor)
        return response

    session_cls.send = interceptor.wrap(original, send)

    def unpatch() -> None:
        session_cls.send = original

    return unpatch


def _follow_body(response: Any, exchange: Exchange, interceptor: Interceptor) -> None:
    """Time the body as the app reads it: urllib3's own response through the read wrappers
    below; another body object (vcrpy's VCRHTTPResponse) through a stand-in."""
    import urllib3.response

    raw = response.raw
    if type(raw).read is urllib3.response.HTTPResponse.read:
        setattr(raw, _MARK, (exchange, interceptor))
    elif hasattr(raw, "stream"):
        response.raw = TimedRaw(raw, exchange, interceptor, at_eof=lambda raw: False)
    else:
        response.raw = _TimedReads(raw, exchange, interceptor, at_eof=lambda raw: False)


class _TimedReads(TimedRaw):
    """For a body without `stream()`: requests then reads it in `read(n)` calls to the
    empty one, and must keep doing so through us."""

    @property
    def stream(self) -> Any:
        raise AttributeError("stream")


def _observed(interceptor: Interceptor, request: Any, started: tuple[float, float]) -> Exchange:
    return interceptor.observed(
        "requests",
        request.method or "GET",
        request.url or "",
        [(k, v) for k, v in request.headers.items()],
        _body_bytes(request.body),
        started,
    )


def _patch_send(adapter_cls: Any, interceptor: Interceptor) -> Unpatch:
    original = adapter_cls.send

    def send(
        adapter: Any, request: Any, stream: bool = False, timeout: Any = None, **kw: Any
    ) -> Any:
        if interceptor.bypassed:
            return original(adapter, request, stream=stream, timeout=timeout, **kw)
        exchange = interceptor.begin(
            "requests",
            request.method or "GET",
            request.url or "",
            [(k, v) for k, v in request.headers.items()],
            _body_bytes(request.body),
            read_timeout=_read_timeout(timeout),
        )
        canned = interceptor.respond(exchange)
        if canned is not None:
            response = adapter.build_response(request, _canned_raw(exchange, canned, interceptor))
        else:
            try:
                response = original(adapter, request, stream=stream, timeout=timeout, **kw)
            except BaseException as exc:
                interceptor.finish(exchange, error=exc)
                raise
            exchange.body_decoded = True
        exchange.got_headers(
            response.status_code, list(response.raw.headers.items()), response.reason or ""
        )
        _follow_body(response, exchange, interceptor)
        return response

    adapter_cls.send = interceptor.wrap(original, send)

    def unpatch() -> None:
        adapter_cls.send = original

    return unpatch


def _patch_reads(interceptor: Interceptor) -> Unpatch:
    import urllib3.response
    from urllib3.util.response import is_fp_closed

    cls = urllib3.response.HTTPResponse
    # read1 came with urllib3 2.1; before it (botocore < 1.34.63 keeps urllib3 < 2.1) there is
    # nothing to wrap, and urllib3 1.26 keeps no decoded buffer.
    names = [name for name in ("read", "read1", "read_chunked", "close") if hasattr(cls, name)]
    originals = {name: getattr(cls, name) for name in names}

    def marked(response: Any) -> tuple[Exchange, Interceptor] | None:
        # Only our own marks: a nested session's patches sit on top of ours.
        mark: tuple[Exchange, Interceptor] | None = getattr(response, _MARK, None)
        return mark if mark is not None and mark[1] is interceptor else None

    def at_eof(response: Any) -> bool:
        return response._fp is None or (
            is_fp_closed(response._fp) and len(getattr(response, "_decoded_buffer", b"")) == 0
        )

    def read_wrapper(name: str) -> Any:
        original = originals[name]

        def read(self: Any, *args: Any, **kwargs: Any) -> bytes:
            mark = marked(self)
            if mark is None:
                return original(self, *args, **kwargs)  # type: ignore[no-any-return]
            exchange, owner = mark
            try:
                data: bytes = original(self, *args, **kwargs)
            except BaseException as exc:
                owner.finish(exchange, error=exc)
                raise
            exchange.got_chunk(data)
            if not data or at_eof(self):
                owner.finish(exchange, complete=True)
            return data

        return read

    def read_chunked(self: Any, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        mark = marked(self)
        if mark is None:
            yield from originals["read_chunked"](self, *args, **kwargs)
            return
        exchange, owner = mark
        try:
            for data in originals["read_chunked"](self, *args, **kwargs):
                exchange.got_chunk(data)
                yield data
        except GeneratorExit:
            raise
        except BaseException as exc:
            owner.finish(exchange, error=exc)
            raise
        owner.finish(exchange, complete=True)

    def close(self: Any) -> None:
        mark = marked(self)
        try:
            originals["close"](self)
        finally:
            if mark is not None:
                mark[1].finish(mark[0])

    patched: dict[str, Callable[..., Any]] = {"read_chunked": read_chunked, "close": close}
    patched |= {name: read_wrapper(name) for name in ("read", "read1") if name in originals}
    for name, function in patched.items():
        setattr(cls, name, interceptor.wrap(originals[name], function))

    def unpatch() -> None:
        for name, original in originals.items():
            setattr(cls, name, original)

    return unpatch


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b""  # a generator or file upload: not an LLM request body we can parse


def _read_timeout(timeout: Any) -> float | None:
    if isinstance(timeout, tuple):
        return timeout[1] if len(timeout) > 1 else None
    return float(timeout) if isinstance(timeout, (int, float)) else None


class _PacedBody:
    """A file-like body for canned responses: serves recorded pieces on their schedule."""

    def __init__(self, exchange: Exchange, canned: CannedResponse) -> None:
        self._exchange = exchange
        self._canned = canned
        self._pieces = list(canned.chunks)
        self._buffer = b""
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        if not self._buffer:
            if not self._pieces:
                self._fail_or_eof()
                return b""
            offset, self._buffer = self._pieces.pop(0)
            wait_until(self._exchange, offset, self._canned.pace, time.sleep)
        size = len(self._buffer) if amt is None or amt < 0 else amt
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        if amt is None:
            data += self.read(None) if (self._pieces or self._canned.fail) else b""
        return data

    def _fail_or_eof(self) -> None:
        canned = self._canned
        if canned.fail is not None and not self.closed:
            self.closed = True
            wait_until(self._exchange, fail_delay(self._exchange, canned), canned.pace, time.sleep)
            if canned.fail == "timeout":
                raise TimeoutError("The read operation timed out")
            raise http.client.IncompleteRead(b"")
        self.closed = True

    def close(self) -> None:
        self.closed = True


def _canned_raw(exchange: Exchange, canned: CannedResponse, interceptor: Interceptor) -> Any:
    import urllib3

    wait_until(
        exchange,
        canned.headers_offset if canned.status is not None else fail_delay(exchange, canned),
        canned.pace,
        time.sleep,
    )
    if canned.status is None:
        import requests.exceptions

        error: BaseException = (
            requests.exceptions.ReadTimeout("Read timed out.")
            if canned.fail == "timeout"
            else requests.exceptions.ConnectionError(
                "('Connection aborted.', RemoteDisconnected('Remote end closed connection "
                "without response'))"
                if canned.fail == "reset"
                else "Connection refused"
            )
        )
        interceptor.finish(exchange, error=error)
        raise error
    return urllib3.HTTPResponse(
        body=cast(Any, _PacedBody(exchange, canned)),
        headers=urllib3.HTTPHeaderDict(canned.headers),
        status=canned.status,
        reason=canned.reason,
        preload_content=False,
        decode_content=True,
        enforce_content_length=False,
    )
