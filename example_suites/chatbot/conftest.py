"""The Anthropic client the bot gets in tests. LLM_URL is where the cassettes were recorded:
the local provider server `pytest_llmobs.testing.ProviderServer` (started by
`python example_suites/demo.py --record`); replaying needs no server."""

from __future__ import annotations

import os

import anthropic
import pytest
from support_bot import SupportBot


@pytest.fixture
def bot() -> SupportBot:
    url = os.environ.get("LLM_URL", "http://127.0.0.1:8080")
    return SupportBot(anthropic.Anthropic(base_url=url, api_key="sk-ant-demo", max_retries=1))
