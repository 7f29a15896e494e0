"""Report hooks: finish each test's payload where it ran (spans), and, on the controller or
the single process, turn payloads into artifacts as reports arrive and write the rest once
at the end. Registered by the plugin on every process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ..budgets import BudgetConfig, TestChecks
from ..capture import OUTSIDE, Capture, TestCapture
from ..cassettes import hooks as cassettes
from ..encryption.keys import KeySource, KeySourceError, key_source_from_env
from ..redaction import Redactor
from ..settings import Settings
from ..summary import REPORT_ATTR, PayloadOptions, RunSummary, payload
from ..words import count
from . import github, junit
from .artifacts import ArtifactWriter
from .traces import span_dict

_ARTIFACT_OPTIONS = ("llm_artifacts", "llm_log_sample_rate", "llm_log_content")
_RUN_ID = "llmobs_run_id"  # the controller's, in each worker's workerinput


def content_redactor(settings: Settings) -> Redactor:
    """`full` keeps PII but never secrets; otherwise the session's rules (PII masked with
    --llm-mask-pii / llm_pii_patterns)."""
    if settings.llm_log_content == "full":
        keys = settings.llm_redact_keys
        return Redactor(extra_headers=keys, extra_query_keys=keys, extra_body_keys=keys)
    return cassettes.build_redactor(settings)


def artifact_keys(settings: Settings) -> KeySource | None:
    """The key source named by --llm-encrypt-key-env (checked now, not at the end)."""
    if not settings.llm_encrypt_key_env:
        return None
    try:
        return key_source_from_env(settings.llm_encrypt_key_env)
    except KeySourceError as exc:
        raise pytest.UsageError(f"--llm-encrypt-key-env / ini llm_encrypt_key_env: {exc}") from None


class ArtifactHooks:
    def __init__(
        self,
        config: pytest.Config,
        capture: Capture,
        settings: Settings,
        budgets: BudgetConfig,
        summary: RunSummary,
    ) -> None:
        rate = settings.llm_log_sample_rate
        if not 0.0 <= rate <= 1.0:
            raise pytest.UsageError(
                f"--llm-log-sample-rate / ini llm_log_sample_rate: {rate} is not between 0 and 1"
            )
        self.config = config
        self.capture = capture
        self.settings = settings
        self.summary = summary
        self.redactor = content_redactor(settings)
        self.options = PayloadOptions(
            content=settings.llm_log_content,
            redactor=self.redactor,
            pricing=budgets.pricing,
            checks=budgets.mode != "off",
        )
        self.writes = not hasattr(config, "workerinput")
        self.forced = any(
            settings.sources.get(name, "default") != "default" for name in _ARTIFACT_OPTIONS
        )
        directory = Path(settings.llm_artifacts)
        if not directory.is_absolute():
            directory = config.invocation_params.dir / directory
        worker = getattr(config, "workerinput", None)
        # a worker builds its tests' lines (see `pytest_runtest_logreport`) with the run's id
        run_id = worker.get(_RUN_ID) if isinstance(worker, dict) else None
        self.writer = ArtifactWriter(
            directory,
            run_id=str(run_id or uuid.uuid4().hex),
            sample_rate=rate,
            redactor=self.redactor,
            keys=artifact_keys(settings) if self.writes else None,
        )
        self.written: list[Path] = []
        self._writing: Future[list[Path]] | None = None  # see `begin`
        self.session_result: Callable[[], str | None] = lambda: None
        # baselines, token spikes and alerts (report/watch.py) for summary.json and JUnit
        self.extra: Callable[[], dict[str, Any]] = dict

    # -- where the test ran ---------------------------------------------------------------
    def payload_for(
        self, item: pytest.Item, capture: TestCapture, checks: TestChecks | None
    ) -> dict[str, Any]:
        return payload(capture, self.options, checks=checks, cassette=self._cassette(item))

    def _cassette(self, item: pytest.Item) -> str | None:
        context = item.stash.get(cassettes.CONTEXT, None)
        if context is None or not context.used or context.mode == "off":
            return None
        try:
            return context.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return str(context.path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if report.when != "teardown" or not isinstance(data, dict):
            return
        active = self.capture.active
        if "lines" not in data and active is not None and active.nodeid == report.nodeid:
            # Where the test ran, after every makereport wrapper (the spans they emitted,
            # the chaos verdict, are in): its artifact lines. What stays on the report
            # (pytest keeps them all; a worker sends it) is figures only.
            content = self.options.content != "none"
            spans = [span_dict(s, self.redactor, content) for s in active.spans]
            data["span_count"] = len(spans)
            row = self.summary.rows.get(report.nodeid)
            outcome = "failed" if report.failed else (row.outcome if row else report.outcome)
            data["lines"] = self.writer.test_lines(report.nodeid, outcome, {**data, "spans": spans})
            for call in data.get("calls") or []:
                call.pop("content", None)
        if not self.writes:
            return
        report.user_properties.extend(junit.properties(data) if junit.has_llm_data(data) else [])
        lines = data.pop("lines", None)
        if isinstance(lines, dict):
            self.writer.add_lines(lines)

    # -- calls made while no test ran (collection, session hooks, late responses) ----------
    def outside_payload(self) -> dict[str, Any] | None:
        """What this process saw outside any test since the last take, spans included; no
        checks (no test's budget applies to them), or None when there was nothing."""
        taken = self.capture.take_outside()
        if taken is None:
            return None
        data = payload(taken, replace(self.options, checks=False))
        content = self.options.content != "none"
        data["spans"] = [span_dict(s, self.redactor, content) for s in taken.spans]
        return data

    def _add_outside(self, data: Mapping[str, Any]) -> None:
        self.summary.add_outside(data)
        self.writer.add_test(OUTSIDE, "passed", data)

    def _internal_errors(self) -> list[str]:
        return [self.redactor.text(repr(e)) for e in self.capture.interceptor.listener_errors]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:  # before the session budget is checked
            if self.writes and (data := self.outside_payload()) is not None:
                self._add_outside(data)

    # -- pytest-xdist (see workers.py) ---------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_RUN_ID] = self.writer.run_id

    def worker_output(self) -> dict[str, Any]:
        self.capture.interceptor.flush()
        return {"outside": self.outside_payload(), "internal_errors": self._internal_errors()}

    def merge_worker(self, data: Mapping[str, Any]) -> None:
        if isinstance(data.get("outside"), dict):
            self._add_outside(data["outside"])
        self.summary.internal_errors += [str(e) for e in data.get("internal_errors") or []]

    # -- the end, controller or single process ----------------------------------------------
    def begin(self) -> None:
        """The run's verdicts are in (session budget, token spikes, alerts). On the xdist
        controller, start writing the files now, in a background thread: xdist's own
        sessionfinish, which comes next, waits about half a second for its workers to exit,
        doing nothing. `pytest_sessionfinish` (trylast) waits for the writing."""
        if self.writes and self.config.pluginmanager.has_plugin("dsession"):
            pool = ThreadPoolExecutor(1, thread_name_prefix="llmobs-artifacts")
            self._writing = pool.submit(self._write)
            pool.shutdown(wait=False)  # the thread ends with its one job

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.writes:
            return
        if self._writing is None:
            self.written = self._write()
        else:
            self.written = self._writing.result()  # its error, if any, is raised here
            self._writing = None
            self.capture.interceptor.flush()
            if (late := self.outside_payload()) is not None:  # from sessionfinish hooks
                self.writer.reopen()
                self._add_outside(late)
                self.written = self._write()
        self.summary.internal_errors += self._internal_errors()
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary and self.written:
            tests = self.summary.tests()
            text = github.markdown(tests, self.session_result(), outside=self.summary.outside)
            github.append_summary(Path(step_summary), self.redactor.text(text))

    def _write(self) -> list[Path]:
        """Every file, from what the run gathered (calls outside tests until now included)."""
        self.capture.interceptor.flush()
        if (data := self.outside_payload()) is not None:
            self._add_outside(data)
        return self.writer.finish(
            self.summary.tests(),
            outside=self.summary.outside,
            session_result=self.session_result(),
            extra=self.extra(),
            force=self.forced,
            settings={
                "llm_log_content": self.settings.llm_log_content,
                "llm_log_sample_rate": self.settings.llm_log_sample_rate,
                # where the rootdir is in the repository: `llmobs check` annotates with it
                "annotation_prefix": github.workspace_prefix(self.config.rootpath),
            },
        )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.writes and self.summary.internal_errors:
            errors = self.summary.internal_errors
            terminalreporter.write_line(
                f"llmobs: {count(len(errors), 'internal error')} while reading responses (the "
                f"calls went through; their records may be incomplete): {'; '.join(errors[:3])}",
                yellow=True,
            )
        if not self.writes or not self.written:
            return
        if github.enabled():
            prefix = github.workspace_prefix(self.config.rootpath)
            for line in github.error_annotations(self.summary.tests(), prefix):
                terminalreporter.write_line(self.redactor.text(line))  # CI logs are kept
        if self.config.get_verbosity() >= 0:
            terminalreporter.write_line(
                f"llmobs artifacts: {self.writer.directory} "
                f"({', '.join(p.name for p in self.written)})"
            )
