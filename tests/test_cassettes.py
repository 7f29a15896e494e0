"""Record and replay end to end: real SDKs and clients → local provider server → cassettes,
then the same tests offline (the server unreachable) from those cassettes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from test_cassettes_format import vcrpy_yaml

from pytest_llmobs.cli import main as llmobs_main
from pytest_llmobs.testing import ProviderServer

HEADER = """
import asyncio, json, os, pathlib, threading, time
from concurrent.futures import ThreadPoolExecutor
import anthropic, httpx, openai, pytest, requests

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": os.environ.get("PROMPT", "say hello to the test")}]
RESULTS = pathlib.Path(os.environ["RESULTS"])
_LOCK = threading.Lock()


def save(name, value):
    with _LOCK:
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data[name] = value
        RESULTS.write_text(json.dumps(data))


def oai(**kw):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=kw.pop("max_retries", 0), **kw)


def ant(**kw):
    return anthropic.Anthropic(base_url=URL, max_retries=kw.pop("max_retries", 0), **kw)


def chat(client=None, **kw):
    kw = {"model": "gpt-4o", "messages": MESSAGES, **kw}
    return (client or oai()).chat.completions.create(**kw)


def calls(llmobs):
    return [(c.source, c.status_code, c.usage.output_tokens) for c in llmobs.calls]
"""


@pytest.fixture
def results(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "results.json"
    monkeypatch.setenv("RESULTS", str(path))
    return path


def run(pytester: pytest.Pytester, *args: str, **outcomes: int) -> pytest.RunResult:
    result = pytester.runpytest(*INNER_ARGS, *args)
    if outcomes:
        result.assert_outcomes(**outcomes)
    return result


def dead_url() -> str:
    """A loopback URL nothing listens on: any request that reaches the network fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def cassettes(pytester: pytest.Pytester) -> dict[str, str]:
    root = pytester.path
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*.yaml"))
        if "cassettes" in p.parts
    }


ROUND_TRIP = """
def test_openai_sync(llmobs):
    client = oai()
    plain = chat(client).choices[0].message.content
    deltas = [c.choices[0].delta.content for c in chat(
        client, stream=True, stream_options={"include_usage": True}) if c.choices]
    responses = [e.type for e in client.responses.create(model="gpt-4.1", input="hi", stream=True)]
    save("openai_sync", [plain, deltas, responses, calls(llmobs)])

async def test_openai_async(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    plain = (await client.chat.completions.create(model="gpt-4o", messages=MESSAGES))
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    save("openai_async", [plain.choices[0].message.content, deltas, calls(llmobs)])

def test_anthropic_sync(llmobs):
    client = ant()
    plain = client.messages.create(model="claude-x", max_tokens=50, messages=MESSAGES)
    with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES) as s:
        deltas = list(s.text_stream)
    save("anthropic_sync", [plain.content[0].text, deltas, calls(llmobs)])

async def test_anthropic_async(llmobs):
    client = anthropic.AsyncAnthropic(base_url=URL, max_retries=0)
    async with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES) as s:
        deltas = [d async for d in s.text_stream]
    save("anthropic_async", [deltas, calls(llmobs)])

def test_httpx_and_requests(llmobs):
    body = {"model": "gpt-4o", "messages": MESSAGES}
    plain = httpx.post(URL + "/v1/chat/completions", json=body).json()["choices"]
    with httpx.stream("POST", URL + "/v1/chat/completions", json={**body, "stream": True}) as r:
        raw = [len(chunk) for chunk in r.iter_raw()]
    via_requests = requests.post(URL + "/v1/chat/completions", json=body).json()["choices"]
    with requests.post(URL + "/v1/chat/completions", json={**body, "stream": True},
                       stream=True) as r:
        lines = [line.decode() for line in r.iter_lines() if line]
    save("httpx_requests", [plain, raw, via_requests, lines, calls(llmobs)])

async def test_httpx_async(llmobs):
    async with httpx.AsyncClient() as client:
        async with client.stream("POST", URL + "/v1/messages", json={
                "model": "claude-x", "max_tokens": 9, "messages": MESSAGES, "stream": True},
                headers={"anthropic-version": "2023-06-01"}) as r:
            raw = [len(chunk) async for chunk in r.aiter_raw()]
    save("httpx_async", [raw, calls(llmobs)])
"""


def test_round_trip_every_client_and_streaming_mode_offline(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.configure(reply="one two three four", chunk_delay_s=0.002)
    pytester.makepyfile(test_inner=HEADER + ROUND_TRIP)
    recording = run(pytester, "--llm-record-mode=once", passed=6)
    recording.stdout.fnmatch_lines(["6 cassettes written"])
    recorded = read(results)
    files = cassettes(pytester)
    assert sorted(files) == [
        f"cassettes/test_inner/{name}.yaml"
        for name in sorted(
            [
                "test_anthropic_async",
                "test_anthropic_sync",
                "test_httpx_and_requests",
                "test_httpx_async",
                "test_openai_async",
                "test_openai_sync",
            ]
        )
    ]
    sent = len(provider.requests)

    results.unlink()
    monkeypatch.setenv("LLM_URL", dead_url())  # offline: nothing answers there
    run(pytester, "--llm-record-mode=none", passed=6)
    replayed = read(results)
    assert len(provider.requests) == sent
    assert cassettes(pytester) == files  # replay never writes
    for name, value in recorded.items():
        *payload, sources = value
        *again, replay_sources = replayed[name]
        assert again == payload, name  # same text, same deltas, same raw chunk sizes
        assert [s[1:] for s in replay_sources] == [s[1:] for s in sources], name
        assert {s[0] for s in sources} == {"live"} and {s[0] for s in replay_sources} == {"replay"}


LEGACY = """
def complete(client=None, **kw):
    kw = {"model": "gpt-3.5-turbo-instruct", "prompt": "say hello to the test", **kw}
    return (client or oai()).completions.create(**kw)


def fields(llmobs):
    return [(c.operation, c.stream, c.usage.input_tokens, c.usage.output_tokens,
             c.finish_reasons, c.truncation_reason, c.output_text) for c in llmobs.calls]


def test_sync(llmobs):
    assert complete(max_tokens=20).choices[0].text == "one two three four"
    [span] = llmobs.find_spans("text_completion gpt-3.5-turbo-instruct")
    a = span.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("text_completion", "openai")
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (5, 4)
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.stream"]) == (20, False)
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "say hello to the test"}]}]
    save("sync", fields(llmobs))

async def test_async_stream(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    plain = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    stream = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi",
                                             stream=True, stream_options={"include_usage": True})
    pieces = [c.choices[0].text async for c in stream if c.choices]
    assert plain.choices[0].text == "".join(pieces) == "one two three four"
    assert llmobs.calls[1].time_to_first_chunk_s is not None
    save("async_stream", fields(llmobs))

@pytest.mark.llm_allow_truncation("length")
def test_cut_allowed(llmobs):
    assert complete(max_tokens=2).choices[0].finish_reason == "length"
    assert [c.choices[0].finish_reason for c in complete(max_tokens=2, stream=True)][-1] == "length"
    save("cut", fields(llmobs))

def test_cut_fails(llmobs):
    complete(max_tokens=2)

@pytest.mark.llm_budget(max_calls=1, max_output_tokens=3)
def test_budget_fails(llmobs):
    complete()
"""


def test_legacy_completions_are_llm_calls_recorded_and_replayed(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.configure(reply="one two three four")
    pytester.makepyfile(test_inner=HEADER + LEGACY)
    recording = run(pytester, "--llm-record-mode=once", "--llm-capture-content", passed=3, failed=2)
    recorded = read(results)
    assert recorded["sync"] == [
        ["text_completion", False, 5, 4, ["stop"], None, "one two three four"]
    ]
    assert [c[:2] + c[3:6] for c in recorded["async_stream"]] == [
        ["text_completion", False, 4, ["stop"], None],
        ["text_completion", True, 4, ["stop"], None],
    ]
    assert [(c[1], c[3], c[4], c[5], c[6]) for c in recorded["cut"]] == [
        (False, 2, ["length"], "length", "one two"),
        (True, None, ["length"], "length", "one two"),  # no include_usage: no usage
    ]
    paths = [r.path for r in provider.requests]
    assert paths == ["/v1/completions"] * 7
    assert len(cassettes(pytester)) == 5
    results.unlink()

    monkeypatch.setenv("LLM_URL", dead_url())  # loopback, where nothing answers
    for result in (recording, run(pytester, "--llm-record-mode=none", "--llm-capture-content")):
        result.assert_outcomes(passed=3, failed=2)
        result.stdout.fnmatch_lines(
            [
                "*_ test_cut_fails _*",
                "  truncation of #1: the answer was cut at max_tokens (finish_reason: length)",
                "    openai text_completion gpt-3.5-turbo-instruct "
                "(*/v1/completions, max_tokens=2): finish_reason ?length?*",
                "*_ test_budget_fails _*",
                "  max_output_tokens  3      4       test    #1",
            ]
        )
    assert len(provider.requests) == 7  # the replay reached no server
    assert read(results) == recorded


TIMING = """
def test_stream(llmobs):
    client = oai()
    chat(client, model="warm-up", extra_headers={"x-fake-ttft-ms": "0"})  # lazy SDK imports
    t0 = time.perf_counter()
    first = None
    for _ in chat(client, stream=True):
        first = first or time.perf_counter() - t0
    total = time.perf_counter() - t0
    call = llmobs.calls[-1]
    [span] = llmobs.find_spans("chat gpt-4o")
    save(os.environ["RUN"], {
        "ttft": call.time_to_first_chunk_s, "duration": call.duration_s,
        "recorded_ttft": call.recorded_time_to_first_chunk_s,
        "recorded_duration": call.recorded_duration_s, "source": call.source,
        "app_first": first, "app_total": total,
        "span_recorded": span.attributes.get("llmobs.recorded.time_to_first_chunk_s"),
        "effective_ttft": call.effective_time_to_first_chunk_s,
    })
"""


def test_replay_timing_instant_realtime_and_factor(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.configure(reply="a b c d", ttft_s=0.2, chunk_delay_s=0.05)
    pytester.makepyfile(test_inner=HEADER + TIMING)
    monkeypatch.setenv("RUN", "live")
    run(pytester, "--llm-record-mode=once", passed=1)
    monkeypatch.setenv("LLM_URL", dead_url())
    live = read(results)["live"]

    def on_schedule(name: str, got: dict[str, Any]) -> bool:
        scale = {"instant": 0.0, "realtime": 1.0, "half": 0.5}[name]
        if not scale:
            return bool(got["duration"] < 0.05 and got["app_total"] < 0.1)
        return bool(
            abs(got["ttft"] - live["ttft"] * scale) <= 0.005
            and abs(got["duration"] - live["duration"] * scale) <= 0.008
            and (scale != 1.0 or abs(got["app_first"] - live["app_first"]) <= 0.015)
        )

    for name, timing in (("instant", "instant"), ("realtime", "realtime"), ("half", "0.5")):
        monkeypatch.setenv("RUN", name)
        # A stalled CI machine gets two more tries; a wrong schedule misses all three.
        for _ in range(3):
            run(pytester, "--llm-record-mode=none", f"--llm-replay-timing={timing}", passed=1)
            if on_schedule(name, read(results)[name]):
                break
    r = read(results)
    instant, realtime, half = r["instant"], r["realtime"], r["half"]
    assert live["ttft"] > 0.19 and live["duration"] > 0.3
    for replay in (instant, realtime, half):
        assert replay["source"] == "replay"
        assert replay["recorded_ttft"] == pytest.approx(live["ttft"], abs=1e-5)
        assert replay["recorded_duration"] == pytest.approx(live["duration"], abs=1e-5)
        assert replay["effective_ttft"] == replay["recorded_ttft"]
        assert replay["span_recorded"] == replay["recorded_ttft"]
    assert instant["duration"] < 0.05 and instant["app_total"] < 0.1
    # realtime reproduces the recorded schedule within a few milliseconds
    assert realtime["ttft"] == pytest.approx(live["ttft"], abs=0.005)
    assert realtime["duration"] == pytest.approx(live["duration"], abs=0.008)
    assert realtime["app_first"] == pytest.approx(live["app_first"], abs=0.015)
    assert half["ttft"] == pytest.approx(live["ttft"] / 2, abs=0.005)
    assert half["duration"] == pytest.approx(live["duration"] / 2, abs=0.008)


SECRETS = """
def test_secrets(llmobs):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0,
                           api_key="sk-proj-PLANTEDopenaiKEY0123456789abcdef",
                           default_headers={"cookie": "session=PLANTEDcookie0123456789"})
    out = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user",
                   "content": "mail jane.doe@example.com or call +44 20 7946 0958 today"}],
        extra_body={"api_key": "PLANTEDbodysecret0123456789"})
    save("reply", out.choices[0].message.content)
    ant(api_key="sk-ant-PLANTEDanthropicKEY0123456789abc").messages.create(
        model="claude-x", max_tokens=20, messages=MESSAGES)
    r = httpx.post(URL + "/v1/chat/completions?key=AIzaSyPLANTEDgoogleKEY0123456789abcdefgh",
                   json={"model": "gpt-4o", "messages": MESSAGES},
                   headers={"api-key": "PLANTEDazureKEY0123456789"})
    assert r.status_code == 200
    assert [c.source for c in llmobs.calls] == [os.environ["SOURCE"]] * 3
"""


def test_secrets_and_pii_never_reach_the_cassette(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.configure(reply="sure, I will write to jane.doe@example.com")
    pytester.makepyfile(test_inner=HEADER + SECRETS)
    monkeypatch.setenv("SOURCE", "live")
    run(pytester, "--llm-record-mode=once", "--llm-mask-pii", passed=1)
    [text] = cassettes(pytester).values()
    for secret in ("PLANTED", "jane.doe@example.com", "7946 0958", "sk-proj-", "sk-ant-P"):
        assert secret not in text, secret
    assert "<redacted>" in text and "<EMAIL_" in text and "<PHONE_" in text
    assert "mail <EMAIL_" in text  # the prompt is still readable around the placeholder
    # masked on replay the same way: the masked cassette still matches
    monkeypatch.setenv("SOURCE", "replay")
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", "--llm-mask-pii", passed=1)
    assert read(results)["reply"].startswith("sure, I will write to <EMAIL_")


MISMATCH = """
def test_changed_prompt(llmobs):
    chat()

def test_app_swallows_the_error(llmobs):
    try:
        chat(oai(max_retries=2))
    except openai.APIError:
        pass  # the app degrades gracefully; the test must still fail
"""


def test_mismatch_fails_the_test_with_a_readable_diff(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=HEADER.replace("RESULTS = pathlib", "# ") + MISMATCH)
    monkeypatch.setenv("RESULTS", os.devnull)
    run(pytester, "--llm-record-mode=once", passed=2)
    before = cassettes(pytester)
    monkeypatch.setenv("PROMPT", "say goodbye to the test")
    monkeypatch.setenv("LLM_URL", dead_url())
    t0 = time.perf_counter()
    result = run(pytester, "--llm-record-mode=none", failed=2)
    assert time.perf_counter() - t0 < 10  # no retry backoff: the SDKs are told not to retry
    result.stdout.fnmatch_lines(
        [
            "pytest-llmobs: request not in cassette (record mode 'none')",
            "  test:      test_inner.py::test_changed_prompt",
            "  cassette:  */cassettes/test_inner/test_changed_prompt.yaml (1 interactions)",
            "  request:   POST http://127.0.0.1:*/v1/chat/completions",
            "  model:     gpt-4o",
            '  messages:  [user] "say goodbye to the test"',
            "  closest recorded request (interaction 1 of 1):",
            "    body differences (recorded → sent):",
            "      Value of root['messages'][0]['content'] changed from "
            '"say hello to the test" to "say goodbye to the test".',
            "next: add what is missing with --llm-record-mode=new_episodes*",
        ]
    )
    result.stdout.fnmatch_lines(["  test:      test_inner.py::test_app_swallows_the_error"])
    assert cassettes(pytester) == before
    # no cassette at all
    for path in pytester.path.rglob("test_changed_prompt.yaml"):
        path.unlink()
    result = run(pytester, "--llm-record-mode=none", "-k", "changed", failed=1)
    result.stdout.fnmatch_lines(["pytest-llmobs: no cassette */test_changed_prompt.yaml to *"])


def test_corrupt_cassette_is_named_and_left_untouched(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=HEADER.replace("RESULTS = pathlib", "# ") + MISMATCH)
    monkeypatch.setenv("RESULTS", os.devnull)
    path = pytester.path / "cassettes" / "test_inner" / "test_changed_prompt.yaml"
    path.parent.mkdir(parents=True)
    broken = b'{\n  "llmobs_cassette": 1,\n  "interactions": [\n    {"request": }\n  ]\n}\n'
    path.write_bytes(broken)
    for mode in ("none", "new_episodes", "rewrite"):
        result = run(pytester, f"--llm-record-mode={mode}", "-k", "changed")
        if mode == "rewrite":  # rewrite never reads the old file: it records a new one
            result.assert_outcomes(passed=1)
            assert json.loads(path.read_text())["interactions"]
            path.write_bytes(broken)
            continue
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "pytest-llmobs: cassette */test_changed_prompt.yaml: line 4, column 17: invalid *",
                "next: fix the file (it was left untouched)*",
            ]
        )
        assert path.read_bytes() == broken
    # well-formed, but one response is broken: found when it is replayed, file untouched
    path.unlink()
    run(pytester, "--llm-record-mode=once", "-k", "changed", passed=1)
    damaged = path.read_bytes().replace(b'"status": 200', b'"status": 2oo')
    path.write_bytes(damaged)
    result = run(pytester, "--llm-record-mode=new_episodes", "-k", "changed", failed=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-llmobs: cassette */test_changed_prompt.yaml: line *"
            ", column *: invalid JSON in a response*"
        ]
    )
    assert path.read_bytes() == damaged


INTERRUPTED = """
import os, pathlib, time, openai

def test_long():
    client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    pathlib.Path("called").write_text("1")
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_recording_never_damages_the_cassette(
    pytester: pytest.Pytester, provider: ProviderServer, sig: signal.Signals
) -> None:
    pytester.makepyfile(test_inner=INTERRUPTED)
    path = pytester.path / "cassettes" / "test_inner" / "test_long.yaml"
    path.parent.mkdir(parents=True)
    original = b'{\n  "llmobs_cassette": 1,\n  "interactions": []\n}\n'
    path.write_bytes(original)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *INNER_ARGS, "-q",
         "--llm-record-mode=rewrite", "test_inner.py"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (pytester.path / "called").exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert path.read_bytes() == original, output
    assert [p.name for p in path.parent.iterdir()] == ["test_long.yaml"]  # no temp files
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in output


CONCURRENCY = """
def test_threads(llmobs):
    client = oai()
    def work(t):
        for j in range(10):
            out = chat(client, messages=[{"role": "user", "content": f"q {t} {j}"}],
                       extra_headers={"x-fake-reply": f"r {t} {j}"})
            assert out.choices[0].message.content == f"r {t} {j}"
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(work, range(32)))
    assert len(llmobs.calls) == 320

async def test_tasks(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    async def one(i):
        out = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"q {i}"}],
            extra_headers={"x-fake-reply": f"r {i}"})
        assert out.choices[0].message.content == f"r {i}"
    await asyncio.gather(*[one(i) for i in range(200)])
    assert len(llmobs.calls) == 200
"""


def test_concurrent_calls_all_recorded_none_swapped(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=HEADER.replace("RESULTS = pathlib", "# ") + CONCURRENCY)
    monkeypatch.setenv("RESULTS", os.devnull)
    run(pytester, "--llm-record-mode=once", passed=2)
    files = cassettes(pytester)
    counts = {k: len(json.loads(v)["interactions"]) for k, v in files.items()}
    assert counts == {
        "cassettes/test_inner/test_tasks.yaml": 200,
        "cassettes/test_inner/test_threads.yaml": 320,
    }
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", passed=2)


def test_vcrpy_cassette_replays_unmodified_then_upgrades(
    pytester: pytest.Pytester, provider: ProviderServer, results: Path
) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "say hello to the test"}]}
    answer = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi from 2023"},
                }
            ],
        }
    ).encode()
    path = pytester.path / "cassettes" / "test_inner" / "test_old.yaml"
    path.parent.mkdir(parents=True)
    original = vcrpy_yaml(path, "http://127.0.0.1:9/v1/chat/completions", body, answer)
    pytester.makepyfile(
        test_inner=HEADER
        + """
def test_old(llmobs):
    save("plain", chat().choices[0].message.content)
    r = httpx.post(URL + "/v1/chat/completions",
                   json={"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    save("stream", r.text)
    assert [c.source for c in llmobs.calls] == ["replay", "replay"]
"""
    )
    run(pytester, "--llm-record-mode=none", passed=1)
    assert path.read_bytes() == original
    first = read(results)
    assert first["plain"] == "hi from 2023"
    assert first["stream"] == 'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert llmobs_main(["cassettes", "upgrade", str(path)]) == 0
    assert path.read_text().startswith('{\n  "llmobs_cassette": 1')
    results.unlink()
    run(pytester, "--llm-record-mode=none", passed=1)
    assert read(results) == first


FIXTURES = """
@pytest.fixture(scope="module")
def module_answer():
    return chat(messages=[{"role": "user", "content": "module fixture"}]).choices[0].message.content

@pytest.fixture(scope="session")
def session_client():
    client = oai()
    chat(client, messages=[{"role": "user", "content": "session setup"}])
    yield client
    chat(client, messages=[{"role": "user", "content": "session teardown"}])

@pytest.fixture
def function_call():
    return chat(messages=[{"role": "user", "content": "function fixture"}])

def test_a(module_answer, session_client, function_call, llmobs):
    chat(session_client, messages=[{"role": "user", "content": "in test a"}])

def test_b(module_answer, session_client):
    chat(session_client, messages=[{"role": "user", "content": "in test b"}])

class TestGroup:
    @pytest.fixture(scope="class")
    def class_answer(self):
        return chat(messages=[{"role": "user", "content": "class fixture"}])

    def test_c(self, class_answer):
        pass
"""


def test_calls_in_higher_scoped_fixtures_get_their_own_cassettes(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=HEADER.replace("RESULTS = pathlib", "# ") + FIXTURES)
    monkeypatch.setenv("RESULTS", os.devnull)
    run(pytester, "--llm-record-mode=once", passed=3)
    prompts = {
        name.rsplit("/", 1)[1]: [
            i["request"]["body"]["json"]["messages"][0]["content"]
            for i in json.loads(text)["interactions"]
        ]
        for name, text in cassettes(pytester).items()
    }
    assert prompts == {
        "fixture-TestGroup.class_answer.yaml": ["class fixture"],
        "fixture-module_answer.yaml": ["module fixture"],
        "fixture-session_client.yaml": ["session setup", "session teardown"],
        "test_a.yaml": ["function fixture", "in test a"],
        "test_b.yaml": ["in test b"],
    }
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", passed=3)


NAMING = """
class TestGroup:
    def test_in_class(self):
        chat()

@pytest.mark.parametrize("model", ["gpt-4o", "a/b: c?"])
def test_param(model):
    chat(model=model)

@pytest.mark.llm_cassette("shared/custom")
def test_marker():
    chat()

@pytest.mark.llm_cassette("reuse", "shared/custom")
def test_shared_readonly():
    chat()  # answered from shared/custom.yaml; nothing new to record

async def test_async(llm_cassette):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert llm_cassette.path.name == "test_async.yaml" and llm_cassette.mode == "once"
    assert len(llm_cassette.cassette) == 1 and llm_cassette.cassette.play_count == 1

def test_overridden():
    chat()
"""


def test_cassette_names_paths_marker_fixture_override_and_ini_dir(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=HEADER.replace("RESULTS = pathlib", "# ") + NAMING)
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def llm_cassette_path(request, llm_cassette_path):
    if request.node.name == "test_overridden":
        return request.config.rootpath / "elsewhere" / "mine.yaml"
    return llm_cassette_path
"""
    )
    monkeypatch.setenv("RESULTS", os.devnull)
    run(pytester, "--llm-record-mode=once", passed=7)
    names = sorted(str(p.relative_to(pytester.path)) for p in pytester.path.rglob("*.yaml"))
    odd = [n for n in names if n.startswith("cassettes/test_inner/test_param[a_b__c_]-")]
    assert len(odd) == 1
    assert sorted(set(names) - set(odd)) == [
        "cassettes/test_inner/TestGroup.test_in_class.yaml",
        "cassettes/test_inner/shared/custom.yaml",
        "cassettes/test_inner/test_async.yaml",
        "cassettes/test_inner/test_param[gpt-4o].yaml",
        "elsewhere/mine.yaml",
    ]
    # an ini cassette directory keeps the module path under it
    for path in pytester.path.rglob("*.yaml"):
        path.unlink()
    pytester.makeini("[pytest]\nllm_cassette_dir = recorded\n")
    run(pytester, "--llm-record-mode=once", "-k", "class or async", passed=2)
    assert sorted(str(p.relative_to(pytester.path)) for p in pytester.path.rglob("*.yaml")) == [
        "recorded/test_inner/TestGroup.test_in_class.yaml",
        "recorded/test_inner/test_async.yaml",
    ]


MODES = """
def test_it(llmobs):
    for reply in os.environ["REPLIES"].split(","):
        out = chat(extra_headers={"x-fake-reply": reply},
                   messages=[{"role": "user", "content": os.environ.get("PROMPT", "same")}])
        save(reply, out.choices[0].message.content)
    assert os.environ.get("FAIL") != "1"
"""


def test_record_modes(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_inner=HEADER + MODES)
    path = pytester.path / "cassettes" / "test_inner" / "test_it.yaml"

    def prompts() -> list[str]:
        return [
            i["request"]["body"]["json"]["messages"][0]["content"]
            for i in json.loads(path.read_text())["interactions"]
        ]

    # identical requests: recorded in order, replayed in order
    monkeypatch.setenv("REPLIES", "first,second")
    run(pytester, "--llm-record-mode=once", passed=1)
    monkeypatch.setenv("REPLIES", "x,y")
    run(pytester, "--llm-record-mode=none", passed=1)
    assert read(results)["x"] == "first" and read(results)["y"] == "second"
    monkeypatch.setenv("REPLIES", "x,y,z")  # one more than recorded
    run(pytester, "--llm-record-mode=none", failed=1).stdout.fnmatch_lines(
        [
            "pytest-llmobs: request made more often than it was recorded*",
            "  recorded 2 times, all already replayed in this test*",
        ]
    )
    # once: an existing cassette is never extended
    monkeypatch.setenv("REPLIES", "r")
    monkeypatch.setenv("PROMPT", "new")
    run(pytester, "--llm-record-mode=once", failed=1)
    assert prompts() == ["same", "same"]
    # new_episodes: what matches replays, the rest is added
    run(pytester, "--llm-record-mode=new_episodes", passed=1)
    assert prompts() == ["same", "same", "new"]
    # all: re-records what it makes, keeps what it did not make
    monkeypatch.setenv("REPLIES", "fresh")
    run(pytester, "--llm-record-mode=all", passed=1)
    assert prompts() == ["same", "same", "new"]
    assert '"content": "fresh"' in path.read_text()
    # rewrite: a failing test leaves the cassette as it was
    before = path.read_bytes()
    monkeypatch.setenv("FAIL", "1")
    result = run(pytester, "--llm-record-mode=rewrite", failed=1)
    result.stdout.fnmatch_lines(["not saved: */test_it.yaml (test_inner.py::test_it failed *"])
    assert path.read_bytes() == before
    # rewrite after a pass: only what this run made
    monkeypatch.setenv("FAIL", "0")
    run(pytester, "--llm-record-mode=rewrite", passed=1)
    assert prompts() == ["new"]
    # the marker sets a test's record mode (a command-line flag still wins)
    pytester.makepyfile(
        test_inner=HEADER
        + MODES.replace(
            "def test_it", "@pytest.mark.llm_cassette(record_mode='new_episodes')\ndef test_it"
        )
    )
    monkeypatch.setenv("PROMPT", "marker")
    monkeypatch.delenv("LLMOBS_RECORD_MODE")
    run(pytester, passed=1)
    assert prompts() == ["new", "marker"]
    monkeypatch.setenv("PROMPT", "flag wins")
    run(pytester, "--llm-record-mode=none", failed=1)


ALLOW = """
def test_mixed(llmobs):
    chat()
    r = httpx.get(URL + "/not-an-llm")
    save("status", r.status_code)
"""


def test_allow_list_for_non_llm_hosts(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_inner=HEADER + ALLOW)
    path = pytester.path / "cassettes" / "test_inner" / "test_mixed.yaml"
    run(pytester, "--llm-record-mode=once", passed=1)
    # loopback is allowed by default: the non-LLM call went live and was not recorded,
    # the LLM call to the same host was
    assert [i["request"]["method"] for i in read(path)["interactions"]] == ["POST"]
    run(pytester, "--llm-record-mode=none", passed=1)
    assert [r.path for r in provider.requests].count("/not-an-llm") == 2
    assert [r.path for r in provider.requests].count("/v1/chat/completions") == 1
    # with no allowed host, every request is cassette business
    path.unlink()
    run(pytester, "--llm-record-mode=once", "--llm-allow-hosts=none", passed=1)
    assert [i["request"]["method"] for i in read(path)["interactions"]] == ["POST", "GET"]
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", "--llm-allow-hosts=none", passed=1)
    assert read(results)["status"] == 404


def test_chaos_faults_are_never_recorded(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_inner=HEADER.replace("RESULTS = pathlib", "# ")
        + """
@pytest.mark.llm_chaos("rate_limit", retry_after=0.01)
def test_retry(llmobs):
    chat(oai(max_retries=2))
    assert [c.status_code for c in llmobs.calls] == [429, 200]
"""
    )
    monkeypatch.setenv("RESULTS", os.devnull)
    run(pytester, "--llm-record-mode=once", "--llm-chaos-seed=1", passed=1)
    [text] = cassettes(pytester).values()
    assert [i["response"]["status"] for i in json.loads(text)["interactions"]] == [200]
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", "--llm-chaos-seed=1", passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--llm-record-mode=sometimes"],
            "*llm_record_mode*'sometimes' is not one of none, once,*",
        ),
        (
            ["--llm-replay-timing=fast"],
            "*llm_replay_timing*valid: instant, realtime, or a positive*",
        ),
        (["--llm-replay-timing=-1"], "*llm_replay_timing*valid: instant, realtime*"),
        (["--llm-pii-patterns=nope"], "*llm_pii_patterns*not NAME=REGEX*"),
    ],
)
def test_bad_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_marker_is_a_usage_error_and_header_shows_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n@pytest.mark.llm_cassette(record_mode='maybe')\ndef test_x(): pass\n"
    )
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llm_cassette: record_mode='maybe' is not one of none, *off"])
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS, "--llm-replay-timing=realtime")
    result.stdout.fnmatch_lines(
        ["llmobs *: record mode off (env); on: replay timing realtime; -v shows every setting"]
    )
    assert not any(line.startswith("llmobs settings") for line in result.outlines)
    verbose = pytester.runpytest(*INNER_ARGS, "--llm-replay-timing=realtime", "-v")
    verbose.stdout.fnmatch_lines(["llmobs *: record mode off (env); on: replay timing realtime"])
    start = verbose.outlines.index(next(x for x in verbose.outlines if x.startswith("llmobs set")))
    shown = " ".join(verbose.outlines[start : start + 12])
    for item in ("llm_record_mode=off (env),", "llm_replay_timing=realtime (cli),", "llm_hosts=-"):
        assert item in shown


def test_under_xdist_each_worker_records_and_replays_its_tests(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_inner=HEADER.replace("RESULTS = pathlib", "# ")
        + """
@pytest.mark.parametrize("n", range(6))
def test_n(n, llmobs):
    chat(messages=[{"role": "user", "content": f"call {n}"}])
"""
    )
    monkeypatch.setenv("RESULTS", os.devnull)
    result = pytester.runpytest_subprocess(*INNER_ARGS, "-n", "2", "--llm-record-mode=once")
    result.assert_outcomes(passed=6)
    files = cassettes(pytester)
    assert len(files) == 6
    assert all(len(json.loads(t)["interactions"]) == 1 for t in files.values())
    monkeypatch.setenv("LLM_URL", dead_url())
    run(pytester, "--llm-record-mode=none", passed=6)  # (in process: xdist start-up is slow)
    assert cassettes(pytester) == files


def test_calls_outside_any_test_use_the_session_cassette(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(
        """
import os, httpx

# an LLM call while the module is collected, before any test runs
httpx.post(os.environ["LLM_URL"] + "/v1/chat/completions",
           json={"model": "gpt-4o", "messages": [{"role": "user", "content": "at import"}]})

def test_x():
    pass
"""
    )
    run(pytester, "--llm-record-mode=once", passed=1)
    session = pytester.path / "cassettes" / "_session.yaml"
    assert len(read(session)["interactions"]) == 1
    run(pytester, "--llm-record-mode=none", passed=1)  # replayed
    session.unlink()
    result = run(pytester, "--llm-record-mode=none", passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*llmobs: requests outside any test*", "pytest-llmobs: no cassette */_session.yaml*"]
    )
