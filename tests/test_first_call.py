"""Nothing on the call path but the call: the first LLM call of a fresh test process is
timed as the client times it, live and while recording, plain and under `-n 2`.

Before, vcrpy was imported (about 0.4 s) and the cassette read on the first request, after
its clock had started: that went into the call's latency and time to first chunk, its span,
its budgets and its recorded timing. Each inner run is a new process (`runpytest_subprocess`).
The inner test measures the call itself and notes when it sent it; the provider server notes
when the request arrived: the gap is what ran before the request left.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer

SUITE = """
import json, os, time
import httpx, openai, pytest

URL = os.environ["LLM_URL"]
RESULTS = os.environ["RESULTS"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


def save(request, llmobs, **row):
    [recorded] = llmobs.calls
    row.update(test=request.node.name, duration=recorded.duration_s,
               ttfc=recorded.time_to_first_chunk_s)
    with open(RESULTS, "a") as out:
        out.write(json.dumps(row) + "\\n")


def test_httpx(request, llmobs):  # first in the file: the process's first call
    client = httpx.Client()
    body = {"model": "gpt-4o", "messages": MESSAGES}
    sent = time.time()
    response = client.post(URL + "/v1/chat/completions", json=body)
    # httpx's own clock: from handing the request to its transport to the end of the body
    save(request, llmobs, sent=sent, took=response.elapsed.total_seconds())


def test_openai_stream(request, llmobs):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
    start = time.perf_counter()
    for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    save(request, llmobs, took=time.perf_counter() - start)
"""

# httpx's clock starts a little before the transport, ours at it: they agree within this
# much (the bar).
AGREE_S = 0.002
# From the call to the request's arrival at the local server: a loopback connection (vcrpy's
# import alone took 0.2-0.6 s there).
REACHES_SERVER_S = 0.1


@pytest.mark.parametrize("mode", ["off", "once"], ids=["live", "recording"])
@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["plain", "xdist"])
def test_the_first_call_in_a_process_is_timed_as_the_client_times_it(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    workers: list[str],
) -> None:
    results = pytester.path / "results.jsonl"
    monkeypatch.setenv("RESULTS", str(results))
    pytester.makepyfile(test_first=SUITE)
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, *workers, f"--llm-record-mode={mode}", "--llm-artifacts=artifacts"
    )
    result.assert_outcomes(passed=2)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(row["test"] for row in rows) == ["test_httpx", "test_openai_stream"]
    for row in rows:
        assert row["ttfc"] is not None and 0 < row["ttfc"] <= row["duration"] <= row["took"], row
    [first] = [row for row in rows if row["test"] == "test_httpx"]
    assert first["took"] - AGREE_S < first["duration"], first
    [arrived] = [r.received_at for r in provider.requests if not (r.json or {}).get("stream")]
    assert arrived - first["sent"] < REACHES_SERVER_S, (first, arrived)
    if mode == "once":
        assert len(list(Path(pytester.path, "cassettes").rglob("*.yaml"))) == 2
