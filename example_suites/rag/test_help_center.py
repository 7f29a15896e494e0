"""The RAG pipeline under test: budgets, the trace's structure, context on every call, and
a committed trace snapshot (__llmobs_snapshots__/). Cassettes: cassettes/test_help_center/."""

from __future__ import annotations

import pytest
from help_center import ARTICLES, HelpCenter

from pytest_llmobs import LLMObs

QUESTION = "Can I still return the headphones from order 1042?"

# Every test in this module: at most a cent, and no answer cut short (the default).
pytestmark = pytest.mark.llm_budget(max_cost_usd=0.01)


@pytest.mark.llm_budget(max_calls=5, max_total_tokens=1500, max_p95_latency_s=2.0, max_retries=0)
def test_answers_with_an_order_lookup(help_center: HelpCenter, llmobs: LLMObs) -> None:
    answer = help_center.answer(QUESTION)
    assert answer.text
    assert answer.source in ARTICLES
    assert answer.tool_calls == ["lookup_order"]
    # embed corpus + embed question + rerank + tool call + final answer
    assert [c.operation for c in llmobs.calls] == ["embeddings", "embeddings", *["chat"] * 3]
    assert llmobs.cost_usd is not None and llmobs.cost_usd < 0.001


def test_pipeline_trace_has_the_expected_shape(help_center: HelpCenter, llmobs: LLMObs) -> None:
    help_center.answer(QUESTION)
    llmobs.assert_trace(
        {
            "rag.answer": {
                "rag.retrieve": {"embeddings text-embedding-3-small": 2},
                "rag.rerank": ["chat gpt-4o-mini"],
                "rag.respond": {
                    "chat gpt-4o-mini": {
                        "count": 2,
                        "attrs": {"gen_ai.usage.output_tokens": (1, 200)},
                    }
                },
            }
        }
    )


def test_every_call_carries_conversation_and_stage(help_center: HelpCenter, llmobs: LLMObs) -> None:
    with llmobs.context("conv-1042"):  # the test names the conversation; the app the stages
        help_center.answer(QUESTION)
    llmobs.assert_context_propagated("conversation_id", "rag.stage")
    stages = llmobs.calls_by("rag.stage")
    assert {stage: len(calls) for stage, calls in stages.items()} == {
        "retrieve": 2,
        "rerank": 1,
        "respond": 2,
    }


def test_trace_matches_the_committed_snapshot(help_center: HelpCenter, llmobs: LLMObs) -> None:
    help_center.answer(QUESTION)
    llmobs.assert_trace_snapshot()  # refresh with --llm-snapshot-update, review, commit
