"""pytest side of cassettes: the marker, which cassette each test and fixture uses, when
it is saved, and failing the test that made a request no cassette could answer.

`install` is the one call the plugin makes; everything else hangs off the hook object it
registers (the chaos pattern).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..redaction import Redactor
from ..words import count
from . import naming, vcr_compat, vcrpy_version
from .credentials import AWS, ReplayCredentials
from .matching import VCRPY_DEFAULT_MATCH_ON, MatchRules
from .session import CassetteSession, Context, loopback_only

if TYPE_CHECKING:
    from ..capture import Capture
    from ..settings import Settings

__all__ = ["CONTEXT", "HOOKS", "MODES", "CassetteHooks", "CassetteSpec", "Context", "install"]

RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
MODES = (*RECORD_MODES, "off")
TIMING_HELP = "instant, realtime, or a positive factor such as 0.5 (faster) or 2 (slower)"
MARKER = (
    "llm_cassette(name=None, *shared, record_mode=None, replay_timing=None, match_ignore=(), "
    "allow_hosts=None): this test's cassette file (relative to its module's cassette "
    "directory), read-only shared cassettes, and per-test cassette settings (pytest-llmobs)"
)
_MARKER_KWARGS = frozenset({"record_mode", "replay_timing", "match_ignore", "allow_hosts"})

SPEC = pytest.StashKey["CassetteSpec"]()
CONTEXT = pytest.StashKey[Context]()
_FAILED = pytest.StashKey[bool]()
_SPEC_ERROR = pytest.StashKey[str]()
HOOKS = pytest.StashKey["CassetteHooks"]()


@dataclass(frozen=True)
class CassetteSpec:
    """What a test's markers and the settings say about its cassette."""

    name: str | None
    shared: tuple[str, ...]
    mode: str
    pace: float
    match_ignore: tuple[str, ...]
    allow_hosts: tuple[str, ...]


def parse_timing(value: Any) -> float:
    """instant → 0, realtime → 1, a positive number → itself; ValueError otherwise."""
    text = str(value).strip().lower()
    if text == "instant":
        return 0.0
    if text == "realtime":
        return 1.0
    try:
        factor = float(text.removesuffix("x"))
    except ValueError:
        raise ValueError(f"{value!r} is not a replay timing; valid: {TIMING_HELP}") from None
    if not factor > 0 or factor == float("inf"):
        raise ValueError(f"{value!r} is not a replay timing; valid: {TIMING_HELP}")
    return factor


def build_redactor(settings: Settings) -> Redactor:
    patterns: dict[str, str] = {}
    for line in settings.llm_pii_patterns:
        name, sep, regex = line.partition("=")
        if not sep or not name.strip() or not regex.strip():
            raise pytest.UsageError(
                f"--llm-pii-patterns / ini llm_pii_patterns: {line!r} is not NAME=REGEX "
                "(e.g. employee_id=EMP-[0-9]{6})"
            )
        patterns[name.strip()] = regex.strip()
    keys = settings.llm_redact_keys
    try:
        return Redactor(
            extra_headers=keys,
            extra_query_keys=keys,
            extra_body_keys=keys,
            mask_pii=settings.llm_mask_pii,
            pii_patterns=patterns,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"--llm-pii-patterns / ini llm_pii_patterns: {exc}") from None


def install(config: pytest.Config, capture: Capture, settings: Settings) -> CassetteHooks:
    """Check the settings, hook the session into the interceptor, register the hooks."""
    problem = vcrpy_version.problem(vcrpy_version.installed())
    if problem is not None:
        raise pytest.UsageError(problem)
    try:
        pace = parse_timing(settings.llm_replay_timing)
    except ValueError as exc:
        raise pytest.UsageError(f"--llm-replay-timing / ini llm_replay_timing: {exc}") from None
    redactor = build_redactor(settings)
    rules = MatchRules.build(
        settings.llm_match_ignore,
        settings.llm_match_ignore_query,
        VCRPY_DEFAULT_MATCH_ON if settings.llm_match_vcrpy_cassettes == "vcrpy" else None,
    )
    # pytest-recording's cassettes may record through vcrpy whatever our mode: a placeholder
    # key must never reach the network, so its suites keep their own keys.
    recording = vcr_compat.pytest_recording_loaded(config.pluginmanager)
    credentials = None if recording else _replay_credentials(settings)
    if credentials is not None:
        config.add_cleanup(credentials.restore)
    session = CassetteSession(capture.registry, redactor, credentials)
    capture.interceptor.responders.append(session)  # after chaos: faults are never recorded
    capture.interceptor.listeners.append(session.on_exchange)
    config.addinivalue_line("markers", MARKER)
    hooks = CassetteHooks(config, session, settings, rules, pace)
    config.pluginmanager.register(hooks, "llmobs-cassettes")
    config.stash[HOOKS] = hooks
    return hooks


def _replay_credentials(settings: Settings) -> ReplayCredentials | None:
    """Placeholder credentials when the run replays and nothing can leave the machine."""
    if settings.llm_record_mode != "none" or not loopback_only(
        _allow_hosts(settings.llm_allow_hosts)
    ):
        return None
    # Artifacts encrypted with AWS KMS: the plugin's own boto3 call needs the real credentials.
    key = os.environ.get(settings.llm_encrypt_key_env, "") if settings.llm_encrypt_key_env else ""
    skip = (AWS,) if key.strip().startswith("aws-kms:") else ()
    return ReplayCredentials.supply(os.environ, skip=skip)


def _allow_hosts(values: Sequence[str]) -> tuple[str, ...]:
    hosts = tuple(v for value in values for v in re.split(r"[\s,]+", value) if v)
    return () if [h.lower() for h in hosts] in (["none"], ["-"]) else hosts


class CassetteHooks:
    def __init__(
        self,
        config: pytest.Config,
        session: CassetteSession,
        settings: Settings,
        rules: MatchRules,
        pace: float,
    ) -> None:
        self.config = config
        self.session = session
        self.rules = rules
        self.mode = settings.llm_record_mode
        self.pace = pace
        self.cli_mode = settings.sources.get("llm_record_mode") == "cli"
        self.cli_timing = settings.sources.get("llm_replay_timing") == "cli"
        self.cassette_dir = settings.llm_cassette_dir
        self.allow_hosts = _allow_hosts(settings.llm_allow_hosts)
        self.match_vcrpy_cassettes = settings.llm_match_vcrpy_cassettes
        # pytest-recording loaded beside us: its `vcr` marker is its business (vcr_compat)
        self.vcr_marker_owner: str | None = None
        self.rootpath = Path(str(config.rootpath))
        self.session_context = Context(
            owner="the session (outside any test)",
            path=self._base_dir() / "_session.yaml",
            mode=self.mode,
            pace=pace,
            rules=rules,
            allow_hosts=self.allow_hosts,
        )
        session.push(self.session_context)
        self._session_misses: str | None = None
        self._worker_misses: list[str] = []  # xdist: what workers could not answer

    def _base_dir(self) -> Path:
        base = Path(self.cassette_dir) if self.cassette_dir else Path("cassettes")
        return base if base.is_absolute() else self.rootpath / base

    # -- which cassette --------------------------------------------------------------------
    def spec(self, item: pytest.Item) -> CassetteSpec:
        if SPEC not in item.stash:
            item.stash[SPEC] = self._resolve(item)
        return item.stash[SPEC]

    def _resolve(self, item: pytest.Item) -> CassetteSpec:
        marker = item.get_closest_marker("llm_cassette")
        args: tuple[Any, ...] = marker.args if marker else ()
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
        where = f"{item.nodeid}: llm_cassette"
        unknown = sorted(set(kwargs) - _MARKER_KWARGS)
        if unknown:
            raise ValueError(
                f"{where}: unknown argument(s) {', '.join(unknown)}; valid: "
                + ", ".join(sorted(_MARKER_KWARGS))
            )
        if "name" in kwargs:
            raise ValueError(f"{where}: give the cassette name as the first positional argument")
        names = [a for a in args if a is not None]
        if any(not isinstance(n, str | Path) or not str(n).strip() for n in names):
            raise ValueError(f"{where}: cassette names must be non-empty strings, got {args!r}")
        mode = self.mode
        if "record_mode" in kwargs and not self.cli_mode:
            mode = str(kwargs["record_mode"])
        if mode not in MODES:
            raise ValueError(f"{where}: record_mode={mode!r} is not one of {', '.join(MODES)}")
        pace = self.pace
        if "replay_timing" in kwargs and not self.cli_timing:
            pace = parse_timing(kwargs["replay_timing"])
        ignore = kwargs.get("match_ignore", ())
        ignore = (ignore,) if isinstance(ignore, str) else tuple(str(p) for p in ignore)
        allow = kwargs.get("allow_hosts")
        hosts = (
            self.allow_hosts
            if allow is None
            else _allow_hosts([allow] if isinstance(allow, str) else [str(h) for h in allow])
        )
        first = str(names[0]) if names else None
        return CassetteSpec(first, tuple(str(n) for n in names[1:]), mode, pace, ignore, hosts)

    def default_path(self, item: pytest.Item) -> Path:
        return naming.test_path(item, self.rootpath, self.cassette_dir, self.spec(item).name)

    def _test_context(self, item: pytest.Item) -> Context:
        spec = self.spec(item)
        path = self.default_path(item)
        mode = spec.mode
        if self.vcr_marker_owner and item.get_closest_marker("vcr") is not None:
            mode = "off"  # pytest-recording's cassette serves this test
        return Context(
            owner=item.nodeid,
            path=path,
            mode=mode,
            pace=spec.pace,
            rules=self.rules.with_paths(spec.match_ignore),
            extra_paths=tuple(naming.named_path(path.parent, n) for n in spec.shared),
            allow_hosts=spec.allow_hosts,
        )

    def use_path(self, item: pytest.Item, path: Path | str) -> Context | None:
        """The `llm_cassette_path` fixture's value (overridable) becomes the test's path."""
        return self.configure(item, "llm_cassette_path", path=Path(path))

    def configure(self, item: pytest.Item, by: str, **changes: Any) -> Context | None:
        """Change the test's cassette (path, mode, rules, …) before its first use: fixtures
        that choose it (`llm_cassette_path`, pytest-recording's `vcr`) call this."""
        context = item.stash.get(CONTEXT, None)
        if context is None:
            return None
        different = {k: v for k, v in changes.items() if getattr(context, k) != v}
        if not different:
            return context
        if context.used:
            item.warn(
                pytest.PytestWarning(
                    f"{by} changed the cassette ({', '.join(different)}) after the test "
                    f"already used {context.path}; calls made before the change stay there"
                )
            )
        else:
            for name, value in different.items():
                setattr(context, name, value)
        return context

    # -- hooks -------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        errors = []
        for item in items:
            try:
                self.spec(item)
            except ValueError as exc:
                item.stash[_SPEC_ERROR] = str(exc)
                errors.append(str(exc))
        if errors and not hasattr(self.config, "workerinput"):  # workers: fail the test
            raise pytest.UsageError("\n".join(dict.fromkeys(errors)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if _SPEC_ERROR in item.stash:
            pytest.fail(f"usage error: {item.stash[_SPEC_ERROR]}", pytrace=False)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """Open the test's cassette before its body, after the fixtures that may move it:
        vcrpy's import (~0.4 s, once per process), reading and indexing the file must not
        sit between a request's start and its first byte, where they would be timed as the
        call's latency (and recorded as its timing)."""
        context = item.stash.get(CONTEXT, None)
        if context is not None and not context.closed:
            self.session.prepare(context)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            context = self._test_context(item)
        except ValueError as exc:  # a bad marker (xdist worker): the setup hook fails it
            item.stash[_SPEC_ERROR] = str(exc)
            item.stash[SPEC] = CassetteSpec(None, (), "off", 0.0, (), ())
            context = self._test_context(item)
        item.stash[CONTEXT] = context
        session = self.session
        session.current_nodeid = item.nodeid
        session.push(context)
        try:
            result = yield
        except BaseException:
            session.close(context, "interrupted")
            raise
        finally:
            session.current_nodeid = None
        session.close(context, "failed" if item.stash.get(_FAILED, False) else "passed")
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        if fixturedef.scope == "function":
            return (yield)
        context = self._fixture_context(fixturedef, request)
        if context is None:
            return (yield)
        session = self.session
        # Finalizers run last-in first-out: this one, added before the fixture's own
        # teardown is registered, runs after it; the one added below runs before it.
        fixturedef.addfinalizer(
            lambda: session.close(context, "failed" if context.failed else "passed")
        )
        session.push(context)
        session.prepare(context)  # before the fixture's first request: pytest_runtest_call
        try:
            result = yield
        except BaseException:
            context.failed = True
            raise
        finally:
            session.remove(context)
        fixturedef.addfinalizer(lambda: session.push(context))
        return result

    def _fixture_context(self, fixturedef: Any, request: Any) -> Context | None:
        # Shared by many tests: the session's settings, never one test's marker.
        if self.mode == "off":
            return None
        path = naming.fixture_path(fixturedef, request, self.rootpath, self.cassette_dir)
        return Context(
            owner=f"fixture {fixturedef.argname!r}",
            path=path,
            mode=self.mode,
            pace=self.pace,
            rules=self.rules,
            allow_hosts=self.allow_hosts,
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        text = self.session.take_misses(item.nodeid)
        if text is not None:
            if report.passed:
                report.outcome, report.longrepr = "failed", text
            elif report.failed:
                report.longrepr = (
                    f"{text}\n\n{'-' * 24} the test then failed with {'-' * 24}\n{report.longrepr}"
                )
            else:
                report.sections.append(("llmobs cassette", text))
        if report.failed:
            item.stash[_FAILED] = True
        return report

    # -- pytest-xdist (see workers.py): the controller prints one list for the run -------------
    def worker_output(self) -> dict[str, Any]:
        session = self.session
        return {
            "saved": [str(p) for p in session.saved],
            "unsaved": [[str(p), why] for p, why in session.unsaved],
            "late": session.late,
            "misses": self._session_misses,
        }

    def merge_worker(self, data: Mapping[str, Any]) -> None:
        session = self.session
        for name in data.get("saved") or []:
            if Path(name) not in session.saved:  # _session.yaml: every worker saves its own
                session.saved.append(Path(name))
        for name, why in data.get("unsaved") or []:
            if (Path(name), str(why)) not in session.unsaved:
                session.unsaved.append((Path(name), str(why)))
        session.late += int(data.get("late") or 0)
        if data.get("misses") and str(data["misses"]) not in self._worker_misses:
            self._worker_misses.append(str(data["misses"]))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.session.close(self.session_context, "interrupted" if interrupted else "passed")
        texts = [*self._worker_misses, self.session.take_misses(None)]
        text = "\n\n".join(dict.fromkeys(t for t in texts if t)) or None
        if text is not None:
            self._session_misses = text
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        """With -v: the placeholder credentials replay set (the header is one line without)."""
        credentials = self.session.credentials
        if credentials is None or not credentials.names or config.get_verbosity() <= 0:
            return None
        return "llmobs replay: placeholder credentials for " + ", ".join(credentials.names)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        session = self.session
        if self._session_misses:
            terminalreporter.write_sep("=", "llmobs: requests outside any test", red=True)
            terminalreporter.write_line(self._session_misses)
        if not (session.saved or session.unsaved or session.late):
            return
        write: Callable[[str], None] = terminalreporter.write_line
        terminalreporter.write_sep("-", "llmobs cassettes")
        verbose = self.config.get_verbosity() > 0
        if session.saved:
            write(f"{count(len(session.saved), 'cassette')} written")
            if verbose:
                for path in session.saved:
                    write(f"  {path}")
        for path, why in session.unsaved:
            write(f"not saved: {path} ({why}); its previous content is untouched")
        if session.late:
            write(
                f"{count(session.late, 'response')} finished after their test ended: not recorded"
            )
