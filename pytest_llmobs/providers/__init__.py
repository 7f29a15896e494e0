"""From raw HTTP exchanges to LLMCalls, one module per wire format.

`ProviderRegistry.parse(exchange)` recognises a request by method, path shape and body
(so gateways with a base path and self-hosted OpenAI-compatible servers work), or by a
user `Route` that names the provider for a host and path prefix. It returns None for
anything that is not an LLM call and never raises on odd bodies.
"""

from ._registry import PROVIDER_NAMES, ProviderRegistry, Route

__all__ = ["PROVIDER_NAMES", "ProviderRegistry", "Route"]
