"""The clients the app gets in tests. LLM_URL is where the cassettes were recorded: the
local provider server `pytest_llmobs.testing.ProviderServer` (started by
`python example_suites/demo.py --record`). Replaying needs no server: the calls are
answered from cassettes/, and loopback ports are not compared."""

from __future__ import annotations

import os

import openai
import pytest
from help_center import HelpCenter


@pytest.fixture
def openai_client() -> openai.OpenAI:
    url = os.environ.get("LLM_URL", "http://127.0.0.1:8080")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-demo", max_retries=1)


@pytest.fixture
def help_center(openai_client: openai.OpenAI) -> HelpCenter:
    return HelpCenter(openai_client)
