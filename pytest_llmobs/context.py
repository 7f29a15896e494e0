"""Semantic context and user actions, carried by OpenTelemetry baggage.

`context(conversation_id="c-1", stage="rerank")` puts entries into the baggage of the current
OpenTelemetry context; while pytest-llmobs is active every span started inside gets each
baggage entry as an attribute (unless the span set that attribute itself), and so does every
`LLMCall` (`call.attributes`) and its GenAI span. Because it is plain baggage, entries the app
sets with `opentelemetry.baggage.set_baggage`, or that arrive in a W3C `baggage` header, are
stamped the same way.

Names: `conversation_id` becomes `gen_ai.conversation.id` (the GenAI semantic convention);
a field with a dot in its name is used as is (`**{"session.id": "s-1"}`); any other field
`f` becomes `llmobs.context.f`. Values are strings (baggage holds strings); `None` removes
an entry inside the block.

Propagation: asyncio tasks copy the context when they are created, so tasks started inside
the block are covered automatically. Threads start with an empty context: start them with
`bind(fn)` (`threading.Thread(target=bind(work))`) or use `ContextThreadPoolExecutor`.
Another process, or a server handling a request, gets it through the W3C `traceparent` and
`baggage` headers: `trace_headers()` on the client side, `TraceContextMiddleware` (ASGI) on
the server side.
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .calls import LLMCall
from .tracetree import Node, build_forest

__all__ = [
    "CONVERSATION_ID",
    "FIELD_PREFIX",
    "USER_ACTION_ID",
    "USER_ACTION_NAME",
    "ContextThreadPoolExecutor",
    "TraceContextMiddleware",
    "UserAction",
    "attribute_name",
    "baggage_attributes",
    "bind",
    "context",
    "current_context",
    "trace_headers",
    "user_action",
]

CONVERSATION_ID = "gen_ai.conversation.id"
USER_ACTION_NAME = "user.action.name"
USER_ACTION_ID = "user.action.id"
USER_ACTION_PREFIX = "user.action."
FIELD_PREFIX = "llmobs.context."
TRACER_NAME = "pytest_llmobs"

P = ParamSpec("P")
R = TypeVar("R")


def attribute_name(field: str) -> str:
    """The span / `LLMCall` attribute a context field is stored under."""
    if field == "conversation_id":
        return CONVERSATION_ID
    if "." in field:
        return field
    return FIELD_PREFIX + field


@contextmanager
def context(conversation_id: str | None = None, /, **fields: object) -> Iterator[dict[str, str]]:
    """Stamp `gen_ai.conversation.id` and `fields` on every span and LLM call made inside.

    Usable from app code as well as from tests (`pytest_llmobs.context(...)`, or
    `llmobs.context(...)` in a test). Nested blocks add to (and may override) the outer ones.
    Yields the baggage entries now in force.
    """
    entries: dict[str, object] = {attribute_name(k): v for k, v in fields.items()}
    if conversation_id is not None:
        entries[CONVERSATION_ID] = conversation_id
    ctx = otel_context.get_current()
    for key, value in entries.items():
        if value is None:
            ctx = baggage.remove_baggage(key, ctx)
        else:
            ctx = baggage.set_baggage(key, str(value), ctx)
    token = otel_context.attach(ctx)
    try:
        yield baggage_attributes(ctx)
    finally:
        otel_context.detach(token)


def current_context() -> dict[str, str]:
    """The baggage entries in force here (what would be stamped on a span started now)."""
    return baggage_attributes(None)


def baggage_attributes(ctx: Context | None) -> dict[str, str]:
    """Every baggage entry of `ctx` (the current context when None), as attributes."""
    return {key: str(value) for key, value in baggage.get_all(ctx).items()}


@dataclass(frozen=True)
class UserAction:
    """The action a `user_action` block stands for."""

    name: str
    id: str
    trace_id: str | None = None  # hex, of the action's span (None without one)
    span_id: str | None = None

    def headers(self) -> dict[str, str]:
        """W3C `traceparent` + `baggage` for a request made on behalf of this action
        (call it inside the block)."""
        return trace_headers()


@contextmanager
def user_action(
    name: str, id: str | None = None, *, span: bool = True, **fields: object
) -> Iterator[UserAction]:
    """Everything inside happens on behalf of the user action `name` (e.g. "checkout.submit").

    Stamps `user.action.name`, `user.action.id` (a fresh random id unless given) and each
    field as `user.action.<field>` on every span and LLM call made inside, and (unless
    `span=False`) opens an INTERNAL span named after the action, so every LLM span inside
    shares its trace id.
    """
    action_id = id if id is not None else uuid.uuid4().hex[:16]
    entries: dict[str, object] = {USER_ACTION_NAME: name, USER_ACTION_ID: action_id}
    entries.update({USER_ACTION_PREFIX + key: value for key, value in fields.items()})
    with context(**entries):
        if not span:
            yield UserAction(name, action_id)
            return
        tracer = trace.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(name, kind=SpanKind.INTERNAL) as action_span:
            ctx = action_span.get_span_context()
            yield UserAction(
                name,
                action_id,
                trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None,
                trace.format_span_id(ctx.span_id) if ctx.is_valid else None,
            )


# -- threads -------------------------------------------------------------------------------


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn`, run in (a copy of) the context current now: OpenTelemetry context, baggage and
    every other contextvar. For threads: `threading.Thread(target=bind(work)).start()`."""
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: run each call in its own copy.
        return captured.copy().run(fn, *args, **kwargs)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A `ThreadPoolExecutor` whose tasks run in the context of the code that submitted
    them (the standard one runs them in the worker thread's empty context)."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return super().submit(bind(fn), *args, **kwargs)


# -- across HTTP: W3C traceparent + baggage -------------------------------------------------


def w3c_propagator() -> TextMapPropagator:
    return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def trace_headers(ctx: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `baggage` when there is any) for the current context, to send
    with a request so the server side continues this trace and context."""
    carrier: dict[str, str] = {}
    w3c_propagator().inject(carrier, context=ctx)
    return carrier


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TraceContextMiddleware:
    """ASGI middleware: continue the caller's trace and baggage from the W3C `traceparent`
    and `baggage` request headers, so the LLM calls made while handling a request become
    descendants of the caller's span and carry its context (e.g. the user action).

    `app.add_middleware(TraceContextMiddleware)` (Starlette / FastAPI) or
    `TraceContextMiddleware(app)`. With `server_span=True` (default) each request also gets
    a SERVER span `"{method} {path}"`; turn it off when an ASGI instrumentation already
    makes one.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        server_span: bool = True,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.app = app
        self.server_span = server_span
        self.propagator = propagator or w3c_propagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        carrier = _headers(scope.get("headers") or ())
        token = otel_context.attach(self.propagator.extract(carrier))
        try:
            if not self.server_span:
                await self.app(scope, receive, send)
                return
            method = str(scope.get("method", "WS"))
            path = str(scope.get("path", ""))
            tracer = trace.get_tracer(TRACER_NAME)
            with tracer.start_as_current_span(
                f"{method} {path}",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path},
            ) as server_span:

                async def send_status(message: Message) -> None:
                    if message.get("type") == "http.response.start":
                        server_span.set_attribute(
                            "http.response.status_code", int(message.get("status", 0))
                        )
                    await send(message)

                await self.app(scope, receive, send_status)
        finally:
            otel_context.detach(token)


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[name] = f"{out[name]},{text}" if name in out else text
    return out


# -- checks --------------------------------------------------------------------------------


def missing_context(
    spans: Iterable[ReadableSpan],
    keys: Iterable[str],
    *,
    scope: str = "llm",
    under: str | None = None,
) -> str | None:
    """None when every span in scope carries every key, else a message naming the spans.

    `scope="llm"` checks the GenAI spans (those with `gen_ai.operation.name`), `"all"`
    every span. `under` (a span name glob) narrows that to the subtrees of matching spans.
    """
    from fnmatch import fnmatchcase

    if scope not in ("llm", "all"):
        raise ValueError(f"scope must be 'llm' or 'all', got {scope!r}")
    attributes = [attribute_name(key) for key in keys] or [CONVERSATION_ID]
    forest = build_forest(spans)
    nodes: list[Node] = [node for root in forest for node in root.walk()]
    if under is not None:
        tops = [node for node in nodes if fnmatchcase(node.name, under)]
        if not tops:
            return f"no span matches under={under!r}; spans captured:\n" + _names(nodes)
        seen: dict[int, Node] = {}
        for top in tops:
            seen.update((id(node), node) for node in top.walk())
        nodes = list(seen.values())
    if scope == "llm":
        nodes = [node for node in nodes if "gen_ai.operation.name" in node.attributes]
    what = "LLM spans" if scope == "llm" else "spans"
    where = f" under {under!r}" if under else ""
    if not nodes:
        return f"no {what}{where} to check: the test captured none"
    problems = []
    for attribute in attributes:
        lacking = [node for node in nodes if attribute not in node.attributes]
        if not lacking:
            continue
        lines = [f"{attribute} is missing on {len(lacking)} of {len(nodes)} {what}{where}:"]
        lines.extend(f"  - {node.path}{_ids(node)}" for node in lacking)
        have = [node for node in nodes if attribute in node.attributes]
        if have:
            values = sorted({str(node.attributes[attribute]) for node in have})
            lines.append(f"  (present on {len(have)}, with value(s) {', '.join(values)})")
        problems.append("\n".join(lines))
    if not problems:
        return None
    return "\n".join(problems) + (
        "\nContext travels with the OpenTelemetry context: threads need "
        "pytest_llmobs.context.bind(...) or ContextThreadPoolExecutor, servers need the "
        "traceparent/baggage headers (TraceContextMiddleware)."
    )


def _ids(node: Node) -> str:
    ctx = node.span.context
    if ctx is None:
        return ""
    return f"  (span {trace.format_span_id(ctx.span_id)})"


def _names(nodes: Iterable[Node]) -> str:
    return "\n".join(f"  - {node.path}" for node in nodes)


def group_by(items: Iterable[Any], field: str) -> dict[str | None, list[Any]]:
    """Items with an `attributes` mapping grouped by one context field, in first-seen order."""
    key = attribute_name(field)
    groups: dict[str | None, list[Any]] = {}
    for item in items:
        attributes: Mapping[str, Any] = getattr(item, "attributes", None) or {}
        value = attributes.get(key)
        groups.setdefault(None if value is None else str(value), []).append(item)
    return groups


def stamp_context(call: LLMCall, ctx: Context | None) -> None:
    """Copy the baggage of the context a call was made in onto `call.attributes`
    (keeping any attribute already there)."""
    for key, value in baggage_attributes(ctx if ctx is not None else Context()).items():
        call.attributes.setdefault(key, value)
