"""Scenario files: YAML lists of chaos rules, validated with errors that name the line.

```yaml
name: staging-weekly          # optional
seed: 42                      # optional; --llm-chaos-seed / --seed win
rules:
  - fault: rate_limit
    probability: 0.05         # default 1
    times: 3                  # default 1 when certain, unlimited when probabilistic
    skip: 0                   # let this many matching calls through first
    match: {provider: openai, model: "gpt-4o*", stream: true, call: [0, 1]}
    params: {retry_after: 0.5}
```

A bare list of rules is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .catalog import ChaosConfigError, fault_named
from .rules import MATCH_KEYS, RULE_KEYS, Rule, make_match, make_rule

SCENARIO_KEYS = ("name", "seed", "rules")


@dataclass(frozen=True)
class Scenario:
    rules: tuple[Rule, ...]
    seed: int | None = None
    name: str | None = None
    source: str = "<scenario>"


def load_scenario(path: str | Path) -> Scenario:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChaosConfigError(f"{file}: cannot read scenario file ({exc.strerror})") from None
    return parse_scenario(text, str(file))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise ChaosConfigError(f"{source}:{line}: YAML syntax error: {exc.problem}") from None
        reader = _Reader(loader, source)
        return reader.scenario(root)
    finally:
        loader.dispose()


class _Reader:
    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source

    def at(self, node: yaml.Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def pairs(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise ChaosConfigError(f"{self.at(node)}: {what} must be a mapping")
        return [(str(self.value(k)), k, v) for k, v in node.value]

    def scenario(self, root: yaml.Node | None) -> Scenario:
        if root is None:
            raise ChaosConfigError(f"{self.source}:1: empty scenario; expected a list of rules")
        name: str | None = None
        seed: int | None = None
        rules_node: yaml.Node | None = root
        if isinstance(root, yaml.MappingNode):
            rules_node = None
            for key, key_node, value_node in self.pairs(root, "scenario"):
                if key == "rules":
                    rules_node = value_node
                elif key == "name":
                    name = str(self.value(value_node))
                elif key == "seed":
                    raw = self.value(value_node)
                    if isinstance(raw, bool) or not isinstance(raw, int):
                        raise ChaosConfigError(f"{self.at(value_node)}: seed must be an integer")
                    seed = raw
                else:
                    valid = ", ".join(SCENARIO_KEYS)
                    raise ChaosConfigError(
                        f"{self.at(key_node)}: unknown key {key!r}; valid: {valid}"
                    )
            if rules_node is None:
                raise ChaosConfigError(f"{self.at(root)}: scenario has no 'rules' list")
        if not isinstance(rules_node, yaml.SequenceNode):
            where = self.at(rules_node if rules_node is not None else root)
            raise ChaosConfigError(f"{where}: 'rules' must be a list of rules")
        if not rules_node.value:
            raise ChaosConfigError(f"{self.at(rules_node)}: 'rules' is empty")
        rules = tuple(self.rule(node) for node in rules_node.value)
        return Scenario(rules=rules, seed=seed, name=name, source=self.source)

    def rule(self, node: yaml.Node) -> Rule:
        if isinstance(node, yaml.ScalarNode):  # a bare fault name
            return make_rule(str(self.value(node)), self.at(node))
        fields: dict[str, Any] = {}
        fault_node: yaml.Node | None = None
        for key, key_node, value_node in self.pairs(node, "a rule"):
            where = self.at(key_node)
            if key not in RULE_KEYS:
                raise ChaosConfigError(
                    f"{where}: unknown rule key {key!r}; valid: {', '.join(RULE_KEYS)}"
                )
            if key == "fault":
                fault_node = value_node
            elif key == "match":
                for match_key, match_key_node, match_value in self.pairs(value_node, "match"):
                    if match_key not in MATCH_KEYS:
                        raise ChaosConfigError(
                            f"{self.at(match_key_node)}: unknown match key {match_key!r}; "
                            f"valid: {', '.join(MATCH_KEYS)}"
                        )
                    make_match({match_key: self.value(match_value)}, self.at(match_key_node))
            fields[key] = (value_node, self.value(value_node))
        if fault_node is None:
            raise ChaosConfigError(f"{self.at(node)}: rule has no 'fault'")
        fault = fault_named(str(self.value(fault_node)), self.at(fault_node))
        if "params" in fields:
            params_node = fields["params"][0]
            for param, param_key, param_value in self.pairs(params_node, "params"):
                fault.coerce({param: self.value(param_value)}, self.at(param_key))
        for key in ("probability", "times", "skip"):
            if key in fields:  # validate each against its own line
                value_node, value = fields[key]
                make_rule(fault.name, self.at(value_node), **{key: value})
        return make_rule(
            fault.name,
            self.at(node),
            match=fields.get("match", (None, None))[1],
            params=fields.get("params", (None, None))[1],
            probability=fields.get("probability", (None, 1.0))[1],
            times=fields.get("times", (None, "default"))[1],
            skip=fields.get("skip", (None, 0))[1],
        )


def resolve_chaos_option(value: str, base: Path) -> Scenario:
    """`--llm-chaos=NAME` (one fault, every test) or `--llm-chaos=path/to/scenario.yaml`."""
    value = value.strip()
    path = Path(value)
    if value.endswith((".yaml", ".yml")) or path.suffix or "/" in value:
        if not path.is_absolute():
            path = base / path
        return load_scenario(path)
    rule = make_rule(value, f"--llm-chaos={value}")
    return Scenario(rules=(rule,), source=f"--llm-chaos={value}")
