"""Alert rules over a finished run: ``METRIC OP THRESHOLD [scope=…] [severity=…] …``.

A rule comes from an ini line (``llm_alert = error_rate > 0.05 scope=session
severity=critical``) or a TOML file (``[[alert]]`` tables, see `load_rules_file`). It is
evaluated once, at the end of the run, on the controller, over every test's call records:

- ``scope=session`` (default): one value for the whole run;
- ``scope=model``: one value per model (the answering model, else the requested one);
- ``scope=test``: one value per test that made LLM calls (or ran chaos).

Each (rule, scope value) whose metric meets the condition is a firing `Alert`. Pure: the
sinks (terminal, JUnit, webhook, Pushgateway) live in `report.sinks`.
"""

from __future__ import annotations

import difflib
import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .budgets import fmt, percentile

SCOPES = ("session", "model", "test")
SEVERITIES = ("info", "warning", "critical")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
CHAOS_VERDICTS = ("fail", "pass", "no-faults")
_LINE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)(.*)$")
_RULE_KEYS = ("metric", "op", "threshold", "scope", "severity", "name", "model", "when")

Records = Sequence[Mapping[str, Any]]


class AlertRuleError(ValueError):
    """A bad alert rule; the message names where it came from and the valid values."""


def errored(record: Mapping[str, Any]) -> bool:
    """A failed attempt the provider or the network caused: injected chaos faults are
    counted by `injected_faults`, not here (a chaos suite would always alert)."""
    if record.get("source") == "chaos":
        return False
    return (record.get("status_code") or 0) >= 400 or bool(record.get("error_type"))


def truncated(record: Mapping[str, Any]) -> bool:
    return bool(record.get("truncated")) and record.get("source") != "chaos"


def _total(record: Mapping[str, Any]) -> int:
    usage = record.get("usage") or {}
    if usage.get("total_tokens") is not None:
        return int(usage["total_tokens"])
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


def _error_rate(records: Records, _: Sequence[Mapping[str, Any]]) -> float | None:
    return sum(1 for r in records if errored(r)) / len(records) if records else None


def _p95(name: str, streams_only: bool = False) -> Callable[..., float | None]:
    def metric(records: Records, _: Sequence[Mapping[str, Any]]) -> float | None:
        values = [
            float(r[name])
            for r in records
            if r.get(name) is not None and (r.get("stream") or not streams_only)
        ]
        return percentile(values, 95)

    return metric


def _cost(records: Records, _: Sequence[Mapping[str, Any]]) -> float | None:
    costs = [r["cost_usd"] for r in records if r.get("cost_usd") is not None]
    return round(sum(costs), 9) if costs else None


def _chaos_verdict(_: Records, chaos: Sequence[Mapping[str, Any]]) -> str | None:
    """Worst verdict of the tests in scope: fail, else pass, else no-faults."""
    statuses = {c.get("status") for c in chaos if c}
    for status in CHAOS_VERDICTS:
        if status in statuses:
            return status
    return None


METRICS: dict[str, tuple[str, Callable[[Records, Sequence[Mapping[str, Any]]], Any]]] = {
    "error_rate": (
        "share of attempts that failed (HTTP >= 400 or a transport error; injected faults "
        "not counted)",
        _error_rate,
    ),
    "truncation_count": (
        "truncated answers (injected damage not counted)",
        lambda rs, _: sum(1 for r in rs if truncated(r)),
    ),
    "p95_latency_s": ("p95 latency of the attempts, seconds", _p95("duration_s")),
    "p95_ttft_s": ("p95 time to first chunk of streams, seconds", _p95("time_to_first_chunk_s")),
    "cost_usd": ("summed cost of the priced attempts, USD", _cost),
    "total_tokens": ("summed input + output tokens", lambda rs, _: sum(_total(r) for r in rs)),
    "calls": (
        "logical calls (attempt 0)",
        lambda rs, _: sum(1 for r in rs if not r.get("attempt")),
    ),
    "retries": ("attempts after the first", lambda rs, _: sum(1 for r in rs if r.get("attempt"))),
    "injected_faults": (
        "calls answered by an injected chaos fault",
        lambda rs, _: sum(1 for r in rs if (r.get("attributes") or {}).get("llmobs.chaos.fault")),
    ),
    "chaos_verdict": ("worst chaos verdict: fail, pass or no-faults", _chaos_verdict),
}


@dataclass(frozen=True)
class AlertRule:
    metric: str
    op: str
    threshold: float | str
    scope: str = "session"
    severity: str = "warning"
    name: str = ""
    model: str | None = None  # only calls whose model matches this glob
    origin: str = ""

    @property
    def title(self) -> str:
        return self.name or self.condition

    @property
    def condition(self) -> str:
        threshold = self.threshold if isinstance(self.threshold, str) else f"{self.threshold:g}"
        return f"{self.metric} {self.op} {threshold}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.title,
            "metric": self.metric,
            "op": self.op,
            "threshold": self.threshold,
            "scope": self.scope,
            "severity": self.severity,
            "model": self.model,
        }


def make_rule(values: Mapping[str, Any], where: str) -> AlertRule:
    """An `AlertRule` from its parts (ini line or TOML table); `AlertRuleError` otherwise."""
    unknown = [k for k in values if k not in _RULE_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], _RULE_KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise AlertRuleError(
            f"{where}: unknown key {unknown[0]!r}{hint}; valid: {', '.join(_RULE_KEYS)}"
        )
    metric = str(values.get("metric", ""))
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise AlertRuleError(
            f"{where}: unknown metric {metric!r}{hint}; valid: {', '.join(METRICS)}"
        )
    op = str(values.get("op", ""))
    if op not in _OPS:
        raise AlertRuleError(f"{where}: operator {op!r} is not one of {' '.join(_OPS)}")
    scope = str(values.get("scope", "session"))
    if scope not in SCOPES:
        raise AlertRuleError(f"{where}: scope={scope!r} is not one of {', '.join(SCOPES)}")
    severity = str(values.get("severity", "warning"))
    if severity not in SEVERITIES:
        raise AlertRuleError(
            f"{where}: severity={severity!r} is not one of {', '.join(SEVERITIES)}"
        )
    raw = values.get("threshold")
    threshold: float | str
    if metric == "chaos_verdict":
        threshold = str(raw)
        if threshold not in CHAOS_VERDICTS or op not in ("==", "!="):
            raise AlertRuleError(
                f"{where}: chaos_verdict compares with == or != against one of "
                f"{', '.join(CHAOS_VERDICTS)} (e.g. chaos_verdict == fail scope=test)"
            )
        if scope == "model":
            raise AlertRuleError(f"{where}: chaos_verdict has scope test or session, not model")
    else:
        try:
            threshold = float(raw) if isinstance(raw, str | int | float) else float("nan")
        except ValueError:
            threshold = float("nan")
        if isinstance(raw, bool):
            threshold = float("nan")
        if threshold != threshold:  # NaN: not a number
            raise AlertRuleError(f"{where}: threshold {raw!r} of {metric} is not a number")
    model = values.get("model")
    return AlertRule(
        metric,
        op,
        threshold,
        scope,
        severity,
        str(values.get("name") or ""),
        str(model) if model else None,
        where,
    )


def parse_rule(line: str, where: str = "llm_alert") -> AlertRule:
    """``error_rate > 0.05 scope=session severity=critical name="…"``."""
    match = _LINE.match(line)
    if match is None:
        raise AlertRuleError(
            f"{where}: {line.strip()!r} is not METRIC OP THRESHOLD [scope=…] [severity=…] "
            "(e.g. error_rate > 0.05 scope=session severity=critical)"
        )
    metric, op, threshold, rest = match.groups()
    values: dict[str, Any] = {"metric": metric, "op": op, "threshold": threshold}
    for item in _split_options(rest, where):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AlertRuleError(f"{where}: {item!r} is not KEY=VALUE (scope, severity, …)")
        if key in ("metric", "op", "threshold", "when"):
            raise AlertRuleError(f"{where}: {key} is given by METRIC OP THRESHOLD, not {key}=")
        values[key] = value
    return make_rule(values, where)


def _split_options(rest: str, where: str) -> list[str]:
    import shlex

    try:
        return shlex.split(rest)
    except ValueError as exc:
        raise AlertRuleError(f"{where}: {exc} in {rest.strip()!r}") from None


def load_rules_file(path: Path) -> list[AlertRule]:
    """Rules from TOML: ``[[alert]]`` tables with ``metric``, ``op``, ``threshold`` (or
    ``when = "error_rate > 0.05"``), and optional ``scope``, ``severity``, ``name``, ``model``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlertRuleError(f"alert rules file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertRuleError(f"alert rules file {path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertRuleError(f"alert rules file {path}: not valid TOML ({exc})") from None
    extra = [k for k in data if k != "alert"]
    tables = data.get("alert", [])
    if extra or not isinstance(tables, list):
        raise AlertRuleError(
            f"alert rules file {path}: expected [[alert]] tables only"
            + (f", found {', '.join(map(repr, extra))}" if extra else "")
        )
    rules = []
    for i, table in enumerate(tables, 1):
        where = f"{path} [[alert]] #{i}"
        if not isinstance(table, dict):
            raise AlertRuleError(f"{where}: expected a table of metric, op, threshold, …")
        if "when" in table:
            if {"metric", "op", "threshold"} & set(table):
                raise AlertRuleError(f"{where}: give either when or metric/op/threshold")
            match = _LINE.match(str(table["when"]))
            if match is None or match.group(4).strip():
                raise AlertRuleError(
                    f"{where}: when = {table['when']!r} is not METRIC OP THRESHOLD "
                    '(e.g. when = "error_rate > 0.05")'
                )
            metric, op, threshold, _ = match.groups()
            table = {k: v for k, v in table.items() if k != "when"}
            table.update(metric=metric, op=op, threshold=threshold)
        rules.append(make_rule(table, where))
    return rules


# -- evaluation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    key: str  # "session", the model, or the test id
    value: float | str

    @property
    def shown_value(self) -> str:
        if isinstance(self.value, str):
            return self.value
        if self.rule.metric == "cost_usd":
            return fmt("max_cost_usd", self.value)
        return f"{self.value:.4g}"

    @property
    def message(self) -> str:
        where = "session" if self.rule.scope == "session" else f"{self.rule.scope} {self.key}"
        return (
            f"{self.rule.severity.upper()} {self.rule.title}: {self.rule.metric} = "
            f"{self.shown_value} ({self.rule.condition}) [{where}]"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "key": self.key, "value": self.value}


def evaluate(rules: Sequence[AlertRule], tests: Mapping[str, Mapping[str, Any]]) -> list[Alert]:
    """Every firing alert: rules in order, each over its scope's groups (sorted)."""
    out = []
    for rule in rules:
        for key, records, chaos in _groups(rule, tests):
            value = METRICS[rule.metric][1](records, chaos)
            if value is not None and _OPS[rule.op](value, rule.threshold):
                out.append(Alert(rule, key, value))
    return out


def _groups(
    rule: AlertRule, tests: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, list[Mapping[str, Any]], list[Mapping[str, Any]]]]:
    def kept(test: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        calls = test.get("calls") or []
        if rule.model is None:
            return list(calls)
        return [c for c in calls if fnmatchcase(str(c.get("model") or ""), rule.model)]

    if rule.scope == "test":
        return [
            (nodeid, kept(test), [test["chaos"]] if test.get("chaos") else [])
            for nodeid, test in sorted(tests.items())
            if kept(test) or test.get("chaos")
        ]
    records = [c for test in tests.values() for c in kept(test)]
    if rule.scope == "session":
        chaos = [t["chaos"] for t in tests.values() if t.get("chaos")]
        return [("session", records, chaos)] if records or chaos else []
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_model.setdefault(str(record.get("model") or "?"), []).append(record)
    return [(model, group, []) for model, group in sorted(by_model.items())]


def counts(alerts: Sequence[Alert]) -> dict[str, int]:
    """Firing alerts per severity (every severity present, 0 included)."""
    return {s: sum(1 for a in alerts if a.rule.severity == s) for s in SEVERITIES}
