"""`Tracing.emit`: the finished span handed straight to our processor (when nothing else
listens) is the span the OpenTelemetry SDK builds for the same call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from pytest_llmobs.calls import LLMCall, Usage
from pytest_llmobs.tracing import Tracing

CALL = LLMCall(
    provider="openai",
    operation="chat",
    url="https://api.openai.com/v1/chat/completions",
    request_model="gpt-4o",
    response_model="gpt-4o-2024-08-06",
    max_tokens=64,
    temperature=0.2,
    usage=Usage(input_tokens=12, output_tokens=7),
    finish_reasons=("length", "stop"),
    truncated=True,
    truncation_reason="max_tokens",
    status_code=200,
    started_at=1_700_000_000.25,
    duration_s=0.75,
    attributes={"llmobs.cassette": "c.yaml"},
)
FAILED = LLMCall(
    provider="anthropic",
    operation="chat",
    url="https://api.anthropic.com/v1/messages",
    request_model="claude",
    status_code=529,
    error="overloaded",
    error_type="APIStatusError",
    started_at=1_700_000_001.0,
    duration_s=0.01,
)


def spans_of(call: LLMCall, *, shared: bool, **provider_kw: Any) -> list[ReadableSpan]:
    """Emit `call` under an app span with baggage; `shared`: another processor listens,
    so the SDK builds the span."""
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}), **provider_kw)
    got: list[ReadableSpan] = []
    tracing = Tracing(got.append, provider=provider)
    if shared:
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert tracing.shared is shared
    with provider.get_tracer("app").start_as_current_span("app.work") as parent:
        ctx = baggage.set_baggage("llmobs.context", "checkout", trace.set_span_in_context(parent))
        context = tracing.emit(call, ctx)
    ours = [s for s in got if s.name != "app.work"]
    assert all(s.context == context for s in ours)
    assert context.trace_id == parent.get_span_context().trace_id
    return ours


def built_by_sdk(span: ReadableSpan) -> bool:
    return isinstance(span._attributes, BoundedAttributes)  # what the SDK's spans keep


def shape(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent.span_id if span.parent else None,
        "flags": span.context.trace_flags if span.context else None,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "times": (span.start_time, span.end_time),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
        "events": span.events,
        "links": span.links,
        "dropped": span.dropped_attributes,
        "json_keys": sorted(json.loads(span.to_json())),
    }


@pytest.mark.parametrize("call", [CALL, FAILED], ids=["ok", "error"])
def test_direct_span_equals_the_sdk_span(call: LLMCall) -> None:
    [direct] = spans_of(call, shared=False)
    [sdk] = spans_of(call, shared=True)
    assert not built_by_sdk(direct) and built_by_sdk(sdk)  # two paths taken
    a, b = shape(direct), shape(sdk)
    a.pop("parent"), b.pop("parent")  # different runs, different ids
    assert a == b
    assert a["attributes"]["llmobs.context"] == "checkout"  # baggage, as on_start adds it
    assert a["attributes"].get("gen_ai.response.finish_reasons", ()) in ((), ("length", "stop"))


def test_sampler_dropping_means_no_span_either_way() -> None:
    for shared in (False, True):
        assert spans_of(CALL, shared=shared, sampler=ALWAYS_OFF) == []


def test_value_length_limit_takes_the_sdk_path() -> None:
    """Only the SDK cuts attribute values: with a length limit set, it builds the span."""
    [span] = spans_of(CALL, shared=False, span_limits=SpanLimits(max_span_attribute_length=4))
    assert built_by_sdk(span)
    assert span.attributes is not None and span.attributes["gen_ai.request.model"] == "gpt-"


def test_values_the_sdk_would_clean_take_the_sdk_path() -> None:
    odd = LLMCall(provider="openai", operation="chat", url="u", attributes={"x": [1, "a"]})
    [span] = spans_of(odd, shared=False)
    assert built_by_sdk(span)  # which decides what to keep of it
