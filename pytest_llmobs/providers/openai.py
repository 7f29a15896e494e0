"""The OpenAI wire format: recognise a request, then hand it to the right endpoint parser.

Covers chat completions, legacy completions, the Responses API and embeddings on
api.openai.com, Azure
OpenAI (`{resource}.openai.azure.com`, `/openai/…` on another `*.azure.com` host, or any
host with `/openai/deployments/{name}/`)
and any OpenAI-compatible server (vLLM, LiteLLM proxy, Groq, DeepSeek, Together, a
gateway with a base path …). Recognition goes by path shape and body, never by a list
of public hosts.

OpenAI-compatible hosts keep `gen_ai.provider.name` "openai": the name says which wire
format (and so which semantics of usage and finish reasons) the call speaks, the GenAI
conventions have no name for "compatible", and `server.address` already tells hosts
apart. Only Azure gets its own name, because the conventions define one.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from ..calls import LLMCall
from ..intercept.exchange import Exchange
from ._common import new_call
from ._json import JSONObject, nonempty
from ._openai_chat import parse_chat
from ._openai_embeddings import parse_embeddings
from ._openai_responses import parse_responses

OPENAI = "openai"
AZURE = "azure.ai.openai"

_Endpoint = Callable[[LLMCall, Exchange, JSONObject], None]
# path suffix → (operation, parser), tried in order: "/chat/completions" before the legacy
# "/completions" it ends with. Legacy completions share chat's envelope (see parse_chat).
_ENDPOINTS: dict[str, tuple[str, _Endpoint]] = {
    "/chat/completions": ("chat", parse_chat),
    "/completions": ("text_completion", parse_chat),
    "/responses": ("chat", parse_responses),
    "/embeddings": ("embeddings", parse_embeddings),
}
_DEPLOYMENTS = "/openai/deployments/"


def parse(exchange: Exchange, request: JSONObject, provider: str | None = None) -> LLMCall | None:
    """The call, or None when the path or body is not an OpenAI-style request.

    `provider` comes from a user route: it skips the body checks and fixes the name.
    """
    suffix = _endpoint(exchange.path)
    if suffix is None:
        return None
    deployment = azure_deployment(exchange.path)
    if provider is None:
        if not _looks_like(suffix, request, deployment):
            return None
        provider = AZURE if _is_azure(exchange, deployment) else OPENAI
    operation, endpoint = _ENDPOINTS[suffix]
    call = new_call(exchange, provider, operation, request)
    call.request_model = call.request_model or deployment
    call.request_id = exchange.response_header("x-request-id") or exchange.response_header(
        "apim-request-id"
    )
    endpoint(call, exchange, request)
    return call


def detects(exchange: Exchange, request: JSONObject, provider: str | None = None) -> bool:
    """Whether `parse` makes a call of this request (the response plays no part)."""
    suffix = _endpoint(exchange.path)
    if suffix is None:
        return False
    return provider is not None or _looks_like(suffix, request, azure_deployment(exchange.path))


def azure_deployment(path: str) -> str | None:
    """`dep` from `…/openai/deployments/dep/…`: Azure's stand-in for the model name."""
    _, found, rest = path.partition(_DEPLOYMENTS)
    return nonempty(unquote(rest.split("/", 1)[0])) if found else None


def _endpoint(path: str) -> str | None:
    path = path.rstrip("/")
    return next((suffix for suffix in _ENDPOINTS if path.endswith(suffix)), None)


def _looks_like(suffix: str, request: JSONObject, deployment: str | None) -> bool:
    has_model = nonempty(request.get("model")) is not None or deployment is not None
    if suffix == "/chat/completions":
        return has_model and isinstance(request.get("messages"), list)
    if suffix == "/completions":
        return has_model and "prompt" in request
    if suffix == "/embeddings":
        return has_model and "input" in request
    # Responses: a stored prompt may stand in for the model.
    return has_model or isinstance(request.get("prompt"), dict)


def _is_azure(exchange: Exchange, deployment: str | None) -> bool:
    # Newer Azure resources (cognitiveservices / AI Foundry hosts) serve `/openai/v1/…`.
    host = exchange.host
    return (
        deployment is not None
        or host.endswith(".openai.azure.com")
        or (host.endswith(".azure.com") and "/openai/" in exchange.path)
    )
