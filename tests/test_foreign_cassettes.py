"""Cassettes from other tools, and a record→replay round trip per provider, all through the
real cassette module and the real SDKs.

1. Plain vcrpy (what pytest-recording runs) records the suite below against the local
   provider server, gzip on: gzip-compressed `!!binary` bodies and SSE streams (OpenAI,
   Azure, Anthropic, Gemini), gzip NDJSON (Ollama), binary AWS event streams (Bedrock).
   The plugin then replays those files as they are, offline, with
   `--llm-record-mode=none`: the SDKs get the same answers, and each call is an `LLMCall`
   with the usage and finish reasons the provider reported.
2. The plugin records the same suite itself and replays it offline, for each provider.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Loaded once for the session: pytester's in-process runs drop what they import.
import boto3  # noqa: F401
import ollama  # noqa: F401
import pytest
import vcr  # noqa: F401
import yaml
from google import genai  # noqa: F401
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.testing import ProviderServer

PROVIDERS = ("openai", "azure", "anthropic", "bedrock", "gemini", "ollama")

SUITE = """
import json, os, pathlib
import anthropic, boto3, ollama, openai, pytest
from botocore.config import Config
from google import genai
from google.genai import types as genai_types

URL = os.environ["LLM_URL"]
RESULTS = pathlib.Path(os.environ["RESULTS"])
PROMPT = "say hello to the test"
MESSAGES = [{"role": "user", "content": PROMPT}]
# what a pytest-recording user typically filters; the rest vcrpy writes as it is
SECRET_HEADERS = ["authorization", "api-key", "x-api-key", "x-goog-api-key",
                  "x-amz-security-token", "x-amz-date", "amz-sdk-invocation-id"]


@pytest.fixture(autouse=True)
def plain_vcrpy(request):
    \"\"\"VCR_RECORD set: plain vcrpy records this test at the plugin's default path.\"\"\"
    if not os.environ.get("VCR_RECORD"):
        yield
        return
    import vcr

    path = request.path.parent / "cassettes" / request.path.stem / f"{request.node.name}.yaml"
    recorder = vcr.VCR(record_mode="once", filter_headers=SECRET_HEADERS)
    with recorder.use_cassette(str(path)):
        yield


def save(request, out):
    calls = []
    if request.config.pluginmanager.hasplugin("llmobs"):
        calls = [
            [c.provider, c.operation, c.request_model, c.stream, c.source, c.status_code,
             c.usage.input_tokens, c.usage.output_tokens, list(c.finish_reasons), c.truncated,
             c.output_text, len(c.chunk_offsets_s or ())]
            for c in request.getfixturevalue("llmobs").calls
        ]
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[request.node.name] = {"out": out, "calls": calls}
    RESULTS.write_text(json.dumps(data))


def openai_pair(client, model):
    plain = client.chat.completions.create(model=model, messages=MESSAGES)
    deltas, usage, finish = [], None, None
    for chunk in client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    return [
        [plain.choices[0].message.content, plain.usage.prompt_tokens,
         plain.usage.completion_tokens, plain.choices[0].finish_reason],
        [deltas, usage.prompt_tokens, usage.completion_tokens, finish],
    ]


def test_openai(request):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
    save(request, openai_pair(client, "gpt-4o"))


def test_azure(request):
    client = openai.AzureOpenAI(azure_endpoint=URL, api_version="2024-10-21", max_retries=0,
                                api_key="azure-key-0000")
    save(request, openai_pair(client, "prod-gpt4o"))


def test_anthropic(request):
    client = anthropic.Anthropic(base_url=URL, max_retries=0, api_key="sk-ant-test-0000")
    plain = client.messages.create(model="claude-x", max_tokens=50, messages=MESSAGES)
    with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    save(request, [
        [plain.content[0].text, plain.usage.input_tokens, plain.usage.output_tokens,
         plain.stop_reason],
        [deltas, final.usage.input_tokens, final.usage.output_tokens, final.stop_reason],
    ])


def test_bedrock(request):
    client = boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    messages = [{"role": "user", "content": [{"text": PROMPT}]}]
    plain = client.converse(modelId="anthropic.claude-test-v1:0", messages=messages)
    events = list(client.converse_stream(modelId="amazon.nova-test-v1:0",
                                         messages=messages)["stream"])
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    [meta] = [e["metadata"] for e in events if "metadata" in e]
    [stop] = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
    save(request, [
        [plain["output"]["message"]["content"][0]["text"], plain["usage"]["inputTokens"],
         plain["usage"]["outputTokens"], plain["stopReason"]],
        [deltas, meta["usage"]["inputTokens"], meta["usage"]["outputTokens"], stop],
    ])


def test_gemini(request):
    client = genai.Client(api_key="AIza-not-a-real-key",
                          http_options=genai_types.HttpOptions(base_url=URL))
    plain = client.models.generate_content(model="gemini-test", contents=PROMPT)
    chunks = list(client.models.generate_content_stream(model="gemini-test", contents=PROMPT))
    last = chunks[-1]
    save(request, [
        [plain.text, plain.usage_metadata.prompt_token_count,
         plain.usage_metadata.candidates_token_count, plain.candidates[0].finish_reason.value],
        [[c.text for c in chunks], last.usage_metadata.prompt_token_count,
         last.usage_metadata.candidates_token_count, last.candidates[0].finish_reason.value],
    ])


def test_ollama(request):
    client = ollama.Client(host=URL)
    plain = client.chat(model="llama-test", messages=MESSAGES, stream=False)
    parts = list(client.chat(model="llama-test", messages=MESSAGES, stream=True))
    last = parts[-1]
    save(request, [
        [plain.message.content, plain.prompt_eval_count, plain.eval_count, plain.done_reason],
        [[p.message.content for p in parts], last.prompt_eval_count, last.eval_count,
         last.done_reason],
    ])
"""

# (input, output tokens) the provider server reports for PROMPT → "one two three four"
USAGE = (5, 4)
FINISH = {
    "openai": "stop",
    "azure": "stop",
    "anthropic": "end_turn",
    "bedrock": "end_turn",
    "gemini": "STOP",
    "ollama": "stop",
}
GEN_AI_NAME = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "ollama": "ollama",
}


@pytest.fixture
def suite(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    provider.configure(reply="one two three four", gzip=True)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pytester.makepyfile(test_foreign=SUITE)
    return pytester.path / "results.json"


def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results: Path, *args: str
) -> dict[str, Any]:
    results.unlink(missing_ok=True)
    monkeypatch.setenv("RESULTS", str(results))
    pytester.runpytest(*INNER_ARGS, *args).assert_outcomes(passed=len(PROVIDERS))
    data: dict[str, Any] = json.loads(results.read_text())
    return data


def files(directory: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(directory.glob("*.yaml"))}


def check_calls(replayed: dict[str, Any], recorded: dict[str, Any]) -> None:
    """Every call replayed, as the provider reported it when the SDK saw it live."""
    for name in PROVIDERS:
        calls = replayed[f"test_{name}"]["calls"]
        assert len(calls) == 2, name
        assert [c[0] for c in calls] == [GEN_AI_NAME[name]] * 2, name
        assert [(c[3], c[4], c[5]) for c in calls] == [
            (False, "replay", 200),
            (True, "replay", 200),
        ]
        for call, (sdk_text, sdk_in, sdk_out, sdk_finish) in zip(
            calls, recorded[f"test_{name}"]["out"], strict=True
        ):
            # the figures the SDK read live = the figures the plugin reads on replay
            assert (call[6], call[7]) == (sdk_in, sdk_out) == USAGE, name
            assert call[8] == [sdk_finish] == [FINISH[name]], name
            assert call[9] is False, name
            text = sdk_text if isinstance(sdk_text, str) else "".join(t or "" for t in sdk_text)
            assert call[10] == text == "one two three four", name


def test_plain_vcrpy_cassettes_replay_through_the_plugin_offline(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    suite: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VCR_RECORD", "1")
    live = run(pytester, monkeypatch, suite, "-p", "no:llmobs")
    monkeypatch.delenv("VCR_RECORD")
    sent = len(provider.requests)
    assert sent == 2 * len(PROVIDERS)
    # the server compressed what the clients accepted compressed: every client but botocore
    # (Bedrock's paths start with /model/) accepts gzip, so the server compressed those answers
    accepts = [(r.path, r.headers.get("accept-encoding") or "") for r in provider.requests]
    assert [a for path, a in accepts if path.startswith("/model/")] == ["identity"] * 2
    others = [a for path, a in accepts if not path.startswith("/model/")]
    assert len(others) == 2 * (len(PROVIDERS) - 1) and all("gzip" in a for a in others)
    directory = pytester.path / "cassettes" / "test_foreign"
    recorded = files(directory)
    assert sorted(recorded) == sorted(f"test_{p}" for p in PROVIDERS)
    for name, raw in recorded.items():
        doc = yaml.safe_load(raw)  # vcrpy's own layout, not ours
        assert "llmobs_cassette" not in doc and len(doc["interactions"]) == 2, name
        assert b"!!binary" in raw, name
    for name in ("openai", "azure", "anthropic", "gemini", "ollama"):
        responses = yaml.safe_load(recorded[f"test_{name}"])["interactions"]
        for interaction in responses:
            headers = {k.lower(): v for k, v in interaction["response"]["headers"].items()}
            assert headers["content-encoding"] == ["gzip"], name
            assert interaction["response"]["body"]["string"][:2] == b"\x1f\x8b", name
    kinds = {
        name: [
            {k.lower(): v for k, v in i["response"]["headers"].items()}["content-type"][0]
            for i in yaml.safe_load(recorded[f"test_{name}"])["interactions"]
        ][1]
        for name in PROVIDERS
    }
    assert kinds["bedrock"] == "application/vnd.amazon.eventstream"
    assert kinds["ollama"] == "application/x-ndjson"
    assert all(kinds[n].startswith("text/event-stream") for n in ("openai", "gemini"))

    monkeypatch.setenv("LLM_URL", dead_url())  # offline: nothing answers there
    replayed = run(pytester, monkeypatch, suite, "--llm-record-mode=none")
    assert len(provider.requests) == sent
    assert files(directory) == recorded  # replayed as they are, never rewritten
    for name in PROVIDERS:
        assert replayed[f"test_{name}"]["out"] == live[f"test_{name}"]["out"], name
    check_calls(replayed, live)


def test_round_trip_per_provider_through_the_cassette_module(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    suite: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording = run(pytester, monkeypatch, suite, "--llm-record-mode=once")
    sent = len(provider.requests)
    assert sent == 2 * len(PROVIDERS)
    directory = pytester.path / "cassettes" / "test_foreign"
    ours = files(directory)
    assert sorted(ours) == sorted(f"test_{p}" for p in PROVIDERS)
    for name, raw in ours.items():  # our readable form: decompressed, streams as events
        doc = json.loads(raw)
        assert doc["llmobs_cassette"] == 1 and len(doc["interactions"]) == 2, name
        plain, streamed = (i["response"] for i in doc["interactions"])
        if name != "test_bedrock":  # botocore does not accept gzip
            assert plain["encoding"] == streamed["encoding"] == "gzip", name
        assert "json" in plain["body"] and len(streamed["stream"]) > 1, name
    for name in PROVIDERS:
        assert {c[4] for c in recording[f"test_{name}"]["calls"]} == {"live"}, name

    monkeypatch.setenv("LLM_URL", dead_url())
    replayed = run(pytester, monkeypatch, suite, "--llm-record-mode=none")
    assert len(provider.requests) == sent and files(directory) == ours
    for name in PROVIDERS:
        again, before = replayed[f"test_{name}"], recording[f"test_{name}"]
        assert again["out"] == before["out"], name
        # same figures, same chunking: the stream came back in the pieces it was recorded in
        assert before["calls"][1][11] > 1, name
        assert [c[:4] + c[5:] for c in again["calls"]] == [
            c[:4] + c[5:] for c in before["calls"]
        ], name
    check_calls(replayed, recording)
