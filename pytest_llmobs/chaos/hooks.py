"""pytest side of chaos: markers, the matrix, the seed, the per-test verdict on reports and
spans. `install` is the one call the plugin makes; everything else hangs off the hook
object it registers."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

from ..summary import REPORT_ATTR
from ..words import count
from .catalog import ChaosConfigError
from .control import ChaosControl
from .rules import Rule, describe_rules, rules_from_spec
from .session import ChaosSession, TestChaos
from .verdict import Policy, Verdict, judge

if TYPE_CHECKING:
    from ..calls import LLMCall
    from ..capture import Capture, TestCapture

Price = Callable[["LLMCall"], "float | None"]

CHAOS_SESSION = pytest.StashKey[ChaosSession]()
TEST_CHAOS = pytest.StashKey[TestChaos]()
_SETUP_ERROR = pytest.StashKey[str]()
_CALL_FAILED = pytest.StashKey[bool]()
MATRIX_ARG = "_llmobs_chaos_case"
_WORKER_SEED = "llmobs_chaos_seed"

MARKERS = (
    "llm_chaos(*faults, times=1, probability=1.0, skip=0, provider=, model=, path=, call=, "
    "**params): inject provider-true faults into this test's LLM calls (pytest-llmobs)",
    "llm_chaos_matrix(faults, **common): run the test once per fault, ids like "
    "test_x[chaos=rate_limit] (pytest-llmobs)",
)


def install(
    config: pytest.Config,
    capture: Capture,
    chaos: str | None,
    seed: int | None,
    price: Price | None = None,
    verdict: str = "",
    gate: str = "fail",
) -> None:
    """Resolve the scenario, seed and verdict thresholds, put the responder first, register
    the hooks."""
    try:
        policy = Policy.parse(verdict or "")
    except ValueError as exc:
        raise pytest.UsageError(f"--llm-chaos-verdict / ini llm_chaos_verdict: {exc}") from None
    scenario_rules: list[Rule] = []
    label = None
    scenario_seed = None
    if chaos:
        from .scenario import resolve_chaos_option  # PyYAML, only when asked for

        try:
            scenario = resolve_chaos_option(chaos, Path(str(config.invocation_params.dir)))
        except ChaosConfigError as exc:
            raise pytest.UsageError(f"--llm-chaos / ini llm_chaos: {exc}") from None
        scenario_rules = list(scenario.rules)  # each test counts `times` afresh
        label = scenario.name or scenario.source
        scenario_seed = scenario.seed
    worker = getattr(config, "workerinput", None)
    source = "cli/ini"
    if seed is None and isinstance(worker, dict) and _WORKER_SEED in worker:
        seed, source = int(worker[_WORKER_SEED]), "controller"
    elif seed is None and scenario_seed is not None:
        seed, source = scenario_seed, "scenario"
    elif seed is None:
        seed, source = random.SystemRandom().randrange(1, 2**31), "random"
    session = ChaosSession(capture.registry, seed, scenario_rules, label, policy)
    capture.interceptor.responders.insert(0, session)  # before replay and the network
    config.stash[CHAOS_SESSION] = session
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    hooks = ChaosHooks(session, capture, source, price, gate, announce=bool(chaos))
    config.pluginmanager.register(hooks, "llmobs-chaos")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistSeed(seed), "llmobs-chaos-xdist")


def control(item: pytest.Item, capture: TestCapture) -> ChaosControl | None:
    test = item.stash.get(TEST_CHAOS, None)
    return None if test is None else ChaosControl(test, capture)


class _XdistSeed:
    """Workers inherit the controller's seed, so a random seed is still one seed per run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKER_SEED] = self.seed


class ChaosHooks:
    def __init__(
        self,
        session: ChaosSession,
        capture: Capture,
        seed_source: str,
        price: Price | None,
        gate: str = "fail",
        *,
        announce: bool = False,
    ) -> None:
        self.announce = announce  # --llm-chaos is set: every test may get faults
        self.price = price
        self.gate = gate
        self.session = session
        self.capture = capture
        self.seed_source = seed_source
        self.results: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self) -> None:
        """Whatever else registered a responder since (cassette replay), chaos answers first."""
        responders = self.capture.interceptor.responders
        if self.session in responders and responders[0] is not self.session:
            responders.remove(self.session)
            responders.insert(0, self.session)

    # -- header, collection -------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> str | None:
        """The seed line when chaos is on for the run (or with -v); tests that inject faults
        through markers name the seed where they report (verdict, chaos summary)."""
        if not self.announce and config.get_verbosity() <= 0:
            return None
        session = self.session
        scenario = (
            f", scenario={session.scenario} ({describe_rules(session.rules)})"
            if (session.scenario)
            else ""
        )
        thresholds = session.policy.describe()
        return (
            f"llmobs chaos: seed={session.seed} ({self.seed_source}; reproduce with "
            f"--llm-chaos-seed={session.seed}){scenario}"
            + (f", verdict: {thresholds}" if thresholds else "")
        )

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marker = metafunc.definition.get_closest_marker("llm_chaos_matrix")
        if marker is None:
            return
        specs = (
            list(marker.args[0])
            if len(marker.args) == 1 and isinstance(marker.args[0], list | tuple)
            else list(marker.args)
        )
        where = f"{metafunc.definition.nodeid}: llm_chaos_matrix"
        if not specs:
            pytest.fail(f"{where}: no faults given", pytrace=False)
        cases: list[Any] = []
        ids: list[str] = []
        for spec in specs:
            case = (
                {"fault": spec, **marker.kwargs}
                if isinstance(spec, str)
                else {**marker.kwargs, **spec}
            )
            problem = _problem(case, where)
            if problem:
                pytest.fail(problem, pytrace=False)
            cases.append(case)
            ids.append(f"chaos={case['fault']}")
        metafunc.fixturenames.append(MATRIX_ARG)
        metafunc.parametrize(MATRIX_ARG, cases, ids=ids)

    # -- one test ---------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            rules, sources = _item_rules(item)
        except ChaosConfigError as exc:
            item.stash[_SETUP_ERROR] = str(exc)
            rules, sources = [], []
        item.stash[TEST_CHAOS] = self.session.start_test(item.nodeid, rules, sources)
        try:
            return (yield)
        finally:
            self.session.end_test()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(_SETUP_ERROR, None)
        if error is not None:
            pytest.fail(error, pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "call":
            item.stash[_CALL_FAILED] = report.failed
        test = item.stash.get(TEST_CHAOS, None)
        if call.when not in ("call", "teardown") or test is None:
            return report
        active = self.capture.active
        calls = list(active.calls) if active is not None else []
        if not test.injected and not any(c.attributes.get("llmobs.chaos.fault") for c in calls):
            return report
        verdict = judge(
            calls,
            seed=test.seed,
            # A failed call phase means the app raised, unless assert_resilient failed it.
            app_raised=item.stash.get(_CALL_FAILED, False) and not test.assertion_failed,
            policy=test.policy,
            price=self.price,
        )
        if call.when == "call":  # shown with the test's outcome (failures, -rA)
            gated = self.gate == "fail" and not test.judged_by_test
            if verdict.status == "fail" and gated and report.passed:
                # One truth: the verdict JUnit, the summary and the report show is the test's.
                report.outcome = "failed"
                report.longrepr = (
                    "the client did not survive the injected faults (llm_chaos_gate = fail; "
                    f"warn only reports it)\n{verdict.explain()}"
                )
            else:
                report.sections.append(("llmobs chaos", verdict.explain()))
            return report
        data = getattr(report, REPORT_ATTR, None)
        if isinstance(data, dict):
            data["chaos"] = {
                **verdict.to_dict(),
                "injected": test.injected,
                "rules": [r.describe() for r in test.injector.rules],
            }
        self._emit_span(verdict, calls)
        return report

    def _emit_span(self, verdict: Verdict, calls: list[Any]) -> None:
        """One `llmobs.chaos.verdict` span per test: status, seed, a finding per event,
        linked to the faulted calls' spans and in the first one's trace."""
        links = []
        parent = None
        for fault in verdict.faults:
            ordered = sorted(calls, key=lambda c: c.started_at)
            attrs = ordered[fault["call"]].attributes
            try:
                context = SpanContext(
                    int(attrs["llmobs.trace_id"], 16),
                    int(attrs["llmobs.span_id"], 16),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            except (KeyError, ValueError):
                continue
            links.append(Link(context, {"llmobs.chaos.fault": fault["fault"]}))
            if parent is None:
                parent = trace.set_span_in_context(NonRecordingSpan(context))
        span = self.capture.tracing.tracer.start_span(
            "llmobs.chaos.verdict",
            context=parent,
            links=links,
            attributes={
                "llmobs.chaos.seed": verdict.seed or 0,
                "llmobs.chaos.verdict": verdict.status,
                "llmobs.chaos.faults": [f["fault"] for f in verdict.faults],
                "llmobs.chaos.findings": [f.code for f in verdict.findings],
                "llmobs.chaos.extra_tokens": verdict.extra_tokens,
            },
        )
        for finding in verdict.findings:
            span.add_event(
                f"llmobs.chaos.finding.{finding.code}",
                {
                    "llmobs.chaos.severity": finding.severity,
                    "llmobs.chaos.message": finding.message,
                    "llmobs.chaos.calls": list(finding.calls),
                },
            )
        span.end()

    # -- reports (controller or single process) -----------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if report.when == "teardown" and isinstance(data, dict) and "chaos" in data:
            self.results[report.nodeid] = data["chaos"]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.results:
            return
        writer = terminalreporter
        writer.write_sep("-", f"llmobs chaos (seed {self.session.seed})")
        failing = 0
        for nodeid, result in self.results.items():
            faults = ", ".join(f["fault"] for f in result["faults"]) or "-"
            codes = sorted({f["code"] for f in result["findings"] if f["severity"] != "info"})
            failing += result["status"] == "fail"
            writer.write_line(
                f"{result['status']:<9} {nodeid}  [{faults}]"
                + (f"  {', '.join(codes)}" if codes else "")
            )
        writer.write_line(
            f"llmobs chaos: {count(len(self.results), 'test')} with faults, "
            f"{count(failing, 'failing verdict')}; "
            f"reproduce with --llm-chaos-seed={self.session.seed}"
        )


def _problem(case: Any, where: str) -> str | None:
    try:
        rules_from_spec(case, where)
    except ChaosConfigError as exc:
        return str(exc)
    return None


def _item_rules(item: pytest.Item) -> tuple[list[Rule], list[str]]:
    rules: list[Rule] = []
    sources: list[str] = []
    for marker in reversed(list(item.iter_markers("llm_chaos"))):
        where = f"{item.nodeid}: llm_chaos"
        specs: list[Any] = list(marker.args) or (
            [marker.kwargs] if "fault" in marker.kwargs else []
        )
        for spec in specs:
            case = (
                {"fault": spec, **marker.kwargs}
                if isinstance(spec, str)
                else ({**marker.kwargs, **spec} if isinstance(spec, dict) else spec)
            )
            rules += rules_from_spec(case, where)
        sources.append("marker")
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get(MATRIX_ARG) if callspec is not None else None
    if case is not None:
        rules += rules_from_spec(case, f"{item.nodeid}: llm_chaos_matrix")
        sources.append("matrix")
    return rules, sources
