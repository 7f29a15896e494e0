"""`llmobs proxy`: a chaos reverse proxy for staging, on aiohttp.

    llmobs proxy --upstream https://api.openai.com --listen 127.0.0.1:8787 \\
        --scenario chaos.yaml --seed 7 --otlp-endpoint http://collector:4318

Requests are forwarded to the upstream through one pooled client session and answers
stream back chunk by chunk as they arrive (nothing is buffered, so timing is preserved),
except where a fault applies. Faults come from the scenario's rules (by probability and
match, seeded) or from one request's `x-llmobs-fault: <name>[; key=value…]` header, which
is never forwarded. Every fault is the catalog's, the same as in tests: status faults are
answered here, transport faults drop or stall the connection, stream faults damage the
real upstream answer on its way through.

`GET /healthz` and `GET /metrics` (Prometheus) are the proxy's own; with
`--otlp-endpoint` every request becomes an OTLP span (the GenAI attributes of the call and
`llmobs.chaos.*` of its fault), a child of the caller's `traceparent` if it sent one.
SIGTERM / SIGINT stop accepting connections, let requests in flight finish (up to
`--shutdown-timeout`), flush spans, and exit 0. `--workers N` runs N such processes on one
port (`proxy_workers`), for hosts with more cores than one event loop can use.

Needs the `proxy` extra: `pip install 'pytest-llmobs[proxy]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..intercept.exchange import Exchange
from ..providers import ProviderRegistry, Route
from .catalog import ChaosConfigError, Injection, describe, fault_table, fault_text
from .damage import Damage, Step, plan
from .injector import Injector
from .rules import Rule, describe_rules
from .rules import header_rule as parse_header_rule
from .scenario import load_scenario
from .session import FAULT_HEADER

if TYPE_CHECKING:
    from aiohttp import ClientResponse, ClientSession, web
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry

# Hop-by-hop headers (RFC 9110 §7.6.1) and ours: never forwarded either way.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        FAULT_HEADER,
    }
)
_SKIP_AUTO = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
_ATTEMPT = re.compile(r"attempt=(\d+)")
_WHOLE_BODY = 256 * 1024  # bodies of known length up to this size are relayed in one write
_MAX_BODY = 64 * 1024 * 1024  # largest request body accepted (prompts with images)


class Metrics:
    """Prometheus metrics in the proxy's own registry (no process globals).

    With `--workers N` every worker writes to files in `directory` (prometheus_client's
    multiprocess mode, chosen by `PROMETHEUS_MULTIPROC_DIR` before it is imported) and any
    worker's `/metrics` adds them all up.
    """

    def __init__(self, directory: str | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry: CollectorRegistry = CollectorRegistry()
        self.directory = directory
        if directory is not None:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        own = None if directory is not None else self.registry  # the files are the registry
        self._children: dict[tuple[str, ...], Any] = {}
        self.requests = Counter(
            "llmobs_proxy_requests",
            "Requests handled, by outcome",
            ["method", "status", "provider", "fault"],
            registry=own,
        )
        self.faults = Counter(
            "llmobs_proxy_faults_injected",
            "Faults injected",
            ["fault", "provider", "source"],
            registry=own,
        )
        self.upstream_errors = Counter(
            "llmobs_proxy_upstream_errors",
            "Upstream requests that failed",
            ["kind"],
            registry=own,
        )
        self.disconnects = Counter(
            "llmobs_proxy_disconnects",
            "Answers cut short by a connection that went away: the caller's (side=client) "
            "or the upstream's (side=upstream)",
            ["side", "provider"],
            registry=own,
        )
        self.duration = Histogram(
            "llmobs_proxy_request_duration_seconds",
            "Time from request to the end of the answer",
            ["provider"],
            registry=own,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.in_flight = Gauge(
            "llmobs_proxy_in_flight_requests",
            "Requests being handled",
            registry=own,
            multiprocess_mode="livesum",
        )

    # The label children of the per-request metrics, looked up once per label set: the
    # client's `labels()` validates and locks on every call.
    def count(self, method: str, status: int, provider: str, fault: str) -> None:
        key = ("requests", method, str(status), provider, fault)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(method, key[2], provider, fault)
        child.inc()

    def observe(self, provider: str, seconds: float) -> None:
        key = ("duration", provider)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.duration.labels(provider)
        child.observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class ChaosProxy:
    def __init__(
        self,
        upstream: str,
        rules: list[Rule],
        seed: int,
        *,
        routes: list[Route] | None = None,
        otlp_endpoint: str | None = None,
        shutdown_timeout: float = 10.0,
        scope: str = "proxy",
        metrics_dir: str | None = None,
        worker: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ChaosConfigError(
                f"--upstream {upstream!r}: expected http(s)://host[:port][/base]"
            )
        self.upstream = upstream.rstrip("/")
        self.injector = Injector(rules, seed, scope=scope)
        # Rules that can never fire (probability 0) need no look at the request body.
        self._may_fault = any(rule.probability > 0 for rule in rules)
        self.registry = ProviderRegistry(routes or [])
        self.metrics = Metrics(metrics_dir)
        self.worker = worker  # its index under --workers
        self.shutdown_timeout = shutdown_timeout
        self.tracer_provider: TracerProvider | None = None
        if otlp_endpoint:
            self.tracer_provider = _tracer_provider(otlp_endpoint)
        self._session: ClientSession | None = None
        self._runner: web.BaseRunner | None = None
        self.address: tuple[str, int] | None = None
        self.log = log or _log

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

        self._session = ClientSession(
            # No pool limit (aiohttp's default is 100 connections): the proxy must not queue
            # requests the caller did not queue. Keep-alive to the upstream is aiohttp's.
            connector=TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO,
            timeout=ClientTimeout(total=None, connect=30, sock_read=None),
        )
        loop = asyncio.get_running_loop()

        def make_request(
            message: Any, payload: Any, protocol: Any, writer: Any, task: Any
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=_MAX_BODY
            )

        # The low-level server: one handler, no router or middlewares to go through.
        handler = web.Server(self._dispatch, request_factory=make_request, access_log=None)
        self._runner = web.ServerRunner(handler, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, host, port, reuse_address=True, reuse_port=reuse_port or None
        )
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname() if sockets else (host, port)
        self.address = (str(bound[0]), int(bound[1]))
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the shutdown timeout)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
            self.tracer_provider.shutdown()

    # -- the proxy's own endpoints ---------------------------------------------------------------
    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method in ("GET", "HEAD") and request.path in ("/healthz", "/metrics"):
            return await (self._healthz if request.path == "/healthz" else self._metrics)(request)
        return await self._handle(request)

    async def _healthz(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        health = {
            "status": "ok",
            "upstream": self.upstream,
            "rules": len(self.injector.rules),
            "seed": self.injector.seed,
        }
        if self.worker is not None:
            health["worker"] = self.worker
        return web.json_response(health)

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(
            body=self.metrics.render(), headers={"content-type": CONTENT_TYPE_LATEST}
        )

    # -- one request -------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        metrics = self.metrics
        metrics.in_flight.inc()
        state = _State(time.perf_counter())
        try:
            return await self._proxy(request, state)
        except _UpstreamGone as gone:
            self._cut_short(request, state, "upstream", gone.error)
            return _drop(request, state.response)
        except ConnectionError as exc:  # the caller hung up (aiohttp's ClientConnectionResetError)
            self._cut_short(request, state, "client", exc)
            return _drop(request, state.response)
        finally:
            metrics.in_flight.dec()
            provider = state.provider or "-"
            fault = state.injection.fault.name if state.injection is not None else "none"
            metrics.count(request.method, state.status, provider, fault)
            metrics.observe(provider, time.perf_counter() - state.started)
            if self.tracer_provider is not None and state.exchange is not None:
                self._span(request, state)

    async def _proxy(self, request: web.BaseRequest, state: _State) -> web.StreamResponse:
        from aiohttp import web

        body = await request.read()
        header_rule = None
        header = request.headers.get(FAULT_HEADER)
        if header is not None:
            try:
                header_rule = parse_header_rule(
                    header, _retry_count(request), f"{FAULT_HEADER}: {header}"
                )
            except ChaosConfigError as exc:
                state.status = 400
                return web.json_response(
                    {"error": {"message": str(exc), "type": "llmobs_chaos_error"}}, status=400
                )
        url = self.upstream + request.path_qs
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        if header_rule is not None or self._may_fault or self.tracer_provider is not None:
            exchange = Exchange("llmobs-proxy", request.method, url, headers, body)
            state.exchange = exchange
            info = describe(exchange, self.registry)
            if info is not None:
                state.provider = info.provider
                state.injection = self.injector.decide(info, header_rule)
        injection = state.injection
        if injection is not None:
            injection.annotations["chaos.read_timeout_s"] = _announced_timeout(request)
            self.metrics.faults.labels(
                injection.fault.name, injection.info.provider, "header" if header_rule else "rule"
            ).inc()
            if state.exchange is not None:
                state.exchange.annotations.update(
                    {k: v for k, v in injection.annotations.items() if v is not None}
                )
            if injection.reply is not None or injection.transport is not None:
                return await self._serve_fault(request, injection, state)
        return await self._forward(request, url, headers, body, state)

    async def _serve_fault(
        self, request: web.BaseRequest, injection: Injection, state: _State
    ) -> web.StreamResponse:
        from aiohttp import web

        exchange = state.exchange
        if injection.reply is not None:
            reply = injection.reply
            state.status = reply.status
            if exchange is not None:
                exchange.got_headers(reply.status, reply.headers)
                for piece in reply.events if reply.events is not None else [reply.body]:
                    exchange.got_chunk(piece)
                exchange.complete = True
            if reply.events is None:
                return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
            response = state.response = web.StreamResponse(
                status=reply.status, headers=reply.headers
            )
            await response.prepare(request)
            for event in reply.events:
                await response.write(event)
            await response.write_eof()
            return response
        if injection.transport == "timeout":
            await _stall(request, _stall_for(request, injection))
        state.status = 0
        return _drop(request)

    async def _forward(
        self,
        request: web.BaseRequest,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        state: _State,
    ) -> web.StreamResponse:
        from aiohttp import ClientError, web

        assert self._session is not None
        damage = state.injection.damage if state.injection is not None else None
        if damage is not None:
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
            headers.append(("accept-encoding", "identity"))  # damage needs plain bytes
        try:
            upstream = await self._session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False
            )
        except (TimeoutError, ClientError, OSError) as exc:
            self.metrics.upstream_errors.labels(type(exc).__name__).inc()
            state.status = 502
            message = f"llmobs proxy: upstream {self.upstream} failed: {exc!r}"
            return web.json_response(
                {"error": {"message": message, "type": "llmobs_proxy_error"}}, status=502
            )
        async with upstream:
            state.status = upstream.status
            exchange = state.exchange
            if exchange is not None:
                exchange.got_headers(
                    upstream.status, list(upstream.headers.items()), upstream.reason or ""
                )
            if damage is not None and 200 <= upstream.status < 300:
                return await self._damaged(request, upstream, damage, state)
            length = upstream.content_length
            if length is not None and length <= _WHOLE_BODY and not _is_stream(upstream):
                return await self._whole(request, upstream, state)
            response = state.response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason
            )
            _copy_headers(upstream, response, keep_length=True)
            await response.prepare(request)
            # Upstream failures raise _UpstreamGone, the caller's ConnectionError: see _handle.
            async for chunk in _upstream_chunks(upstream):
                if exchange is not None:
                    exchange.got_chunk(chunk)
                await response.write(chunk)
            if exchange is not None:
                exchange.complete = True
            await response.write_eof()
            return response

    async def _whole(
        self, request: web.BaseRequest, upstream: ClientResponse, state: _State
    ) -> web.StreamResponse:
        """A small body of known length (a JSON answer, not a stream) goes out in one write
        with its headers: one syscall and one wake-up of the caller instead of three."""
        from aiohttp import web

        body = await _upstream_body(upstream)
        if state.exchange is not None:
            state.exchange.got_chunk(body)
            state.exchange.complete = True
        response = web.Response(status=upstream.status, reason=upstream.reason, body=body)
        _copy_headers(upstream, response, keep_length=False)
        return response

    async def _damaged(
        self, request: web.BaseRequest, upstream: ClientResponse, damage: Damage, state: _State
    ) -> web.StreamResponse:
        from aiohttp import web

        exchange = state.exchange
        response = state.response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason
        )
        _copy_headers(upstream, response, keep_length=False)
        headers = list(response.headers.items())
        changed = damage.dialect.damage_headers(headers, damage.fault, damage.params, damage.info)
        if changed != headers:
            response.headers.clear()
            response.headers.extend(changed)
        if not damage.info.stream:  # one JSON body: damage it whole, then frame it
            raw = await _upstream_body(upstream)
            pieces, ending = plan(damage, [raw])
            sent = b"".join(data for _, data in pieces)
            response.content_length = len(raw) if ending != "close" else len(sent)
            await response.prepare(request)
            step = Step(out=pieces, end=ending)
            sent_response = await self._send(request, response, step, state, absolute=True)
            return sent_response or response
        await response.prepare(request)
        try:
            async for chunk in _upstream_chunks(upstream):
                step = damage.feed(chunk)
                result = await self._send(request, response, step, state)
                if result is not None:
                    return result
            return await self._send(request, response, damage.close(), state) or response
        finally:
            if exchange is not None:
                exchange.complete = True

    async def _send(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        step: Step,
        state: _State,
        *,
        absolute: bool = False,
    ) -> web.StreamResponse | None:
        """Write a damage step; the finished response once the body ends, else None."""
        clock = 0.0
        for delay, data in step.out:
            wait = delay - clock if absolute else delay
            clock = delay if absolute else clock
            if wait > 0:
                await asyncio.sleep(wait)
            if state.exchange is not None:
                state.exchange.got_chunk(data)
            await response.write(data)
        if step.end is None:
            return None
        if step.end == "close":
            await response.write_eof()
            return response
        if step.end == "timeout":
            assert state.injection is not None
            await _stall(request, _stall_for(request, state.injection))
        return _drop(request, response)

    def _cut_short(
        self, request: web.BaseRequest, state: _State, side: str, error: BaseException
    ) -> None:
        """A connection that went away mid-answer is ordinary traffic (a caller that stops
        reading, an upstream that resets): one line and a count, never a traceback."""
        state.cut_short = side
        provider = state.provider or "-"
        self.metrics.disconnects.labels(side, provider).inc()
        if side == "upstream":
            self.metrics.upstream_errors.labels(type(error).__name__).inc()
            who = f"upstream {self.upstream}"
        else:
            who = f"client {request.remote or '?'}"
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self.log(
            f"llmobs proxy: {who} closed the connection mid-answer: "
            f"{request.method} {request.path} ({reason})"
        )

    # -- spans -----------------------------------------------------------------------------
    def _span(self, request: web.BaseRequest, state: _State) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from ..tracing import span_attributes, span_name

        assert self.tracer_provider is not None and state.exchange is not None
        exchange = state.exchange
        exchange.claim_finish()
        tracer = self.tracer_provider.get_tracer("pytest_llmobs.proxy")
        parent = TraceContextTextMapPropagator().extract(dict(request.headers))
        call = self.registry.parse(exchange)
        attrs: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "http.response.status_code": state.status,
            "llmobs.proxy.upstream": self.upstream,
        }
        if state.cut_short is not None:
            attrs["llmobs.proxy.cut_short_by"] = state.cut_short
        name = f"proxy {request.method} {request.path}"
        if call is not None:
            attrs.update(span_attributes(call))
            name = span_name(call)
        else:
            attrs.update(
                {
                    "llmobs." + k: v
                    for k, v in exchange.annotations.items()
                    if k.startswith("chaos.") and v is not None
                }
            )
        start_ns = int(exchange.started_at * 1e9)
        span = tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=attrs, start_time=start_ns
        )
        if state.injection is not None:
            span.add_event(
                "llmobs.chaos.injected",
                {
                    "llmobs.chaos.fault": state.injection.fault.name,
                    "llmobs.chaos.params": str(state.injection.annotations.get("chaos.params")),
                },
            )
        if state.status >= 400 or state.status == 0 or (call is not None and call.error_type):
            span.set_status(
                Status(
                    StatusCode.ERROR,
                    (call.error_type if call else None) or f"status {state.status}",
                )
            )
        span.end(end_time=start_ns + int((time.perf_counter() - state.started) * 1e9))


class _State:
    __slots__ = (
        "cut_short",
        "exchange",
        "injection",
        "provider",
        "response",
        "started",
        "status",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.status = 0
        self.provider: str | None = None
        self.injection: Injection | None = None
        self.exchange: Exchange | None = None
        self.response: web.StreamResponse | None = None  # once headers may have gone out
        self.cut_short: str | None = None  # "client" or "upstream"


class _UpstreamGone(Exception):
    """Reading the upstream's answer failed (reset, timeout, a cut body)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


async def _upstream_chunks(upstream: ClientResponse) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; its failures as _UpstreamGone, so that they are
    never mistaken for the caller's (aiohttp raises ClientConnectionResetError for both)."""
    from aiohttp import ClientError

    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    except (TimeoutError, ClientError, ConnectionError) as exc:
        raise _UpstreamGone(exc) from exc


async def _upstream_body(upstream: ClientResponse) -> bytes:
    from aiohttp import ClientError

    try:
        return await upstream.read()
    except (TimeoutError, ClientError, ConnectionError) as exc:
        raise _UpstreamGone(exc) from exc


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _copy_headers(
    upstream: ClientResponse, response: web.StreamResponse, *, keep_length: bool
) -> None:
    for key, value in upstream.headers.items():
        lower = key.lower()
        if lower == "content-length":
            if keep_length:
                response.content_length = int(value)
        elif lower not in _HOP:
            response.headers.add(key, value)


def _is_stream(upstream: ClientResponse) -> bool:
    content_type = upstream.headers.get("content-type", "")
    return "event-stream" in content_type or "eventstream" in content_type  # SSE, AWS


def _retry_count(request: web.BaseRequest) -> str | None:
    """Which retry this is, as the SDK numbers it: `x-stainless-retry-count: N` (openai,
    anthropic) or botocore's `amz-sdk-request: attempt=N; max=M` (from 1)."""
    count = request.headers.get("x-stainless-retry-count")
    if count is not None:
        return count
    found = _ATTEMPT.search(request.headers.get("amz-sdk-request", ""))
    return str(int(found.group(1)) - 1) if found else None


def _announced_timeout(request: web.BaseRequest) -> float | None:
    """The read timeout the caller announced (the Stainless SDKs send it), if any."""
    for name in ("x-stainless-read-timeout", "x-stainless-timeout"):
        value = request.headers.get(name)
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _stall_for(request: web.BaseRequest, injection: Injection) -> float:
    """Stall past the caller's own read timeout when it told us one, else `hang_s`."""
    announced = _announced_timeout(request)
    return max(injection.hang_s, announced + 1.0) if announced is not None else injection.hang_s


async def _stall(request: web.BaseRequest, seconds: float) -> None:
    """Send nothing for `seconds`, or until the caller hangs up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _drop(
    request: web.BaseRequest, response: web.StreamResponse | None = None
) -> web.StreamResponse:
    """Close the connection without finishing the response (a reset)."""
    from aiohttp import web

    transport = request.transport
    if transport is not None:
        transport.abort()
    if response is not None:
        response.force_close()
        return response
    dropped = web.Response(status=500)
    dropped.force_close()
    return dropped


def _tracer_provider(endpoint: str) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from ..tracing import standard_resource

    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES name the deployment; llmobs-proxy if unset
    provider = TracerProvider(resource=standard_resource("llmobs-proxy"))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
    )
    return provider


# -- the command ---------------------------------------------------------------------------
def register_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy",
        help="chaos reverse proxy for staging (provider-true faults, OTLP, /metrics)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--upstream", help="the provider base URL, e.g. https://api.openai.com")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8787",
        metavar="HOST:PORT",
        help="address to listen on (port 0: any free port; default %(default)s)",
    )
    parser.add_argument("--scenario", metavar="FILE", help="YAML scenario of chaos rules")
    parser.add_argument("--seed", type=int, help="seed (default: the scenario's, else random)")
    parser.add_argument(
        "--otlp-endpoint", metavar="URL", help="OTLP/HTTP collector, e.g. http://127.0.0.1:4318"
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="HOST[/PREFIX]=PROVIDER",
        help="name the provider of an endpoint detection cannot tell",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="on SIGTERM, how long requests in flight may take (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port with SO_REUSEPORT (Linux), for more than one "
        "core; /metrics adds them up (default %(default)s)",
    )
    parser.add_argument(
        "--list-faults", action="store_true", help="print the fault catalog and exit"
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="with --list-faults: as a Markdown table (as in the docs)",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.list_faults:
        print(fault_table() if args.markdown else fault_text())
        return 0
    if not args.upstream:
        print("llmobs proxy: --upstream is required", file=sys.stderr)
        return 2
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        print(
            f"llmobs proxy needs the proxy extra ({exc.name} is missing): "
            "pip install 'pytest-llmobs[proxy]'",
            file=sys.stderr,
        )
        return 2
    try:
        host, port = _listen(args.listen)
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers}: expected 1 or more")
        seed = args.seed
        if args.scenario:
            scenario = load_scenario(Path(args.scenario))  # checked here, loaded by each worker
            seed = seed if seed is not None else scenario.seed
        if seed is None:
            import random

            seed = random.SystemRandom().randrange(1, 2**31)
        options = ProxyOptions(
            upstream=args.upstream,
            host=host,
            port=port,
            seed=seed,
            scenario=args.scenario,
            routes=tuple(args.route),
            otlp_endpoint=args.otlp_endpoint,
            shutdown_timeout=args.shutdown_timeout,
        )
        if args.workers > 1:
            from .proxy_workers import serve_workers

            return serve_workers(options, args.workers)
        proxy = options.build()
    except (ChaosConfigError, ValueError) as exc:
        print(f"llmobs proxy: {exc}", file=sys.stderr)
        return 2
    return _run(_serve(proxy, host, port))


@dataclass(frozen=True)
class ProxyOptions:
    """What `llmobs proxy` was asked for, in a form a worker process can be handed."""

    upstream: str
    host: str
    port: int
    seed: int
    scenario: str | None = None
    routes: tuple[str, ...] = ()
    otlp_endpoint: str | None = None
    shutdown_timeout: float = 10.0

    def build_rules(self) -> list[Rule]:
        return list(load_scenario(Path(self.scenario)).rules) if self.scenario else []

    def build(self, *, worker: int | None = None, metrics_dir: str | None = None) -> ChaosProxy:
        return ChaosProxy(
            self.upstream,
            self.build_rules(),
            self.seed,
            routes=[Route.parse(text) for text in self.routes],
            otlp_endpoint=self.otlp_endpoint,
            shutdown_timeout=self.shutdown_timeout,
            # Each worker draws from its own generators: same seed and requests, same faults.
            scope="proxy" if worker is None else f"proxy:{worker}",
            metrics_dir=metrics_dir,
            worker=worker,
        )


def _run(main: Any) -> int:
    """On uvloop when it is installed (the proxy extra brings it on Linux and macOS)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[no-any-return]
    return uvloop.run(main)  # type: ignore[no-any-return]


async def _serve(
    proxy: ChaosProxy, host: str, port: int, report: Callable[[str, Any], None] | None = None
) -> int:
    """Serve until SIGTERM / SIGINT. A worker `report`s ("ready", address) and ("stopped",
    faults injected) to its parent instead of printing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = await proxy.start(host, port, reuse_port=report is not None)
    if report is not None:
        report("ready", address)
    else:
        print(listening_line(address, proxy.upstream, proxy.injector.seed, proxy.injector.rules))
        sys.stdout.flush()
    await stop.wait()
    if report is None:
        print("llmobs proxy: stopping (letting requests in flight finish)", flush=True)
    await proxy.stop()
    if report is not None:
        report("stopped", len(proxy.injector.injected))
    else:
        stopped = {"stopped": True, "faults_injected": len(proxy.injector.injected)}
        print(json.dumps(stopped), flush=True)
    return 0


def listening_line(
    address: tuple[str, int], upstream: str, seed: int, rules: list[Rule], workers: int = 1
) -> str:
    """The first line the proxy prints (scripts read the URL from its fifth word)."""
    host, port = address
    more = f"; workers: {workers}" if workers > 1 else ""
    return (
        f"llmobs proxy listening on http://{host}:{port} → {upstream} "
        f"(seed {seed}; rules: {describe_rules(rules) or 'none'}{more})"
    )


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    return host.strip("[]") or "127.0.0.1", int(port)
