"""Chaos: provider-true faults in tests and in a staging proxy, and a resilience verdict.

- `catalog`   — every fault by name, rendered per provider (`dialects`; Bedrock and
  Gemini in `_bedrock_dialect`, `_gemini_dialect`), damage (`damage`)
- `rules`, `scenario` — which fault on which request; YAML scenario files (`scenario`
  is imported where a scenario is read: PyYAML takes ~15 ms to import)
- `injector`  — the seeded decision, shared by the test process and the proxy
- `session`, `hooks`, `control` — the pytest side (responder, markers, `llmobs.chaos`)
- `verdict`   — what the client did about the faults
- `proxy`     — `llmobs proxy`, the staging reverse proxy (needs the `proxy` extra);
  `proxy_workers` runs several of it on one port
"""

from .catalog import FAULTS, ChaosConfigError, Fault, fault_table
from .rules import Match, Rule, make_rule
from .verdict import Finding, Policy, Verdict, judge

__all__ = [
    "FAULTS",
    "ChaosConfigError",
    "Fault",
    "Finding",
    "Match",
    "Policy",
    "Rule",
    "Verdict",
    "fault_table",
    "judge",
    "make_rule",
]
