"""Routes what the transports and the tracer see to the test that is running.

pytest runs one test at a time per process (xdist uses processes), so "the running test"
is well defined even for calls made from threads or tasks the test started, or from
module- and session-scoped fixtures while it is being set up or torn down. Whatever
arrives while no test runs (calls at collection, in session hooks, responses that
finish after their test ended) goes to the `outside` bucket, so it is counted too.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_span_id, format_trace_id

from .calls import LLMCall
from .context import stamp_context
from .intercept.exchange import Exchange
from .intercept.interceptor import Interceptor
from .providers import ProviderRegistry, Route
from .tracing import Tracing


@dataclass
class TestCapture:
    """Everything one test produced: its LLM calls and every finished span."""

    nodeid: str
    calls: list[LLMCall] = field(default_factory=list)
    spans: list[ReadableSpan] = field(default_factory=list)
    attempts: Counter[tuple[str, bytes]] = field(default_factory=Counter, repr=False)


OUTSIDE = "(outside tests)"  # the node id of the bucket for calls made while no test runs


class Capture:
    """Session-wide: owns the client patches and the tracer, feeds the active `TestCapture`."""

    def __init__(self, routes: list[Route], capture_content: bool = False) -> None:
        self.registry = ProviderRegistry(routes)
        self.interceptor = Interceptor()
        self.interceptor.listeners.append(self._on_exchange)
        self.tracing = Tracing(self._on_span, capture_content=capture_content)
        # (test id, span) for each span captured: the live export (export.py) listens here
        self.span_listeners: list[Callable[[str, ReadableSpan], None]] = []
        self._active: TestCapture | None = None
        self._outside = TestCapture(OUTSIDE)
        self._lock = threading.Lock()

    def install(self) -> None:
        self.interceptor.install()

    def shutdown(self) -> None:
        self.interceptor.uninstall()
        self.tracing.shutdown()

    def start_test(self, nodeid: str) -> TestCapture:
        with self._lock:
            self._active = TestCapture(nodeid)
            return self._active

    def end_test(self) -> TestCapture | None:
        self.interceptor.flush()
        with self._lock:
            finished, self._active = self._active, None
        return finished

    @property
    def active(self) -> TestCapture | None:
        return self._active

    def take_outside(self) -> TestCapture | None:
        """The calls and spans seen while no test ran since the last take (None if none)."""
        with self._lock:
            taken, self._outside = self._outside, TestCapture(OUTSIDE)
        return taken if taken.calls or taken.spans else None

    def _on_exchange(self, exchange: Exchange) -> None:
        call = self.registry.parse(exchange)
        if call is None:
            return
        stamp_context(call, exchange.parent_context)
        with self._lock:
            target = self._active or self._outside
            call = _count_attempt(target, call, exchange)
            target.calls.append(call)
        span = self.tracing.emit(
            call, exchange.parent_context, exchange.request_header("traceparent")
        )
        call.attributes.setdefault("llmobs.trace_id", format_trace_id(span.trace_id))
        call.attributes.setdefault("llmobs.span_id", format_span_id(span.span_id))

    def _on_span(self, span: ReadableSpan) -> None:
        if self.interceptor.suspended:  # a nested session is running; its spans are its own
            return
        with self._lock:
            target = self._active or self._outside
            target.spans.append(span)
        for listener in self.span_listeners:
            listener(target.nodeid, span)


def _count_attempt(target: TestCapture, call: LLMCall, exchange: Exchange) -> LLMCall:
    """SDKs without an attempt header: the nth identical request in a test is attempt n."""
    key = (exchange.url, exchange.request_body)
    seen = target.attempts[key]
    target.attempts[key] += 1
    if seen and not any(exchange.request_header(name) for name in _ATTEMPT_HEADERS):
        return replace(call, attempt=seen)
    return call


# SDKs that number their own attempts: openai/anthropic (stainless), botocore.
_ATTEMPT_HEADERS = ("x-stainless-retry-count", "amz-sdk-request")
