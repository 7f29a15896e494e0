"""Baselines, token spikes and alerts at run time: the hooks around `baseline`, `spikes`,
`alerts` and `sinks`.

- Where a test runs (any process): after its call phase its figures are compared with the
  baseline; a regression fails the test (or warns) like a budget, and travels on the report
  as a ``baseline`` violation (JUnit failure, summary.json, GitHub annotation).
- On the controller (or the single process), at the end: token spikes over the whole run,
  the baseline update, alert rules, then the sinks (webhook, Pushgateway; pytest's own
  ``--junitxml`` gets the alerts as global properties). The artifact writer asks `extra()`
  for the summary.json / JUnit parts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from .. import alerts as alerts_mod
from .. import baseline as baseline_mod
from ..budgets import BudgetConfig
from ..capture import OUTSIDE
from ..spikes import Spike, SpikeError, SpikeRule, find_spikes
from ..summary import REPORT_ATTR, RunSummary, call_record
from ..words import count
from . import sinks
from .terminal import RedactedWriter

if TYPE_CHECKING:
    from ..capture import Capture
    from ..redaction import Redactor
    from ..settings import Settings
    from .hooks import ArtifactHooks

_FIGURES = pytest.StashKey[dict[str, Any]]()
_REGRESSIONS = pytest.StashKey[list[baseline_mod.Regression]]()


class LLMAlertDeliveryWarning(pytest.PytestWarning):
    """An alert webhook or Pushgateway push failed (the run's result is unchanged)."""


def install(
    config: pytest.Config,
    capture: Capture,
    settings: Settings,
    budgets: BudgetConfig,
    summary: RunSummary,
    artifacts: ArtifactHooks,
) -> WatchHooks:
    hooks = WatchHooks(config, capture, settings, budgets, summary, artifacts.redactor)
    artifacts.extra = hooks.extra
    config.pluginmanager.register(hooks, "llmobs-watch")
    return hooks


def _usage_error(where: str, exc: Exception) -> pytest.UsageError:
    return pytest.UsageError(f"{where}: {exc}" if where else str(exc))


class WatchHooks:
    def __init__(
        self,
        config: pytest.Config,
        capture: Capture,
        settings: Settings,
        budgets: BudgetConfig,
        summary: RunSummary,
        redactor: Redactor,
    ) -> None:
        self.config = config
        self.redactor = redactor  # the artifacts' rules, for what the webhook carries
        self.capture = capture
        self.settings = settings
        self.budgets = budgets
        self.summary = summary
        self.mode = budgets.mode
        self.controller = not hasattr(config, "workerinput")
        self.started = time.monotonic()
        try:
            self.tolerances = baseline_mod.parse_tolerances(settings.llm_baseline_tolerance)
            self.spike_rule = SpikeRule.parse(settings.llm_token_spike)
            self.rules = self._rules(settings, config.rootpath)
        except (baseline_mod.BaselineError, SpikeError, alerts_mod.AlertRuleError) as exc:
            raise _usage_error("", exc) from None
        self.update = settings.llm_baseline_update
        self.baseline: baseline_mod.Baseline | None = None
        if self.update and not settings.llm_baseline:
            raise pytest.UsageError(
                "--llm-baseline-update needs the file to write: --llm-baseline=FILE "
                "(or ini llm_baseline)"
            )
        if settings.llm_baseline:
            path = Path(settings.llm_baseline)
            path = path if path.is_absolute() else config.rootpath / path
            try:
                self.baseline = baseline_mod.Baseline.load(path, missing_ok=self.update)
            except baseline_mod.BaselineError as exc:
                raise _usage_error("--llm-baseline / ini llm_baseline", exc) from None
        for name in ("llm_alert_webhook", "llm_pushgateway"):
            url = getattr(settings, name)
            if url and urlsplit(url).scheme not in ("http", "https"):
                raise pytest.UsageError(
                    f"--{name.replace('_', '-')} / ini {name}: {sinks.safe_url(url)!r} is not "
                    "an http(s):// URL"
                )
        if settings.llm_pushgateway and self.controller:
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise pytest.UsageError(
                    "--llm-pushgateway needs prometheus-client: pip install 'pytest-llmobs[alerts]'"
                ) from None
        # filled on the controller
        self.figures: dict[str, dict[str, Any]] = {}
        self.regressions: dict[str, list[dict[str, Any]]] = {}
        self.spikes: list[Spike] = []
        self.alerts: list[alerts_mod.Alert] = []
        self.update_result: baseline_mod.Update | None = None
        self.update_written = False
        self.deliveries: list[sinks.Delivery] = []

    @staticmethod
    def _rules(settings: Settings, root: Path) -> list[alerts_mod.AlertRule]:
        rules = [
            alerts_mod.parse_rule(line, f"llm_alert {line.strip()!r}")
            for line in settings.llm_alert
        ]
        if settings.llm_alert_rules:
            path = Path(settings.llm_alert_rules)
            rules += alerts_mod.load_rules_file(path if path.is_absolute() else root / path)
        return rules

    @property
    def comparing(self) -> bool:
        return self.baseline is not None and not self.update and self.mode != "off"

    # -- where the test runs ------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if self.baseline is None:
            return report
        if call.when == "call":
            self._check(item, report)
        elif call.when == "teardown":
            data = getattr(report, REPORT_ATTR, None)
            if isinstance(data, dict):
                self._attach(item, data)
        return report

    def _records(self) -> list[dict[str, Any]]:
        active = self.capture.active
        records = []
        for call in list(active.calls) if active is not None else []:
            record = call_record(call)
            record["cost_usd"] = self.budgets.pricing.cost_usd(call)
            records.append(record)
        return records

    def _check(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """After the call phase (the budgets' moment): this test's figures vs its entry."""
        active = self.capture.active
        evaluations = [e.to_dict() for e in active.evaluations] if active is not None else []
        figures = item.stash[_FIGURES] = baseline_mod.figures(self._records(), evaluations)
        assert self.baseline is not None
        entry = self.baseline.tests.get(item.nodeid)
        if not self.comparing or entry is None:
            return
        found = baseline_mod.compare(item.nodeid, figures, entry, self.tolerances)
        item.stash[_REGRESSIONS] = found
        if not found:
            return
        for r in found:
            item.user_properties.append((f"llmobs.baseline.{r.figure}", r.message))
        text = self.redactor.text(
            baseline_mod.render(item.nodeid, found, self.settings.llm_baseline)
        )
        if self.mode == "warn":
            item.warn(baseline_mod.LLMRegressionWarning(text))
        elif report.passed and not hasattr(report, "wasxfail"):
            report.outcome, report.longrepr = "failed", text
        else:
            report.sections.append(("llmobs baseline", text))

    def _attach(self, item: pytest.Item, data: dict[str, Any]) -> None:
        figures = item.stash.get(_FIGURES, None)
        if figures is None:  # the call phase did not run (setup failed)
            figures = baseline_mod.figures(data.get("calls") or [], data.get("evaluations") or [])
        found = item.stash.get(_REGRESSIONS, [])
        data["baseline"] = {"figures": figures, "regressions": [r.to_dict() for r in found]}
        data.setdefault("violations", []).extend(
            {
                "kind": "baseline",
                "key": r.figure,
                "message": f"baseline regression: {r.message}",
                "detail": baseline_mod.render(item.nodeid, [r], self.settings.llm_baseline),
                "origin": "baseline",
                "calls": [],
            }
            for r in found
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if not self.controller or report.when != "teardown" or not isinstance(data, dict):
            return
        part = data.get("baseline")
        if isinstance(part, dict):
            self.figures[report.nodeid] = part.get("figures") or {}
            if part.get("regressions"):
                self.regressions[report.nodeid] = list(part["regressions"])

    # -- the end, on the controller --------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.controller:
            return
        tests = self.summary.tests()
        self._spikes(tests)
        if self.update and self.baseline is not None:
            self._update()
        if self.summary.outside:  # calls outside any test count for the run and its models
            tests[OUTSIDE] = {"nodeid": OUTSIDE, "outcome": "passed", "calls": self.summary.outside}
        self.alerts = alerts_mod.evaluate(self.rules, tests)
        failing = bool(self.regressions) or bool(self.spikes)
        failing = failing or any(a.rule.severity == "critical" for a in self.alerts)
        if self.mode == "fail" and failing and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._deliver(tests)
        self._junitxml_properties()

    def _spikes(self, tests: Mapping[str, Mapping[str, Any]]) -> None:
        if self.mode == "off":
            return
        reference = self.baseline.tests if self.baseline is not None else None
        records = {nodeid: list(t.get("calls") or []) for nodeid, t in tests.items()}
        self.spikes = find_spikes(records, self.spike_rule, reference)
        for spike in self.spikes:
            row = self.summary.rows.get(spike.nodeid)
            if row is None:
                continue
            row.violations.append(
                {
                    "kind": "token_spike",
                    "key": "token_spike",
                    "message": spike.message,
                    "detail": f"{spike.message}; reference: {spike.source} "
                    f"(llm_token_spike {self.spike_rule.describe()})",
                    "origin": spike.source,
                    "calls": [spike.index],
                }
            )

    def _update(self) -> None:
        assert self.baseline is not None
        runs = [
            (nodeid, figures)
            for nodeid, figures in self.figures.items()
            if (row := self.summary.rows.get(nodeid)) is not None
            and row.outcome == "passed"
            and (figures.get("calls") or nodeid in self.baseline.tests)
        ]
        merged, self.update_result = self.baseline.merged(runs, self.tolerances)
        if merged.dumps() != (self.baseline.dumps() if self.baseline.exists else None):
            merged.save()  # atomic: a reader sees the old file or the new one
            self.update_written = True

    def _deliver(self, tests: Mapping[str, Mapping[str, Any]]) -> None:
        settings = self.settings
        if settings.llm_alert_webhook and self.alerts:
            payload = sinks.slack_payload(self.alerts, self._context(tests), self.redactor)
            self.deliveries.append(sinks.post_webhook(settings.llm_alert_webhook, payload))
        if settings.llm_pushgateway:
            run = sinks.RunFigures(
                alerts=self.alerts,
                regressions=sum(len(r) for r in self.regressions.values()),
                spikes=len(self.spikes),
                duration_s=time.monotonic() - self.started,
            )
            registry = sinks.run_registry(tests, run)
            instance = settings.llm_pushgateway_instance or socket.gethostname()
            self.deliveries.append(
                sinks.push(
                    settings.llm_pushgateway,
                    registry,
                    job=settings.llm_pushgateway_job,
                    instance=instance,
                )
            )
        for delivery in self.deliveries:
            if not delivery.ok:
                # a warning, never an error: -W error must not turn a dead sink into a failure
                with contextlib.suppress(Warning):
                    warnings.warn(LLMAlertDeliveryWarning(delivery.line), stacklevel=1)

    def _context(self, tests: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        calls = [c for t in tests.values() for c in t.get("calls") or []]
        cost = sum(c.get("cost_usd") or 0.0 for c in calls)
        env = os.environ
        run_url = None
        if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        return {
            "project": self.config.rootpath.name,
            "tests": len(tests),
            "LLM calls": len(calls),
            "cost": f"${cost:.4f}",
            "run": run_url,
        }

    def _junitxml_properties(self) -> None:
        """Alerts as global properties of pytest's own --junitxml, when it is on."""
        from _pytest.junitxml import xml_key  # pytest's key for its LogXML (stable since 7.0)

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        xml.add_global_property("llmobs.alerts_firing", len(self.alerts))
        for alert in self.alerts:
            xml.add_global_property("llmobs.alert", alert.message)
        if self.spikes:
            xml.add_global_property("llmobs.token_spikes", len(self.spikes))

    def extra(self) -> dict[str, Any]:
        """What summary.json and llmobs-junit.xml carry besides the tests."""
        out: dict[str, Any] = {"token_spikes": [s.to_dict() for s in self.spikes]}
        if self.baseline is not None:
            out["baseline"] = {
                "file": self.settings.llm_baseline,
                "updated": self.update_written,
                "tolerance": {k: t.describe() for k, t in self.tolerances.items()},
                "regressions": [r for found in self.regressions.values() for r in found],
                "not_in_baseline": sorted(
                    n for n, f in self.figures.items() if f.get("calls") and self._new(n)
                ),
            }
        if self.rules:
            out["alerts"] = [a.to_dict() for a in self.alerts]
            out["alert_rules"] = len(self.rules)
        return out

    def _new(self, nodeid: str) -> bool:
        return self.baseline is not None and nodeid not in self.baseline.tests

    # -- terminal ---------------------------------------------------------------------------------
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.controller:
            return
        writer = RedactedWriter(terminalreporter, self.redactor.text)  # CI logs are kept
        write = writer.write_line
        red = self.mode == "fail"
        if self.baseline is not None:
            self._write_baseline(writer, red)
        if self.spikes:
            writer.write_sep("-", "llmobs token spikes", red=red)
            for spike in self.spikes:
                write(f"{spike.nodeid}: {spike.message}")
            write(
                f"(llm_token_spike {self.spike_rule.describe()}"
                + ("; the run fails" if red else "")
                + ")"
            )
        if self.alerts:
            critical = any(a.rule.severity == "critical" for a in self.alerts)
            writer.write_sep("-", f"llmobs alerts: {len(self.alerts)} firing", red=critical and red)
            for alert in self.alerts:
                write(alert.message)
        elif self.rules and self.config.get_verbosity() > 0:
            write(f"llmobs alerts: {count(len(self.rules), 'rule')}, none firing")
        for delivery in self.deliveries:
            write(delivery.line)

    def _write_baseline(self, writer: RedactedWriter, red: bool) -> None:
        write = writer.write_line
        path = self.settings.llm_baseline
        if self.update:
            if self.update_result is not None:
                action = "written" if self.update_written else "unchanged, not rewritten"
                write(f"llmobs baseline {path} {action}: {self.update_result.describe()}")
            return
        compared = sum(1 for n in self.figures if not self._new(n))
        new = [n for n, f in self.figures.items() if f.get("calls") and self._new(n)]
        if self.regressions:
            writer.write_sep("-", "llmobs baseline regressions", red=red)
            for nodeid, found in self.regressions.items():
                for r in found:
                    figure = r["figure"]
                    write(
                        f"{nodeid}: {figure} {baseline_mod.fmt(figure, r['actual'])} vs "
                        f"{baseline_mod.fmt(figure, r['baseline'])} ({r['change']}; allowed "
                        f"{r['tolerance']})"
                    )
        line = (
            f"llmobs baseline {path}: {count(compared, 'test')} compared, "
            f"{count(sum(len(r) for r in self.regressions.values()), 'regression')}"
        )
        if new:
            line += (
                f", {count(len(new), 'test')} not in the baseline (add "
                f"{'it' if len(new) == 1 else 'them'}: --llm-baseline-update)"
            )
        write(line)
        better = self._improved()
        if better:
            write(
                f"llmobs baseline: {count(len(better), 'test')} now at least 10% below "
                f"{'its' if len(better) == 1 else 'their'} baseline "
                "(lock it in with --llm-baseline-update): " + ", ".join(better[:5])
            )

    def _improved(self) -> Sequence[str]:
        assert self.baseline is not None
        return [
            nodeid
            for nodeid, figures in self.figures.items()
            if nodeid in self.baseline.tests
            and nodeid not in self.regressions
            and (row := self.summary.rows.get(nodeid)) is not None
            and row.outcome == "passed"
            and baseline_mod.improvements(figures, self.baseline.tests[nodeid])
        ]
