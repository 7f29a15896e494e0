"""A first look: every call captured as an LLMCall and a GenAI span, nested under app spans."""

from __future__ import annotations

import anthropic
import openai
from opentelemetry import trace

from pytest_llmobs import LLMObs

tracer = trace.get_tracer("quickstart")


def answer(client: openai.OpenAI, question: str) -> str:
    with tracer.start_as_current_span("app.answer"):
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": question}],
            max_tokens=64,
        )
    return reply.choices[0].message.content or ""


def test_answer_is_complete_and_small(openai_client: openai.OpenAI, llmobs: LLMObs) -> None:
    assert answer(openai_client, "What does pytest-llmobs do?")
    [call] = llmobs.calls
    assert call.finish_reasons == ("stop",) and not call.truncated
    assert llmobs.usage.total < 200
    [span] = llmobs.find_spans("chat gpt-4o-mini")
    [parent] = llmobs.find_spans("app.answer")
    assert span.parent is not None and span.parent.span_id == parent.context.span_id


def test_streaming_reply_has_usage_and_ttft(
    anthropic_client: anthropic.Anthropic, llmobs: LLMObs
) -> None:
    with anthropic_client.messages.stream(
        model="claude-demo", max_tokens=64, messages=[{"role": "user", "content": "Hi!"}]
    ) as stream:
        text = stream.get_final_text()
    assert text
    [call] = llmobs.calls
    assert call.stream and call.usage.output_tokens
    assert call.time_to_first_chunk_s is not None
