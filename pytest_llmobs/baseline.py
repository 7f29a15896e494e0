"""Baselines: each test's LLM figures from a known-good run, committed as JSON, and the
comparison of a new run with them.

The file is JSON with sorted keys, two-space indentation and one entry per test id, so a
change shows up in review as the few lines of the tests that changed. Figures (per test, over
the calls made up to the end of its call phase, like the budgets):

- ``calls``: logical calls (attempt 0); ``retries``: attempts after the first;
- ``input_tokens``, ``output_tokens``, ``total_tokens``: summed over every attempt;
- ``cost_usd``: summed; absent when a successful call has no known price;
- ``p95_latency_s``: nearest-rank p95 of the calls' effective latencies (the recorded
  figure on replay, so replayed runs compare with recorded ones);
- ``scores``: the lowest score per evaluation name (`llmobs.evaluate`), when any;
- ``prompts``: per prompt key (model + request hash, see `spikes`), the most tokens one
  call used: what token-spike detection compares single calls with.

Pure: parsing, figures, comparison, rendering and the (atomic) file; the plugin decides.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from .atomic import write_atomic
from .budgets import LLMBudgetWarning, percentile
from .budgets import fmt as budget_fmt
from .evaluations import scores
from .spikes import prompt_key, record_tokens

FORMAT = "pytest-llmobs-baseline"
VERSION = 1
FIGURES = (
    "calls",
    "retries",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "p95_latency_s",
)
DEFAULT_TOLERANCE = "calls=+0 total_tokens=+15% cost_usd=+10% p95_latency_s=+25%+0.05"


class BaselineError(ValueError):
    """A bad baseline file or tolerance; the message says where and what to do."""


class LLMRegressionWarning(LLMBudgetWarning):
    """A baseline regression while ``--llm-budget-mode=warn``."""


# -- tolerances --------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    """How far above the baseline a figure may go: a share (0.15 = +15%), an amount in the
    figure's unit, or both (+25%+0.05: a quarter more, plus 50 ms of slack for noise)."""

    relative: float = 0.0
    absolute: float = 0.0

    def limit(self, baseline: float) -> float:
        return baseline * (1 + self.relative) + self.absolute

    def describe(self) -> str:
        parts = [f"+{self.relative * 100:g}%"] if self.relative else []
        if self.absolute or not parts:
            parts.append(f"+{self.absolute:g}")
        return "".join(parts)


def parse_tolerances(text: str, base: str = DEFAULT_TOLERANCE) -> dict[str, Tolerance]:
    """``"total_tokens=+15% cost_usd=+10% calls=+0 retries=off"`` over the defaults:
    keys given replace the default's, ``off`` drops one."""
    out: dict[str, Tolerance] = {}
    for source in (base, text):
        for item in source.replace(",", " ").split():
            name, sep, raw = item.partition("=")
            if name not in FIGURES:
                close = difflib.get_close_matches(name, FIGURES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise BaselineError(
                    f"llm_baseline_tolerance: unknown figure {name!r}{hint}; valid: "
                    f"{', '.join(FIGURES)}"
                )
            if not sep or not raw:
                raise BaselineError(
                    f"llm_baseline_tolerance: {item!r} is not FIGURE=+N%, FIGURE=+N or "
                    "FIGURE=off (e.g. total_tokens=+15% p95_latency_s=+25%+0.05)"
                )
            if raw.lower() == "off":
                out.pop(name, None)
                continue
            out[name] = _tolerance(name, raw)
    return out


_TOLERANCE = re.compile(r"^\+?(?:(\d+(?:\.\d*)?)%)?(?:\+?(\d+(?:\.\d*)?))?$")


def _tolerance(name: str, raw: str) -> Tolerance:
    match = _TOLERANCE.match(raw)
    if match is None or (match.group(1) is None and match.group(2) is None):
        raise BaselineError(
            f"llm_baseline_tolerance: {name}={raw!r} must be +N% (share of the baseline), "
            "+N (in the figure's unit) or both (+25%+0.05), N >= 0"
        )
    relative, absolute = match.groups()
    return Tolerance(float(relative or 0) / 100, float(absolute or 0))


# -- figures -------------------------------------------------------------------------------
def figures(
    records: Sequence[Mapping[str, Any]], evaluations: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A test's baseline figures from its call records (`summary.call_record` + cost) and
    its evaluation results (`scores`: the lowest score per name; kept for `llmobs diff`,
    not compared with a tolerance)."""
    costs = [r.get("cost_usd") for r in records]
    unpriced = any(
        c is None and record_tokens(r) is not None for c, r in zip(costs, records, strict=True)
    )
    latencies = [float(r["duration_s"]) for r in records if r.get("duration_s") is not None]
    prompts: dict[str, int] = {}
    for record in records:
        key, tokens = prompt_key(record), record_tokens(record)
        if key is not None and tokens is not None:
            prompts[key] = max(tokens, prompts.get(key, 0))
    out: dict[str, Any] = {
        "calls": sum(1 for r in records if not r.get("attempt")),
        "retries": sum(1 for r in records if r.get("attempt")),
        "input_tokens": sum(_usage(r, "input_tokens") for r in records),
        "output_tokens": sum(_usage(r, "output_tokens") for r in records),
        "total_tokens": sum(record_tokens(r) or 0 for r in records),
        "cost_usd": None if unpriced else round(sum(c or 0.0 for c in costs), 9),
        "p95_latency_s": _round(percentile(latencies, 95), 4),
        "prompts": prompts,
        "scores": scores(evaluations) or None,
    }
    return {k: v for k, v in out.items() if v is not None}


def _usage(record: Mapping[str, Any], name: str) -> int:
    return int((record.get("usage") or {}).get(name) or 0)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- comparing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Regression:
    nodeid: str
    figure: str
    baseline: float
    actual: float
    tolerance: Tolerance

    @property
    def limit(self) -> float:
        return self.tolerance.limit(self.baseline)

    @property
    def change(self) -> str:
        if self.baseline:
            return f"{(self.actual - self.baseline) / self.baseline * 100:+.1f}%"
        return "new"

    @property
    def message(self) -> str:
        return (
            f"{self.figure}: {fmt(self.figure, self.actual)} vs baseline "
            f"{fmt(self.figure, self.baseline)} ({self.change}; allowed "
            f"{self.tolerance.describe()})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "figure": self.figure,
            "baseline": self.baseline,
            "actual": self.actual,
            "limit": round(self.limit, 9),
            "tolerance": self.tolerance.describe(),
            "change": self.change,
        }


def compare(
    nodeid: str,
    now: Mapping[str, Any],
    entry: Mapping[str, Any],
    tolerances: Mapping[str, Tolerance],
) -> list[Regression]:
    """The figures of `now` above their baseline `entry` by more than allowed (unknown on
    either side is not compared)."""
    out = []
    for name in FIGURES:
        tolerance = tolerances.get(name)
        base, actual = entry.get(name), now.get(name)
        if tolerance is None or not _number(base) or not _number(actual):
            continue
        if actual > tolerance.limit(base) + 1e-12:
            out.append(Regression(nodeid, name, float(base), float(actual), tolerance))
    return out


def improvements(now: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    """Tokens or cost at least 10% below the baseline (worth an update to lock them in);
    latency is left out, it moves with the machine."""
    return [
        name
        for name in ("total_tokens", "cost_usd")
        if _number(entry.get(name)) and _number(now.get(name)) and now[name] < entry[name] * 0.9
    ]


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(figure: str, value: float) -> str:
    if figure == "cost_usd":
        return budget_fmt("max_cost_usd", value)
    return budget_fmt(figure, value) if figure.endswith("_s") else f"{value:g}"


def render(nodeid: str, regressions: Sequence[Regression], path: str) -> str:
    lines = [f"LLM baseline regression for {nodeid} (baseline {path}):"]
    lines += [f"  {r.message}" for r in regressions]
    lines.append(
        "If the new figures are expected, accept them with --llm-baseline-update and commit "
        "the baseline file; widen llm_baseline_tolerance if the figure is noisy."
    )
    return "\n".join(lines)


# -- the file ------------------------------------------------------------------------------
@dataclass
class Baseline:
    path: Path
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    exists: bool = False

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> Baseline:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if missing_ok:
                return cls(path)
            raise BaselineError(
                f"baseline {path} not found; write it from a good run with "
                "--llm-baseline-update and commit it"
            ) from None
        except OSError as exc:
            raise BaselineError(f"baseline {path}: cannot be read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(
                f"baseline {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}); fix it or restore it from version control (it is never "
                "overwritten while it does not parse)"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BaselineError(f"baseline {path}: not a pytest-llmobs baseline ({FORMAT!r})")
        if data.get("version") != VERSION:
            raise BaselineError(
                f"baseline {path}: version {data.get('version')!r}, this pytest-llmobs "
                f"reads version {VERSION}"
            )
        tests = data.get("tests")
        if not isinstance(tests, dict) or not all(isinstance(v, dict) for v in tests.values()):
            raise BaselineError(f'baseline {path}: "tests" must map test ids to figures')
        return cls(path, {str(k): dict(v) for k, v in tests.items()}, exists=True)

    def dumps(self) -> str:
        data = {"format": FORMAT, "version": VERSION, "tests": self.tests}
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def merged(
        self,
        runs: Iterable[tuple[str, Mapping[str, Any]]],
        tolerances: Mapping[str, Tolerance] | None = None,
    ) -> tuple[Baseline, Update]:
        """This baseline with the given tests' figures replaced (others kept as they are).

        Latency moves with the machine: a p95 within its tolerance of the old one keeps the
        old value, so updating twice in a row does not churn the file."""
        tests = {k: dict(v) for k, v in self.tests.items()}
        update = Update()
        tolerance = (tolerances or {}).get("p95_latency_s")
        for nodeid, now in runs:
            old = tests.get(nodeid)
            now = dict(now)
            if old is not None and tolerance is not None:
                was, new = old.get("p95_latency_s"), now.get("p95_latency_s")
                if _number(was) and _number(new) and abs(new - was) <= tolerance.limit(was) - was:
                    now["p95_latency_s"] = was
            if old is None:
                update.added.append(nodeid)
            elif dict(old) != dict(now):
                update.changed.append(nodeid)
            else:
                update.unchanged += 1
            tests[nodeid] = dict(now)
        update.kept = len(tests) - len(update.added) - len(update.changed) - update.unchanged
        return Baseline(self.path, dict(sorted(tests.items())), exists=True), update

    def save(self) -> Path:
        return write_atomic(self.path, self.dumps())


@dataclass
class Update:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    kept: int = 0  # entries of tests that did not run or did not pass

    def describe(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{self.kept} kept (not run, or not passed)"
        )
