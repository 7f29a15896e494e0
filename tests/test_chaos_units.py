"""Chaos building blocks without a test run: catalog bytes, damage, rules, scenario
validation (line numbers and valid values), seeded injection."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_llmobs.chaos import FAULTS, ChaosConfigError, fault_table
from pytest_llmobs.chaos.catalog import render
from pytest_llmobs.chaos.damage import Damage, plan
from pytest_llmobs.chaos.dialects import DIALECTS, RequestInfo, parse_event
from pytest_llmobs.chaos.injector import Injector
from pytest_llmobs.chaos.rules import header_rule, make_rule, parse_fault_header
from pytest_llmobs.chaos.scenario import load_scenario, parse_scenario

OPENAI = RequestInfo("openai", "chat", "gpt-4o", stream=True, include_usage=True)
ANTHROPIC = RequestInfo("anthropic", "messages", "claude-test", stream=True)
SCENARIOS = Path(__file__).parent.parent / "pytest_llmobs" / "chaos" / "scenarios"


def _damage(fault: str, info: RequestInfo, **params: object) -> tuple[list[bytes], str]:
    spec = FAULTS[fault]
    merged = spec.coerce(dict(params), "test")
    base = DIALECTS[info.provider].synthesize(info, "one two three four")
    damage = Damage(fault, merged, DIALECTS[info.provider], info, random.Random(1))
    pieces, ending = plan(damage, base.events or [base.body])
    return [data for _, data in pieces], ending


def test_every_fault_is_documented_and_renders_for_each_provider() -> None:
    table = fault_table()
    for name, fault in FAULTS.items():
        assert f"`{name}`" in table
        for info in (OPENAI, ANTHROPIC, RequestInfo("azure.ai.openai", "chat", "dep", False)):
            if fault.applies(info):
                injection = render(fault, fault.defaults(), info, random.Random(0))
                assert injection.annotations["chaos.fault"] == name
                assert (injection.reply, injection.transport, injection.damage).count(None) == 2


def test_anthropic_overloaded_bytes() -> None:
    reply = DIALECTS["anthropic"].error("overloaded", {}, ANTHROPIC)
    body = json.loads(reply.body)
    assert reply.status == 529
    assert body["type"] == "error" and body["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    assert dict(reply.headers)["request-id"] == body["request_id"]
    assert dict(reply.headers)["x-should-retry"] == "true"


def test_stream_faults_strike_after_n_output_events() -> None:
    pieces, ending = _damage("stream_cut", OPENAI, after=1)
    assert ending == "reset"
    deltas = [json.loads(parse_event(p)[1])["choices"][0]["delta"] for p in pieces]
    assert deltas == [{"role": "assistant", "content": "", "refusal": None}, {"content": "one"}]
    pieces, ending = _damage("stream_truncated", ANTHROPIC, after=10)  # past the end
    names = [parse_event(p)[0] for p in pieces]
    assert ending == "close" and names[-1] == "content_block_delta"
    assert "message_stop" not in names and "message_delta" not in names
    pieces, ending = _damage("stream_error_event", ANTHROPIC, after=0)
    assert parse_event(pieces[-1])[0] == "error" and ending == "close"


def test_truncate_length_and_token_spike_rewrite_the_stream() -> None:
    pieces, _ = _damage("truncate_length", OPENAI, after=2)
    chunks = [json.loads(parse_event(p)[1]) for p in pieces[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 2
    assert pieces[-1] == b"data: [DONE]\n\n"
    pieces, _ = _damage("token_spike", ANTHROPIC, factor=4)
    start = json.loads(parse_event(pieces[0])[1])
    delta = json.loads(parse_event(pieces[-2])[1])
    assert start["message"]["usage"]["input_tokens"] == 4 * 1
    assert delta["usage"]["output_tokens"] == 16


def test_slow_stream_is_seeded() -> None:
    info = RequestInfo("openai", "chat", "gpt-4o", stream=True)
    fault = FAULTS["slow_stream"]
    params = fault.coerce({"ttft_s": 0.5, "delay_s": 0.1, "jitter_s": 0.05}, "t")

    def offsets(seed: int) -> list[float]:
        damage = Damage("slow_stream", params, DIALECTS["openai"], info, random.Random(seed))
        base = DIALECTS["openai"].synthesize(info, "a b c")
        return [offset for offset, _ in plan(damage, base.events or [])[0]]

    assert offsets(1) == offsets(1) != offsets(2)
    first, *rest = offsets(1)
    assert 0.55 <= first <= 0.65 and all(
        b - a >= 0.05 for a, b in zip(offsets(1), rest, strict=False)
    )


def test_non_stream_bodies_are_damaged_whole() -> None:
    info = RequestInfo("openai", "chat", "gpt-4o", stream=False)
    pieces, ending = _damage("stream_cut", info)
    body = DIALECTS["openai"].synthesize(info, "one two three four").body
    assert ending == "reset" and len(pieces) == 1 and len(pieces[0]) == len(body) // 2
    (filtered,), ending = _damage("content_filter", info, variant="output")
    choice = json.loads(filtered)["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] is None
    (spiked,), _ = _damage("token_spike", info, factor=2)
    assert json.loads(spiked)["usage"]["completion_tokens"] == 8


def test_fault_applicability() -> None:
    embeddings = RequestInfo("openai", "embeddings", "text-embedding-3-small", stream=False)
    assert FAULTS["rate_limit"].applies(embeddings)
    assert not FAULTS["stream_cut"].applies(embeddings)
    assert not FAULTS["stream_error_event"].applies(RequestInfo("openai", "chat", "m", False))
    assert not FAULTS["rate_limit"].applies(RequestInfo("gcp.gemini", "chat", "m", False))


def test_injector_is_deterministic_per_seed_and_scope() -> None:
    rules = [
        make_rule("rate_limit", "t", probability=0.3),
        make_rule("server_error", "t", probability=0.3),
    ]

    def pattern(seed: int, scope: str) -> list[str | None]:
        injector = Injector(list(rules), seed, scope=scope)
        out = []
        for _ in range(40):
            injection = injector.decide(OPENAI)
            out.append(injection.fault.name if injection else None)
        return out

    assert pattern(5, "test_a") == pattern(5, "test_a")
    assert pattern(5, "test_a") != pattern(6, "test_a")
    assert pattern(5, "test_a") != pattern(5, "test_b")
    assert {"rate_limit", "server_error", None} == set(pattern(5, "test_a"))


def test_times_skip_and_call_index() -> None:
    injector = Injector([make_rule("overloaded", "t", times=2, skip=1)], 1)
    fired = [injector.decide(OPENAI) is not None for _ in range(5)]
    assert fired == [False, True, True, False, False]
    injector = Injector([make_rule("overloaded", "t", match={"call": [1, 3]}, times=None)], 1)
    assert [injector.decide(OPENAI) is not None for _ in range(5)] == [
        False,
        True,
        False,
        True,
        False,
    ]


def test_fault_header() -> None:
    rule = parse_fault_header("rate_limit; retry_after=0.25; times=2")
    assert rule.fault.name == "rate_limit" and rule.params["retry_after"] == 0.25
    assert rule.times == 2
    assert header_rule("rate_limit", "0") is not None
    assert header_rule("rate_limit", "1") is None  # the SDK's retry of a one-shot fault
    assert header_rule("rate_limit; times=3", "2") is not None
    with pytest.raises(ChaosConfigError, match="expected key=value, got 'retry_after'"):
        parse_fault_header("rate_limit; retry_after")
    with pytest.raises(ChaosConfigError, match="retry_after='soon' must be a number >= 0"):
        parse_fault_header("rate_limit; retry_after=soon")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - fault: rate_limt\n",
            "chaos.yaml:2: unknown fault 'rate_limt'; valid faults: rate_limit, quota_exhausted,",
        ),
        (
            "rules:\n  - fault: rate_limit\n    probabilty: 0.5\n",
            "chaos.yaml:3: unknown rule key 'probabilty'; valid: fault, match, probability, "
            "times, skip, params",
        ),
        (
            "rules:\n  - fault: rate_limit\n    probability: 2\n",
            "chaos.yaml:3: probability=2 must be a number from 0 to 1",
        ),
        (
            "rules:\n  - fault: rate_limit\n    match:\n      modle: gpt-4o\n",
            "chaos.yaml:4: unknown match key 'modle'; valid: provider, model, path, host, api, "
            "stream, call",
        ),
        (
            "rules:\n  - fault: rate_limit\n    match: {provider: openia}\n",
            "chaos.yaml:3: provider 'openia' is not one of: openai, azure.ai.openai, anthropic",
        ),
        (
            "rules:\n  - fault: slow_stream\n    params:\n      delay_s: fast\n",
            "chaos.yaml:4: delay_s='fast' must be a number >= 0",
        ),
        (
            "rules:\n  - fault: stream_error_event\n    params: {error: boom}\n",
            "chaos.yaml:3: error='boom' is not one of: overloaded, server_error, rate_limit",
        ),
        (
            "rules:\n  - fault: stream_cut\n    params: {retry_after: 1}\n",
            "chaos.yaml:3: fault 'stream_cut' has no parameter 'retry_after'; valid: after, text",
        ),
        (
            "rules:\n  - fault: rate_limit\n    times: 0\n",
            "chaos.yaml:3: times=0 must be an integer >= 1",
        ),
        ("seed: x\nrules: [rate_limit]\n", "chaos.yaml:1: seed must be an integer"),
        ("rulez: []\n", "chaos.yaml:1: unknown key 'rulez'; valid: name, seed, rules"),
        ("rules: []\n", "chaos.yaml:1: 'rules' is empty"),
        ("rules:\n  - fault: [rate_limit\n", "chaos.yaml:3: YAML syntax error"),
        ("", "chaos.yaml:1: empty scenario"),
    ],
)
def test_scenario_errors_name_the_line_and_the_valid_values(text: str, message: str) -> None:
    with pytest.raises(ChaosConfigError) as info:
        parse_scenario(text, "chaos.yaml")
    assert str(info.value).startswith(message), str(info.value)


def test_scenario_shapes() -> None:
    bare = parse_scenario("- rate_limit\n- fault: overloaded\n  probability: 0.1\n", "s")
    assert [r.fault.name for r in bare.rules] == ["rate_limit", "overloaded"]
    assert bare.rules[0].times == 1 and bare.rules[1].times is None  # probabilistic: unlimited
    assert bare.rules[1].label == "s:2"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.rules and scenario.name
