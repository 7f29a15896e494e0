"""Bedrock through boto3: usage, cost and stream timing are read from Converse's JSON and
from the binary event stream, like any other provider."""

from __future__ import annotations

import pytest
from product_copy import CopyWriter

from pytest_llmobs import LLMObs


@pytest.mark.llm_budget(max_calls=1, max_output_tokens=200, max_cost_usd=0.001)
def test_description_is_complete(writer: CopyWriter, llmobs: LLMObs) -> None:
    copy = writer.describe("Acme Buds wireless earbuds")
    assert copy.text and copy.stop_reason == "end_turn"
    [call] = llmobs.calls
    assert (call.provider, call.operation) == ("aws.bedrock", "chat")
    assert call.model == "amazon.nova-lite-v1:0"
    assert call.usage is not None and call.usage.output_tokens > 0
    assert llmobs.find_spans("chat amazon.nova-lite-v1:0", gen_ai__provider__name="aws.bedrock")


@pytest.mark.llm_budget(max_ttft_s=1.0, max_latency_s=3.0)
def test_streamed_description_arrives_in_pieces(writer: CopyWriter, llmobs: LLMObs) -> None:
    pieces: list[str] = []
    copy = writer.describe_streaming("Acme Buds wireless earbuds", pieces.append)
    assert copy.stop_reason == "end_turn" and len(pieces) > 3
    [call] = llmobs.calls
    assert call.stream and not call.truncated
    assert call.output_text == copy.text
