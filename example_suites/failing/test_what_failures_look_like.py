"""EVERY TEST HERE FAILS ON PURPOSE. `make demo` runs this file after the green suites and
checks that each test fails: the output shows what each kind of violation looks like.
Do not copy these tests; copy the ones next door."""

from __future__ import annotations

import contextlib

import openai
import pytest
from opentelemetry import trace

from pytest_llmobs import LLMObs

tracer = trace.get_tracer("failing")


def ask(client: openai.OpenAI, question: str, max_tokens: int = 100) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens,
    )
    return reply.choices[0].message.content or ""


@pytest.mark.llm_budget(max_calls=2, max_output_tokens=40)
def test_budget_exceeded(client: openai.OpenAI, llmobs: LLMObs) -> None:
    """An agent loop that asks once per step: 4 calls against a budget of 2. The test body
    passes; the plugin fails it with a table of the limits broken and the calls to blame."""
    for step in ("plan", "search", "draft", "review"):
        assert ask(client, f"Do the {step} step.")


def test_answer_cut_at_max_tokens(client: openai.OpenAI, llmobs: LLMObs) -> None:
    """max_tokens=5 cuts the answer (finish_reason "length"). The SDK hands the partial text
    over without a word; the plugin's truncation check, on by default, fails the test."""
    assert ask(client, "Explain our refund policy.", max_tokens=5)


@pytest.mark.llm_chaos("rate_limit", retry_after=0.05)
def test_client_gives_up_on_a_429(client: openai.OpenAI, llmobs: LLMObs) -> None:
    """A client with max_retries=0 that swallows the error: the verdict names the finding
    (not_retried) and assert_resilient fails."""
    with contextlib.suppress(openai.RateLimitError):  # "the summary is optional anyway"
        ask(client, "Summarize the release notes.")
    llmobs.assert_resilient()


def test_trace_shape_differs(client: openai.OpenAI, llmobs: LLMObs) -> None:
    """The test expects two calls under `app.answer`; the app made one. The failure prints
    both trees side by side with `>>` at the first difference."""
    with tracer.start_as_current_span("app.answer"):
        ask(client, "What is pytest?")
    llmobs.assert_trace({"app.answer": {"chat gpt-4o-mini": 2}})
