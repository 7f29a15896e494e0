"""pytest-llmobs installed beside pytest-recording (and respx, responses): never blind,
never meddling.

A pytest-recording suite (one `@pytest.mark.vcr` test per client: the openai SDK over
httpx2, sync and async, anthropic streaming, boto3 Bedrock, plain httpx, requests and
aiohttp) is recorded by pytest-recording alone, then replayed offline by pytest-recording
alone and by both plugins: the same outcomes and answers, every LLM call captured with its
usage, the cassettes untouched. vcrpy patches each client somewhere else (above our
transport patch for httpx in vcrpy 7 and 9 and for aiohttp, below it for httpx in vcrpy 8,
requests and botocore); `make test-floor` runs this file under vcrpy 7 and 8 too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Loaded once for the session: pytester's in-process runs drop what they import.
import aiohttp  # noqa: F401
import boto3  # noqa: F401
import pytest
import responses  # noqa: F401
import respx  # noqa: F401
import vcr  # noqa: F401
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer

pytestmark = pytest.mark.with_pytest_recording

CONFTEST = """
import pytest

@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["authorization", "x-api-key", "x-amz-security-token",
                               "x-amz-date", "amz-sdk-invocation-id"]}
"""

SUITE = """
import asyncio, json, os, pathlib
import aiohttp, anthropic, boto3, httpx, openai, pytest, requests
from botocore.config import Config

URL = os.environ["LLM_URL"]
RESULTS = pathlib.Path(os.environ["RESULTS"])
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}
HEADERS = {"authorization": "Bearer sk-test-0000"}


def save(request, out):
    calls = []
    if request.config.pluginmanager.hasplugin("llmobs"):
        calls = [
            [c.provider, c.request_model, c.stream, c.source, c.status_code,
             c.usage.input_tokens, c.usage.output_tokens, list(c.finish_reasons), c.output_text]
            for c in request.getfixturevalue("llmobs").calls
        ]
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[request.node.name] = {"out": out, "calls": calls}
    RESULTS.write_text(json.dumps(data))


@pytest.mark.vcr
def test_openai(request):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
    plain = client.chat.completions.create(**CHAT)
    deltas = [c.choices[0].delta.content for c in client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}) if c.choices]
    save(request, [plain.choices[0].message.content, plain.usage.completion_tokens, deltas])


@pytest.mark.vcr
def test_openai_async(request):
    async def main():
        client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
        answer = await client.chat.completions.create(**CHAT)
        return [answer.choices[0].message.content, answer.usage.prompt_tokens]

    save(request, asyncio.run(main()))


@pytest.mark.vcr
def test_anthropic_stream(request):
    client = anthropic.Anthropic(base_url=URL, max_retries=0, api_key="sk-ant-test-0000")
    with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    save(request, [deltas, final.usage.output_tokens, final.stop_reason])


@pytest.mark.vcr
def test_bedrock(request):
    client = boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    messages = [{"role": "user", "content": [{"text": "say hello to the test"}]}]
    plain = client.converse(modelId="anthropic.claude-test-v1:0", messages=messages)
    events = list(client.converse_stream(modelId="amazon.nova-test-v1:0",
                                         messages=messages)["stream"])
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    save(request, [plain["output"]["message"]["content"][0]["text"],
                   plain["usage"]["outputTokens"], deltas])


@pytest.mark.vcr
def test_httpx(request):
    answer = httpx.post(URL + "/v1/chat/completions", json=CHAT, headers=HEADERS).json()
    save(request, [answer["choices"][0]["message"]["content"], answer["usage"]])


@pytest.mark.vcr
def test_requests(request):
    answer = requests.post(URL + "/v1/chat/completions", json=CHAT, headers=HEADERS).json()
    save(request, [answer["choices"][0]["message"]["content"], answer["usage"]])


@pytest.mark.vcr
def test_aiohttp(request):
    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.post(URL + "/v1/chat/completions", json=CHAT,
                                    headers=HEADERS) as response:
                return await response.json()

    answer = asyncio.run(main())
    save(request, [answer["choices"][0]["message"]["content"], answer["usage"]])
"""

# test name → (provider, request model, stream) of each call it makes
EXPECTED = {
    "test_openai": [("openai", "gpt-4o", False), ("openai", "gpt-4o", True)],
    "test_openai_async": [("openai", "gpt-4o", False)],
    "test_anthropic_stream": [("anthropic", "claude-x", True)],
    "test_bedrock": [
        ("aws.bedrock", "anthropic.claude-test-v1:0", False),
        ("aws.bedrock", "amazon.nova-test-v1:0", True),
    ],
    "test_httpx": [("openai", "gpt-4o", False)],
    "test_requests": [("openai", "gpt-4o", False)],
    "test_aiohttp": [("openai", "gpt-4o", False)],
}


# The clients every vcrpy from 7.0 on patches.
TAPED_BY_ANY_VCRPY = ("test_bedrock", "test_httpx", "test_requests", "test_aiohttp")


def _tree(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _run(pytester: pytest.Pytester, results: Path, *args: str) -> dict[str, Any]:
    results.unlink(missing_ok=True)
    plugin = ("-p", "no:llmobs") if "alone" in args else ("--llm-record-mode=none",)
    args = tuple(a for a in args if a != "alone")
    outcome = pytester.runpytest(*INNER_ARGS, *plugin, *args)
    outcome.assert_outcomes(passed=len(EXPECTED))
    data: dict[str, Any] = json.loads(results.read_text())
    return data


@pytest.fixture
def suite(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    results = pytester.path / "results.json"
    monkeypatch.setenv("RESULTS", str(results))
    return results


def test_replayed_by_pytest_recording_with_every_call_captured(
    pytester: pytest.Pytester, provider: ProviderServer, suite: Path
) -> None:
    recorded = _run(pytester, suite, "alone", "--record-mode=once")
    cassettes = pytester.path / "cassettes"
    taped = sorted(p.stem for p in (cassettes / "test_suite").iterdir())
    # vcrpy before 9 does not patch httpx2 (the openai and anthropic SDKs' client since
    # their 2026 releases): those tests reach the server in every run, with or without us.
    assert set(TAPED_BY_ANY_VCRPY) <= set(taped) <= set(EXPECTED), taped
    live = sum(len(calls) for name, calls in EXPECTED.items() if name not in taped)
    files = _tree(cassettes)
    served = len(provider.requests)

    alone = _run(pytester, suite, "alone", "--record-mode=none")
    assert len(provider.requests) == served + live
    both = _run(pytester, suite, "--record-mode=none")
    assert len(provider.requests) == served + 2 * live

    # The same answers as when recorded, in both runs.
    assert {name: r["out"] for name, r in alone.items()} == {
        name: r["out"] for name, r in recorded.items()
    }
    assert {name: r["out"] for name, r in both.items()} == {
        name: r["out"] for name, r in alone.items()
    }
    # Never meddling: pytest-llmobs wrote and changed no cassette.
    assert _tree(cassettes) == files
    # Never blind: every call, with the usage and text the client received.
    for name, expected in EXPECTED.items():
        calls = both[name]["calls"]
        assert [tuple(call[:3]) for call in calls] == expected, name
        for (
            _provider,
            _model,
            _stream,
            source,
            status,
            tokens_in,
            tokens_out,
            finish,
            text,
        ) in calls:
            assert source == ("vcrpy" if name in taped else "live"), (name, source)
            assert status == 200 and tokens_in > 0 and tokens_out > 0, (name, calls)
            assert finish and text, (name, calls)


def test_recorded_with_both_plugins_stays_pytest_recordings(
    pytester: pytest.Pytester, provider: ProviderServer, suite: Path
) -> None:
    """Recording with both installed: vcrpy writes its cassettes, pytest-llmobs none of
    its own, and captures the live calls; pytest-recording alone then replays them."""
    live = _run(pytester, suite, "--record-mode=once")
    cassettes = pytester.path / "cassettes" / "test_suite"
    assert set(TAPED_BY_ANY_VCRPY) <= {p.stem for p in cassettes.iterdir()} <= set(EXPECTED)
    for path in cassettes.iterdir():
        assert "llmobs_cassette" not in path.read_text(), path
    for name, expected in EXPECTED.items():
        assert [tuple(call[:3]) for call in live[name]["calls"]] == expected, name
    alone = _run(pytester, suite, "alone", "--record-mode=none")
    assert {name: r["out"] for name, r in alone.items()} == {
        name: r["out"] for name, r in live.items()
    }


def test_budgets_see_the_calls_pytest_recording_answers(
    pytester: pytest.Pytester, provider: ProviderServer, suite: Path
) -> None:
    """The reported bug: with both installed, `llm_budget(max_calls=0)` passed."""
    recorded = pytester.runpytest(
        *INNER_ARGS, "-p", "no:llmobs", "--record-mode=once", "-k", "httpx or aiohttp"
    )
    recorded.assert_outcomes(passed=2, deselected=5)
    cassettes = pytester.path / "cassettes"
    (cassettes / "test_budget").mkdir()
    for name in ("test_httpx.yaml", "test_aiohttp.yaml"):
        (cassettes / "test_budget" / name).write_bytes(
            (cassettes / "test_suite" / name).read_bytes()
        )
    pytester.makepyfile(
        test_budget="""
import asyncio, os, aiohttp, httpx, pytest

URL = os.environ["LLM_URL"] + "/v1/chat/completions"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "say hello to the test"}]}

@pytest.mark.vcr
@pytest.mark.llm_budget(max_calls=0)
def test_httpx():
    httpx.post(URL, json=CHAT, headers={"authorization": "Bearer k"})

@pytest.mark.vcr
@pytest.mark.llm_budget(max_output_tokens=1)
def test_aiohttp():
    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.post(URL, json=CHAT, headers={"authorization": "Bearer k"}) as r:
                return await r.json()

    asyncio.run(main())
"""
    )
    served = len(provider.requests)
    result = pytester.runpytest(
        *INNER_ARGS, "--llm-record-mode=none", "--record-mode=none", "test_budget.py"
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*max_calls*0*1*test*"])
    result.stdout.fnmatch_lines(["*max_output_tokens*1*5*test*"])
    assert len(provider.requests) == served


MOCKS = """
import os, httpx, pytest, requests, respx, responses

OPENAI = "https://api.openai.com/v1/chat/completions"
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "mocked"}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@respx.mock
def test_respx(llmobs):
    respx.post(OPENAI).respond(json=ANSWER)
    assert httpx.post(OPENAI, json=CHAT).json()["choices"][0]["message"]["content"] == "mocked"
    [call] = llmobs.calls
    assert (call.source, call.usage.output_tokens, call.output_text) == ("respx", 1, "mocked")


@responses.activate
def test_responses(llmobs):
    responses.post(OPENAI, json=ANSWER)
    assert requests.post(OPENAI, json=CHAT).json()["usage"]["total_tokens"] == 4
    [call] = llmobs.calls
    assert (call.source, call.usage.input_tokens, call.output_text) == ("responses", 3, "mocked")


def test_respx_fixture(respx_mock, llmobs):
    respx_mock.post(OPENAI).respond(json=ANSWER)
    with httpx.Client() as client:
        with client.stream("POST", OPENAI, json=CHAT) as response:
            body = response.read()
    assert b"mocked" in body
    assert [c.output_text for c in llmobs.calls] == ["mocked"]
"""


def test_http_mocks_answer_and_are_observed(pytester: pytest.Pytester) -> None:
    """respx and responses answer their tests' requests: no cassette is read, written or
    missed (record mode none blocks unrecorded calls otherwise), and each call is captured
    from the mock's answer."""
    pytester.makepyfile(test_mocks=MOCKS)
    result = pytester.runpytest(*INNER_ARGS, "--llm-record-mode=none")
    result.assert_outcomes(passed=3)
    assert not (pytester.path / "cassettes").exists()
