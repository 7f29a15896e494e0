"""Figures read right from recorded traffic: Cohere Command on Bedrock (MAX_TOKENS is a
truncation), Amazon Nova with partial usage in its body (the rest from Bedrock's token-count
headers), an InvokeModel body the app never reads (recorded and replayed with its bytes),
and run totals over calls that report no total (Anthropic).

Each inner test runs live against the local provider server while the plugin records its
cassette, then offline from that cassette: the same assertions hold both times."""

from __future__ import annotations

import json
from pathlib import Path

import boto3  # noqa: F401 - loaded once for the session (pytester drops what it imports)
import pytest
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.testing import ProviderServer

SUITE = """
import json, os
import anthropic, boto3, openai, pytest
from botocore.config import Config

URL = os.environ["LLM_URL"]
PROMPT = "say hello to the test"  # 5 words
REPLY = "one two three four"


def bedrock(headers=None):
    client = boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    if headers:
        def add(request, **_):
            for name, value in headers.items():
                request.headers[name] = value
        client.meta.events.register("before-sign.bedrock-runtime.*", add)
    return client


def invoke(client, model, body):
    return json.loads(client.invoke_model(modelId=model, body=json.dumps(body))["body"].read())


@pytest.mark.llm_allow_truncation("MAX_TOKENS")
def test_cohere_max_tokens(llmobs):
    client = bedrock()
    command = {"prompt": PROMPT, "max_tokens": 2}
    out = invoke(client, "cohere.command-text-v14", command)
    assert out["generations"][0]["finish_reason"] == "MAX_TOKENS"
    stream = client.invoke_model_with_response_stream(
        modelId="cohere.command-light-text-v14", body=json.dumps(command)
    )
    chunks = [json.loads(event["chunk"]["bytes"]) for event in stream["body"]]
    assert chunks[-1]["generations"][0]["finish_reason"] == "MAX_TOKENS"
    chat = invoke(client, "cohere.command-r-v1:0", {"message": PROMPT, "max_tokens": 2})
    assert chat["finish_reason"] == "MAX_TOKENS"
    plain, streamed, command_r = llmobs.calls
    for call in (plain, streamed, command_r):
        assert call.finish_reasons == ("MAX_TOKENS",)
        assert call.truncated and call.truncation_reason == "MAX_TOKENS"
        assert call.max_tokens == 2 and call.output_text == "one two"
        assert (call.usage.input_tokens, call.usage.output_tokens) == (5, 2)
    assert streamed.stream and streamed.operation == "text_completion"


def test_cohere_cut_is_reported(llmobs):
    invoke(bedrock(), "cohere.command-text-v14", {"prompt": PROMPT, "max_tokens": 1})


def test_cohere_complete(llmobs):
    invoke(bedrock(), "cohere.command-text-v14", {"prompt": PROMPT, "max_tokens": 50})
    [call] = llmobs.calls
    assert call.finish_reasons == ("COMPLETE",) and not call.truncated
    assert call.output_text == REPLY


def test_nova_partial_usage(llmobs):
    body = {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
        "inferenceConfig": {"max_new_tokens": 50},
    }
    partial = bedrock({"x-fake-usage-omit": "outputTokens,totalTokens"})
    out = invoke(partial, "amazon.nova-lite-v1:0", body)
    assert out["usage"]["inputTokens"] == 5 and "outputTokens" not in out["usage"]
    omit_all = "inputTokens,outputTokens,totalTokens"
    out = invoke(bedrock({"x-fake-usage-omit": omit_all}), "amazon.nova-lite-v1:0", body)
    assert "inputTokens" not in out["usage"] and "outputTokens" not in out["usage"]
    stream = partial.invoke_model_with_response_stream(
        modelId="amazon.nova-lite-v1:0", body=json.dumps(body)
    )
    assert len(list(stream["body"])) == 8
    some, none, streamed = llmobs.calls
    for call in (some, none, streamed):
        assert (call.usage.input_tokens, call.usage.output_tokens) == (5, 4), call.usage
        assert call.finish_reasons == ("end_turn",) and call.output_text == REPLY
        assert call.usage.cached_input_tokens == 0
    assert llmobs.usage.total_tokens == 27  # 9 each; no call's total is missing from the sum


def test_unread_body(llmobs):
    response = bedrock().invoke_model(
        modelId="meta.llama3-test", body=json.dumps({"prompt": PROMPT, "max_gen_len": 50})
    )
    # the app never reads response["body"]: the call is complete anyway
    [call] = llmobs.calls
    assert call.output_text == REPLY and call.finish_reasons == ("stop",)
    assert (call.usage.input_tokens, call.usage.output_tokens) == (5, 4)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_body_read_after_the_call_is_parsed(llmobs):
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    response = bedrock().invoke_model(modelId="anthropic.claude-test", body=json.dumps(claude))
    [call] = llmobs.calls
    assert call.output_text == REPLY and call.response_id
    body = response["body"]
    first = body.read(10)
    rest = body.read()
    assert json.loads(first + rest)["content"][0]["text"] == REPLY  # the app's bytes, whole
    assert body.read() == b""


def test_totals_without_a_provider_total(llmobs):
    messages = [{"role": "user", "content": PROMPT}]
    anthropic.Anthropic(base_url=URL, max_retries=0).messages.create(
        model="claude-x", max_tokens=50, messages=messages
    )
    openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=messages
    )
    claude, gpt = llmobs.calls
    assert claude.usage.total_tokens is None and gpt.usage.total_tokens == 9
    assert llmobs.usage.total_tokens == 18
"""


@pytest.fixture
def suite(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    provider.configure(reply="one two three four")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pytester.makepyfile(test_inner=SUITE)
    return pytester.path / "cassettes" / "test_inner"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest(*INNER_ARGS, *args)
    result.assert_outcomes(passed=6, failed=1)
    # the one cut Cohere answer is a truncation the plugin reports
    result.stdout.fnmatch_lines(
        [
            "LLM checks failed for test_inner.py::test_cohere_cut_is_reported: 1 violation",
            "*truncation of #1: the answer was cut at the output token limit"
            " (finish reason: MAX_TOKENS*",
            '*cohere.command-text-v14*max_tokens=1): finish reason "MAX_TOKENS"*',
        ]
    )
    return result


def test_recorded_bedrock_shapes_and_totals_live_and_replayed(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    suite: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(pytester, "--llm-record-mode=once")
    sent = len(provider.requests)
    assert sent == 12
    unread = json.loads((suite / "test_unread_body.yaml").read_text())
    [interaction] = unread["interactions"]
    # the body nobody read is in the cassette, as the server sent it
    assert interaction["response"]["body"]["json"]["generation"] == "one two three four"

    monkeypatch.setenv("LLM_URL", dead_url())  # offline: only the cassettes answer
    _run(pytester, "--llm-record-mode=none")
    assert len(provider.requests) == sent
