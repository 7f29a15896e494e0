"""Shared by the chaos tests: the inner-test header (SDK clients against the local
provider server) and how inner pytester runs are started."""

from __future__ import annotations

import inspect

import pytest
from inner import INNER_ARGS as _INNER_ARGS
from sdk_errors import transport_error

# These tests check what each fault puts on the wire and what the verdict says about it, not
# whether a failing verdict fails its test (llm_chaos_gate, tested on its own in
# test_chaos_verdict.py): the gate only reports here.
INNER_ARGS = (*_INNER_ARGS, "-o", "llm_chaos_gate=warn")

HEADER = """
import asyncio, json, os, time
import anthropic, httpx, httpx2, openai, pytest, requests

URL = os.environ["LLM_URL"]
M = [{"role": "user", "content": "say hello to the test"}]

# The transport's errors: httpx2's under openai 3.x / anthropic 1.x and later, httpx's before.
READ_TIMEOUT = (httpx.ReadTimeout, httpx2.ReadTimeout)
PROTOCOL_ERROR = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError)
# A body that breaks off mid-stream: openai 3.x raises APIConnectionError / APITimeoutError
# with the transport's error as its cause, openai 2.x lets the transport's error through.
CONNECTION_ERROR = (openai.APIConnectionError, httpx.TransportError, httpx2.TransportError)
TIMEOUT_ERROR = (openai.APITimeoutError, httpx.TimeoutException, httpx2.TimeoutException)


def oai(**kw):
    return openai.OpenAI(base_url=URL + "/v1", max_retries=kw.pop("max_retries", 0), **kw)


def ant(**kw):
    return anthropic.Anthropic(base_url=URL, max_retries=kw.pop("max_retries", 0), **kw)


def chat(client=None, **kw):
    return (client or oai()).chat.completions.create(model="gpt-4o", messages=M, **kw)


def msg(client=None, **kw):
    return (client or ant()).messages.create(model="claude-test", max_tokens=64, messages=M, **kw)


def ordered(llmobs):
    return sorted(llmobs.calls, key=lambda c: c.started_at)


def seen(llmobs):
    return [(c.status_code, c.attempt, c.attributes.get("llmobs.chaos.fault"))
            for c in ordered(llmobs)]


def stream_text(stream):
    return "".join((c.choices[0].delta.content or "") for c in stream if c.choices)


"""
# pasted, not imported: some inner runs are subprocesses, where tests/ is not on the path
HEADER += inspect.getsource(transport_error)


def run(pytester: pytest.Pytester, body: str, passed: int) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=7")
    result.assert_outcomes(passed=passed)
    return result
