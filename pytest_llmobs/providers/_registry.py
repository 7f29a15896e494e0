"""Which wire format an exchange speaks: user routes first, then detection by path and body."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..calls import LLMCall
from ..intercept.exchange import Exchange
from . import anthropic, bedrock, gemini, ollama, openai
from ._common import request_json
from ._json import JSONObject

Parser = Callable[[Exchange, JSONObject, str | None], LLMCall | None]
Detector = Callable[[Exchange, JSONObject, str | None], bool]

_PARSERS: dict[str, Parser] = {
    openai.OPENAI: openai.parse,
    openai.AZURE: openai.parse,
    anthropic.ANTHROPIC: anthropic.parse,
    bedrock.BEDROCK: bedrock.parse,
    gemini.GEMINI: gemini.parse,
    gemini.VERTEX: gemini.parse,
    ollama.OLLAMA: ollama.parse,
}
# Anthropic first: its detection is the stricter one (header or exact body shape). The
# others match path shapes that cannot be mistaken for one another.
_DETECTORS: tuple[Parser, ...] = (
    anthropic.parse,
    openai.parse,
    bedrock.parse,
    gemini.parse,
    ollama.parse,
)

# Each wire format's `parse` returns a call exactly when its `detects` is true.
_DETECTS: dict[str, Detector] = {
    openai.OPENAI: openai.detects,
    openai.AZURE: openai.detects,
    anthropic.ANTHROPIC: anthropic.detects,
    bedrock.BEDROCK: bedrock.detects,
    gemini.GEMINI: gemini.detects,
    gemini.VERTEX: gemini.detects,
    ollama.OLLAMA: ollama.detects,
}

_ANY_DETECTS: tuple[Detector, ...] = tuple(dict.fromkeys(_DETECTS.values()))

PROVIDER_NAMES: tuple[str, ...] = tuple(_PARSERS)


@dataclass(frozen=True)
class Route:
    """A user-registered LLM endpoint: `HOST[/PATH_PREFIX]=PROVIDER`.

    `host` may carry a port (`127.0.0.1:4000`) or start with `*.` to match subdomains;
    `path_prefix` is "" or starts with "/" and matches whole path segments.
    """

    host: str
    path_prefix: str
    provider: str

    def __post_init__(self) -> None:
        if not self.host or not _parsable_url("//" + self.host):
            raise ValueError(f"invalid host {self.host!r} in LLM route; expected HOST[:PORT]")
        if self.provider not in PROVIDER_NAMES:
            raise ValueError(
                f"unknown LLM provider {self.provider!r} for host {self.host!r}; "
                f"valid providers: {', '.join(PROVIDER_NAMES)}"
            )

    @classmethod
    def parse(cls, text: str) -> Route:
        """`llm.corp=openai`, `gw.internal/anthropic=anthropic`, `127.0.0.1:4000=openai`."""
        target, sep, provider = text.strip().rpartition("=")
        target = target.strip().split("://", 1)[-1]  # tolerate a pasted URL
        host, _, path = target.partition("/")
        if not sep or not host or any(c.isspace() for c in host) or not _parsable_url("//" + host):
            raise ValueError(
                f"invalid LLM route {text!r}: expected HOST[/PATH_PREFIX]=PROVIDER, "
                f"e.g. 'llm.corp/v1=openai'; valid providers: {', '.join(PROVIDER_NAMES)}"
            )
        prefix = "/" + path.strip("/") if path.strip("/") else ""
        return cls(host=host.lower(), path_prefix=prefix, provider=provider.strip().lower())

    def matches(self, exchange: Exchange) -> bool:
        parts = urlsplit("//" + self.host)
        name = (parts.hostname or "").lower()
        if parts.port is not None and parts.port != exchange.port:
            return False
        if name.startswith("*."):
            host_ok = exchange.host.endswith(name[1:])
        else:
            host_ok = exchange.host == name
        return host_ok and _under(exchange.path, self.path_prefix)

    @property
    def _specificity(self) -> tuple[bool, int, bool]:
        """Sort key: exact hosts, then longer prefixes, then explicit ports win."""
        return (not self.host.startswith("*."), len(self.path_prefix), ":" in self.host)


def _parsable_url(url: str) -> bool:
    # Exchange.host/.port/.path raise on a malformed URL; check once, up front.
    try:
        urlsplit(url).port  # noqa: B018 - the property validates
    except ValueError:
        return False
    return True


def _valid_url(exchange: Exchange) -> bool:
    try:
        exchange.port  # noqa: B018 - parses the URL once (cached), raising if malformed
    except ValueError:
        return False
    return True


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


class ProviderRegistry:
    """Turns finished exchanges into LLMCalls; None for traffic that is no LLM call."""

    def __init__(self, routes: Sequence[Route] = ()) -> None:
        self._routes = sorted(routes, key=lambda route: route._specificity, reverse=True)

    def route_for(self, exchange: Exchange) -> Route | None:
        return next((route for route in self._routes if route.matches(exchange)), None)

    def recognizes(self, exchange: Exchange) -> bool:
        """Whether `parse` will make a call of this exchange, from its request alone: cheap
        enough to ask for every request, before any response exists."""
        if exchange.method.upper() != "POST" or not _valid_url(exchange):
            return False
        request = request_json(exchange)
        if request is None:
            return False
        route = self.route_for(exchange)
        if route is not None:
            return _DETECTS[route.provider](exchange, request, route.provider)
        return any(detects(exchange, request, None) for detects in _ANY_DETECTS)

    def parse(self, exchange: Exchange) -> LLMCall | None:
        if exchange.method.upper() != "POST" or not _valid_url(exchange):
            return None
        request = request_json(exchange)
        if request is None:
            return None
        route = self.route_for(exchange)
        if route is not None:  # the user's word beats detection
            return _PARSERS[route.provider](exchange, request, route.provider)
        for detect in _DETECTORS:
            call = detect(exchange, request, None)
            if call is not None:
                return call
        return None
