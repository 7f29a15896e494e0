"""An OpenAI client. LLM_URL is where the cassettes were recorded: the local provider server
`pytest_llmobs.testing.ProviderServer` (started by `python example_suites/demo.py --record`)."""

from __future__ import annotations

import os

import openai
import pytest


@pytest.fixture
def client() -> openai.OpenAI:
    url = os.environ.get("LLM_URL", "http://127.0.0.1:8080")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-demo", max_retries=0)
