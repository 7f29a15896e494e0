"""pytest hooks and fixtures: each a few lines calling into the modules that do the work."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from . import settings as settings_mod
from .capture import Capture, TestCapture
from .fixture import LLMObs
from .providers import Route

SETTINGS = pytest.StashKey[settings_mod.Settings]()
CAPTURE = pytest.StashKey[Capture]()
TEST_CAPTURE = pytest.StashKey[TestCapture]()


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_mod.register(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_mod.Settings.from_config(config)
    routes = settings_mod.validated(settings.llm_hosts, Route.parse, "llm_hosts")
    capture = Capture(routes, capture_content=settings.llm_capture_content)
    capture.install()
    config.stash[SETTINGS] = settings
    config.stash[CAPTURE] = capture


def pytest_unconfigure(config: pytest.Config) -> None:
    capture = config.stash.get(CAPTURE, None)
    if capture is not None:
        capture.shutdown()
        del config.stash[CAPTURE]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["llmobs: " + ", ".join(config.stash[SETTINGS].header_items())]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    capture = item.config.stash[CAPTURE]
    item.stash[TEST_CAPTURE] = capture.start_test(item.nodeid)
    try:
        return (yield)
    finally:
        capture.end_test()


@pytest.fixture
def llmobs(request: pytest.FixtureRequest) -> LLMObs:
    """The current test's LLM calls, spans, summed usage and span queries."""
    return LLMObs(request.node.stash[TEST_CAPTURE])


@pytest.fixture
def llm_spans(llmobs: LLMObs) -> list[ReadableSpan]:
    """Every span the test has finished so far (a snapshot list)."""
    return llmobs.spans
