"""Patches for the `httpx` and `httpx2` transports (the two are API twins).

We wrap `HTTPTransport.handle_request` / `AsyncHTTPTransport.handle_async_request`:
below the client's retries, redirects and auth, so one call here is one HTTP attempt,
and above the connection pool, so the body passes through us chunk by chunk as it
arrives. Nothing is buffered: each piece is timestamped and handed on at once.

`Client.send` / `AsyncClient.send` are watched too: vcrpy 7 answers from its cassette in
`Client._send_single_request`, vcrpy 9 and respx replace the transport method itself, so
such a request never reaches the transport patch and is recorded from the response `send`
returns (see interceptor.py).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

import anyio

from .exchange import CannedResponse, Exchange
from .interceptor import Interceptor, Unpatch, fail_delay, wait_until

CLIENT_MODULES = ("httpx", "httpx2")


def installer(name: str) -> Callable[[Interceptor], list[Unpatch]]:
    """The patch for one of CLIENT_MODULES (applied once it has been imported)."""

    def install(interceptor: Interceptor) -> list[Unpatch]:
        return _patch_module(importlib.import_module(name), interceptor)

    return install


def _patch_module(httpx: ModuleType, interceptor: Interceptor) -> list[Unpatch]:
    sync_cls, async_cls = httpx.HTTPTransport, httpx.AsyncHTTPTransport
    original_sync = sync_cls.handle_request
    original_async = async_cls.handle_async_request
    streams = _stream_classes(httpx, interceptor)

    def handle_request(transport: Any, request: Any) -> Any:
        if interceptor.bypassed:
            return original_sync(transport, request)
        exchange = _begin(httpx, interceptor, request)
        canned = interceptor.respond(exchange)
        if canned is not None:
            wait_until(exchange, _first_offset(exchange, canned), canned.pace, time.sleep)
            return _canned_response(httpx, interceptor, exchange, canned, streams["canned_sync"])
        try:
            response = original_sync(transport, request)
        except BaseException as exc:
            interceptor.finish(exchange, error=exc)
            raise
        _got_headers(exchange, response)
        response.stream = streams["sync"](response.stream, exchange)
        return response

    async def handle_async_request(transport: Any, request: Any) -> Any:
        if interceptor.bypassed:
            return await original_async(transport, request)
        exchange = _begin(httpx, interceptor, request)
        canned = interceptor.respond(exchange)
        if canned is not None:
            await _async_wait(exchange, _first_offset(exchange, canned), canned.pace)
            return _canned_response(httpx, interceptor, exchange, canned, streams["canned_async"])
        try:
            response = await original_async(transport, request)
        except BaseException as exc:
            interceptor.finish(exchange, error=exc)
            raise
        _got_headers(exchange, response)
        response.stream = streams["async"](response.stream, exchange)
        return response

    client_cls, async_client_cls = httpx.Client, httpx.AsyncClient
    original_send, original_async_send = client_cls.send, async_client_cls.send

    def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if interceptor.bypassed:
            return original_send(client, request, *args, **kwargs)
        started = (time.time(), time.perf_counter())
        with interceptor.watching() as seen:
            try:
                response = original_send(client, request, *args, **kwargs)
            except BaseException as exc:
                if not seen:
                    _observed(httpx, interceptor, request, started, None, None, exc)
                raise
        if not seen:
            _observed(httpx, interceptor, request, started, response, streams["sync"], None)
        return response

    async def async_send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if interceptor.bypassed:
            return await original_async_send(client, request, *args, **kwargs)
        started = (time.time(), time.perf_counter())
        with interceptor.watching() as seen:
            try:
                response = await original_async_send(client, request, *args, **kwargs)
            except BaseException as exc:
                if not seen:
                    _observed(httpx, interceptor, request, started, None, None, exc)
                raise
        if not seen:
            _observed(httpx, interceptor, request, started, response, streams["async"], None)
        return response

    sync_cls.handle_request = interceptor.wrap(original_sync, handle_request)
    async_cls.handle_async_request = interceptor.wrap(original_async, handle_async_request)
    client_cls.send = interceptor.wrap(original_send, send)
    async_client_cls.send = interceptor.wrap(original_async_send, async_send)

    def unpatch() -> None:
        sync_cls.handle_request = original_sync
        async_cls.handle_async_request = original_async
        client_cls.send = original_send
        async_client_cls.send = original_async_send

    return [unpatch]


def _observed(
    httpx: ModuleType,
    interceptor: Interceptor,
    request: Any,
    started: tuple[float, float],
    response: Any,
    stream_cls: Any,
    error: BaseException | None,
) -> None:
    """Record a request that something above the transport answered (or failed)."""
    exchange = interceptor.observed(
        httpx.__name__,
        request.method,
        str(request.url),
        _header_list(request.headers),
        request.read() if hasattr(request, "read") else b"",
        started,
    )
    if response is None:
        interceptor.finish(exchange, error=error)
        return
    _got_headers(exchange, response)
    if not response.is_stream_consumed:  # `send(stream=True)`: time the body as it is read
        response.stream = stream_cls(response.stream, exchange)
        return
    try:  # read inside `send`, or built from bytes: decoded already
        body = response.content
    except httpx.ResponseNotRead:
        body = b""
    exchange.body_decoded = True
    exchange.got_chunk(body)
    interceptor.finish(exchange, complete=True)


def _begin(httpx: ModuleType, interceptor: Interceptor, request: Any) -> Exchange:
    # Requests built from bytes/str/json already hold `content`; a streamed upload
    # is read once here and httpx keeps the bytes for the transport.
    body: bytes = request.read() if hasattr(request, "read") else b""
    timeout = (request.extensions.get("timeout") or {}).get("read")
    return interceptor.begin(
        httpx.__name__,
        request.method,
        str(request.url),
        _header_list(request.headers),
        body,
        read_timeout=timeout,
    )


def _header_list(headers: Any) -> list[tuple[str, str]]:
    """`headers.multi_items()` (lowercased names, the headers' own encoding), without its
    per-item property lookups: this runs for every request and response. ASCII first:
    `headers.encoding` tries it too, over every header, on each access."""
    try:
        return [(k.lower().decode("ascii"), v.decode("ascii")) for k, v in headers.raw]
    except UnicodeDecodeError:
        encoding = headers.encoding
        return [(k.lower().decode(encoding), v.decode(encoding)) for k, v in headers.raw]


def _got_headers(exchange: Exchange, response: Any) -> None:
    reason = response.extensions.get("reason_phrase", b"")
    exchange.got_headers(
        response.status_code,
        _header_list(response.headers),
        reason.decode("latin-1") if isinstance(reason, bytes) else str(reason),
    )


def _canned_response(
    httpx: ModuleType,
    interceptor: Interceptor,
    exchange: Exchange,
    canned: CannedResponse,
    stream_cls: Any,
) -> Any:
    if canned.status is None:  # failure before any response headers
        error = _transport_error(httpx, canned.fail or "connect", before_headers=True)
        interceptor.finish(exchange, error=error)
        raise error
    exchange.got_headers(canned.status, list(canned.headers), canned.reason)
    return httpx.Response(
        status_code=canned.status,
        headers=canned.headers,
        stream=stream_cls(canned, exchange),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": canned.reason.encode()},
    )


def _first_offset(exchange: Exchange, canned: CannedResponse) -> float:
    return canned.headers_offset if canned.status is not None else fail_delay(exchange, canned)


def _transport_error(httpx: ModuleType, kind: str, *, before_headers: bool) -> BaseException:
    if kind == "timeout":
        return httpx.ReadTimeout("The read operation timed out")  # type: ignore[no-any-return]
    if kind == "connect":
        return httpx.ConnectError("[Errno 111] Connection refused")  # type: ignore[no-any-return]
    if before_headers:
        return httpx.RemoteProtocolError(  # type: ignore[no-any-return]
            "Server disconnected without sending a response."
        )
    return httpx.RemoteProtocolError(  # type: ignore[no-any-return]
        "peer closed connection without sending complete message body (incomplete chunked read)"
    )


async def _async_wait(exchange: Exchange, offset: float, pace: float) -> None:
    delay = offset * pace - exchange.now()
    if delay > 0:
        await anyio.sleep(delay)


def _abandoned(interceptor: Interceptor, exchange: Exchange) -> None:
    """The app stopped reading the body and let go of it (an SDK that raises on an error event
    mid-stream): the call ends here, as if closed. httpx, and httpx2 before 2.12, close the
    response only once its body was read to the end, so no close() may ever come."""
    interceptor.finish(exchange)


def _stream_classes(httpx: ModuleType, interceptor: Interceptor) -> dict[str, type]:
    """Stream wrappers must subclass this module's own byte-stream bases (httpx asserts it)."""

    class TimedSyncStream(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner = inner
            self._exchange = exchange

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self._inner:
                    self._exchange.got_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                _abandoned(interceptor, self._exchange)
                raise
            except BaseException as exc:
                interceptor.finish(self._exchange, error=exc)
                raise
            interceptor.finish(self._exchange, complete=True)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                interceptor.finish(self._exchange)

    class TimedAsyncStream(httpx.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner = inner
            self._exchange = exchange

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    self._exchange.got_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                _abandoned(interceptor, self._exchange)
                raise
            except BaseException as exc:
                interceptor.finish(self._exchange, error=exc)
                raise
            interceptor.finish(self._exchange, complete=True)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                interceptor.finish(self._exchange)

    class CannedSyncStream(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, canned: CannedResponse, exchange: Exchange) -> None:
            self._canned = canned
            self._exchange = exchange

        def __iter__(self) -> Iterator[bytes]:
            canned, exchange = self._canned, self._exchange
            try:
                for offset, chunk in canned.chunks:
                    wait_until(exchange, offset, canned.pace, time.sleep)
                    exchange.got_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                _abandoned(interceptor, exchange)
                raise
            if canned.fail is not None:
                wait_until(exchange, fail_delay(exchange, canned), canned.pace, time.sleep)
                error = _transport_error(httpx, canned.fail, before_headers=False)
                interceptor.finish(exchange, error=error)
                raise error
            interceptor.finish(exchange, complete=True)

        def close(self) -> None:
            interceptor.finish(self._exchange)

    class CannedAsyncStream(httpx.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, canned: CannedResponse, exchange: Exchange) -> None:
            self._canned = canned
            self._exchange = exchange

        async def __aiter__(self) -> AsyncIterator[bytes]:
            canned, exchange = self._canned, self._exchange
            try:
                for offset, chunk in canned.chunks:
                    await _async_wait(exchange, offset, canned.pace)
                    exchange.got_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                _abandoned(interceptor, exchange)
                raise
            if canned.fail is not None:
                await _async_wait(exchange, fail_delay(exchange, canned), canned.pace)
                error = _transport_error(httpx, canned.fail, before_headers=False)
                interceptor.finish(exchange, error=error)
                raise error
            interceptor.finish(exchange, complete=True)

        async def aclose(self) -> None:
            interceptor.finish(self._exchange)

    return {
        "sync": TimedSyncStream,
        "async": TimedAsyncStream,
        "canned_sync": CannedSyncStream,
        "canned_async": CannedAsyncStream,
    }
