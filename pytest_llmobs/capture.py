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
from dataclasses import replace

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_span_id, format_trace_id

from .calls import LLMCall
from .context import stamp_context
from .evaluations import Evaluation
from .intercept.exchange import Exchange
from .intercept.interceptor import Interceptor
from .providers import ProviderRegistry, Route
from .tracing import Tracing


class TestCapture:
    """Everything one test produced: its LLM calls and every finished span.

    The call path only queues each finished exchange; it becomes an `LLMCall` and a GenAI
    span when `calls` or `spans` is first read after it (at the latest when the test's
    report is made). So a captured call adds a list append to the app's latency, not the
    parsing and span building, and the figures are the same whenever they are read. (When
    other span processors listen for the GenAI spans, each call is analysed as it ends:
    see `Capture`.)
    """

    def __init__(self, nodeid: str, settle: Callable[[TestCapture], None]) -> None:
        self.nodeid = nodeid
        self.pending: list[Exchange] = []  # finished, not analysed yet (guarded by Capture)
        self.attempts: Counter[tuple[str, bytes]] = Counter()
        self.settling = threading.RLock()  # one reader analyses at a time: calls stay in order
        self._calls: list[LLMCall] = []
        self._spans: list[ReadableSpan] = []
        self.evaluations: list[Evaluation] = []  # llmobs.evaluate (evaluations.py)
        self._settle = settle

    @property
    def calls(self) -> list[LLMCall]:
        self.settle()
        return self._calls

    @property
    def spans(self) -> list[ReadableSpan]:
        self.settle()
        return self._spans

    def settle(self) -> None:
        if self.pending:
            self._settle(self)

    def __repr__(self) -> str:
        return f"TestCapture({self.nodeid!r}, {len(self._calls)} calls, {len(self._spans)} spans)"


OUTSIDE = "(outside tests)"  # the node id of the bucket for calls made while no test runs


class Capture:
    """Session-wide: owns the client patches and the tracer, feeds the active `TestCapture`."""

    def __init__(self, routes: list[Route], capture_content: bool = False) -> None:
        self.registry = ProviderRegistry(routes)
        self.interceptor = Interceptor()
        self.interceptor.listeners.append(self._on_exchange)
        self.interceptor.recognizes = self.registry.recognizes
        self.tracing = Tracing(self._on_span, capture_content=capture_content)
        # (test id, span) for each span captured: the live export (export.py) listens here
        self.span_listeners: list[Callable[[str, ReadableSpan], None]] = []
        self._active: TestCapture | None = None
        self._outside = TestCapture(OUTSIDE, self._settle)
        self._lock = threading.Lock()
        # The test whose pending exchanges this thread is analysing: its spans go there.
        self._settling_for = threading.local()

    def install(self) -> None:
        self.interceptor.install()
        self.tracing.install()

    def shutdown(self) -> None:
        self.interceptor.uninstall()
        self.tracing.shutdown()

    def start_test(self, nodeid: str) -> TestCapture:
        with self._lock:
            self._active = TestCapture(nodeid, self._settle)
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
            taken, self._outside = self._outside, TestCapture(OUTSIDE, self._settle)
        return taken if taken.calls or taken.spans else None

    def _on_exchange(self, exchange: Exchange) -> None:
        """On the call path: only note whose exchange it is (see TestCapture), unless other
        span processors listen for the GenAI spans: they get each one right away."""
        with self._lock:
            target = self._active or self._outside
            target.pending.append(exchange)
        if self.tracing.shared:
            target.settle()

    def _settle(self, target: TestCapture) -> None:
        with target.settling:
            with self._lock:
                pending, target.pending = target.pending, []
            self._settling_for.target = target
            try:
                for exchange in pending:
                    try:
                        self._analyse(target, exchange)
                    except Exception as exc:  # a bug of ours must not fail the app's test
                        self.interceptor.listener_errors.append(exc)
            finally:
                self._settling_for.target = None

    def _analyse(self, target: TestCapture, exchange: Exchange) -> None:
        call = self.registry.parse(exchange)
        if call is None:
            return
        stamp_context(call, exchange.parent_context)
        call = _count_attempt(target, call, exchange)
        target._calls.append(call)
        span = self.tracing.emit(
            call, exchange.parent_context, exchange.request_header("traceparent")
        )
        call.attributes.setdefault("llmobs.trace_id", format_trace_id(span.trace_id))
        call.attributes.setdefault("llmobs.span_id", format_span_id(span.span_id))

    def _on_span(self, span: ReadableSpan) -> None:
        if self.interceptor.suspended:  # a nested session is running; its spans are its own
            return
        target = getattr(self._settling_for, "target", None)
        with self._lock:
            target = target or self._active or self._outside
            target._spans.append(span)
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
