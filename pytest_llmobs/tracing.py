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
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
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
    def __init__(self, sink: Callable[[ReadableSpan], None], capture_content: bool = False) -> None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(resource=Resource.create({"service.name": "pytest"}))
            trace.set_tracer_provider(provider)
            # A provider set earlier in this process wins; use whichever is global now.
            global_provider = trace.get_tracer_provider()
            if isinstance(global_provider, TracerProvider):
                provider = global_provider
        self.provider: TracerProvider = provider
        self._router = _Router(sink)
        provider.add_span_processor(self._router)
        self.tracer = provider.get_tracer(SCOPE)
        self.capture_content = capture_content

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
        span = self.tracer.start_span(
            span_name(call),
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=span_attributes(call, self.capture_content),
            start_time=start_ns,
        )
        if call.error_type:
            span.set_status(Status(StatusCode.ERROR, call.error or call.error_type))
        span.end(end_time=end_ns)
        return span.get_span_context()


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
    return body.get("messages") or body.get("input")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
