"""OpenTelemetry side: one GenAI CLIENT span per `LLMCall`, and every finished span routed to
whoever listens (the per-test capture).

The GenAI spans come from the plugin's own SDK `TracerProvider`, never installed globally:
the global slot stays the app's (see app_provider.py). The app's spans are captured from
whichever provider the app sets, whenever it does, by a processor that leaves them as the
app's exporters see them; until it sets one, its `trace.get_tracer(...)` spans come from
the plugin's provider. Context is global, so a GenAI span is the child of the app's span
whichever provider made each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    Span,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .app_provider import AppProviders
from .calls import LLMCall
from .context import baggage_attributes

SCOPE = "pytest_llmobs"


def standard_resource(default_service: str) -> Resource:
    """The resource the SDK builds from the environment (`OTEL_SERVICE_NAME`,
    `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`), with
    `default_service` as `service.name` only when none of them names a service."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": default_service}))
    return resource


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


class _Listener(_Router):
    """On the app's provider: hands each finished span to `sink` as the app made it. The
    baggage attributes go on the captured copy only, so the app's exporters get the very
    spans they would get without the plugin."""

    def __init__(self, sink: Callable[[ReadableSpan], None]) -> None:
        super().__init__(sink)
        # by span id: the SDK ends a span by handing out a snapshot, not the span started
        self._baggage: dict[int, dict[str, str]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.sink is not None and (found := baggage_attributes(parent_context)):
            self._baggage[span.get_span_context().span_id] = found

    def on_end(self, span: ReadableSpan) -> None:
        sink = self.sink
        if sink is None:
            return
        found = self._baggage.pop(span.context.span_id, None) if span.context else None
        sink(span_with(span, attributes={**found, **(span.attributes or {})}) if found else span)

    def shutdown(self) -> None:
        super().shutdown()
        self._baggage.clear()


def span_with(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, Any] | None = None,
    resource: Resource | None = None,
    events: Sequence[Event] | None = None,
) -> ReadableSpan:
    """A copy of a finished span with other attributes, resource or events (a finished
    span cannot be changed)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource if resource is None else resource,
        attributes=span.attributes if attributes is None else attributes,
        events=span.events if events is None else events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class Tracing:
    def __init__(
        self,
        sink: Callable[[ReadableSpan], None],
        capture_content: bool = False,
        provider: TracerProvider | None = None,  # default: the plugin's own
    ) -> None:
        if provider is None:
            # not the app's: its exporters get its own spans, as without the plugin
            provider = TracerProvider(resource=standard_resource("pytest"), shutdown_on_exit=False)
        self.provider: TracerProvider = provider
        self.sink = sink
        self._router = _Router(sink)
        provider.add_span_processor(self._router)
        self.tracer = provider.get_tracer(SCOPE)
        self.capture_content = capture_content
        self.app_providers = AppProviders(provider, self.adopt)
        self._listeners: list[_Listener] = []
        self._adopted: list[trace.TracerProvider] = []
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

    def install(self) -> None:
        """Capture the app's spans, from whichever provider it sets globally, whenever."""
        self.app_providers.install()

    def adopt(self, provider: trace.TracerProvider) -> None:
        """Listen on the app's provider (an SDK one, or anything with `add_span_processor`)."""
        add = getattr(provider, "add_span_processor", None)
        if not callable(add) or any(p is provider for p in [self.provider, *self._adopted]):
            return
        listener = _Listener(self.sink)
        add(listener)
        self._adopted.append(provider)
        self._listeners.append(listener)

    def shutdown(self) -> None:
        """Stop listening (SDK providers cannot remove a processor: ours go quiet)."""
        self.app_providers.uninstall()
        self._router.shutdown()
        for listener in self._listeners:
            listener.shutdown()

    @property
    def shared(self) -> bool:
        """Whether span processors other than ours listen on the GenAI spans' provider (one
        given to `Tracing`, or added to the plugin's): they must see each GenAI span when
        its call ends, as they would with any instrumentation. The SDK has no public way to
        list them; if its insides ever change, answer yes (spans then come out at once)."""
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
