"""pytest-llmobs: record, replay, observe and check the LLM calls your code makes under test."""

from .budgets import Budget, LLMBudgetWarning, LLMUncheckedWarning, Violation
from .calls import LLMCall, Usage
from .context import (
    ContextThreadPoolExecutor,
    TraceContextMiddleware,
    UserAction,
    bind,
    context,
    trace_headers,
    user_action,
)
from .export import LLMExportWarning
from .fixture import LLMObs
from .pricing import Pricing, cost_usd
from .tracetree import Range, Span
from .truncation import TRUNCATION_REASONS

__all__ = [
    "TRUNCATION_REASONS",
    "Budget",
    "ContextThreadPoolExecutor",
    "LLMBudgetWarning",
    "LLMCall",
    "LLMExportWarning",
    "LLMObs",
    "LLMUncheckedWarning",
    "Pricing",
    "Range",
    "Span",
    "TraceContextMiddleware",
    "Usage",
    "UserAction",
    "Violation",
    "bind",
    "context",
    "cost_usd",
    "trace_headers",
    "user_action",
]
__version__ = "0.1.0"
