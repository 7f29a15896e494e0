"""Spans as files: OTLP JSON lines (`traces.jsonl`) and Chrome/Perfetto trace events.

`traces.jsonl` is what the OpenTelemetry Collector's file exporter writes: one
`ExportTraceServiceRequest` per line in the OTLP JSON encoding (lowerCamelCase fields,
trace and span ids as hex, 64-bit integers as strings, enums as integers). Here a line holds
one test's spans, under a resource naming the run (`llmobs.run.id`) and the test
(`test.case.name`, `test.suite.name`, `test.case.result.status`) over the resource the spans
were made with (`service.name` and the rest from `OTEL_SERVICE_NAME` /
`OTEL_RESOURCE_ATTRIBUTES`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    Status,
    TraceState,
    format_span_id,
    format_trace_id,
)

from ..redaction import Redactor

# gen_ai content attributes dropped when the content mode is "none"
CONTENT_ATTRIBUTES = frozenset(
    {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}
)
_OUTCOME = {"passed": "pass", "failed": "fail", "skipped": "skipped"}


# -- OTLP JSON ------------------------------------------------------------------------------
def any_value(value: Any) -> dict[str, Any]:
    """An OTLP `AnyValue` in JSON encoding."""
    if isinstance(value, str):  # most values: skip the (slow) ABC checks below
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": str(value)}


def key_values(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in (attributes or {}).items()]


def plain_value(value: Mapping[str, Any]) -> Any:
    """An `AnyValue` back to a Python value (for Perfetto args and tests)."""
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [plain_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes_dict(value["kvlistValue"].get("values", []))
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    return None


def attributes_dict(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: plain_value(item.get("value", {})) for item in items}


def redacted_span(span: ReadableSpan, redactor: Redactor, content: bool = True) -> ReadableSpan:
    """`span` with every string through `redactor`: name, attributes (the content ones
    dropped unless `content`), events, links, status, trace state and scope. Not its
    resource, which many spans share: callers redact that once. traces.jsonl and the live
    export both take spans from here, so they always redact the same fields."""
    attrs = dict(span.attributes or {})
    if not content:
        attrs = {k: v for k, v in attrs.items() if k not in CONTENT_ATTRIBUTES}
    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.text(status.description))
    scope = span.instrumentation_scope
    if scope is not None:
        version = redactor.text(scope.version) if scope.version else scope.version
        scope = InstrumentationScope(redactor.text(scope.name), version, scope.schema_url)
    return ReadableSpan(
        name=redactor.text(span.name),
        context=_context(redactor, span.context),
        parent=span.parent,
        resource=span.resource,
        attributes=redactor.json(attrs),
        events=[
            Event(redactor.text(e.name), redactor.json(dict(e.attributes or {})), _ns(e.timestamp))
            for e in span.events
        ],
        links=[
            Link(link.context, redactor.json(dict(link.attributes or {}))) for link in span.links
        ],
        kind=span.kind,
        status=status,
        start_time=_ns(span.start_time),
        end_time=_ns(span.end_time),
        instrumentation_scope=scope,
    )


def _ns(time: float | None) -> int | None:
    """A span time as the int OTLP wants: the SDK keeps whatever the app gave, and
    instrumentations (and their tests) pass `time.time_ns()` as a float too."""
    return None if time is None else int(time)


def _context(redactor: Redactor, context: SpanContext | None) -> SpanContext | None:
    """The context with its trace state's values redacted (vendors put ids there)."""
    if context is None or not context.trace_state:
        return context
    state = TraceState([(k, redactor.text(v)) for k, v in context.trace_state.items()])
    return SpanContext(
        context.trace_id, context.span_id, context.is_remote, context.trace_flags, state
    )


def span_dict(span: ReadableSpan, redactor: Redactor, content: bool = True) -> dict[str, Any]:
    """One finished span, ready for `export_request`: `{"resource", "scope", "span"}` where
    `span` is an OTLP JSON `Span`. Every string in it has been through `redactor`
    (`redacted_span`, and the resource here): the spans also reach the HTML page and
    Perfetto, and the JSON pass over each written line stays a second line of defence."""
    span = redacted_span(span, redactor, content)
    ctx = span.context
    out: dict[str, Any] = {
        "traceId": format_trace_id(ctx.trace_id) if ctx else "",
        "spanId": format_span_id(ctx.span_id) if ctx else "",
    }
    if ctx is not None and ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if span.parent is not None:
        out["parentSpanId"] = format_span_id(span.parent.span_id)
    out.update(
        name=span.name,
        kind=span.kind.value + 1,  # OTLP: 0 unspecified, 1 internal, 2 server, 3 client …
        startTimeUnixNano=str(span.start_time or 0),
        endTimeUnixNano=str(span.end_time or span.start_time or 0),
        attributes=key_values(span.attributes),
    )
    if span.events:
        out["events"] = [
            {
                "timeUnixNano": str(e.timestamp),
                "name": e.name,
                "attributes": key_values(e.attributes),
            }
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": format_trace_id(link.context.trace_id),
                "spanId": format_span_id(link.context.span_id),
                "attributes": key_values(link.attributes),
            }
            for link in span.links
        ]
    status: dict[str, Any] = {}
    if span.status.status_code.value:
        status["code"] = span.status.status_code.value
    if span.status.description:
        status["message"] = span.status.description
    out["status"] = status
    scope = span.instrumentation_scope
    resource = span.resource.attributes if span.resource else {}
    return {
        "resource": redactor.json(
            {k: v for k, v in resource.items() if isinstance(v, str | int | float | bool)}
        ),
        "scope": {"name": scope.name, "version": scope.version} if scope else {"name": ""},
        "span": out,
    }


def test_attributes(nodeid: str) -> dict[str, str]:
    """The OpenTelemetry test semantic conventions for a pytest node id: the test case, and
    the suite it belongs to (its module, or its class)."""
    name = nodeid.split("[", 1)[0]  # parameter ids may hold anything, `::` included
    suite = name.rsplit("::", 1)[0] if "::" in name else nodeid
    return {"test.case.name": nodeid, "test.suite.name": suite}


def export_request(
    nodeid: str, outcome: str, run_id: str, spans: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """One test's spans as an `ExportTraceServiceRequest` (JSON encoding)."""
    resources: dict[str, tuple[dict[str, Any], dict[str, list[Any]], dict[str, Any]]] = {}
    for item in spans:
        attrs = dict(item.get("resource") or {})
        if str(attrs.get("service.name", "unknown_service")).startswith("unknown_service"):
            attrs["service.name"] = "pytest"
        attrs.update(
            {
                "llmobs.run.id": run_id,
                **test_attributes(nodeid),
                "test.case.result.status": _OUTCOME.get(outcome, outcome),
            }
        )
        key = json.dumps(attrs, sort_keys=True, default=str)
        _, scopes, scope_info = resources.setdefault(key, (attrs, {}, {}))
        scope = item.get("scope") or {"name": ""}
        scope_key = json.dumps(scope, sort_keys=True)
        scope_info[scope_key] = scope
        scopes.setdefault(scope_key, []).append(item["span"])
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(attrs)},
                "scopeSpans": [
                    {"scope": _scope(scope_info[k]), "spans": spans_}
                    for k, spans_ in scopes.items()
                ],
            }
            for attrs, scopes, scope_info in resources.values()
        ]
    }


def _scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scope.items() if v}


SpanView = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
"""(resource attributes, span, the span's attributes): a span of an export request, its
attributes read once for both views of it (report.html, Perfetto)."""


def request_spans(request: Mapping[str, Any]) -> list[SpanView]:
    """Every span of an export request."""
    views = []
    for rs in request.get("resourceSpans", []):
        resource = attributes_dict(rs.get("resource", {}).get("attributes", []))
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                views.append((resource, span, attributes_dict(span.get("attributes", []))))
    return views


# -- Chrome / Perfetto trace events -----------------------------------------------------
_EVENT_JSON = json.JSONEncoder(default=str).encode  # one encoder, not one per event


class PerfettoWriter:
    """Streams trace events: one process per test (named by the test id), one thread per
    trace, one complete ("X") event per span with its attributes as args."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.pid = 0
        self.first = True
        stream.write('{"displayTimeUnit": "ms", "traceEvents": [\n')

    def add(self, spans: Sequence[SpanView]) -> None:
        """One test's spans (`request_spans`)."""
        if not spans:
            return
        self.pid += 1
        name = str(spans[0][0].get("test.case.name", f"test {self.pid}"))
        self._event({"ph": "M", "name": "process_name", "pid": self.pid, "args": {"name": name}})
        self._event(
            {
                "ph": "M",
                "name": "process_sort_index",
                "pid": self.pid,
                "args": {"sort_index": self.pid},
            }
        )
        lanes: dict[str, int] = {}
        for _, span, attributes in sorted(spans, key=lambda x: int(x[1]["startTimeUnixNano"])):
            trace_id = span.get("traceId", "")
            if trace_id not in lanes:
                lanes[trace_id] = len(lanes) + 1
                self._event(
                    {
                        "ph": "M",
                        "name": "thread_name",
                        "pid": self.pid,
                        "tid": lanes[trace_id],
                        "args": {"name": f"trace {trace_id[:8]}"},
                    }
                )
            start = int(span["startTimeUnixNano"])
            end = int(span["endTimeUnixNano"])
            args = {**attributes, "span_id": span.get("spanId")}  # the report reads them too
            if span.get("status", {}).get("code") == 2:
                args["status"] = "error"
            self._event(
                {
                    "name": span["name"],
                    "cat": "gen_ai" if "gen_ai.operation.name" in args else "span",
                    "ph": "X",
                    "ts": start / 1000,
                    "dur": max(end - start, 0) / 1000,
                    "pid": self.pid,
                    "tid": lanes[trace_id],
                    "args": args,
                }
            )

    def close(self) -> None:
        self.stream.write("\n]}\n")

    def _event(self, event: dict[str, Any]) -> None:
        self.stream.write(("" if self.first else ",\n") + _EVENT_JSON(event))
        self.first = False
