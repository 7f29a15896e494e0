"""The quick-start suite talks to whatever LLM_URL points at. Its cassettes were recorded
against the local provider server `pytest_llmobs.testing.ProviderServer`, which speaks the
OpenAI and Anthropic wire formats (`python example_suites/demo.py --record`); replaying needs
no server."""

from __future__ import annotations

import os

import anthropic
import openai
import pytest


@pytest.fixture
def llm_url() -> str:
    return os.environ.get("LLM_URL", "http://127.0.0.1:8080")


@pytest.fixture
def openai_client(llm_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{llm_url}/v1", api_key="sk-demo", max_retries=1)


@pytest.fixture
def anthropic_client(llm_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=llm_url, api_key="sk-ant-demo", max_retries=1)
