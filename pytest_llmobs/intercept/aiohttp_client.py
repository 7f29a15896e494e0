"""Patches for `aiohttp` clients (google-genai's async client, LangChain integrations, apps).

One HTTP attempt is one `BaseConnector.connect`: redirects and aiohttp's retry of a stale
keep-alive connection connect again. The request is complete by then (headers, auth,
cookies, body), so the exchange begins there, and replay or chaos may answer instead of the
network.

The response is then followed where aiohttp itself handles it: `ClientResponse.start` reads
the status and headers, and the body is timestamped as aiohttp's parser feeds it into the
response's `StreamReader` (its arrival time: aiohttp reads ahead of the app, and nothing of
ours sits in between). The parser feeds the reader while the protocol handles received bytes,
often before `start` returns, so the reader is claimed for its exchange during that call.

A canned response travels the same road: the connection is ours — aiohttp's own protocol
class over a transport that "receives" the canned answer as HTTP/1.1 bytes on schedule, one
piece per read — so aiohttp's real parser builds a real `ClientResponse`, and its own read
timeouts, payload errors and decompression apply. No test double of `ClientResponse` to
keep in step with aiohttp's API.

The session's request methods (`get`, `post`, `request` …) are watched too: vcrpy and
aioresponses answer in `ClientSession._request`, before any connection, so such a request
is recorded from the response it gave (its body is in memory: vcrpy's is, and one that is
not is reported, not guessed; see interceptor.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .exchange import CannedResponse, Exchange
from .interceptor import Interceptor, Unpatch, fail_delay

CLIENT = "aiohttp"
_MARK = "_llmobs_entry"
# Framing headers we rewrite for canned answers; the rest reach aiohttp as recorded.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


@dataclass
class _Entry:
    """One exchange on its way through aiohttp."""

    exchange: Exchange
    interceptor: Interceptor
    protocol: Any = None
    reader: Any = None
    headers_seen: bool = False
    first_arrival: float | None = None
    deferred: tuple[bool, BaseException | None] | None = None


def install(interceptor: Interceptor) -> list[Unpatch]:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return []
    return [*_Patches(interceptor).install(), _watch_entry_points(interceptor)]


_ENTRY_POINTS = ("request", "get", "options", "head", "post", "put", "patch", "delete")


def _watch_entry_points(interceptor: Interceptor) -> Unpatch:
    from aiohttp import ClientSession

    originals = {name: ClientSession.__dict__[name] for name in _ENTRY_POINTS}

    def watched(name: str, original: Any) -> Any:
        def entry_point(session: Any, *args: Any, **kwargs: Any) -> Any:
            manager = original(session, *args, **kwargs)
            coro = getattr(manager, "_coro", None)  # aiohttp's request context manager
            if interceptor.bypassed or coro is None:
                return manager
            method = name.upper() if name != "request" else str(args[0] if args else "")
            manager._coro = _observe(interceptor, coro, session, method, kwargs)
            return manager

        return entry_point

    for name, original in originals.items():
        setattr(ClientSession, name, interceptor.wrap(original, watched(name, original)))

    def unpatch() -> None:
        for name, original in originals.items():
            setattr(ClientSession, name, original)

    return unpatch


async def _observe(
    interceptor: Interceptor, coro: Any, session: Any, method: str, kwargs: dict[str, Any]
) -> Any:
    started = (time.time(), time.perf_counter())
    with interceptor.watching() as seen:
        response = await coro
    if seen:
        return response
    info = response.request_info
    request = (
        info.method or method,
        str(info.url),
        [(str(k), str(v)) for k, v in info.headers.items()],
        _kwargs_body(session, kwargs),
    )
    body = getattr(response, "_body", None)  # set by whoever answered (vcrpy does)
    if not isinstance(body, bytes):
        if interceptor.recognizes(Exchange(CLIENT, *request)):
            warnings.warn(
                f"pytest-llmobs: the LLM call {request[0]} {request[1]} was answered inside "
                "aiohttp's ClientSession._request by another library (aioresponses, a mock …) "
                "with a body not read yet: it is not captured. Let pytest-llmobs replay it "
                "(a cassette), or use an httpx-based client, to have it captured.",
                stacklevel=2,
            )
        return response
    exchange = interceptor.observed(CLIENT, *request, started)
    exchange.body_decoded = True
    headers = [(str(k), str(v)) for k, v in response.headers.items()]
    exchange.got_headers(response.status, headers, response.reason or "")
    exchange.got_chunk(body)
    interceptor.finish(exchange, complete=True)
    return response


def _kwargs_body(session: Any, kwargs: dict[str, Any]) -> bytes:
    """The request body as aiohttp would send it, from the call's `json` / `data`."""
    if kwargs.get("json") is not None:
        dumps = getattr(session, "_json_serialize", json.dumps)
        return str(dumps(kwargs["json"])).encode()
    data = kwargs.get("data")
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return b""


class _Patches:
    """The patched methods and the registries that tie protocols and readers to exchanges."""

    def __init__(self, interceptor: Interceptor) -> None:
        self.interceptor = interceptor
        # Keyed by id(); entries hold the objects, so an id cannot be reused meanwhile.
        self.by_protocol: dict[int, _Entry] = {}
        self.by_reader: dict[int, _Entry] = {}
        self.receiving = threading.local()  # the entry whose protocol is parsing bytes now

    def install(self) -> list[Unpatch]:
        from aiohttp.client_proto import ResponseHandler
        from aiohttp.client_reqrep import ClientResponse
        from aiohttp.connector import BaseConnector
        from aiohttp.streams import StreamReader

        targets: list[tuple[type, str, Any]] = [
            (BaseConnector, "connect", self._connect),
            (ResponseHandler, "data_received", self._data_received),
            (StreamReader, "feed_data", self._feed_data),
            (StreamReader, "feed_eof", self._feed_eof),
            (StreamReader, "set_exception", self._set_exception),
            (ClientResponse, "start", self._start),
            (ClientResponse, "close", self._closed_early),
            (ClientResponse, "release", self._closed_early),
        ]
        originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in targets]
        for cls, name, factory in targets:
            setattr(
                cls, name, self.interceptor.wrap(cls.__dict__[name], factory(cls.__dict__[name]))
            )

        def unpatch() -> None:
            for cls, name, original in originals:
                setattr(cls, name, original)

        return [unpatch]

    # -- bookkeeping ----------------------------------------------------------------
    def _claim_reader(self, entry: _Entry, reader: Any) -> None:
        if entry.reader is None:
            entry.reader = reader
            self.by_reader[id(reader)] = entry

    def _end(self, entry: _Entry, complete: bool, error: BaseException | None = None) -> None:
        if not entry.headers_seen:  # the body ended inside the bytes that carried the headers
            entry.deferred = entry.deferred or (complete, error)
            return
        self._forget(entry)
        self.interceptor.finish(entry.exchange, complete=complete, error=error)

    def _forget(self, entry: _Entry) -> None:
        if self.by_protocol.get(id(entry.protocol)) is entry:
            del self.by_protocol[id(entry.protocol)]
        if entry.reader is not None and self.by_reader.get(id(entry.reader)) is entry:
            del self.by_reader[id(entry.reader)]

    def _sweep(self) -> None:
        """Drop entries the interceptor finished on its own (flushed at a test's end)."""
        for registry in (self.by_protocol, self.by_reader):
            for key, entry in list(registry.items()):
                if entry.exchange.end_offset is not None:
                    registry.pop(key, None)

    # -- patched methods -------------------------------------------------------------
    def _connect(self, original: Any) -> Any:
        async def connect(connector: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            if self.interceptor.bypassed:
                return await original(connector, req, *args, **kwargs)
            self._sweep()
            timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
            exchange = self.interceptor.begin(
                CLIENT,
                req.method,
                str(req.url),
                [(str(k), str(v)) for k, v in req.headers.items()],
                await _body_bytes(req),
                read_timeout=_read_timeout(timeout),
            )
            entry = _Entry(exchange, self.interceptor)
            canned = self.interceptor.respond(exchange)
            try:
                if canned is None:
                    conn = await original(connector, req, *args, **kwargs)
                else:
                    conn = await _canned_connection(connector, req, exchange, canned)
            except BaseException as exc:
                self.interceptor.finish(exchange, error=exc)
                raise
            entry.protocol = conn.protocol
            self.by_protocol[id(conn.protocol)] = entry
            setattr(conn, _MARK, entry)
            return conn

        return connect

    def _data_received(self, original: Any) -> Any:
        def data_received(protocol: Any, data: bytes) -> None:
            entry = self.by_protocol.get(id(protocol))
            if entry is None:
                return original(protocol, data)  # type: ignore[no-any-return]
            if entry.first_arrival is None:
                entry.first_arrival = entry.exchange.now()
            previous = getattr(self.receiving, "entry", None)
            self.receiving.entry = entry
            try:
                return original(protocol, data)  # type: ignore[no-any-return]
            finally:
                self.receiving.entry = previous

        return data_received

    def _feed_data(self, original: Any) -> Any:
        def feed_data(reader: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
            entry = self.by_reader.get(id(reader))
            if entry is None:
                receiving: _Entry | None = getattr(self.receiving, "entry", None)
                if receiving is not None and receiving.reader is None:
                    self._claim_reader(receiving, reader)
                    entry = receiving
            if entry is not None:
                entry.exchange.got_chunk(bytes(data))
            return original(reader, data, *args, **kwargs)

        return feed_data

    def _feed_eof(self, original: Any) -> Any:
        def feed_eof(reader: Any) -> None:
            original(reader)
            entry = self.by_reader.get(id(reader))
            if entry is not None:
                self._end(entry, complete=True)

        return feed_eof

    def _set_exception(self, original: Any) -> Any:
        def set_exception(reader: Any, exc: BaseException, *args: Any, **kwargs: Any) -> None:
            entry = self.by_reader.get(id(reader))
            if entry is not None:
                self._end(entry, complete=False, error=exc)
            original(reader, exc, *args, **kwargs)

        return set_exception

    def _start(self, original: Any) -> Any:
        async def start(response: Any, connection: Any) -> Any:
            entry: _Entry | None = getattr(connection, _MARK, None)
            if entry is None or entry.interceptor is not self.interceptor or entry.headers_seen:
                return await original(response, connection)
            try:
                result = await original(response, connection)
            except BaseException as exc:
                entry.headers_seen = True
                self._end(entry, complete=False, error=exc)
                raise
            self._got_headers(entry, response)
            return result

        return start

    def _got_headers(self, entry: _Entry, response: Any) -> None:
        exchange = entry.exchange
        exchange.got_headers(
            response.status,
            [(str(k), str(v)) for k, v in response.headers.items()],
            response.reason or "",
        )
        if entry.first_arrival is not None:
            exchange.headers_offset = min(entry.first_arrival, exchange.headers_offset or 0.0)
        reader = response.content
        # aiohttp inflates gzip/deflate/br before its reader sees the bytes (unless told not
        # to); it then counts the compressed bytes, which is how we can tell.
        exchange.body_decoded = getattr(reader, "total_compressed_bytes", None) is not None
        entry.headers_seen = True
        if entry.deferred is not None:
            self._end(entry, *entry.deferred)
        elif entry.reader is None and reader.is_eof():  # no body at all (HEAD, 204, empty)
            self._end(entry, complete=True)
        else:
            self._claim_reader(entry, reader)

    def _closed_early(self, original: Any) -> Any:
        def close(response: Any, *args: Any, **kwargs: Any) -> Any:
            # First: closing makes aiohttp fail the reader, and this was the app's choice.
            entry = self.by_reader.get(id(getattr(response, "content", None)))
            if entry is not None and entry.headers_seen:
                self._end(entry, complete=False)
            return original(response, *args, **kwargs)

        return close


async def _body_bytes(req: Any) -> bytes:
    from aiohttp.payload import BytesPayload

    body = req.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, BytesPayload):  # JSON, str and bytes bodies; streams are left alone
        as_bytes = getattr(body, "as_bytes", None)  # aiohttp >= 3.12
        return await as_bytes() if as_bytes is not None else bytes(body._value)
    return b""


def _read_timeout(timeout: Any) -> float | None:
    value = getattr(timeout, "sock_read", None) or getattr(timeout, "total", None)
    return float(value) if isinstance(value, int | float) else None


# -- canned answers ---------------------------------------------------------------------
async def _canned_connection(
    connector: Any, req: Any, exchange: Exchange, canned: CannedResponse
) -> Any:
    from aiohttp import ClientConnectorError
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.connector import Connection

    loop = asyncio.get_running_loop()
    if canned.status is None and canned.fail in (None, "connect"):
        await _sleep_until(exchange, fail_delay(exchange, canned), canned.pace)
        refused = ConnectionRefusedError(111, "Connect call failed")
        raise ClientConnectorError(req.connection_key, refused)
    protocol = ResponseHandler(loop)
    transport = _CannedTransport(protocol, loop)
    protocol.connection_made(transport)
    protocol.force_close()  # never pooled: a later request must not get this connection
    transport.serve(_serve(protocol, transport, exchange, canned))
    return Connection(connector, req.connection_key, protocol, loop)


async def _serve(
    protocol: Any, transport: _CannedTransport, exchange: Exchange, canned: CannedResponse
) -> None:
    try:
        if canned.status is not None:
            await _sleep_until(exchange, canned.headers_offset, canned.pace)
            chunked, head = _head(canned)
            protocol.data_received(head)
            for offset, piece in canned.chunks:
                await _sleep_until(exchange, offset, canned.pace)
                if transport.is_closing():
                    return
                if piece:
                    protocol.data_received(
                        b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                    )
            if canned.fail is None:
                if chunked:
                    protocol.data_received(b"0\r\n\r\n")
                return
        await _sleep_until(exchange, fail_delay(exchange, canned), canned.pace)
        if transport.is_closing():
            return
        if canned.fail == "timeout":
            _read_timed_out(protocol)
        else:
            transport.lose()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug of ours must fail the request, not hang it
        transport.lose(exc)


def _head(canned: CannedResponse) -> tuple[bool, bytes]:
    """Status line and headers; the body is framed as recorded (chunked or by length).

    A canned failure mid-body announces one byte more than it sends, so aiohttp sees the
    body cut short, as it would from a server that dropped the connection.
    """
    headers = [(k, v) for k, v in canned.headers if k.lower() not in _FRAMING]
    if canned.body_decoded:  # the pieces are plain: aiohttp must not inflate them again
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
    chunked = any(
        k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in canned.headers
    )
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        length = sum(len(piece) for _, piece in canned.chunks) + (canned.fail is not None)
        headers.append(("Content-Length", str(length)))
    reason = _clean(canned.reason) or "OK"
    lines = [f"HTTP/1.1 {canned.status} {reason}"]
    lines += [f"{_clean(k)}: {_clean(v)}" for k, v in headers]
    return chunked, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _clean(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _read_timed_out(protocol: Any) -> None:
    """What aiohttp does when its socket read timeout fires."""
    on_timeout = getattr(protocol, "_on_read_timeout", None)
    if callable(on_timeout):
        on_timeout()
        return
    from aiohttp import ServerTimeoutError

    protocol.set_exception(ServerTimeoutError("Timeout on reading data from socket"))


async def _sleep_until(exchange: Exchange, offset: float, pace: float) -> None:
    delay = offset * pace - exchange.now()
    if delay > 0:
        await asyncio.sleep(delay)


class _CannedTransport(asyncio.Transport):
    """The far end of a canned connection: swallows the request, replays the answer."""

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._protocol = protocol
        self._loop = loop
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def serve(self, coro: Coroutine[Any, Any, None]) -> None:
        self._task = self._loop.create_task(coro)

    def lose(self, exc: BaseException | None = None) -> None:
        """The server side drops the connection."""
        if not self._closing:
            self._closing = True
            self._protocol.connection_lost(exc)

    # -- asyncio.Transport ---------------------------------------------------------
    def write(self, data: Any) -> None:
        pass  # the request was captured at connect

    def writelines(self, list_of_data: Any) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_reading(self) -> bool:
        return not self._closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)
