"""Chaos in the test process: a responder at the front of the interceptor's chain.

It answers a faulted request itself, before replay and the network, so the same fault
hits the same call in live, record and replay mode and the cassette recorder (which skips
exchanges whose source is "chaos") never stores one. Stream faults damage an answer the
catalog synthesizes for the request (model, stream flag, `include_usage`), never a
recorded or live one: a fault must not consume a cassette interaction, or replay would run
out of them where recording did not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..intercept.exchange import CannedResponse
from .catalog import Injection, describe
from .damage import plan
from .injector import Injector
from .rules import Rule
from .verdict import Policy

if TYPE_CHECKING:
    from ..intercept.exchange import Exchange
    from ..providers import ProviderRegistry

FAULT_HEADER = "x-llmobs-fault"  # the proxy's per-request fault


@dataclass
class TestChaos:
    """One test's chaos: its rules (session scenario + markers + inject) and what fired."""

    __test__ = False  # not a pytest test class

    nodeid: str
    seed: int
    injector: Injector
    sources: list[str] = field(default_factory=list)
    assertion_failed: bool = False  # assert_resilient failed the test (not the app)
    # The test read the verdict itself (resilience(), assert_resilient()): it decides.
    judged_by_test: bool = False
    policy: Policy = field(default_factory=Policy)  # the verdict's thresholds

    @classmethod
    def create(
        cls,
        nodeid: str,
        seed: int,
        rules: list[Rule],
        sources: list[str],
        policy: Policy | None = None,
    ) -> TestChaos:
        injector = Injector(rules, seed, scope=nodeid)
        return cls(nodeid, seed, injector, sources, policy=policy or Policy())

    @property
    def injected(self) -> list[dict[str, Any]]:
        return self.injector.injected


class ChaosSession:
    """Session-wide: the seed, the scenario from `--llm-chaos`, and the running test."""

    def __init__(
        self,
        registry: ProviderRegistry,
        seed: int,
        rules: list[Rule],
        scenario: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.registry = registry
        self.seed = seed
        self.rules = rules
        self.scenario = scenario
        self.policy = policy or Policy()
        self._active: TestChaos | None = None
        self._lock = threading.Lock()

    def start_test(self, nodeid: str, rules: list[Rule], sources: list[str]) -> TestChaos:
        test = TestChaos.create(nodeid, self.seed, [*rules, *self.rules], sources, self.policy)
        with self._lock:
            self._active = test
        return test

    def end_test(self) -> None:
        with self._lock:
            self._active = None

    # -- the responder ----------------------------------------------------------------
    def __call__(self, exchange: Exchange) -> CannedResponse | None:
        # The `x-llmobs-fault` header is the staging proxy's: honouring it here too would
        # answer requests meant for a proxy the test talks to.
        test = self._active
        if test is None or not test.injector.active:
            return None
        info = describe(exchange, self.registry)
        if info is None:
            return None
        injection = test.injector.decide(info)
        if injection is None:
            return None
        injection.annotations["chaos.read_timeout_s"] = exchange.annotations.get("read_timeout")
        return to_canned(injection)


def to_canned(injection: Injection) -> CannedResponse:
    """The injection as a canned response the transports serve on schedule."""
    annotations = {k: v for k, v in injection.annotations.items() if v is not None}
    if injection.reply is not None:
        reply = injection.reply
        body = reply.body
        if reply.events is not None:  # a 200 stream in place of the answer (blocked prompt)
            headers, chunks = list(reply.headers), [(0.0, event) for event in reply.events]
        else:
            headers, chunks = [*reply.headers, ("content-length", str(len(body)))], [(0.0, body)]
        return CannedResponse(
            status=reply.status,
            headers=headers,
            chunks=chunks,
            source="chaos",
            pace=1.0,
            annotations=annotations,
        )
    if injection.transport is not None:
        timeout = injection.transport == "timeout"
        return CannedResponse(
            status=None,
            fail="timeout" if timeout else "reset",
            fail_offset=injection.hang_s if timeout else 0.0,
            source="chaos",
            pace=1.0,
            annotations=annotations,
        )
    damage = injection.damage
    assert damage is not None
    base = injection.dialect.synthesize(injection.info, str(injection.params.get("text") or ""))
    pieces = base.events if base.events is not None else [base.body]
    chunks, ending = plan(damage, pieces)
    headers = injection.dialect.damage_headers(
        list(base.headers), injection.fault.name, injection.params, injection.info
    )
    if not injection.info.stream and ending == "close":
        headers.append(("content-length", str(sum(len(data) for _, data in chunks))))
    last = chunks[-1][0] if chunks else 0.0
    fail: Any = {"reset": "reset", "timeout": "timeout"}.get(ending)
    return CannedResponse(
        status=base.status,
        headers=headers,
        chunks=chunks,
        source="chaos",
        pace=1.0,
        fail=fail,
        fail_offset=last + injection.hang_s if fail == "timeout" else last,
        annotations=annotations,
    )
