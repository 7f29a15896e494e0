"""pytest hooks and fixtures: each a few lines calling into the modules that do the work."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from . import __version__, budgets, export
from . import settings as settings_mod
from .capture import Capture, TestCapture
from .cassettes import hooks as cassettes
from .cassettes import vcr_compat
from .chaos import hooks as chaos
from .fixture import LLMObs
from .providers import Route
from .report import watch
from .report.hooks import ArtifactHooks
from .report.terminal import RedactedWriter, write_summary
from .snapshots import SnapshotTarget
from .summary import REPORT_ATTR, RunSummary
from .workers import WorkerPart, XdistHooks

SETTINGS = pytest.StashKey[settings_mod.Settings]()
CAPTURE = pytest.StashKey[Capture]()
TEST_CAPTURE = pytest.StashKey[TestCapture]()
RUN_SUMMARY = pytest.StashKey[RunSummary]()
BUDGETS = pytest.StashKey[budgets.BudgetConfig]()
SESSION_RESULT = pytest.StashKey[str]()
TEST_CHECKS = pytest.StashKey[budgets.TestChecks]()
MARKER_ERROR = pytest.StashKey[str]()
ARTIFACTS = pytest.StashKey[ArtifactHooks]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    vcr_compat.addhooks(pluginmanager)  # pytest-recording's hook, when it is not loaded


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    settings_mod.register(parser)
    vcr_compat.addoption(parser, pluginmanager)  # pytest-recording's flags, when not loaded


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_mod.Settings.from_config(config)
    settings = vcr_compat.with_disable_recording(config, settings)
    routes = settings_mod.validated(settings.llm_hosts, Route.parse, "llm_hosts")
    for line in budgets.MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[BUDGETS] = _budget_config(config, settings)
    capture = Capture(routes, capture_content=settings.llm_capture_content)
    capture.install()
    config.stash[SETTINGS] = settings
    config.stash[CAPTURE] = capture
    price = config.stash[BUDGETS].pricing.cost_usd
    chaos.install(
        config,
        capture,
        settings.llm_chaos,
        settings.llm_chaos_seed,
        price,
        verdict=settings.llm_chaos_verdict,
        gate=settings.llm_chaos_gate,
    )
    hooks = cassettes.install(config, capture, settings)  # after chaos: faults never recorded
    vcr_compat.install(config, hooks)  # pytest-recording's markers and fixtures, or its tests
    config.stash[RUN_SUMMARY] = RunSummary()
    config.pluginmanager.register(_ReportHooks(config.stash[RUN_SUMMARY]), "llmobs-report")
    artifacts = ArtifactHooks(
        config, capture, settings, config.stash[BUDGETS], config.stash[RUN_SUMMARY]
    )
    artifacts.session_result = lambda: config.stash.get(SESSION_RESULT, None)
    config.stash[ARTIFACTS] = artifacts
    config.pluginmanager.register(artifacts, "llmobs-artifacts")
    watch.install(  # baselines, token spikes, alerts and their sinks
        config, capture, settings, config.stash[BUDGETS], config.stash[RUN_SUMMARY], artifacts
    )
    export.install(config, capture, settings, artifacts.redactor)  # live OTLP, when asked
    if config.pluginmanager.hasplugin("xdist"):
        parts: dict[str, WorkerPart] = {
            "artifacts": artifacts,
            "cassettes": config.stash[cassettes.HOOKS],
        }
        config.pluginmanager.register(XdistHooks(config, parts), "llmobs-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    capture = config.stash.get(CAPTURE, None)
    if capture is not None:
        capture.shutdown()
        del config.stash[CAPTURE]


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One short line; every setting with -v."""
    settings, verbose = config.stash[SETTINGS], config.get_verbosity() > 0
    header = [settings.header(__version__, hint=not verbose)]
    return header + settings.detail_lines() if verbose else header


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Resolve each test's llm_budget / llm_allow_truncation markers now: bad ones are a
    usage error before anything runs."""
    errors = {}
    for item in items:
        try:
            item.stash[TEST_CHECKS] = budgets.resolve(_llm_markers(item), item.nodeid)
        except budgets.BudgetError as exc:
            errors[item] = item.stash[MARKER_ERROR] = str(exc)
    if errors and not hasattr(config, "workerinput"):  # xdist workers: fail the test instead
        raise pytest.UsageError("\n".join(dict.fromkeys(errors.values())))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if MARKER_ERROR in item.stash:
        pytest.fail(f"usage error: {item.stash[MARKER_ERROR]}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    capture = item.config.stash[CAPTURE]
    item.stash[TEST_CAPTURE] = capture.start_test(item.nodeid)
    try:
        return (yield)
    finally:
        capture.end_test()
        # The report has the figures; items live all session, their calls and spans must not.
        del item.stash[TEST_CAPTURE]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and TEST_CAPTURE in item.stash:
        _check_budget(item, report)
    if call.when == "teardown" and TEST_CAPTURE in item.stash:
        # Teardown is the last phase: everything the test and its fixtures did is in.
        item.config.stash[CAPTURE].interceptor.flush()
        data = item.config.stash[ARTIFACTS].payload_for(
            item, item.stash[TEST_CAPTURE], item.stash.get(TEST_CHECKS, None)
        )
        setattr(report, REPORT_ATTR, data)
    return report


class _ReportHooks:
    """Hooks that need the session's summary (logreport has no config): registered once
    per session, on the controller and single processes alike (pytest's junitxml pattern)."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        self.summary.add(report.nodeid, report.outcome, data, report.location, report.duration)

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, config: pytest.Config
    ) -> None:
        writer = RedactedWriter(terminalreporter, config.stash[ARTIFACTS].redactor.text)
        write_summary(writer, self.summary, config.get_verbosity())
        budget_config = config.stash[BUDGETS]
        tests = self.summary.calls_by_test()
        if cost := budget_config.cost_line(tests):
            writer.write_line(cost)
        if session := config.stash.get(SESSION_RESULT, None):
            writer.write_sep("=", "llm session budget", red=budget_config.mode == "fail")
            writer.write_line(session)

    @pytest.hookimpl(tryfirst=True)  # after watch's (tryfirst, registered later), before xdist's
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The session budget, then the artifacts can start: they record the verdicts."""
        config = session.config
        if hasattr(config, "workerinput"):  # xdist worker: the controller checks the run
            return
        tests = self.summary.calls_by_test()
        result = config.stash[BUDGETS].check_session(tests)
        if result is not None:
            config.stash[SESSION_RESULT] = result
            if config.stash[BUDGETS].mode == "fail" and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        config.stash[ARTIFACTS].begin()


@pytest.fixture
def llmobs(request: pytest.FixtureRequest) -> LLMObs:
    """The current test's LLM calls, spans, summed usage and span queries."""
    snapshots = SnapshotTarget.for_test(
        request.node.path, request.node.nodeid, request.config.stash[SETTINGS].llm_snapshot_update
    )
    return LLMObs(
        request.node.stash[TEST_CAPTURE],
        snapshots=snapshots,
        checks=request.node.stash.get(TEST_CHECKS, None),
        pricing=request.config.stash[BUDGETS].pricing,
        chaos=chaos.control(request.node, request.node.stash[TEST_CAPTURE]),
    )


@pytest.fixture
def llm_spans(llmobs: LLMObs) -> list[ReadableSpan]:
    """Every span the test has finished so far (a snapshot list)."""
    return llmobs.spans


# -- cassettes (cassettes/) ----------------------------------------------------------------
@pytest.fixture
def llm_cassette_path(request: pytest.FixtureRequest) -> Path:
    """This test's cassette file; override this fixture to put it somewhere else."""
    return request.config.stash[cassettes.HOOKS].default_path(request.node)


@pytest.fixture(autouse=True)
def _llmobs_cassette(request: pytest.FixtureRequest, llm_cassette_path: Path) -> None:
    request.config.stash[cassettes.HOOKS].use_path(request.node, llm_cassette_path)


@pytest.fixture
def llm_cassette(request: pytest.FixtureRequest, _llmobs_cassette: None) -> cassettes.Context:
    """The cassette this test uses: `.path`, `.mode`, `.cassette` (vcrpy's, once opened)."""
    context: cassettes.Context = request.node.stash[cassettes.CONTEXT]
    return context


# -- budgets & truncation (budgets.py) -----------------------------------------------------
def _budget_config(config: pytest.Config, settings: settings_mod.Settings) -> budgets.BudgetConfig:
    prices = config.rootpath / settings.llm_prices if settings.llm_prices else None
    try:
        return budgets.BudgetConfig.from_settings(
            settings.llm_budget_mode, settings.llm_session_budget, prices
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _llm_markers(item: pytest.Item) -> list[budgets.MarkerArgs]:
    """This test's llm_* markers, nearest first, each with the scope it was set on."""
    return [
        budgets.MarkerArgs(mark.name, _scope(node), mark.args, mark.kwargs)
        for node, mark in item.iter_markers_with_node()
        if mark.name in ("llm_budget", "llm_allow_truncation")
    ]


def _scope(node: object) -> str:
    kinds = ((pytest.Item, "test"), (pytest.Class, "class"), (pytest.Module, "module"))
    return next((name for kind, name in kinds if isinstance(node, kind)), "package")


def _check_budget(item: pytest.Item, report: pytest.TestReport) -> None:
    """After the call phase: fail a passed test (or warn, or note on a failed one); warn
    about limits that could not be checked. The text is redacted: CI logs are kept."""
    config = item.config.stash[BUDGETS]
    checks = item.stash.get(TEST_CHECKS, budgets.TestChecks())
    capture = item.stash[TEST_CAPTURE]
    calls = capture.calls
    evaluations = [e.to_dict() for e in capture.evaluations]
    redact = item.config.stash[ARTIFACTS].redactor.text
    text = config.check_test(item.nodeid, calls, checks, evaluations)
    if text is not None:
        if config.mode == "warn":
            _warn(item, report, budgets.LLMBudgetWarning(redact(text)))
        else:
            _fail(report, redact(text))
    if (note := config.unchecked_test(item.nodeid, calls, checks)) is not None:
        _warn(item, report, budgets.LLMUncheckedWarning(redact(note)))


def _warn(item: pytest.Item, report: pytest.TestReport, warning: Warning) -> None:
    """A warning on the test; one the user made an error (`-W error::…`) fails it instead."""
    try:
        item.warn(warning)
    except type(warning):
        _fail(report, str(warning))


def _fail(report: pytest.TestReport, text: str) -> None:
    if report.passed and not hasattr(report, "wasxfail"):
        report.outcome, report.longrepr = "failed", text
    else:
        report.sections.append(("llmobs checks", text))
