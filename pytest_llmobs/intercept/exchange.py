"""What the transports saw: one HTTP exchange, byte for byte, with arrival times."""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from opentelemetry.context import Context

# "live", "replay", "chaos", or the library that answered instead (foreign.py: "vcrpy" …)
Source = str


@dataclass
class Exchange:
    """One request handed to a transport and everything that came back.

    Offsets are seconds since `t0` (a `perf_counter` reading taken when the request
    reached the transport). `chunks` are the body pieces in the order and grouping the
    client received them; `body_decoded` says whether they are already free of any
    content-encoding (urllib3 decodes before we see them, httpx transports do not).
    """

    client: str
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    started_at: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    parent_context: Context | None = None
    status_code: int | None = None
    reason: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    headers_offset: float | None = None
    chunks: list[bytes] = field(default_factory=list)
    chunk_offsets: list[float] = field(default_factory=list)
    end_offset: float | None = None
    error: BaseException | None = None
    complete: bool = False
    body_decoded: bool = False
    source: Source = "live"
    recorded_duration_s: float | None = None
    recorded_chunk_offsets: list[float] | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    _finished: bool = False
    _response_header_map: dict[str, str] | None = field(default=None, repr=False)
    _indexed_headers: list[tuple[str, str]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- filled by the transports -------------------------------------------------
    def now(self) -> float:
        return time.perf_counter() - self.t0

    def got_headers(self, status: int, headers: list[tuple[str, str]], reason: str = "") -> None:
        self.status_code = status
        self.reason = reason
        self.response_headers = headers
        self.headers_offset = self.now()

    def got_chunk(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self.chunk_offsets.append(self.now())

    def claim_finish(self) -> bool:
        """True exactly once: the first caller finishes the exchange."""
        with self._lock:
            if self._finished:
                return False
            self._finished = True
            self.end_offset = self.now()
            return True

    # -- read by providers and cassettes -------------------------------------------
    def request_header(self, name: str) -> str | None:
        return self._request_header_map.get(name.lower())

    def response_header(self, name: str) -> str | None:
        # Headers arrive after the exchange is created: index them once they are complete.
        if self._response_header_map is None or self._indexed_headers is not self.response_headers:
            self._indexed_headers = self.response_headers
            self._response_header_map = {}
            for key, value in self.response_headers:
                self._response_header_map.setdefault(key.lower(), value)
        return self._response_header_map.get(name.lower())

    @cached_property
    def _request_header_map(self) -> dict[str, str]:
        # First value wins, as with a linear scan; parsing asks for several headers.
        headers: dict[str, str] = {}
        for key, value in self.request_headers:
            headers.setdefault(key.lower(), value)
        return headers

    @cached_property
    def _url_parts(self) -> SplitResult:
        return urlsplit(self.url)

    # hostname and port are recomputed by urlsplit's result on every access: parse once
    @cached_property
    def host(self) -> str:
        return self._url_parts.hostname or ""

    @cached_property
    def port(self) -> int | None:  # raises ValueError for a malformed port, like urlsplit
        parts = self._url_parts
        if parts.port:
            return parts.port
        return {"https": 443, "http": 80}.get(parts.scheme)

    @property
    def path(self) -> str:
        return self._url_parts.path

    @property
    def raw_body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def response_body(self) -> bytes:
        """The body with any content-encoding undone (best effort: raw bytes on failure)."""
        raw = self.raw_body
        if self.body_decoded:
            return raw
        return decode_content(raw, self.response_header("content-encoding"))

    @property
    def duration_s(self) -> float | None:
        return self.end_offset

    @property
    def time_to_first_chunk_s(self) -> float | None:
        return self.chunk_offsets[0] if self.chunk_offsets else None


def decode_content(raw: bytes, encoding: str | None) -> bytes:
    """Undo gzip/deflate/br/zstd content-encoding; unknown or broken data comes back as is."""
    if not raw or not encoding:
        return raw
    data = raw
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        try:
            if enc in ("gzip", "x-gzip"):
                data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
            elif enc == "deflate":
                try:
                    data = zlib.decompress(data)
                except zlib.error:
                    data = zlib.decompress(data, -zlib.MAX_WBITS)
            elif enc == "br":
                import brotli  # type: ignore[import-not-found,unused-ignore]

                data = brotli.decompress(data)
            elif enc == "zstd":
                import zstandard  # type: ignore[import-not-found,unused-ignore]

                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            elif enc != "identity":
                return raw
        except Exception:
            return raw
    return data


@dataclass
class CannedResponse:
    """A response served without the network (replay, chaos).

    `chunks` are (offset_s, bytes) pairs: offset is when the piece arrived in the
    recording, measured from the request. `pace` scales those offsets: 0 serves at once,
    1.0 reproduces the recording. `fail` makes the transport raise the client's own
    error after the chunks: "timeout" (read timeout), "reset" (connection closed
    mid-body), or before any headers when `status` is None ("connect", "timeout").
    """

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    reason: str = ""
    headers_offset: float = 0.0
    pace: float = 0.0
    fail: Literal["timeout", "reset", "connect"] | None = None
    fail_offset: float | None = None
    source: Source = "replay"
    body_decoded: bool = True
    duration_s: float | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
