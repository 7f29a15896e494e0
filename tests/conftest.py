"""Shared fixtures: one local provider server per session, reset for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

# pytester's in-process runs drop modules imported during a run; importing the SDKs here
# keeps them loaded once for the whole session (saves ~2 s per inner run).
# httpx/httpx2 import their httpcore lazily and cache its exception classes: a copy
# imported inside an inner run would leave that cache pointing at dropped classes.
import anthropic  # noqa: F401
import google.genai  # noqa: F401 - a dropped copy stays reachable as `google.genai` otherwise
import httpcore  # noqa: F401
import httpcore2  # noqa: F401
import httpx  # noqa: F401
import openai  # noqa: F401
import pytest
import requests  # noqa: F401

from pytest_llmobs.testing import ProviderServer

# This suite talks to its local provider server live. Cassette tests choose their record
# mode explicitly (a flag or an ini value beats the environment); pytester runs inherit it.
os.environ.setdefault("LLMOBS_RECORD_MODE", "off")


@pytest.fixture(autouse=True)
def _no_github_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not append to this job's real GitHub summary or print annotations."""
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _inner_runs_without_pytest_recording(request: pytest.FixtureRequest) -> None:
    """pytest-recording (and respx, whose plugin imports httpx) is installed for the drop-in
    tests, which load it on purpose
    (`@pytest.mark.with_pytest_recording`); every other inner run is a project without it.
    Set after pytester has cleared PYTEST_ADDOPTS; in-process and subprocess runs read it."""
    if "pytester" not in request.fixturenames:
        return
    if request.node.get_closest_marker("with_pytest_recording") is not None:
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    request.getfixturevalue("pytester")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:recording -p no:respx")


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def provider(provider_server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> ProviderServer:
    """The provider server, fresh, with its URL in LLM_URL for inner pytester runs."""
    provider_server.reset()
    monkeypatch.setenv("LLM_URL", provider_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0000000000000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key-000000000000")
    return provider_server
