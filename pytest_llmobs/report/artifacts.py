"""The artifact directory: streamed while the run goes, finished once at its end.

`traces.jsonl` and `prompts.jsonl` grow one test at a time (into temporary files, renamed
into place at the end), so spans and content never pile up in memory; `llmobs-junit.xml`
and `summary.json` are written from the run's figures at the end, then `report.html` from
all of these files (report/html.py), and `traces.perfetto.json` in the same pass over
`traces.jsonl`. With a key source the content files are written encrypted (`NAME.enc`, see
report/storage.py).
`llmobs merge` rebuilds the same files from several directories.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import AtomicFile, write_atomic
from ..redaction import Redactor
from ..summary import totals
from . import junit, prompts
from .storage import artifact_lines, open_artifact
from .traces import PerfettoWriter, export_request

if TYPE_CHECKING:
    from ..encryption.keys import KeySource

JUNIT = "llmobs-junit.xml"
TRACES = "traces.jsonl"
PERFETTO = "traces.perfetto.json"
PROMPTS = "prompts.jsonl"
SUMMARY = "summary.json"
FORMAT = "pytest-llmobs-summary"


class ArtifactWriter:
    """Writes one run's artifacts into `directory` (created on demand)."""

    def __init__(
        self,
        directory: Path,
        *,
        run_id: str,
        sample_rate: float,
        redactor: Redactor,
        keys: KeySource | None = None,
    ) -> None:
        self.directory = directory
        self.keys = keys  # set: the content artifacts are written as NAME.enc
        self.run_id = run_id
        self.sample_rate = sample_rate
        self.redactor = redactor
        self.traffic = False
        self._finished = False  # `finish` put the streamed files in place
        self._files: dict[str, AtomicFile] = {}

    def test_lines(
        self, nodeid: str, outcome: str, data: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """One test's artifact lines, redacted, from its payload with spans and content;
        None when it had neither calls nor spans. Built where the test ran: an xdist worker
        sends these few strings to the controller instead of the spans and content, so
        the controller's work per test is to append them (`add_lines`)."""
        spans = data.get("spans") or []
        calls = data.get("calls") or []
        if not spans and not calls:
            return None
        values: list[Any] = []
        if spans:  # span_dict redacted the spans; a test id can hold anything too
            values.append(export_request(self.redactor.text(nodeid), outcome, self.run_id, spans))
        values += prompts.records(data, outcome, self.sample_rate, self.run_id)
        lines = _redacted_lines(self.redactor, values)
        return {"calls": bool(calls), "traces": lines.pop(0) if spans else None, "prompts": lines}

    def add_lines(self, lines: Mapping[str, Any]) -> None:
        """Append a test's lines (from `test_lines`, here or on a worker)."""
        self.traffic = self.traffic or bool(lines.get("calls"))
        if traces := lines.get("traces"):
            self._open(TRACES).write(traces + "\n")
        for line in lines.get("prompts") or []:
            self._open(PROMPTS).write(line + "\n")

    def add_test(self, nodeid: str, outcome: str, data: Mapping[str, Any]) -> None:
        """One payload (with spans and content): append its lines."""
        if (lines := self.test_lines(nodeid, outcome, data)) is not None:
            self.add_lines(lines)

    def finish(
        self,
        tests: Mapping[str, Mapping[str, Any]],
        *,
        outside: Sequence[Mapping[str, Any]] = (),
        session_result: str | None = None,
        extra: Mapping[str, Any] | None = None,
        force: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> list[Path]:
        """Move the streamed files into place, write JUnit, summary.json, the report and the
        Perfetto trace; nothing (and no directory) when the run made no LLM calls unless
        `force`."""
        if not (self.traffic or force):
            self.discard()
            return []
        written = [self._open(name).commit() for name in (TRACES, PROMPTS)]
        self._files.clear()
        self._finished = True
        written += write_final(
            self.directory,
            tests,
            run_ids=[self.run_id],
            outside=outside,
            session_result=session_result,
            settings=settings,
            redactor=self.redactor,
            extra=extra,
        )
        written += write_views(self.directory, self.keys)
        return sorted(written)

    def reopen(self) -> None:
        """After `finish`: the streamed files take more lines, after those it put in place
        (none when it wrote nothing: an earlier run's files there are not this run's)."""
        for name in (TRACES, PROMPTS):
            stream = self._open(name)
            if self._finished:
                for line in artifact_lines(self.directory / name, self.keys):
                    stream.write(line + "\n")

    def discard(self) -> None:
        for f in self._files.values():
            f.discard()
        self._files.clear()

    def _open(self, name: str) -> AtomicFile:
        if name not in self._files:
            self._files[name] = open_artifact(self.directory / name, self.keys)
        return self._files[name]


def write_views(directory: Path, keys: KeySource | None = None) -> list[Path]:
    """`report.html` and `traces.perfetto.json` from the finished files, in one pass: the
    Perfetto trace is made from the traces.jsonl lines the report parses anyway."""
    from .html import write_report  # html reads the files back (and imports this module)

    target = open_artifact(directory / PERFETTO, keys)
    with target as stream, _no_cycle_collection():
        perfetto = PerfettoWriter(stream)
        report = write_report(directory, keys=keys, traces=perfetto.add)
        perfetto.close()
    return [report, target.path]


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Parsing every traces line allocates hundreds of thousands of short-lived, acyclic
    containers, enough to set off full collections of the whole heap (~0.1 s each for a
    200-test run) that can find nothing: reference counting frees all of it. The
    collector's previous state is restored after. The switch is process-wide: on the
    xdist controller, where this runs in the writer thread (report/hooks.py `begin`), the
    main thread's hooks run without cycle collection for that time too (~0.15 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _redacted_lines(redactor: Redactor, values: Sequence[Any]) -> list[str]:
    """One JSON line per value, redacted in one pass over them all: each pass has a fixed
    cost (a dozen regex scans) that dominated for short lines. A JSON line never holds a
    raw newline, and no rule matches across one, so the pass keeps the lines apart."""
    if not values:
        return []
    lines = redact_json(redactor, "\n".join(dumps(v) for v in values)).split("\n")
    if len(lines) != len(values):  # never expected; one line at a time is always right
        lines = [redact_json(redactor, dumps(v)) for v in values]
    return lines


def redact_json(redactor: Redactor, text: str) -> str:
    """Last line of defence on every JSON artifact: secrets (and PII, when masking) inside
    JSON strings, leaving numbers and structure alone. Idempotent."""
    return redactor.body(text.encode("utf-8"), "application/json").decode("utf-8")


def write_final(
    directory: Path,
    tests: Mapping[str, Mapping[str, Any]],
    *,
    run_ids: list[str],
    outside: Sequence[Mapping[str, Any]] = (),
    session_result: str | None = None,
    settings: Mapping[str, Any] | None = None,
    redactor: Redactor | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """`llmobs-junit.xml` and `summary.json` from the run's tests (figures, no content);
    `outside`: call records of calls made while no test ran (counted in the totals)."""
    redactor = redactor or Redactor()
    xml = junit.build(
        tests,
        run_id=",".join(run_ids),
        session_result=session_result,
        outside=outside,
        alerts=(extra or {}).get("alerts") or (),
    )
    summary = {
        "format": FORMAT,
        "version": 1,
        "run_ids": run_ids,
        "settings": dict(settings or {}),
        "totals": totals(tests.values(), outside),
        "session_result": session_result,
        "tests": dict(tests),
        "outside_tests": {"calls": list(outside)},
        **(extra or {}),  # baseline, token_spikes, alerts (report/watch.py)
    }
    text = _one_line_each(summary)
    return [
        write_atomic(directory / JUNIT, redactor.text(xml)),
        write_atomic(directory / SUMMARY, redact_json(redactor, text) + "\n"),
    ]


def _one_line_each(summary: Mapping[str, Any]) -> str:
    """summary.json with a line per top-level key and per test: readable, diffable, and
    written by json's C encoder (`indent=` would switch to its pure-Python one, which took
    a third of a second for 200 tests)."""
    lines = []
    for key, value in summary.items():
        if key == "tests" and value:
            tests = ",\n".join(f"  {_compact(k)}: {_compact(v)}" for k, v in value.items())
            lines.append(f" {_compact(key)}: {{\n{tests}\n }}")
        else:
            lines.append(f" {_compact(key)}: {_compact(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def load_summary(directory: Path) -> dict[str, Any]:
    """A directory's summary.json; ValueError saying what is wrong."""
    path = directory / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path}: not found; is {directory} an llmobs artifact directory?"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an llmobs summary (format {FORMAT!r} expected)")
    return data
