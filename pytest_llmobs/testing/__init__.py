"""Test helpers: a local fake LLM provider server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider_server import ProviderServer, ReceivedRequest, Reply, error_reply

__all__ = ["ProviderServer", "ReceivedRequest", "Reply", "error_reply"]


def __getattr__(name: str) -> Any:
    """Import lazily so ``python -m pytest_llmobs.testing.provider_server`` stays warning-free."""
    if name in __all__:
        from . import provider_server

        return getattr(provider_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
