"""OpenTelemetry side: one GenAI CLIENT span per `LLMCall`, and every finished span routed to
whoever listens (the per-test capture).

If the app already installed an SDK `TracerProvider` we add our processor to it; otherwise
we install one, so the app's own `trace.get_tracer(...)` spans are real and captured too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .calls import LLMCall
from .context import baggage_attributes

SCOPE = "pytest_llmobs"


class _Router(SpanProcessor):
    """Hands each finished span to `sink` while enabled.

    SDK providers have no way to remove a processor, so on shutdown we only disable it.
    """

    def __init__(self, sink: Callable[[ReadableSpan], None]) -> None:
        self.sink: Callable[[ReadableSpan], None] | None = sink

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # Baggage (llmobs.context / user_action / the app's own) → attributes the span lacks.
        if self.sink is not None:
            own = span.attributes or {}
            for key, value in baggage_attributes(parent_context).items():
                if key not in own:
                    span.set_attribute(key, value)

    def on_end(self, span: ReadableSpan) -> None:
        if self.sink is not None:
            self.sink(span)

    def shutdown(self) -> None:
        self.sink = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Tracing:
    def __init__(
        self,
        sink: Callable[[ReadableSpan], None],
        capture_content: bool = False,
        provider: TracerProvider | None = None,  # default: the global one (installed if need be)
    ) -> None:
        if provider is None:
            provider = _global_provider()
        self.provider: TracerProvider = provider
        self._router = _Router(sink)
        provider.add_span_processor(self._router)
        self.tracer = provider.get_tracer(SCOPE)
        self.capture_content = capture_content
        # What `_emit_finished` must reproduce. Without these SDK internals, or with an
        # attribute value length limit set (`OTEL_*ATTRIBUTE_VALUE_LENGTH_LIMIT`: only the
        # SDK cuts values), every span takes the SDK's own path.
        self._scope: InstrumentationScope | None = getattr(
            self.tracer, "_instrumentation_scope", None
        )
        limits = getattr(self.tracer, "_span_limits", None)
        if not isinstance(limits, SpanLimits):
            limits = None
        self._direct = (
            self._scope is not None
            and limits is not None
            and limits.max_span_attribute_length is None
        )
        self._max_attributes = limits.max_span_attributes if limits is not None else None

    def shutdown(self) -> None:
        self._router.shutdown()

    @property
    def shared(self) -> bool:
        """Whether span processors other than ours listen on the provider (the app's own
        exporter, say): they must see each GenAI span when its call ends, as they would
        with any instrumentation. The SDK has no public way to list them; if its insides
        ever change, answer yes (spans then come out at once, as before)."""
        multi = getattr(self.provider, "_active_span_processor", None)
        processors = getattr(multi, "_span_processors", None)
        if not isinstance(processors, tuple):
            return True
        return any(p is not self._router for p in processors)

    def emit(
        self, call: LLMCall, parent: Context | None, traceparent: str | None = None
    ) -> SpanContext:
        """Write the span for a finished call, back-dated to when the request started."""
        if traceparent:  # e.g. anthropic's own call span, injected into the request headers
            carried = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
            if trace.get_current_span(carried).get_span_context().is_valid:
                parent = carried
        start_ns = int(call.started_at * 1e9)
        end_ns = start_ns + int((call.duration_s or 0.0) * 1e9)
        name, attributes = span_name(call), span_attributes(call, self.capture_content)
        status = (
            Status(StatusCode.ERROR, call.error or call.error_type) if call.error_type else None
        )
        if self._direct and not self.shared and _plain(attributes):
            done = self._emit_finished(name, parent, attributes, status, start_ns, end_ns)
            if done is not None:
                return done
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        if status is not None:
            span.set_status(status)
        span.end(end_time=end_ns)
        return span.get_span_context()

    def _emit_finished(
        self,
        name: str,
        parent: Context | None,
        attributes: dict[str, Any],
        status: Status | None,
        start_ns: int,
        end_ns: int,
    ) -> SpanContext | None:
        """Only our processor listens: hand it the finished span the SDK would build (same
        ids, sampling, resource, scope, baggage attributes), without the SDK's per-attribute
        validation and processor fan-out, which are most of the time a span takes.
        `emit` only comes here with attributes that need no validation; None (nothing done)
        when they would exceed the SDK's attribute count limit."""
        found = trace.get_current_span(parent).get_span_context()
        parent_context = found if found.is_valid else None
        ids = self.provider.id_generator
        # the random-trace-id flag is newer than some SDKs we support: no flag where absent
        if parent_context is not None:
            trace_id = parent_context.trace_id
            random_id = getattr(parent_context.trace_flags, "random_trace_id", False)
        else:
            trace_id = ids.generate_trace_id()
            random_id = getattr(ids, "is_trace_id_random", bool)()
        sampling = self.provider.sampler.should_sample(
            parent, trace_id, name, SpanKind.CLIENT, attributes
        )
        sampled = sampling.decision is Decision.RECORD_AND_SAMPLE
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_id:
            flags |= getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
        context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=sampling.trace_state,
        )
        if sampling.decision is Decision.DROP:  # not recording: nobody sees a span
            return context
        final = dict(sampling.attributes or {})
        for key, value in baggage_attributes(parent).items():  # as _Router.on_start does
            final.setdefault(key, value)
        if self._max_attributes is not None and len(final) > self._max_attributes:
            return None
        self._router.on_end(
            ReadableSpan(
                name,
                context=context,
                parent=parent_context,
                resource=self.provider.resource,
                attributes={k: tuple(v) if isinstance(v, list) else v for k, v in final.items()},
                kind=SpanKind.CLIENT,
                status=status or Status(StatusCode.UNSET),
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        )
        return context


def _global_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "pytest"}))
        trace.set_tracer_provider(provider)
        # A provider set earlier in this process wins; use whichever is global now.
        global_provider = trace.get_tracer_provider()
        if isinstance(global_provider, TracerProvider):
            provider = global_provider
    return provider


_SIMPLE = frozenset({str, bool, int, float})


def _plain(attributes: dict[str, Any]) -> bool:
    """Every value is one the SDK would keep as it is: a str, bool, int or float, or a
    list of values of one of those types (kept as a tuple)."""
    for value in attributes.values():
        kind = type(value)
        if kind is list:
            if value and (
                type(value[0]) not in _SIMPLE or any(type(v) is not type(value[0]) for v in value)
            ):
                return False
        elif kind not in _SIMPLE:
            return False
    return True


def span_name(call: LLMCall) -> str:
    return f"{call.operation} {call.request_model}" if call.request_model else call.operation


def span_attributes(call: LLMCall, capture_content: bool = False) -> dict[str, Any]:
    """GenAI semantic-convention attributes; `None`s left out (OTel rejects them)."""
    usage = call.usage
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": call.operation,
        "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.request_model,
        "gen_ai.request.max_tokens": call.max_tokens,
        "gen_ai.request.temperature": call.temperature,
        "gen_ai.request.stream": call.stream,
        "gen_ai.response.model": call.response_model,
        "gen_ai.response.id": call.response_id,
        "gen_ai.response.finish_reasons": list(call.finish_reasons) or None,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_creation_input_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
        "gen_ai.response.time_to_first_chunk": call.time_to_first_chunk_s if call.stream else None,
        "server.address": call.server_address,
        "server.port": call.server_port,
        "http.response.status_code": call.status_code,
        "error.type": call.error_type,
        "llmobs.attempt": call.attempt,
        "llmobs.source": call.source,
        "llmobs.truncated": call.truncated,
        "llmobs.truncation_reason": call.truncation_reason,
        "llmobs.recorded.duration_s": call.recorded_duration_s,
        "llmobs.recorded.time_to_first_chunk_s": call.recorded_time_to_first_chunk_s,
    }
    if capture_content:
        attrs["gen_ai.input.messages"] = _json(_input_messages(call.request_body))
        attrs["gen_ai.output.messages"] = _json(
            [{"role": "assistant", "parts": [{"type": "text", "content": call.output_text}]}]
            if call.output_text is not None
            else None
        )
    for key, value in call.attributes.items():
        attrs.setdefault(key, value)
    return {k: v for k, v in attrs.items() if v is not None}


def _input_messages(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    found = body.get("messages") or body.get("input")
    prompt = body.get("prompt")  # legacy completions, Ollama generate: text, not messages
    if found or not isinstance(prompt, str | list):
        return found
    texts = [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]
    parts = [{"type": "text", "content": text} for text in texts]
    return [{"role": "user", "parts": parts}] if parts else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
