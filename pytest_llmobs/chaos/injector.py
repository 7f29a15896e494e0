"""The seeded decision: does a rule fire on this request?

Every rule draws from its own `random.Random`, seeded from the run's seed, the scope (the
test's node id; "proxy" in the proxy) and the rule's position, so the same seed, rules
and sequence of requests give the same faults in any process, under xdist, and in the
proxy. Rules are tried in order; the first that fires wins.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from .catalog import Injection, render
from .dialects import RequestInfo
from .rules import Rule


@dataclass
class _RuleState:
    rule: Rule
    rng: random.Random
    matched: int = 0
    fired: int = 0


@dataclass
class Injector:
    rules: list[Rule]
    seed: int
    scope: str = ""
    calls: int = 0  # LLM requests seen (the `call` index of the next one)
    injected: list[dict[str, Any]] = field(default_factory=list)
    _states: list[_RuleState] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        rules, self.rules = self.rules, []
        for rule in rules:
            self.add(rule)

    def add(self, rule: Rule) -> None:
        with self._lock:
            index = len(self._states)
            self.rules.append(rule)
            self._states.append(
                _RuleState(rule, random.Random(f"{self.seed}:{self.scope}:{index}"))
            )

    @property
    def active(self) -> bool:
        return bool(self._states)

    def decide(self, info: RequestInfo, header_rule: Rule | None = None) -> Injection | None:
        """The injection for this request, or None to let it through."""
        with self._lock:
            index = self.calls
            self.calls += 1
            if header_rule is not None:
                if not header_rule.fault.applies(info, header_rule.params):
                    return None
                rng = random.Random(f"{self.seed}:{self.scope}:header:{index}")
                return self._record(index, header_rule, info, rng)
            for state in self._states:
                rule = state.rule
                if not rule.match.matches(info, index) or not rule.fault.applies(info, rule.params):
                    continue
                state.matched += 1
                if state.matched <= rule.skip:
                    continue
                if rule.times is not None and state.fired >= rule.times:
                    continue
                if rule.probability < 1 and state.rng.random() >= rule.probability:
                    continue
                state.fired += 1
                return self._record(index, rule, info, state.rng)
        return None

    def _record(self, index: int, rule: Rule, info: RequestInfo, rng: random.Random) -> Injection:
        injection = render(rule.fault, rule.params, info, rng, rule=rule.label, seed=self.seed)
        injection.annotations["chaos.call_index"] = index
        self.injected.append(
            {
                "call_index": index,
                "fault": rule.fault.name,
                "rule": rule.label,
                "provider": info.provider,
                "model": info.model,
                "stream": info.stream,
                "params": injection.annotations["chaos.params"],
            }
        )
        return injection
