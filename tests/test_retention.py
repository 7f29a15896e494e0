"""A long run keeps no calls, spans or cassettes of finished tests: memory stays flat.

Each test's LLMCalls (with their bodies), its spans and its cassette are needed until its
report is written; after that only figures remain (the report's and the run summary's).
pytest keeps every item for the whole session, so anything hung on an item would pile up.
The inner run counts the objects still alive once every test is done.
"""

from __future__ import annotations

import pytest
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer

SUITE = """
import os

import openai
import pytest

client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", api_key="sk-test", max_retries=0)


@pytest.mark.parametrize("n", range(12))
def test_calls(n, llmobs):
    messages = [{"role": "user", "content": f"question {n}"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True,
        stream_options={"include_usage": True},
    ):
        pass
    assert len(llmobs.calls) == 2 and llmobs.spans
"""

CONFTEST = """
import gc

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    from opentelemetry.sdk.trace import ReadableSpan
    from pytest_llmobs.calls import LLMCall
    from pytest_llmobs.cassettes.cassette import LLMCassette

    gc.collect()
    alive = {kind.__name__: 0 for kind in (LLMCall, ReadableSpan, LLMCassette)}
    for obj in gc.get_objects():
        for kind in (LLMCall, ReadableSpan, LLMCassette):
            if isinstance(obj, kind):
                alive[kind.__name__] += 1
    print("ALIVE", " ".join(f"{k}={v}" for k, v in sorted(alive.items())))
"""


@pytest.mark.parametrize("mode", ["once", "none"])
def test_nothing_of_finished_tests_stays_alive(
    pytester: pytest.Pytester, provider: ProviderServer, mode: str
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeconftest(CONFTEST)
    if mode == "none":  # replay: record the cassettes first
        first = pytester.runpytest_subprocess(*INNER_ARGS, "--llm-record-mode=once")
        first.assert_outcomes(passed=12)
    result = pytester.runpytest_subprocess(*INNER_ARGS, "-s", f"--llm-record-mode={mode}")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["*ALIVE LLMCall=0 LLMCassette=0 ReadableSpan=0*"])
