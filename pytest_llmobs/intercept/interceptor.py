"""The one place every intercepted exchange passes through.

Client patches (`httpx_clients`, `requests_client`, `aiohttp_client`, `botocore_client`)
call `begin` when a request reaches a transport, `respond` to let replay or chaos answer
instead of the network, and `finish` once the body has been read to the end, failed, or
been closed. Listeners (providers → spans, cassette recording) run on finish.

Another recorder or mock (vcrpy, respx, responses …, see foreign.py) may answer before a
request reaches our patch. Each client's public entry point (httpx's `Client.send`,
requests' `Session.send`) is therefore watched too: a request that went through it but
never reached our patch is recorded from what the client received (`observed`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context

from . import foreign
from .exchange import CannedResponse, Exchange
from .imports import PostImportHooks

# OpenTelemetry exporters (the BatchSpanProcessor, our live export) send inside this key.
_SUPPRESSED = otel_context._SUPPRESS_INSTRUMENTATION_KEY
Responder = Callable[[Exchange], CannedResponse | None]
Listener = Callable[[Exchange], None]
Unpatch = Callable[[], None]


class Interceptor:
    """Owns the client patches for one pytest session; holds no per-test state."""

    def __init__(self) -> None:
        self.responders: list[Responder] = []
        self.listeners: list[Listener] = []
        self.listener_errors: list[BaseException] = []
        # Whether an exchange is an LLM call (the capture's provider detection).
        self.recognizes: Callable[[Exchange], bool] = lambda exchange: False
        self._pending: dict[int, Exchange] = {}
        self._lock = threading.Lock()
        self._unpatches: list[Unpatch] = []
        self._imports: PostImportHooks | None = None
        # Nested sessions (pytester in-process) stack their patches on ours: while one
        # is installed on top, we pass traffic straight through and see nothing.
        self.suspended = 0
        self._nested_over: set[Interceptor] = set()
        # The exchanges begun inside the innermost `watching` block of this context.
        self._seen: ContextVar[list[Exchange] | None] = ContextVar("llmobs_seen", default=None)

    @property
    def bypassed(self) -> bool:
        """Let this request through unseen: a nested session's patches sit on top of ours,
        or it is telemetry (an exporter's own HTTP calls are neither LLM nor app traffic)."""
        return bool(self.suspended) or bool(otel_context.get_value(_SUPPRESSED))

    # -- lifecycle -------------------------------------------------------------
    def install(self) -> None:
        """Patch each HTTP client when its module is imported (now, if it already is)."""
        from . import aiohttp_client, botocore_client, httpx_clients, requests_client

        patches: list[tuple[str, Callable[[Interceptor], list[Unpatch]]]] = [
            *((name, httpx_clients.installer(name)) for name in httpx_clients.CLIENT_MODULES),
            ("requests", requests_client.install),
            ("aiohttp", aiohttp_client.install),
            ("botocore.httpsession", botocore_client.install),
        ]
        self._imports = PostImportHooks(self.listener_errors.append)
        for module, patch in patches:
            self._imports.when_imported(module, functools.partial(self._patch, patch))

    def _patch(self, patch: Callable[[Interceptor], list[Unpatch]]) -> None:
        self._unpatches.extend(patch(self))

    def uninstall(self) -> None:
        if self._imports is not None:
            self._imports.remove()
            self._imports = None
        for unpatch in reversed(self._unpatches):
            unpatch()
        self._unpatches = []
        for outer in self._nested_over:
            outer.suspended -= 1
        self._nested_over.clear()

    def wrap(self, original: Callable[..., Any], patched: Callable[..., Any]) -> Callable[..., Any]:
        """Mark `patched` as ours; if `original` belongs to another interceptor, suspend it."""
        # `functools.wraps` copies a function's __dict__, mark included: vcrpy's stubs wrap
        # whatever they find, so only a function whose code is ours counts as ours.
        outer = getattr(original, "_llmobs_interceptor", None) if foreign.ours(original) else None
        if isinstance(outer, Interceptor) and outer is not self and outer not in self._nested_over:
            self._nested_over.add(outer)
            outer.suspended += 1
        patched._llmobs_interceptor = self  # type: ignore[attr-defined]
        return patched

    # -- called by the client patches --------------------------------------------
    def begin(
        self,
        client: str,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> Exchange:
        exchange = Exchange(
            client=client,
            method=method.upper(),
            url=url,
            request_headers=headers,
            request_body=body,
            started_at=time.time(),
            t0=time.perf_counter(),
            parent_context=otel_context.get_current(),
        )
        exchange.annotations["read_timeout"] = read_timeout
        answered_by = foreign.answerer(client)
        if answered_by is not None:
            # Its cassette or mock owns the answer: ours steps aside (cassettes/session.py).
            exchange.annotations[foreign.ANSWERED_BY] = answered_by
            exchange.source = answered_by
        seen = self._seen.get()
        if seen is not None:
            seen.append(exchange)
        with self._lock:
            self._pending[id(exchange)] = exchange
        return exchange

    @contextlib.contextmanager
    def watching(self) -> Iterator[list[Exchange]]:
        """Around a client's public entry point: the exchanges our transport patches begin
        inside it. None means something above them answered, for `observed` to record."""
        seen: list[Exchange] = []
        token = self._seen.set(seen)
        try:
            yield seen
        finally:
            self._seen.reset(token)

    def observed(
        self,
        client: str,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        started: tuple[float, float],
    ) -> Exchange:
        """An exchange answered above our patches, begun after the fact (`started` is the
        (time.time(), perf_counter) pair taken when the client was called)."""
        exchange = self.begin(client, method, url, headers, body)
        exchange.started_at, exchange.t0 = started
        if foreign.ANSWERED_BY not in exchange.annotations:  # a patch we do not know
            exchange.annotations[foreign.ANSWERED_BY] = foreign.UNKNOWN
            exchange.source = foreign.UNKNOWN
        return exchange

    def respond(self, exchange: Exchange) -> CannedResponse | None:
        """First responder that answers wins; none answering means: go to the network."""
        for responder in self.responders:
            canned = responder(exchange)
            if canned is not None:
                exchange.source = canned.source
                exchange.body_decoded = canned.body_decoded
                exchange.annotations.update(canned.annotations)
                exchange.recorded_chunk_offsets = [offset for offset, _ in canned.chunks]
                exchange.recorded_duration_s = canned.duration_s
                return canned
        return None

    def finish(
        self, exchange: Exchange, *, complete: bool = False, error: BaseException | None = None
    ) -> None:
        if not exchange.claim_finish():
            return
        exchange.complete = complete and error is None
        if error is not None:
            exchange.error = error
        with self._lock:
            self._pending.pop(id(exchange), None)
        for listener in self.listeners:
            try:
                listener(exchange)
            except Exception as exc:  # a bug of ours must never break the app's HTTP call
                self.listener_errors.append(exc)

    def flush(self) -> None:
        """Finish exchanges whose body nobody read to the end or closed (leaked responses)."""
        with self._lock:
            pending = list(self._pending.values())
        for exchange in pending:
            self.finish(exchange, complete=False)


def wait_until(
    exchange: Exchange, offset: float, pace: float, sleep: Callable[[float], Any]
) -> None:
    """Sleep until `offset * pace` seconds after the request started (sync transports)."""
    delay = offset * pace - exchange.now()
    if delay > 0:
        sleep(delay)


def fail_delay(exchange: Exchange, canned: CannedResponse) -> float:
    """When a canned failure strikes: its own offset; a timeout waits for the client's
    read timeout (capped by its offset), so a client without one is visibly stuck."""
    read_timeout = exchange.annotations.get("read_timeout")
    delay = canned.fail_offset or 0.0
    if canned.fail == "timeout" and read_timeout is not None:
        # A read timeout runs from the last byte received (a stall mid-body), not the request.
        last = canned.chunks[-1][0] if canned.chunks and canned.status is not None else 0.0
        fires = last + read_timeout
        delay = min(delay, fires) if canned.fail_offset is not None else fires
    return delay
