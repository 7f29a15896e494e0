"""Shared inner test suite and helpers for the tests/test_report_*.py modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SECRET = "sk-ant-api03-PLANTEDsecretKEY0123456789abcdefXYZ"
EMAIL = "jane.doe@example.com"

SUITE = f'''
import os
import anthropic, openai, pytest

URL = os.environ["LLM_URL"]
SECRET = "{SECRET}"
EMAIL = "{EMAIL}"


def ant():
    return anthropic.Anthropic(base_url=URL, max_retries=0)


def ask(text, **kw):
    return ant().messages.create(
        model="claude-test", max_tokens=kw.pop("max_tokens", 50),
        messages=[{{"role": "user", "content": text}}], **kw
    )


def test_plain(llmobs):
    ask("hello there, my key is " + SECRET + " and mail " + EMAIL)
    ask("second question")


def test_stream(llmobs):
    with ant().messages.stream(
        model="claude-test", max_tokens=50, messages=[{{"role": "user", "content": "stream it"}}]
    ) as stream:
        for _ in stream.text_stream:
            pass


@pytest.mark.llm_budget(max_output_tokens=1)
def test_over_budget(llmobs):
    ask("too long an answer please")


def test_fails_after_call(llmobs):
    ask("then fail " + EMAIL)
    assert False, "boom"


def test_no_llm():
    assert True
'''

PRICES = """
[models."claude-test"]
input = 3.0
output = 15.0
"""

INNER_ARGS = (
    "-p",
    "no:cacheprovider",
    "-o",
    "asyncio_mode=auto",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
    "--llm-prices=prices.toml",
)


def run_suite(
    pytester: pytest.Pytester, *args: str, subprocess: bool = False, body: str = SUITE
) -> pytest.RunResult:
    pytester.makepyfile(test_inner=body)
    pytester.makefile(".toml", prices=PRICES)
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner(*INNER_ARGS, *args)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
