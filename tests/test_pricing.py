"""Cost from genai-prices and the user's prices file; unknown prices are reported, never zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from pytest_llmobs.calls import LLMCall, Usage
from pytest_llmobs.pricing import PricesFileError, Pricing, cost_usd, load_rules
from pytest_llmobs.testing import ProviderServer, Reply

INNER_ARGS = (
    "-p",
    "no:cacheprovider",
    "-rA",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)


def call(
    model: str | None = "gpt-4o", provider: str = "openai", status: int = 200, **usage: Any
) -> LLMCall:
    return LLMCall(
        provider=provider,
        operation="chat",
        url="u",
        request_model=model,
        response_model=usage.pop("response_model", None),
        usage=Usage(**usage),
        status_code=status,
    )


# -- genai-prices ------------------------------------------------------------------------------
def test_openai_cached_input_and_reasoning() -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M tokens
    priced = call(input_tokens=1000, cached_input_tokens=400, output_tokens=500)
    assert cost_usd(priced) == pytest.approx(600 * 2.5e-6 + 400 * 1.25e-6 + 500 * 10e-6)
    uncached = call(input_tokens=1000, output_tokens=500)
    assert cost_usd(uncached) == pytest.approx(0.0075)
    # reasoning tokens are part of output_tokens: priced once, at the output rate
    o3 = call("o3", input_tokens=1000, output_tokens=500, reasoning_tokens=300)
    expected = calc_price(
        GenaiUsage(input_tokens=1000, output_tokens=500, output_reasoning_tokens=300),
        "o3",
        provider_id="openai",
    )
    assert cost_usd(o3) == pytest.approx(float(expected.total_price))
    assert cost_usd(o3) == cost_usd(call("o3", input_tokens=1000, output_tokens=500))


def test_anthropic_cache_reads_and_writes() -> None:
    # Usage.input_tokens counts cache reads and writes too (the providers normalise it)
    cached = call(
        "claude-sonnet-4-5",
        "anthropic",
        input_tokens=1000,
        cached_input_tokens=600,
        cache_creation_input_tokens=300,
        output_tokens=100,
    )
    expected = calc_price(
        GenaiUsage(
            input_tokens=1000, cache_read_tokens=600, cache_write_tokens=300, output_tokens=100
        ),
        "claude-sonnet-4-5",
        provider_id="anthropic",
    )
    assert cost_usd(cached) == pytest.approx(float(expected.total_price))
    plain = call("claude-sonnet-4-5", "anthropic", input_tokens=1000, output_tokens=100)
    assert cost_usd(cached) != cost_usd(plain)


def test_provider_mapping() -> None:
    azure = call(
        "prod-gpt4o", "azure.ai.openai", response_model="gpt-4o-2024-08-06", input_tokens=10
    )
    assert cost_usd(azure) == pytest.approx(10 * 2.5e-6)  # the response names the model
    gemini = call("gemini-2.5-flash", "gcp.gemini", input_tokens=1000, output_tokens=10)
    assert (cost_usd(gemini) or 0) > 0


def test_unknown_prices_are_reported_not_zero() -> None:
    pricing = Pricing()
    unknown = pricing.cost(call("gpt-fake-9", input_tokens=5, output_tokens=4))
    assert unknown.usd is None and unknown.problem == "no known price for gpt-fake-9 (openai)"
    deployment = pricing.cost(call("prod-gpt4o", "azure.ai.openai", input_tokens=5))
    assert deployment.usd is None and "prod-gpt4o (azure.ai.openai)" in (deployment.problem or "")
    local = pricing.cost(call("llama3", "ollama", input_tokens=5, output_tokens=1))
    assert local.usd is None
    no_usage = pricing.cost(call())  # e.g. an OpenAI stream without include_usage
    assert no_usage.usd is None and "include_usage" in (no_usage.problem or "")
    rejected = pricing.cost(call(status=429))
    assert (rejected.usd, rejected.source) == (0.0, "not billed (error response)")
    total = pricing.total([call(input_tokens=1000), call("gpt-fake-9", input_tokens=5)])
    assert total.usd == pytest.approx(0.0025) and not total.complete
    assert [p for _, p in total.unpriced] == ["no known price for gpt-fake-9 (openai)"]


def test_lookups_are_cached() -> None:
    """Speed is a benchmark figure; here only that repeated lookups hit the cache."""
    pricing = Pricing()
    calls = [call(input_tokens=i, output_tokens=i % 7) for i in range(1, 51)]
    first = pricing.total(calls)
    info = pricing._cost.cache_info()  # type: ignore[attr-defined]
    assert pricing.total(calls).usd == first.usd
    assert pricing._cost.cache_info().hits >= info.hits + len(calls)  # type: ignore[attr-defined]


# -- the prices file ---------------------------------------------------------------------------
PRICES = """
# USD per 1M tokens
[models."ft:gpt-4o-mini:acme:*"]
input = 0.30
output = 1.20
cached = 0.15

[models."gpt-4o"]   # overrides genai-prices
provider = "azure*"
input = 1.0
output = 2.0

[models."claude-test*"]
input = 3
output = 15
cache_write = 3.75
reasoning = 30

[models."llama*"]
input = 0
output = 0
"""


def test_prices_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    pricing = Pricing.from_file(path)
    ft = call(
        "ft:gpt-4o-mini:acme:v2", input_tokens=1000, cached_input_tokens=500, output_tokens=10
    )
    assert pricing.cost_usd(ft) == pytest.approx((500 * 0.30 + 500 * 0.15 + 10 * 1.20) / 1e6)
    assert pricing.cost(ft).source == "prices.toml [models.'ft:gpt-4o-mini:acme:*']"
    # provider glob: the azure rule does not apply to openai, genai-prices does
    assert pricing.cost(call(input_tokens=1000)).source == "genai-prices"
    azure = call("gpt-4o", "azure.ai.openai", input_tokens=1000, output_tokens=1000)
    assert pricing.cost_usd(azure) == pytest.approx(0.003)
    claude = call(
        "claude-test",
        "anthropic",
        input_tokens=1000,
        cache_creation_input_tokens=200,
        output_tokens=100,
        reasoning_tokens=40,
    )
    expected = (800 * 3 + 200 * 3.75 + 60 * 15 + 40 * 30) / 1e6
    assert pricing.cost_usd(claude) == pytest.approx(expected)
    assert pricing.cost_usd(call("llama3", "ollama", input_tokens=9, output_tokens=9)) == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.'x'\ninput=1", "prices file .*prices.toml: "),
        ('[models."x"]\ninput = 1\noutput = 1\ncahced = 1', r"unknown key\(s\) cahced; valid keys"),
        ('[models."x"]\ninput = 1', "output is required"),
        ('[models."x"]\ninput = -1\noutput = 1', "input = -1 is not a price"),
        ('[models."x"]\ninput = "1"\noutput = 1', "is not a price"),
        ('[prices."x"]\ninput = 1\noutput = 1', r"expected \[models.\"<glob>\"\] tables only"),
        ("[models]\nx = 1", "expected a table of prices"),
    ],
)
def test_prices_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PricesFileError, match=message):
        load_rules(path)


def test_missing_prices_file(tmp_path: Path) -> None:
    with pytest.raises(PricesFileError, match="does not exist"):
        load_rules(tmp_path / "nope.toml")


# -- end to end --------------------------------------------------------------------------------
HEADER = """
import os
import anthropic, openai, pytest

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


def chat(model="gpt-4o"):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
        model=model, messages=MESSAGES)


def ant(model="claude-test"):
    return anthropic.Anthropic(base_url=URL, max_retries=0).messages.create(
        model=model, max_tokens=50, messages=MESSAGES)
"""


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    return pytester.runpytest(*INNER_ARGS, *args)


def cached_chat_reply() -> Reply:
    return Reply(
        body={
            "id": "chatcmpl-cached",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 400},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
        match="/chat/completions",
    )


def test_cost_with_cached_tokens_end_to_end(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.enqueue(cached_chat_reply(), cached_chat_reply())
    result = run(
        pytester,
        """
def test_cost(llmobs):
    chat()
    [call] = llmobs.calls
    assert call.usage.cached_input_tokens == 400
    assert llmobs.cost_usd == pytest.approx(0.007)  # 600 x $2.50 + 400 x $1.25 + 500 x $10 / 1M
    assert llmobs.cost_of(call) == llmobs.cost_usd and llmobs.unpriced_calls == []

@pytest.mark.llm_budget(max_cost_usd=0.005)
def test_over_budget():
    chat()
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_over_budget: 1 violation",
            "  max_cost_usd  $0.005  $0.007  test    #1",
            "calls responsible:",
            "  #1  chat gpt-4o  model gpt-4o-2024-08-06  in 1000 / out 500 tok  latency * s"
            "  $0.007",
        ]
    )
    result.stdout.fnmatch_lines(["llmobs cost: $0.014 for 2 calls"])


def test_unknown_model_price_is_reported(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_cost_usd=1.0)
def test_unknown_price(llmobs):
    chat("gpt-4o")
    chat("gpt-fake-9")
    assert llmobs.cost_usd is None
    assert [p for _, p in llmobs.unpriced_calls] == ["no known price for gpt-fake-9 (openai)"]

def test_no_budget_no_failure(llmobs):
    ant("claude-test")
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_unknown_price: 1 violation",
            "  max_cost_usd  $1.00  unknown  test    #1 #2",
            "  - max_cost_usd: 1 call without a known cost: no known price for gpt-fake-9 "
            "(openai) (add their prices to an llm_prices TOML file)",
            "calls responsible:",
            "  #1  chat gpt-4o  *  $0.0000*",
            "  #2  chat gpt-fake-9  *  cost unknown",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "llmobs cost: $0.0000* for 1 of 3 calls; unknown for 2: no known price for "
            "gpt-fake-9 (openai); no known price for claude-test (anthropic) (add their prices*"
        ]
    )


def test_prices_file_override_end_to_end(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")  # 5 input + 4 output tokens
    pytester.makefile(
        ".toml",
        prices='[models."claude-test*"]\ninput = 1000\noutput = 2000\n',
    )
    pytester.makeini("[pytest]\nllm_prices = prices.toml\n")
    body = """
@pytest.mark.llm_budget(max_cost_usd=0.01)
def test_priced(llmobs):
    ant()
    assert llmobs.cost_usd == pytest.approx((5 * 1000 + 4 * 2000) / 1e6)
"""
    result = run(pytester, body)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  max_cost_usd  $0.01  $0.013  test    #1"])
    # the flag wins over the ini; a path relative to the rootdir
    (pytester.path / "cheap.toml").write_text('[models."claude-*"]\ninput = 1\noutput = 1\n')
    result = run(
        pytester, body.replace("1000", "1").replace("2000", "1"), "--llm-prices", "cheap.toml"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["llmobs cost: $0.000009 for 1 call"])


def test_bad_prices_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, "--llm-prices", "missing.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: prices file */missing.toml does not exist"])
