"""The streaming support bot: time to first token, complete answers, multi-turn history, and
what it does when a stream breaks off or an answer is cut at max_tokens (chaos, injected in
the test process: the cassettes hold only the good answers)."""

from __future__ import annotations

import pytest
from support_bot import SupportBot

from pytest_llmobs import LLMObs


@pytest.mark.llm_budget(max_ttft_s=0.5, max_latency_s=2.0, max_output_tokens=300)
def test_first_words_arrive_quickly(bot: SupportBot, llmobs: LLMObs) -> None:
    shown: list[str] = []
    turn = bot.ask("My headphones won't pair. What should I try?", on_text=shown.append)
    assert turn.text == "".join(shown) and len(shown) > 3  # streamed piece by piece
    [call] = llmobs.calls
    assert call.stream and call.finish_reasons == ("end_turn",)
    assert not call.truncated  # the default check would fail the test anyway
    # Recorded figures on replay, measured ones live: the budget reads the same way.
    assert call.effective_time_to_first_chunk_s is not None
    assert call.effective_time_to_first_chunk_s < call.effective_duration_s


@pytest.mark.llm_budget(max_calls=2, max_input_tokens=400)
def test_second_turn_sends_the_history(bot: SupportBot, llmobs: LLMObs) -> None:
    with llmobs.context("chat-7"):
        bot.ask("Do you ship to Norway?")
        bot.ask("And how long does it take?")
    first, second = llmobs.calls
    assert len(second.request_body["messages"]) == 3  # user, assistant, user
    assert second.usage.input_tokens > first.usage.input_tokens
    llmobs.assert_context_propagated()  # gen_ai.conversation.id on every LLM span


@pytest.mark.llm_chaos("stream_truncated", after=3)
def test_a_stream_that_stops_early_is_asked_again(bot: SupportBot, llmobs: LLMObs) -> None:
    turn = bot.ask("Is the warranty two years?")
    assert turn.attempts == 2
    broken, good = llmobs.calls
    assert broken.truncation_reason == "stream_ended_without_terminator"
    assert not good.truncated
    llmobs.assert_resilient(strict=True)  # retried: no partial answer shown as complete


@pytest.mark.llm_chaos("truncate_length")
def test_an_answer_cut_at_max_tokens_is_continued(bot: SupportBot, llmobs: LLMObs) -> None:
    turn = bot.ask("How do I reset the earbuds?")
    assert turn.continued
    cut, rest = llmobs.calls
    assert cut.truncation_reason == "max_tokens" and not rest.truncated
    assert rest.request_body["messages"][-1]["role"] == "assistant"  # prefilled with the cut
    llmobs.assert_resilient(strict=True)
