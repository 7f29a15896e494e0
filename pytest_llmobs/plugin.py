"""pytest hooks and fixtures: each a few lines calling into the modules that do the work."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from . import settings as settings_mod
from .capture import Capture, TestCapture
from .fixture import LLMObs
from .providers import Route
from .report.terminal import write_summary
from .summary import REPORT_ATTR, RunSummary, payload

SETTINGS = pytest.StashKey[settings_mod.Settings]()
CAPTURE = pytest.StashKey[Capture]()
TEST_CAPTURE = pytest.StashKey[TestCapture]()
RUN_SUMMARY = pytest.StashKey[RunSummary]()


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_mod.register(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_mod.Settings.from_config(config)
    routes = settings_mod.validated(settings.llm_hosts, Route.parse, "llm_hosts")
    capture = Capture(routes, capture_content=settings.llm_capture_content)
    capture.install()
    config.stash[SETTINGS] = settings
    config.stash[CAPTURE] = capture
    config.stash[RUN_SUMMARY] = RunSummary()
    config.pluginmanager.register(_ReportHooks(config.stash[RUN_SUMMARY]), "llmobs-report")


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "teardown" and TEST_CAPTURE in item.stash:
        # Teardown is the last phase: everything the test and its fixtures did is in.
        item.config.stash[CAPTURE].interceptor.flush()
        setattr(report, REPORT_ATTR, payload(item.stash[TEST_CAPTURE]))
    return report


class _ReportHooks:
    """Hooks that need the session's summary (logreport has no config): registered once
    per session, on the controller and single processes alike (pytest's junitxml pattern)."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.summary.add(report.nodeid, report.outcome, getattr(report, REPORT_ATTR, None))

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, config: pytest.Config
    ) -> None:
        write_summary(terminalreporter, self.summary, config.get_verbosity())


@pytest.fixture
def llmobs(request: pytest.FixtureRequest) -> LLMObs:
    """The current test's LLM calls, spans, summed usage and span queries."""
    return LLMObs(request.node.stash[TEST_CAPTURE])


@pytest.fixture
def llm_spans(llmobs: LLMObs) -> list[ReadableSpan]:
    """Every span the test has finished so far (a snapshot list)."""
    return llmobs.spans
