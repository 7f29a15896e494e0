"""Live export: every captured span, redacted, sent over OTLP/HTTP (protobuf) as the run goes.

The capture hands each span it routes to a test (GenAI spans and the app's own) to a
`BatchSpanProcessor` of ours, not one on the app's `TracerProvider`: so spans of nested
sessions and spans outside tests stay out, as they do in the artifacts. Between the batcher
and the OTLP exporter sits `_Exporter`: it redacts like the artifacts, counts what got
through, and stops trying once the run is over and the grace time is spent. A backend that is
down costs one warning at the end of the run, never the run itself.

Under pytest-xdist every worker exports its own spans.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .capture import OUTSIDE, Capture
from .redaction import Redactor
from .report.traces import redacted_span, test_attributes
from .tracing import span_with
from .words import count, plural

if TYPE_CHECKING:
    from .settings import Settings

# Standard variables (the OTel SDK spec); OTEL_EXPORTER_OTLP_ENDPOINT is a base URL.
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
PROJECT_HEADER = "x-project-name"  # Arize Phoenix picks the project by it
# Where the exporter logs each failed batch; we say it once, at the end, instead.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class LLMExportWarning(pytest.PytestWarning):
    """Spans could not be exported to the OTLP endpoint (the run itself is unaffected)."""


def resolve_endpoint(option: str, environ: Mapping[str, str]) -> str | None:
    """The traces URL: the option, else the standard variables; None = no export."""
    if option.strip().lower() == "none":
        return None
    if option.strip():
        return option.strip()
    if environ.get(TRACES_ENDPOINT_ENV, "").strip():
        return environ[TRACES_ENDPOINT_ENV].strip()
    if environ.get(ENDPOINT_ENV, "").strip():
        return environ[ENDPOINT_ENV].strip().rstrip("/") + "/v1/traces"
    return None


def headers(project: str, environ: Mapping[str, str]) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_(TRACES_)HEADERS (`k=v,k2=v2`, URL-encoded) plus the project."""
    from opentelemetry.util.re import parse_env_headers

    raw = next((environ[name] for name in HEADERS_ENVS if environ.get(name)), "")
    out = dict(parse_env_headers(raw, liberal=True))
    if project:
        out[PROJECT_HEADER] = project
    return out


class _Exporter(SpanExporter):
    """Redacts each batch on the batcher's thread, counts results, and gives up after
    `deadline` (set when the run ends) so a dead backend cannot hold the session."""

    def __init__(self, redactor: Redactor, content: bool) -> None:
        self.inner: SpanExporter | None = None  # set right after: its session reports to us
        self.redactor = redactor
        self.content = content
        self.exported = 0  # spans the backend accepted
        self.first_error: str | None = None
        self.deadline: float | None = None  # time.monotonic()
        self.thread: int | None = None  # the thread exporting now: its log records are ours
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.note("gave up: the run ended and the export timeout passed")
            return SpanExportResult.FAILURE
        # Our HTTP traffic is not the app's: the interceptor lets suppressed calls through.
        token = otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        self.thread = threading.get_ident()
        try:
            assert self.inner is not None
            # the same fields redacted as in traces.jsonl; the resource was, once per test
            # (`_test_resource`)
            redacted = [redacted_span(span, self.redactor, self.content) for span in spans]
            result = self.inner.export(redacted)
        except Exception as exc:  # an exporter bug must not kill the batcher's thread
            self.note(f"{type(exc).__name__}: {exc}")
            result = SpanExportResult.FAILURE
        finally:
            self.thread = None
            otel_context.detach(token)
        if result is SpanExportResult.SUCCESS:
            with self._lock:
                self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def note(self, error: str) -> None:
        with self._lock:
            if self.first_error is None:
                self.first_error = error[:300]


def _session(exporter: _Exporter) -> Any:
    """A requests session that tells `exporter` why a send failed: the exporter itself only
    says "failed" or "timeout" once its retries are spent."""
    import requests

    class Session(requests.Session):
        def send(self, request: Any, **kwargs: Any) -> Any:
            try:
                response = super().send(request, **kwargs)
            except Exception as exc:
                exporter.note(_reason(exc))
                raise
            if response.status_code >= 400:
                exporter.note(f"HTTP {response.status_code} {response.reason}".strip())
            return response

    return Session()


def _reason(exc: BaseException) -> str:
    """The OS-level cause ("Connection refused") when there is one, else the message."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        cause = todo.pop(0)
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None), *cause.args]
    return f"{type(exc).__name__}: {exc}"


class _OwnRecords(logging.Filter):
    """Drops the exporter's per-batch log lines from our export thread, keeping the first
    error for the end-of-run warning; the app's own exporters still log as usual."""

    def __init__(self, exporter: _Exporter) -> None:
        super().__init__()
        self.exporter = exporter

    def filter(self, record: logging.LogRecord) -> bool:
        if self.exporter.thread is None or record.thread != self.exporter.thread:
            return True
        if record.levelno >= logging.WARNING:  # the first says why (connection refused …)
            self.exporter.note(record.getMessage())
        return False


class LiveExport:
    """Session-wide: the batcher, the exporter, the per-test resources, the tally."""

    def __init__(
        self,
        endpoint: str,
        redactor: Redactor,
        *,
        content: bool,
        project: str = "",
        timeout_s: float = 5.0,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.exporter = _Exporter(redactor, content)
        self.exporter.inner = OTLPSpanExporter(
            endpoint=endpoint,
            headers=headers(project, environ),
            timeout=timeout_s,
            session=_session(self.exporter),
        )
        # OTEL_BSP_* (schedule delay, batch and queue size) apply as usual.
        self.processor = BatchSpanProcessor(self.exporter)
        self.handed = 0
        self._resource: tuple[Resource | None, str, Resource] | None = None
        self._filter = _OwnRecords(self.exporter)
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        self._closed = False

    def on_span(self, nodeid: str, span: ReadableSpan) -> None:
        """Called by the capture for each span of a test; the copy names the test the way
        traces.jsonl does (resource attributes `test.case.name`, `test.suite.name`)."""
        if self._closed:  # after the end of the run: nothing sends any more
            return
        self.handed += 1
        self.processor.on_end(span_with(span, resource=self._test_resource(span.resource, nodeid)))

    def _test_resource(self, base: Resource | None, nodeid: str) -> Resource:
        cached = self._resource
        if cached is not None and cached[0] is base and cached[1] == nodeid:
            return cached[2]
        resource = base or Resource.get_empty()
        if nodeid != OUTSIDE:
            resource = resource.merge(Resource(test_attributes(nodeid)))
        # redacted here, once per test: a test id or a deployment attribute can hold anything
        redact = self.exporter.redactor.json
        resource = Resource(redact(dict(resource.attributes)), resource.schema_url)
        self._resource = (base, nodeid, resource)
        return resource

    def shutdown(self) -> None:
        """Send what is queued, waiting at most `timeout_s`; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.exporter.deadline = time.monotonic() + self.timeout_s
        # The SDK's shutdown may wait up to 30 s per stuck batch: run it on the side.
        closer = threading.Thread(
            target=self.processor.shutdown, name="llmobs-otlp-shutdown", daemon=True
        )
        closer.start()
        closer.join(self.timeout_s + 1.0)
        if closer.is_alive():
            self.exporter.note(f"gave up after {self.timeout_s:g} s at the end of the run")
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    def problem(self) -> str | None:
        """The end-of-run warning text, or None when every span got through."""
        lost = self.handed - self.exporter.exported
        if lost <= 0:
            return None
        reason = self.exporter.first_error or "not sent before the end of the run"
        return (
            f"llmobs: {lost} of {count(self.handed, 'span')} {plural(lost, 'was')} not exported "
            f"to {self.endpoint} "
            f"({reason}); the test results are unaffected"
        )


# -- pytest side ------------------------------------------------------------------------------
def install(
    config: pytest.Config, capture: Capture, settings: Settings, redactor: Redactor
) -> LiveExport | None:
    """Start the live export if an endpoint is configured; the one call the plugin makes."""
    endpoint = resolve_endpoint(settings.llm_otlp_endpoint, os.environ)
    if endpoint is None:
        return None
    if settings.llm_otlp_timeout <= 0:
        raise pytest.UsageError(
            f"--llm-otlp-timeout / ini llm_otlp_timeout: {settings.llm_otlp_timeout} is not "
            "a positive number of seconds"
        )
    try:
        export = LiveExport(
            endpoint,
            redactor,
            content=settings.llm_log_content != "none",
            project=settings.llm_otlp_project,
            timeout_s=settings.llm_otlp_timeout,
        )
    except ImportError:
        message = (
            f"exporting spans to {endpoint} needs the OTLP exporter: "
            "pip install 'pytest-llmobs[otlp]'"
        )
        if settings.sources.get("llm_otlp_endpoint", "default") != "default":
            raise pytest.UsageError(f"--llm-otlp-endpoint: {message}") from None
        # only the OTEL_* variables asked for it: they may be meant for the app
        config.issue_config_time_warning(LLMExportWarning(message), stacklevel=2)
        return None
    capture.span_listeners.append(export.on_span)
    config.pluginmanager.register(_ExportHooks(export), "llmobs-export")
    return export


class _ExportHooks:
    def __init__(self, export: LiveExport) -> None:
        self.export = export

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.export.shutdown()
        if problem := self.export.problem():
            _warn(problem, session.config)

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, config: pytest.Config
    ) -> None:
        export = self.export
        if export.exporter.exported and config.get_verbosity() >= 0:
            terminalreporter.write_line(
                f"llmobs export: {export.exporter.exported} spans sent to {export.endpoint}"
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.export.shutdown()  # a session that never finished (usage error, interrupt)


def _warn(text: str, config: pytest.Config) -> None:
    """A warning in the summary; with -W error it must still not fail the run."""
    try:
        warnings.warn(LLMExportWarning(text), stacklevel=2)
    except LLMExportWarning:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"warning: {text}", yellow=True)
