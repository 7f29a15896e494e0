"""Rules: which fault, on which requests, how often.

A rule comes from a marker, from `llmobs.chaos.inject(...)`, from a scenario file, from
`--llm-chaos=NAME`, or from one request's `x-llmobs-fault` header. All of them go through
`make_rule`, so they accept the same names and fail with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ..providers import PROVIDER_NAMES
from .catalog import ChaosConfigError, Fault, fault_named
from .dialects import RequestInfo

RULE_KEYS = ("fault", "match", "probability", "times", "skip", "params")
MATCH_KEYS = ("provider", "model", "path", "host", "api", "stream", "call")
APIS = ("chat", "responses", "messages", "embeddings", "converse", "invoke", "generate_content")


@dataclass(frozen=True)
class Match:
    """Every field given must hold; globs for model, path and host; `call` is the index of
    the LLM request in the test (0 = first) or, in the proxy, since start."""

    provider: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    api: tuple[str, ...] = ()
    stream: bool | None = None
    call: tuple[int, ...] = ()

    def matches(self, info: RequestInfo, call_index: int) -> bool:
        return (
            (not self.provider or info.provider in self.provider)
            and (not self.model or any(fnmatchcase(info.model, g) for g in self.model))
            and (not self.path or any(fnmatchcase(info.path, g) for g in self.path))
            and (not self.host or any(fnmatchcase(info.host, g) for g in self.host))
            and (not self.api or info.api in self.api)
            and (self.stream is None or info.stream is self.stream)
            and (not self.call or call_index in self.call)
        )

    def describe(self) -> str:
        parts = [
            f"{name}={'|'.join(map(str, value)) if isinstance(value, tuple) else value}"
            for name in MATCH_KEYS
            if (value := getattr(self, name)) not in ((), None)
        ]
        return " ".join(parts)


@dataclass(frozen=True)
class Rule:
    fault: Fault
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    match: Match = field(default_factory=Match)
    probability: float = 1.0
    times: int | None = 1  # None: no limit
    skip: int = 0
    label: str = ""

    def describe(self) -> str:
        bits = [self.fault.name]
        if self.match.describe():
            bits.append(self.match.describe())
        if self.probability < 1:
            bits.append(f"p={self.probability:g}")
        bits.append("times=∞" if self.times is None else f"times={self.times}")
        return " ".join(bits)


def make_rule(
    fault: str,
    where: str,
    *,
    match: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    probability: Any = 1.0,
    times: Any = "default",
    skip: Any = 0,
) -> Rule:
    """A validated rule. `times` defaults to 1 for a certain rule and to no limit for a
    probabilistic one (a 5 % rule in a proxy is meant to keep firing)."""
    spec = fault_named(fault, where)
    prob = _probability(probability, where)
    if times == "default":
        limit: int | None = 1 if prob >= 1 else None
    elif times is None:
        limit = None
    else:
        limit = _count(times, "times", where, minimum=1)
    return Rule(
        fault=spec,
        params=spec.coerce(dict(params or {}), where),
        match=make_match(match or {}, where),
        probability=prob,
        times=limit,
        skip=_count(skip, "skip", where, minimum=0),
        label=where,
    )


def make_match(data: Mapping[str, Any], where: str) -> Match:
    unknown = [key for key in data if key not in MATCH_KEYS]
    if unknown:
        raise ChaosConfigError(
            f"{where}: unknown match key {unknown[0]!r}; valid: {', '.join(MATCH_KEYS)}"
        )
    providers = _strings(data.get("provider"), "provider", where)
    for name in providers:
        if name not in PROVIDER_NAMES:
            raise ChaosConfigError(
                f"{where}: provider {name!r} is not one of: {', '.join(PROVIDER_NAMES)}"
            )
    apis = _strings(data.get("api"), "api", where)
    for name in apis:
        if name not in APIS:
            raise ChaosConfigError(f"{where}: api {name!r} is not one of: {', '.join(APIS)}")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ChaosConfigError(f"{where}: stream={stream!r} must be true or false")
    calls = data.get("call")
    call_list = calls if isinstance(calls, list | tuple) else ([] if calls is None else [calls])
    return Match(
        provider=providers,
        model=_strings(data.get("model"), "model", where),
        path=_strings(data.get("path"), "path", where),
        host=_strings(data.get("host"), "host", where),
        api=apis,
        stream=stream,
        call=tuple(_count(c, "call", where, minimum=0) for c in call_list),
    )


def rule_from_kwargs(fault: str, where: str, kwargs: Mapping[str, Any]) -> Rule:
    """Marker / `inject` style: rule fields, match keys and fault parameters side by side."""
    rule_args: dict[str, Any] = {}
    match: dict[str, Any] = {}
    params: dict[str, Any] = dict(kwargs.get("params") or {})
    for key, value in kwargs.items():
        if key in ("probability", "times", "skip"):
            rule_args[key] = value
        elif key in MATCH_KEYS:
            match[key] = value
        elif key == "match":
            match.update(value or {})
        elif key != "params":
            params[key] = value
    return make_rule(fault, where, match=match, params=params, **rule_args)


def rules_from_spec(spec: Any, where: str) -> list[Rule]:
    """A fault name, a `{"fault": …, …}` dict, or a list of either."""
    items = spec if isinstance(spec, list | tuple) else [spec]
    rules = []
    for index, item in enumerate(items):
        here = where if len(items) == 1 else f"{where}[{index}]"
        if isinstance(item, Rule):
            rules.append(item)
        elif isinstance(item, str):
            rules.append(make_rule(item, here))
        elif isinstance(item, Mapping) and "fault" in item:
            rest = {k: v for k, v in item.items() if k != "fault"}
            rules.append(rule_from_kwargs(str(item["fault"]), here, rest))
        else:
            raise ChaosConfigError(
                f"{here}: expected a fault name or a mapping with 'fault', got {item!r}"
            )
    return rules


def parse_fault_header(value: str, where: str = "x-llmobs-fault") -> Rule:
    """`rate_limit; retry_after=0.5` → a one-shot rule (parameters and match keys allowed)."""
    name, *pairs = [part.strip() for part in value.split(";")]
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        if not pair:
            continue
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ChaosConfigError(f"{where}: expected key=value, got {pair!r}")
        kwargs[key.strip()] = _header_value(raw.strip())
    kwargs.setdefault("times", 1)
    return rule_from_kwargs(name, where, kwargs)


def header_rule(value: str, retry_count: str | None, where: str = "x-llmobs-fault") -> Rule | None:
    """The header's rule for this attempt: SDK retries repeat the header, so with a retry
    count (`x-stainless-retry-count`) `times=N` faults only the first N attempts."""
    rule = parse_fault_header(value, where)
    attempt = int(retry_count) if retry_count and retry_count.strip().isdigit() else 0
    if rule.times is not None and attempt >= rule.times:
        return None
    return rule


def _header_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return raw.strip("\"'")


def _strings(value: Any, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str) and v for v in values):
        raise ChaosConfigError(f"{where}: {name} must be a string or a list of strings")
    return tuple(values)


def _probability(value: Any, where: str) -> float:
    try:
        prob = float(value)
    except (TypeError, ValueError):
        prob = -1.0
    if isinstance(value, bool) or not 0.0 <= prob <= 1.0:
        raise ChaosConfigError(f"{where}: probability={value!r} must be a number from 0 to 1")
    return prob


def _count(value: Any, name: str, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ChaosConfigError(f"{where}: {name}={value!r} must be an integer >= {minimum}")
    try:
        count = int(value)
    except ValueError:
        count = minimum - 1
    if count < minimum:
        raise ChaosConfigError(f"{where}: {name}={value!r} must be an integer >= {minimum}")
    return count


def describe_rules(rules: Sequence[Rule]) -> str:
    return "; ".join(rule.describe() for rule in rules)
