"""`llm_budget` limits and the checks over a test's (or the whole run's) LLM calls.

Pure: parse marker arguments into a `Budget`, check calls against it, render the result.
Nothing here fails a test; the plugin decides (fail, warn or off).

Figures (each check reads exactly one):

- latency of a call: `LLMCall.effective_duration_s` (request sent → last byte; the recorded
  figure on instant replay, the measured one live and on realtime replay);
- p50 / p95: nearest-rank percentile over the latencies of the counted calls
  (the smallest latency with at least p% of the calls at or below it);
- TTFT: `LLMCall.effective_time_to_first_chunk_s`, streams only;
- output tokens/s: `output_tokens / (latency - TTFT)`, streams only (calls without usage or
  with a single chunk have no rate and are skipped);
- calls: logical calls (attempt 0); retries: HTTP attempts with attempt > 0;
- tokens and cost: summed over every attempt. A successful call that reported no usage, or
  whose model has no known price, makes the token / cost figure unknown: that is reported as
  a violation, never counted as zero.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from .calls import LLMCall, Usage
from .pricing import Cost, Pricing
from .tracing import span_name
from .truncation import allowed_reason, check_truncation
from .words import count


class LLMBudgetWarning(pytest.PytestWarning):
    """An LLM budget / truncation check failed while ``--llm-budget-mode=warn``."""


class LLMUncheckedWarning(LLMBudgetWarning):
    """An ``llm_budget`` limit could not be checked: the figure is unknown (a stream replayed
    from a cassette without timing has no time to first chunk). A warning, so that suites
    replaying vcrpy cassettes keep passing; ``-W error::pytest_llmobs.LLMUncheckedWarning``
    (or ``filterwarnings = error``) fails the test instead."""


class BudgetError(ValueError):
    """Bad `llm_budget` / `llm_allow_truncation` / `llm_session_budget` arguments."""


# -- keys ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetKey:
    name: str
    kind: str  # int | number | bool | glob
    help: str


BUDGET_KEYS: dict[str, BudgetKey] = {
    k.name: k
    for k in (
        BudgetKey("max_calls", "int", "logical LLM calls (retries not counted)"),
        BudgetKey("max_input_tokens", "int", "input tokens, summed (cached included)"),
        BudgetKey("max_output_tokens", "int", "output tokens, summed (reasoning included)"),
        BudgetKey("max_total_tokens", "int", "input + output tokens, summed"),
        BudgetKey("max_cost_usd", "number", "cost in USD, summed (genai-prices / llm_prices)"),
        BudgetKey("max_latency_s", "number", "latency of any single call, seconds"),
        BudgetKey("max_p50_latency_s", "number", "median call latency (nearest rank), seconds"),
        BudgetKey("max_p95_latency_s", "number", "95th percentile call latency, seconds"),
        BudgetKey("max_ttft_s", "number", "time to first chunk of any stream, seconds"),
        BudgetKey("min_tokens_per_s", "number", "output tokens per second of every stream"),
        BudgetKey("max_retries", "int", "HTTP attempts after the first (attempt > 0)"),
        BudgetKey("allow_truncation", "bool", "let truncated / partial answers pass"),
        BudgetKey("model", "glob", "only calls whose model matches (glob or list of globs)"),
        BudgetKey("min_score", "scores", "lowest evaluation score per name (llmobs.evaluate)"),
    )
}
SESSION_KEYS = tuple(k for k in BUDGET_KEYS if k not in ("allow_truncation", "min_score"))

MARKERS = (
    "llm_budget(**limits): fail the test when its LLM calls exceed these limits; on a test, "
    "class or module (nearest wins per key). Keys: " + ", ".join(BUDGET_KEYS) + ".",
    "llm_allow_truncation(*reasons): let truncated / partial LLM answers pass (all, or only "
    "the given reasons or kinds: length, max_tokens, limit, stream, json, ...).",
)


@dataclass(frozen=True)
class Budget:
    """Limits; `None` = not set. `origins` says where each set key came from."""

    max_calls: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None
    max_latency_s: float | None = None
    max_p50_latency_s: float | None = None
    max_p95_latency_s: float | None = None
    max_ttft_s: float | None = None
    min_tokens_per_s: float | None = None
    max_retries: int | None = None
    allow_truncation: bool | None = None
    model: tuple[str, ...] | None = None
    min_score: tuple[tuple[str, float], ...] | None = None  # (evaluation name, limit)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def items(self) -> dict[str, Any]:
        """The keys that are set."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "origins" and getattr(self, f.name) is not None
        }

    def under(self, nearer: Budget) -> Budget:
        """This budget with the keys `nearer` sets taken from it (nearest wins, keys merge)."""
        set_ = nearer.items()
        return replace(self, **set_, origins={**self.origins, **nearer.origins})

    def counts(self, call: LLMCall) -> bool:
        """Whether `call` counts against this budget (`model` globs on either model name)."""
        if not self.model:
            return True
        names = [n for n in (call.response_model, call.request_model) if n]
        return any(fnmatchcase(n, g) for n in names for g in self.model)


def parse_budget(
    kwargs: Mapping[str, Any],
    where: str = "llm_budget",
    origin: str = "test",
    allowed: Sequence[str] = tuple(BUDGET_KEYS),
) -> Budget:
    """A `Budget` from marker keyword arguments; `BudgetError` names the valid keys."""
    values: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise BudgetError(
                f"{where}: unknown key {name!r}{hint}; valid keys: {', '.join(allowed)}"
            )
        values[name] = _check_type(BUDGET_KEYS[name], value, where)
    return Budget(**values, origins=dict.fromkeys(values, origin))


def _check_type(key: BudgetKey, value: Any, where: str) -> Any:
    def bad(expected: str) -> BudgetError:
        return BudgetError(f"{where}: {key.name}={value!r} must be {expected}")

    if key.kind == "bool":
        if not isinstance(value, bool):
            raise bad("True or False")
        return value
    if key.kind == "glob":
        globs = (value,) if isinstance(value, str) else value
        if (
            not isinstance(globs, list | tuple)
            or not globs
            or not all(isinstance(g, str) and g for g in globs)
        ):
            raise bad('a model glob or a list of them, e.g. "gpt-4o*"')
        return tuple(globs)
    if key.kind == "scores":
        if (
            not isinstance(value, Mapping)
            or not value
            or not all(isinstance(k, str) and k and _finite(v) for k, v in value.items())
        ):
            raise bad('a dict of evaluation name to lowest score, e.g. {"faithfulness": 0.7}')
        return tuple((k, float(v)) for k, v in value.items())
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if key.kind == "int":
        if not is_number or not float(value).is_integer() or value < 0:
            raise bad("a whole number >= 0")
        return int(value)
    if not is_number or not math.isfinite(value) or value < 0:
        raise bad("a number >= 0")
    return float(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_session_budget(text: str) -> Budget:
    """``"max_cost_usd=2.50 max_total_tokens=200000"`` (spaces, commas or newlines)."""
    kwargs: dict[str, Any] = {}
    for item in text.replace(",", " ").split():
        name, sep, raw = item.partition("=")
        if not sep or not name or not raw:
            raise BudgetError(
                f"llm_session_budget: {item!r} is not KEY=VALUE "
                "(e.g. max_cost_usd=2.50 max_total_tokens=200000)"
            )
        kwargs[name.strip()] = _scalar(raw.strip())
    return parse_budget(kwargs, "llm_session_budget", "session", SESSION_KEYS)


def _scalar(raw: str) -> Any:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(raw.lower(), raw)


# -- markers → what to check for one test ------------------------------------------------
@dataclass(frozen=True)
class MarkerArgs:
    """One marker as the plugin found it: nearest first; `scope` is test | class | module."""

    name: str
    scope: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestChecks:
    """What one test is checked against: its merged budget and the truncation allowance."""

    budget: Budget = field(default_factory=Budget)
    allow_truncation: bool = False
    allowed_truncations: tuple[str, ...] = ()

    __test__ = False  # not a pytest test class


def resolve(markers: Iterable[MarkerArgs], where: str = "") -> TestChecks:
    """Merge `llm_budget` markers (nearest wins per key) and settle truncation: the nearest
    of `llm_allow_truncation` and `llm_budget(allow_truncation=…)` decides."""
    budget = Budget()
    allow: bool | None = None
    reasons: tuple[str, ...] = ()
    prefix = f"{where}: " if where else ""
    for marker in reversed(list(markers)):  # farthest first, so nearer ones override
        if marker.name == "llm_budget":
            if marker.args:
                raise BudgetError(
                    f"{prefix}llm_budget takes keyword arguments only, e.g. "
                    f"llm_budget(max_calls=3); valid keys: {', '.join(BUDGET_KEYS)}"
                )
            nearer = parse_budget(marker.kwargs, f"{prefix}llm_budget", marker.scope)
            budget = budget.under(nearer)
            if nearer.allow_truncation is not None:
                allow, reasons = nearer.allow_truncation, ()
        elif marker.name == "llm_allow_truncation":
            if marker.kwargs or not all(
                isinstance(a, str) and allowed_reason(a) for a in marker.args
            ):
                raise BudgetError(
                    f"{prefix}llm_allow_truncation takes truncation reasons or kinds only, e.g. "
                    'llm_allow_truncation("length", "stream"); got '
                    f"{', '.join(map(repr, (*marker.args, *marker.kwargs)))}"
                )
            allow, reasons = (False, marker.args) if marker.args else (True, ())
    return TestChecks(budget, bool(allow), tuple(reasons))


# -- figures -----------------------------------------------------------------------------
def latency_s(call: LLMCall) -> float | None:
    return call.effective_duration_s


def ttft_s(call: LLMCall) -> float | None:
    return call.effective_time_to_first_chunk_s if call.stream else None


def tokens_per_s(call: LLMCall) -> float | None:
    """Output tokens per second of a stream after its first chunk."""
    duration, ttft, output = latency_s(call), ttft_s(call), call.usage.output_tokens
    if duration is None or ttft is None or output is None or duration - ttft <= 0:
        return None
    return output / (duration - ttft)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _errored(call: LLMCall) -> bool:
    """An error response, or none at all: no usage to expect."""
    return (call.status_code is not None and call.status_code >= 400) or call.no_response


# -- checks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    """One limit not met. `actual` None = unknown; `calls` are the calls responsible."""

    key: str
    limit: Any
    actual: Any
    calls: tuple[LLMCall, ...] = ()
    origin: str = ""
    detail: str = ""
    text: str = ""  # what happened in words, when limit / actual say it badly (truncation)

    @property
    def summary(self) -> str:
        if self.text:
            return f"{self.key}: {self.text}"
        return f"{self.key}: limit {fmt(self.key, self.limit)}, actual {fmt(self.key, self.actual)}"


def check_budget(
    calls: Sequence[LLMCall], budget: Budget, pricing: Pricing | None = None
) -> list[Violation]:
    """Every limit of `budget` the calls do not meet, in key order."""
    counted = [c for c in calls if budget.counts(c)]
    out: list[Violation] = []
    for key, limit in budget.items().items():
        check = _CHECKS.get(key)
        if check is None:
            continue
        found = check(counted, limit, pricing or _PRICING)
        if found is not None:
            actual, responsible, detail = found
            out.append(
                Violation(
                    key, limit, actual, tuple(responsible), budget.origins.get(key, ""), detail
                )
            )
    return out


def check_test(
    calls: Sequence[LLMCall],
    checks: TestChecks,
    pricing: Pricing | None = None,
    evaluations: Sequence[Mapping[str, Any]] = (),
) -> list[Violation]:
    """Budget violations, then one violation per truncated call (unless allowed).
    `evaluations`: the test's evaluation results as dicts (`Evaluation.to_dict`)."""
    out = check_budget(calls, checks.budget, pricing)
    out += _min_score(calls, checks.budget, evaluations)
    for found in check_truncation(calls, checks.allow_truncation, checks.allowed_truncations):
        out.append(
            Violation(
                "truncation",
                "not allowed",
                found.kind.reason,
                (found.call,),
                "default",
                found.message,
                found.kind.plain,
            )
        )
    return out


def unchecked(calls: Sequence[LLMCall], budget: Budget) -> list[str]:
    """The limits of `budget` that some counted calls could not be checked against, one
    sentence each naming the calls (numbered as in `llmobs.calls`) and why: their figure is
    unknown, which is never counted as zero (and never as a pass)."""
    keys = [k for k in ("max_ttft_s", "min_tokens_per_s") if getattr(budget, k) is not None]
    if not keys:
        return []
    # A stream replayed without recorded timing has no TTFT, hence no rate either.
    untimed = [
        i
        for i, c in enumerate(calls, 1)
        if budget.counts(c)
        and c.stream
        and c.source == "replay"
        and c.recorded_time_to_first_chunk_s is None
        and not _errored(c)
    ]
    if not untimed:
        return []
    refs = " ".join(f"#{i}" for i in untimed)
    return [
        f"{key}: could not be checked for {'call' if len(untimed) == 1 else 'calls'} {refs}: "
        "replayed from a cassette without "
        "timing (vcrpy records none), so the time to first chunk is unknown; re-record the "
        "cassette with pytest-llmobs to check it"
        for key in keys
    ]


def _min_score(
    calls: Sequence[LLMCall], budget: Budget, evaluations: Sequence[Mapping[str, Any]]
) -> list[Violation]:
    """One violation per `min_score` name whose lowest score is below its limit, or that
    no evaluation recorded (a quality gate with nothing measured must not pass)."""
    from .evaluations import below

    out = []
    for name, limit, actual, low in below(evaluations, dict(budget.min_score or ())):
        detail = (
            f"no evaluation named {name!r} was recorded (llmobs.evaluate({name!r}, score=...))"
            if actual is None
            else f"{name} scored below {limit:g}"
        )
        out.append(
            Violation(
                "min_score",
                f"{name} >= {limit:g}",
                "missing" if actual is None else f"{name} = {actual:g}",
                tuple(calls[i] for i in low if 0 <= i < len(calls)),
                budget.origins.get("min_score", ""),
                detail,
            )
        )
    return out


_Found = tuple[Any, list[LLMCall], str] | None
_PRICING = Pricing()


def _max_calls(calls: list[LLMCall], limit: Any, _: Pricing) -> _Found:
    logical = [c for c in calls if c.attempt == 0]
    if len(logical) <= limit:
        return None
    retries = len(calls) - len(logical)
    return len(logical), calls, f"{count(retries, 'retry')} not counted" if retries else ""


def _max_retries(calls: list[LLMCall], limit: Any, _: Pricing) -> _Found:
    retries = [c for c in calls if c.attempt > 0]
    return None if len(retries) <= limit else (len(retries), retries, "")


def _tokens(name: str, get: Callable[[Usage], int | None]) -> Callable[..., _Found]:
    def check(calls: list[LLMCall], limit: Any, _: Pricing) -> _Found:
        known = [c for c in calls if get(c.usage) is not None]
        unknown = [
            c
            for c in calls
            if get(c.usage) is None
            and not _errored(c)
            and not (name == "output" and c.operation == "embeddings")
        ]
        actual = sum(get(c.usage) or 0 for c in known)
        if actual <= limit and not unknown:
            return None
        biggest = sorted(known, key=lambda c: -(get(c.usage) or 0))
        if unknown:
            detail = (
                f"{count(len(unknown), 'call')} reported no {name} token usage, so the total "
                'is unknown (an OpenAI stream needs stream_options={"include_usage": True})'
            )
            return (None if actual <= limit else actual), unknown + biggest, detail
        return actual, biggest, ""

    return check


def _total(usage: Usage) -> int | None:
    if usage.input_tokens is None and usage.output_tokens is None and usage.total_tokens is None:
        return None
    return usage.total


def _max_cost(calls: list[LLMCall], limit: Any, pricing: Pricing) -> _Found:
    costs = [(c, pricing.cost(c)) for c in calls]
    actual = sum(cost.usd or 0.0 for _, cost in costs)
    unpriced = [(c, cost.problem) for c, cost in costs if cost.usd is None]
    if actual <= limit and not unpriced:
        return None
    biggest = [c for c, cost in sorted(costs, key=lambda x: -(x[1].usd or 0.0)) if cost.usd]
    if unpriced:
        detail = f"{count(len(unpriced), 'call')} without a known cost: " + unpriced_text(
            (c, p or "unknown") for c, p in unpriced
        )
        return (None if actual <= limit else actual), [c for c, _ in unpriced] + biggest, detail
    return actual, biggest, ""


def _each(
    figure: Callable[[LLMCall], float | None], minimum: bool = False
) -> Callable[..., _Found]:
    """Every call's figure against the limit (a maximum, or with `minimum` a minimum)."""

    def check(calls: list[LLMCall], limit: Any, _: Pricing) -> _Found:
        measured = [(c, v) for c in calls if (v := figure(c)) is not None]
        bad = [(c, v) for c, v in measured if (v < limit if minimum else v > limit)]
        if not bad:
            return None
        worst = sorted(bad, key=lambda x: x[1], reverse=not minimum)
        return worst[0][1], [c for c, _ in worst], ""

    return check


def _pct(p: float) -> Callable[..., _Found]:
    def check(calls: list[LLMCall], limit: Any, _: Pricing) -> _Found:
        measured = [(c, v) for c in calls if (v := latency_s(c)) is not None]
        actual = percentile([v for _, v in measured], p)
        if actual is None or actual <= limit:
            return None
        slow = sorted(((c, v) for c, v in measured if v > limit), key=lambda x: -x[1])
        return actual, [c for c, _ in slow], f"over {count(len(measured), 'call')}"

    return check


_CHECKS: dict[str, Callable[[list[LLMCall], Any, Pricing], _Found]] = {
    "max_calls": _max_calls,
    "max_input_tokens": _tokens("input", lambda u: u.input_tokens),
    "max_output_tokens": _tokens("output", lambda u: u.output_tokens),
    "max_total_tokens": _tokens("total", _total),
    "max_cost_usd": _max_cost,
    "max_latency_s": _each(latency_s),
    "max_p50_latency_s": _pct(50),
    "max_p95_latency_s": _pct(95),
    "max_ttft_s": _each(ttft_s),
    "min_tokens_per_s": _each(tokens_per_s, minimum=True),
    "max_retries": _max_retries,
}


# -- rendering ---------------------------------------------------------------------------
def fmt(key: str, value: Any) -> str:
    """A limit or actual figure, with its unit."""
    if value is None:
        return "unknown"
    if isinstance(value, str):
        return value
    if key == "max_cost_usd":
        return _usd(float(value))
    if key == "min_tokens_per_s":
        return f"{value:.1f} tok/s"
    if key.endswith("_s"):
        return f"{value:.3f} s"
    return str(value)


def _usd(value: float) -> str:
    """$2.50, $0.0000525: cents for dollars, every significant digit below a dollar."""
    if value >= 1 or value == 0:
        return f"${value:.2f}"
    return "$" + (f"{value:.8f}".rstrip("0") if value >= 1e-8 else "0.00000001-")


def describe_call(call: LLMCall, pricing: Pricing | None = None) -> str:
    """Span name, model, tokens, latency (and TTFT, attempt, cost) of one call."""
    usage = call.usage
    parts = [
        f"{span_name(call)}",
        f"model {call.model or '?'}",
        f"in {_n(usage.input_tokens)} / out {_n(usage.output_tokens)} tok",
        f"latency {fmt('_s', latency_s(call))}",
    ]
    if (ttft := ttft_s(call)) is not None:
        parts.append(f"ttft {fmt('_s', ttft)}")
    if call.attempt:
        parts.append(f"attempt {call.attempt}")
    if call.status_code is not None and call.status_code >= 400:
        parts.append(f"HTTP {call.status_code}")
    elif call.no_response:
        parts.append(f"no response ({call.error_type or call.error})")
    if pricing is not None:
        cost = pricing.cost(call)
        parts.append(fmt("max_cost_usd", cost.usd) if cost.usd is not None else "cost unknown")
    if call.source != "live":
        parts.append(call.source)
    return "  ".join(parts)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def render(
    violations: Sequence[Violation],
    calls: Sequence[LLMCall],
    *,
    title: str,
    pricing: Pricing | None = None,
    max_listed: int = 8,
) -> str:
    """The failure text: a table (key, limit, actual, set on, calls), the details, then the
    calls responsible, numbered as in `llmobs.calls` (#1 = calls[0])."""
    index = {id(c): i for i, c in enumerate(calls, 1)}
    rows = [("key", "limit", "actual", "set on", "calls responsible")]
    referenced: dict[int, LLMCall] = {}
    cuts: list[str] = []
    for v in violations:
        refs = [c for c in v.calls if id(c) in index]
        # the most responsible calls (refs come worst first), shown in call order
        shown = sorted(refs[:max_listed], key=lambda c: index[id(c)])
        more = f" +{len(refs) - len(shown)} more" if len(refs) > len(shown) else ""
        for c in shown:
            referenced[index[id(c)]] = c
        numbers = " ".join(f"#{index[id(c)]}" for c in shown) + more or "-"
        if v.key == "truncation":  # a sentence, not a limit and a figure
            cuts += [f"  truncation of {numbers}: {v.text or fmt(v.key, v.actual)}"]
            cuts += [f"    {v.detail}"] if v.detail else []
            continue
        rows.append((v.key, fmt(v.key, v.limit), fmt(v.key, v.actual), v.origin or "-", numbers))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [title]
    for row in rows if len(rows) > 1 else ():
        lines.append(
            "  "
            + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
            + "  "
            + row[4]
        )
    for v in violations:
        if v.detail and v.key != "truncation":
            lines.append(f"  - {v.key}: {v.detail}")
    lines += cuts
    if referenced:
        lines.append("calls responsible:")
        for i in sorted(referenced):
            lines.append(f"  #{i}  {describe_call(referenced[i], pricing)}")
    if any(v.key == "truncation" for v in violations):
        lines.append(
            "If a partial answer is expected: @pytest.mark.llm_allow_truncation (or with "
            'reasons, e.g. ("length")) or llm_budget(allow_truncation=True).'
        )
    return "\n".join(lines)


def render_session(
    violations: Sequence[Violation], *, title: str, pricing: Pricing | None = None
) -> str:
    """Like `render`, but the run's calls are named by the test that made them."""
    lines = [title]
    for v in violations:
        lines.append(f"  {v.summary}" + (f" ({v.detail})" if v.detail else ""))
        by_test: dict[str, int] = {}
        for c in v.calls:
            test = str(c.attributes.get("llmobs.test", "?"))
            by_test[test] = by_test.get(test, 0) + 1
        ranked = sorted(by_test.items(), key=lambda x: -x[1])
        for test, n in ranked[:5]:
            lines.append(f"    {test} ({count(n, 'call')})")
        if len(by_test) > 5:
            lines.append(f"    … {count(len(by_test) - 5, 'more test')}")
    return "\n".join(lines)


# -- the run's calls, from test reports (works under xdist) ------------------------------
def call_from_record(record: Mapping[str, Any], nodeid: str = "") -> LLMCall:
    """Rebuild an `LLMCall` (enough for the checks) from `summary.call_record` data.

    The record carries effective figures, so the rebuilt call is "live" with them as
    measured ones."""
    usage = record.get("usage") or {}
    return LLMCall(
        provider=str(record.get("provider") or "?"),
        operation=str(record.get("operation") or "?"),
        url="",
        request_model=record.get("model"),
        stream=bool(record.get("stream")),
        usage=Usage.from_dict(usage),
        status_code=record.get("status_code"),
        error_type=record.get("error_type"),
        attempt=int(record.get("attempt") or 0),
        duration_s=record.get("duration_s"),
        time_to_first_chunk_s=record.get("time_to_first_chunk_s"),
        truncated=bool(record.get("truncated")),
        truncation_reason=record.get("truncation_reason"),
        attributes={"llmobs.test": nodeid},
    )


# -- what the plugin holds for the session -------------------------------------------------
@dataclass(frozen=True)
class BudgetConfig:
    """The session's mode, prices and session budget (from `Settings`)."""

    mode: str = "fail"
    pricing: Pricing = field(default_factory=Pricing)
    session: Budget | None = None

    @classmethod
    def from_settings(cls, mode: str, session: str, prices: Path | None) -> BudgetConfig:
        """Raises `BudgetError` / `PricesFileError` (both ValueError) with a clear message."""
        return cls(
            mode=mode,
            pricing=Pricing.from_file(prices),
            session=parse_session_budget(session) if session.strip() else None,
        )

    def check_test(
        self,
        nodeid: str,
        calls: Sequence[LLMCall],
        checks: TestChecks,
        evaluations: Sequence[Mapping[str, Any]] = (),
    ) -> str | None:
        """The failure / warning text for one test, or None when it is within its limits."""
        if self.mode == "off":
            return None
        calls = list(calls)
        violations = check_test(calls, checks, self.pricing, evaluations)
        if not violations:
            return None
        title = f"LLM checks failed for {nodeid}: {count(len(violations), 'violation')}"
        return render(violations, calls, title=title, pricing=self.pricing)

    def unchecked_test(
        self, nodeid: str, calls: Sequence[LLMCall], checks: TestChecks
    ) -> str | None:
        """The warning text for limits of one test that could not be checked, or None."""
        if self.mode == "off":
            return None
        notes = unchecked(list(calls), checks.budget)
        if not notes:
            return None
        lines = [f"LLM budget not fully checked for {nodeid}: {count(len(notes), 'limit')} unknown"]
        return "\n".join(lines + [f"  - {note}" for note in notes])

    def check_session(self, tests: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
        """The session budget against every test's call records (nodeid → records)."""
        if self.mode == "off" or self.session is None:
            return None
        calls = self._calls(tests)
        violations = check_budget(calls, self.session, self.pricing)
        if not violations:
            return None
        title = (
            f"llm_session_budget exceeded: {count(len(violations), 'violation')} over "
            f"{count(len(calls), 'call')}"
        )
        return render_session(violations, title=title)

    def cost_line(self, tests: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
        """'llmobs cost: $… ' for the terminal summary, naming calls without a known price."""
        calls = self._calls(tests)
        if not calls:
            return None
        total = self.pricing.total(calls)
        priced = len(calls) - len(total.unpriced)
        share = f"{priced} of " if total.unpriced else ""
        line = (
            f"llmobs cost: {fmt('max_cost_usd', total.usd)} for {share}{count(len(calls), 'call')}"
        )
        if total.unpriced:
            line += f"; unknown for {len(total.unpriced)}: " + unpriced_text(total.unpriced)
        return line

    def _calls(self, tests: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[LLMCall]:
        """The call records as calls, each with the cost it was given where it ran."""
        calls = []
        for nodeid, records in tests.items():
            for record in records:
                call = call_from_record(record, nodeid)
                if "cost_usd" in record:
                    cost = Cost(record["cost_usd"], "recorded", record.get("cost_problem"))
                    self.pricing.remember(call, cost)
                calls.append(call)
        return calls


def unpriced_text(unpriced: Iterable[tuple[LLMCall, str]]) -> str:
    """'no known price for x (openai) (2 calls); …' and what to do about it."""
    counts: dict[str, int] = {}
    for _, problem in unpriced:
        counts[problem] = counts.get(problem, 0) + 1
    ranked = sorted(counts.items(), key=lambda x: -x[1])
    text = "; ".join(p + (f" ({count(n, 'call')})" if n > 1 else "") for p, n in ranked[:5])
    if len(ranked) > 5:
        text += f"; … {len(ranked) - 5} more"
    if any(p.startswith("no known price") for p in counts):
        text += " (add their prices to an llm_prices TOML file)"
    return text
