"""pytest-llmobs: record, replay, observe and check the LLM calls your code makes under test."""

from .calls import LLMCall, Usage
from .fixture import LLMObs

__all__ = ["LLMCall", "LLMObs", "Usage"]
__version__ = "0.1.0"
