"""OpenAI → Anthropic fallback under the ways providers really fail. The chaos matrix runs
the test once per fault (test_x[chaos=rate_limit], …); the verdict judges what the client
did from its traffic: retried, fell back, waited as asked, never used a partial answer."""

from __future__ import annotations

import pytest
from fallback import AnswerService

from pytest_llmobs import LLMObs

QUESTION = "Summarize our refund policy in one sentence."


def test_no_faults_no_fallback(service: AnswerService, llmobs: LLMObs) -> None:
    assert service.answer(QUESTION).provider == "openai"
    assert [c.provider for c in llmobs.calls] == ["openai"]


@pytest.mark.llm_chaos_matrix(
    [
        # two 429s: the first attempt and the SDK's one retry (which waits retry-after)
        {"fault": "rate_limit", "times": 2, "retry_after": 0.05},
        {"fault": "overloaded", "times": 2, "retry_after": 0.05},  # OpenAI's 503
        {"fault": "stream_cut", "after": 2},  # the connection drops mid-answer
        {"fault": "stream_truncated", "after": 2},  # a clean end, but no finish reason
    ],
    provider="openai",
)
def test_falls_back_to_anthropic(service: AnswerService, llmobs: LLMObs) -> None:
    result = service.answer(QUESTION)
    assert result.provider == "anthropic" and result.text
    llmobs.assert_resilient(strict=True)
    verdict = llmobs.resilience()
    assert [fault["outcome"] for fault in verdict.faults][-1] == "fell back"


@pytest.mark.llm_chaos(
    {"fault": "rate_limit", "provider": "openai", "times": 2, "retry_after": 0.05},
    {"fault": "overloaded", "provider": "anthropic", "retry_after": 0.05},  # a 529
)
def test_fallback_survives_an_overloaded_anthropic(service: AnswerService, llmobs: LLMObs) -> None:
    assert service.answer(QUESTION).provider == "anthropic"
    statuses = [(c.provider, c.status_code) for c in llmobs.calls]
    assert statuses == [
        ("openai", 429),
        ("openai", 429),
        ("anthropic", 529),
        ("anthropic", 200),
    ]
    llmobs.assert_resilient(strict=True)
