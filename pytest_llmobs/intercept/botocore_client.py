"""Patch for `botocore` (boto3), which sends through urllib3 directly, not through requests.

`URLLib3Session.send` is one HTTP attempt: botocore's retries call it again, so each
retry is an exchange of its own. It hands back an `AWSResponse` whose `raw` (the urllib3
response) is what botocore reads: `raw.stream()` for event streams, `raw.read()` for
streaming blobs, and `content` (which drains `raw.stream()`) for everything else. We ask
the original for an unread body, wrap `raw` so each piece is timestamped as botocore takes
it (nothing is buffered), then drain it ourselves when botocore would have.

An LLM answer that botocore hands the app unread (InvokeModel's `body`, a StreamingBody
over `raw`) is read ahead right away, on the app's behalf, and the app reads the same bytes
from memory: an app that never reads it still gets its call recorded and parsed with the
body. Only whole bodies of requests the providers recognise are read ahead; event streams
and other services' blobs (S3 objects) are left to the app.

Canned responses get a `raw` of our own that serves the recorded pieces on their schedule,
one piece per `stream()` step, and fails the way urllib3 does (so botocore maps the error
exactly as it would a real one).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .exchange import CannedResponse, Exchange
from .interceptor import Interceptor, Unpatch, fail_delay, wait_until

CLIENT = "botocore"


def install(interceptor: Interceptor) -> list[Unpatch]:
    try:
        from botocore.httpsession import URLLib3Session
    except ImportError:
        return []
    original = URLLib3Session.send

    def send(session: Any, request: Any) -> Any:
        if interceptor.bypassed:
            return original(session, request)
        exchange = interceptor.begin(
            CLIENT,
            request.method or "GET",
            request.url or "",
            _headers(request.headers),
            _body_bytes(request.body),
            read_timeout=_read_timeout(session),
        )
        canned = interceptor.respond(exchange)
        if canned is not None:
            response = _canned_response(interceptor, exchange, request, canned)
        else:
            response = _live_response(interceptor, exchange, original, session, request)
        if not request.stream_output:
            _drain(response, request)
        elif _reads_ahead(interceptor, exchange):
            response.raw = _read_ahead(response.raw)
        return response

    URLLib3Session.send = interceptor.wrap(original, send)

    def unpatch() -> None:
        URLLib3Session.send = original

    return [unpatch]


def _live_response(
    interceptor: Interceptor, exchange: Exchange, original: Any, session: Any, request: Any
) -> Any:
    # Ask for an unread body even when botocore wants it read: we read it through our
    # wrapper right after, so the pieces keep their arrival times.
    wanted = request.stream_output
    request.stream_output = True
    try:
        response = original(session, request)
    except BaseException as exc:
        interceptor.finish(exchange, error=exc)
        raise
    finally:
        request.stream_output = wanted
    raw = response.raw
    exchange.got_headers(
        response.status_code, list(raw.headers.items()), getattr(raw, "reason", "") or ""
    )
    response.raw = TimedRaw(raw, exchange, interceptor)
    return response


def _canned_response(
    interceptor: Interceptor, exchange: Exchange, request: Any, canned: CannedResponse
) -> Any:
    from botocore.awsrequest import AWSResponse

    if canned.status is None:  # failure before any response headers
        wait_until(exchange, fail_delay(exchange, canned), canned.pace, time.sleep)
        error = _send_error(canned.fail or "connect", request)
        interceptor.finish(exchange, error=error)
        raise error
    wait_until(exchange, canned.headers_offset, canned.pace, time.sleep)
    exchange.got_headers(canned.status, list(canned.headers), canned.reason)
    raw = TimedRaw(CannedBody(exchange, canned), exchange, interceptor)
    return AWSResponse(request.url, canned.status, _header_dict(canned.headers), raw)


def _drain(response: Any, request: Any) -> None:
    """Read the whole body as `URLLib3Session.send` does, mapping urllib3's errors the same."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

    try:
        response.content  # noqa: B018 - the property reads and caches the body
    except URLLib3ReadTimeoutError as exc:
        raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
    except ProtocolError as exc:
        raise ConnectionClosedError(error=exc, request=request, endpoint_url=request.url) from exc


def _reads_ahead(interceptor: Interceptor, exchange: Exchange) -> bool:
    """A whole (not event-stream) answer to an LLM request the app reads itself."""
    status = exchange.status_code
    content_type = (exchange.response_header("content-type") or "").lower()
    return (
        status is not None
        and "eventstream" not in content_type
        and interceptor.recognizes(exchange)
    )


def _read_ahead(raw: Any) -> ReadAhead:
    """Read `raw` to the end now (timestamped, finishing the exchange); the app gets a copy,
    or the read's error when it reads, as it would have."""
    try:
        return ReadAhead(raw, raw.read())
    except Exception as exc:  # urllib3's own errors: botocore maps them when the app reads
        return ReadAhead(raw, b"", exc)


def _send_error(kind: str, request: Any) -> BaseException:
    from botocore.exceptions import (
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    url = request.url
    if kind == "timeout":
        return ReadTimeoutError(endpoint_url=url, error="Read timed out.")  # type: ignore[no-any-return]
    if kind == "reset":
        return ConnectionClosedError(  # type: ignore[no-any-return]
            error="Connection reset by peer", request=request, endpoint_url=url
        )
    return EndpointConnectionError(  # type: ignore[no-any-return]
        endpoint_url=url, error="[Errno 111] Connection refused"
    )


def _headers(headers: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        pairs.append((str(key), str(value)))
    return pairs


def _header_dict(headers: list[tuple[str, str]]) -> Any:
    from urllib3 import HTTPHeaderDict

    return HTTPHeaderDict(headers)


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return b""  # None, or a file being uploaded (S3): no LLM request body


def _read_timeout(session: Any) -> float | None:
    timeout = getattr(session, "_timeout", None)
    read = getattr(timeout, "read_timeout", timeout)
    return float(read) if isinstance(read, int | float) else None


class TimedRaw:
    """Stands in for the urllib3 response botocore reads: timestamps each piece taken.
    (requests_client uses it too, for a body that is not urllib3's.)"""

    def __init__(
        self,
        inner: Any,
        exchange: Exchange,
        interceptor: Interceptor,
        at_eof: Callable[[Any], bool] | None = None,
    ) -> None:
        self._inner = inner
        self._exchange = exchange
        self._interceptor = interceptor
        self._at_eof = at_eof or _at_eof

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        try:
            for chunk in self._inner.stream(amt, decode_content=decode_content):
                self._exchange.got_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._interceptor.finish(self._exchange, error=exc)
            raise
        self._interceptor.finish(self._exchange, complete=True)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        return self._took(lambda: self._inner.read(amt, *args, **kwargs), amt)

    def read1(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        return self._took(lambda: self._inner.read1(amt, *args, **kwargs), amt)

    def readinto(self, buffer: Any) -> int:
        return _read_into(self.read, buffer)

    def readlines(self) -> list[bytes]:
        return self.read().splitlines(keepends=True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._interceptor.finish(self._exchange)

    def _took(self, reader: Any, amt: int | None) -> bytes:
        try:
            data: bytes = reader()
        except BaseException as exc:
            self._interceptor.finish(self._exchange, error=exc)
            raise
        self._exchange.got_chunk(data)
        if amt is None or not data or self._at_eof(self._inner):
            self._interceptor.finish(self._exchange, complete=True)
        return data


def _at_eof(raw: Any) -> bool:
    if isinstance(raw, CannedBody):
        return raw.at_eof
    from urllib3.util.response import is_fp_closed

    fp = getattr(raw, "_fp", None)
    buffered = getattr(raw, "_decoded_buffer", b"")
    return fp is None or (is_fp_closed(fp) and len(buffered) == 0)


def _read_into(read: Callable[[int], bytes], buffer: Any) -> int:
    view = memoryview(buffer)
    data = read(len(view))
    view[: len(data)] = data
    return len(data)


class _BodyFile:
    """What the bodies we hand botocore share: `readinto` over their own `read`, and the
    file-like answers urllib3's callers ask for."""

    _position = 0

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        return _read_into(self.read, buffer)

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def release_conn(self) -> None:
        pass


class CannedBody(_BodyFile):
    """A urllib3-response-like body for canned answers: recorded pieces on their schedule,
    then urllib3's own errors for a canned failure."""

    def __init__(self, exchange: Exchange, canned: CannedResponse) -> None:
        self._exchange = exchange
        self._canned = canned
        self._pieces = deque(canned.chunks)
        self._buffer = b""
        self._position = 0
        self.closed = False
        self.headers = _header_dict(list(canned.headers))
        self.status = canned.status
        self.reason = canned.reason

    @property
    def at_eof(self) -> bool:
        return not self._buffer and not self._pieces and self._canned.fail is None

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        while True:
            piece = self._next_piece()
            if not piece:
                return
            yield piece

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        if amt is None or amt < 0:
            data = b"".join(iter(self._next_piece, b""))
        else:
            if not self._buffer:
                self._buffer = self._next_piece()
            data, self._buffer = self._buffer[:amt], self._buffer[amt:]
        self._position += len(data)
        return data

    read1 = read

    def _next_piece(self) -> bytes:
        if self._buffer:
            piece, self._buffer = self._buffer, b""
            return piece
        if self._pieces:
            offset, piece = self._pieces.popleft()
            wait_until(self._exchange, offset, self._canned.pace, time.sleep)
            return piece
        self._fail()
        return b""

    def _fail(self) -> None:
        canned = self._canned
        if canned.fail is None or self.closed:
            return
        self.closed = True
        wait_until(self._exchange, fail_delay(self._exchange, canned), canned.pace, time.sleep)
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        if canned.fail == "timeout":
            raise ReadTimeoutError(None, self._exchange.url, "Read timed out.")  # type: ignore[arg-type]
        raise ProtocolError("Connection broken: IncompleteRead(0 bytes read)")

    def close(self) -> None:
        self.closed = True


class ReadAhead(_BodyFile):
    """The urllib3-response-like body botocore's StreamingBody reads after `_read_ahead`:
    the bytes already read, then the error the read ended with, if any."""

    def __init__(self, inner: Any, data: bytes, error: BaseException | None = None) -> None:
        self._inner = inner
        self._data = data
        self._position = 0
        self._error = error
        self.closed = False

    def __getattr__(self, name: str) -> Any:  # headers, status, reason …
        return getattr(self._inner, name)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        start = self._position
        end = len(self._data) if amt is None or amt < 0 else min(start + amt, len(self._data))
        if start == end and self._error is not None and (amt is None or amt > 0):
            error, self._error = self._error, None
            raise error
        self._position = end
        return self._data[start:end]

    read1 = read

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        while piece := self.read(amt):
            yield piece

    def close(self) -> None:
        self.closed = True
        self._inner.close()
