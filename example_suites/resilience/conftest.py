"""The two clients the service gets in tests. LLM_URL is where the cassettes were recorded:
the local provider server `pytest_llmobs.testing.ProviderServer` (started by
`python example_suites/demo.py --record`); replaying needs no server. The faults are not in
the cassettes: chaos answers the faulted calls in the test process, before replay."""

from __future__ import annotations

import os

import anthropic
import openai
import pytest
from fallback import AnswerService


@pytest.fixture
def service() -> AnswerService:
    url = os.environ.get("LLM_URL", "http://127.0.0.1:8080")
    return AnswerService(
        primary=openai.OpenAI(base_url=f"{url}/v1", api_key="sk-demo", max_retries=1),
        fallback=anthropic.Anthropic(base_url=url, api_key="sk-ant-demo", max_retries=2),
    )
