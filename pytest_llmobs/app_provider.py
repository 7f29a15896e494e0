"""The global `TracerProvider` is the app's: the plugin never sets it, yet sees its spans.

OpenTelemetry's API has no hook for "a provider became global", and until one is set its
proxy tracers (what `trace.get_tracer(...)` returns then) make no-op spans. Two small wraps
of API internals, installed at configure and undone at unconfigure, close both gaps:

- `trace._set_tracer_provider`, behind `set_tracer_provider` (however it was imported) and
  the `OTEL_PYTHON_TRACER_PROVIDER` path: once the app's provider is global, `adopt` is
  told, and adds a listening processor to it. The app's call itself is left as it was.
- `ProxyTracer._tracer`: while no provider is global, a proxy's spans come from the
  plugin's own provider, so they are real and captured. Nothing is cached on the proxy, so
  once the app sets its provider the same proxies switch to it, as the API intends.

Both internals are the same in every opentelemetry-api the plugin supports (1.27 on);
`supported()` checks them (a test fails when they change), and without them only a provider
already global at configure is adopted.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import ProxyTracer, ProxyTracerProvider, Tracer

# What a proxy knows about itself (all passed on to `get_tracer`), and what it resolved to.
_PROXY_FIELDS = (
    "_instrumenting_module_name",
    "_instrumenting_library_version",
    "_schema_url",
    "_attributes",
    "_real_tracer",
)


def supported() -> bool:
    """Whether this opentelemetry-api has the internals the wraps rely on."""
    setter = getattr(trace, "_set_tracer_provider", None)
    return (
        isinstance(inspect.getattr_static(ProxyTracer, "_tracer", None), property)
        and callable(setter)
        and list(inspect.signature(setter).parameters) == ["tracer_provider", "log"]
        and hasattr(trace, "_TRACER_PROVIDER")
        and all(hasattr(ProxyTracer("probe"), name) for name in _PROXY_FIELDS)
    )


def global_provider() -> trace.TracerProvider | None:
    """The provider the app set globally, None while there is none."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, ProxyTracerProvider) else provider


class AppProviders:
    """Watches the global provider slot for the session; `adopt` gets each provider set."""

    def __init__(
        self, fallback: TracerProvider, adopt: Callable[[trace.TracerProvider], None]
    ) -> None:
        self.fallback = fallback
        self.adopt = adopt
        self.enabled = False
        self._tracers: weakref.WeakKeyDictionary[ProxyTracer, Tracer] = weakref.WeakKeyDictionary()
        # the originals, and what we put in their place (set by `_wrap`)
        self._setter: Callable[[trace.TracerProvider, bool], None] | None = None
        self._property: property | None = None
        self._wrapped_setter: Callable[[trace.TracerProvider, bool], None] | None = None
        self._wrapped_property: property | None = None

    def install(self) -> None:
        if supported():
            self._wrap()
        self.enabled = True
        if (provider := global_provider()) is not None:  # set before us (a conftest's import)
            self.adopt(provider)

    def uninstall(self) -> None:
        """Put back what was there, unless someone wrapped it after us: then ours stays,
        passing straight through."""
        self.enabled = False
        if self._setter is not None and trace._set_tracer_provider is self._wrapped_setter:
            trace._set_tracer_provider = self._setter  # type: ignore[assignment]
        if (
            self._property is not None
            and inspect.getattr_static(ProxyTracer, "_tracer") is self._wrapped_property
        ):
            ProxyTracer._tracer = self._property  # type: ignore[method-assign, assignment]
        self._tracers.clear()

    def _wrap(self) -> None:
        setter = self._setter = trace._set_tracer_provider
        original = self._property = inspect.getattr_static(ProxyTracer, "_tracer")
        assert isinstance(original, property) and original.fget is not None
        read = original.fget

        def _set_tracer_provider(tracer_provider: trace.TracerProvider, log: bool) -> None:
            setter(tracer_provider, log)
            if self.enabled and (provider := global_provider()) is not None:
                self.adopt(provider)  # whichever is global now: the first one set wins

        def _tracer(proxy: ProxyTracer) -> Tracer:
            if not self.enabled or proxy._real_tracer or trace._TRACER_PROVIDER:
                return read(proxy)  # type: ignore[no-any-return]
            return self._fallback_tracer(proxy)

        self._wrapped_setter = _set_tracer_provider
        self._wrapped_property = property(_tracer)
        trace._set_tracer_provider = _set_tracer_provider
        ProxyTracer._tracer = self._wrapped_property  # type: ignore[method-assign, assignment]

    def _fallback_tracer(self, proxy: ProxyTracer) -> Tracer:
        tracer = self._tracers.get(proxy)
        if tracer is None:
            tracer = self._tracers[proxy] = self.fallback.get_tracer(
                proxy._instrumenting_module_name,
                proxy._instrumenting_library_version,
                proxy._schema_url,
                proxy._attributes,
            )
        return tracer
