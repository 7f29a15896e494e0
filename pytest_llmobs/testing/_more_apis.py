"""Bedrock, Gemini and Ollama for the fake provider server: each a wire format of its own,
kept out of `provider_server` (which they build on) and reached through these two calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _bedrock_api, _gemini_api, _ollama_api
from .provider_server import ReceivedRequest, Reply

if TYPE_CHECKING:
    from .provider_server import _Handler

PROVIDERS = ("bedrock", "gemini", "ollama")


def serve(handler: _Handler, request: ReceivedRequest) -> bool:
    """Answer the request if it is one of theirs; False leaves it to the server."""
    return any(api.serve(handler, request) for api in (_bedrock_api, _gemini_api, _ollama_api))


def error_reply(
    provider: str,
    status: int,
    message: str | None,
    error_type: str | None,
    retry_after: float | None,
) -> Reply:
    if provider == "bedrock":
        return _bedrock_api.error_reply(status, message, error_type)
    if provider == "gemini":
        return _gemini_api.error_reply(status, message, error_type, retry_after)
    return _ollama_api.error_reply(status, message)
