"""`llmobs.chaos`: a test's handle on its faults."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .rules import Rule, rule_from_kwargs
from .verdict import Policy, Verdict, judge

if TYPE_CHECKING:
    from ..calls import LLMCall
    from ..capture import TestCapture
    from .session import TestChaos


class ChaosControl:
    """Inject faults from inside a test and read what was injected and the verdict."""

    def __init__(self, test: TestChaos, capture: TestCapture) -> None:
        self._test = test
        self._capture = capture

    @property
    def seed(self) -> int:
        """The run's chaos seed: `--llm-chaos-seed` reproduces this test's faults."""
        return self._test.seed

    @property
    def rules(self) -> list[Rule]:
        return list(self._test.injector.rules)

    @property
    def injected(self) -> list[dict[str, Any]]:
        """One record per injected fault: call index, fault, rule, provider, model, params."""
        return list(self._test.injected)

    def inject(self, fault: str, **kwargs: Any) -> Rule:
        """Add a rule for the rest of the test, e.g. `inject("rate_limit", times=2,
        retry_after=0.1, model="gpt-4o*")`: rule fields (`times`, `probability`, `skip`),
        match keys (`provider`, `model`, `path`, `host`, `api`, `stream`, `call`) and the
        fault's parameters side by side. Later calls are numbered from 0 as before."""
        where = f"{self._test.nodeid}: llmobs.chaos.inject({fault!r})"
        rule = rule_from_kwargs(fault, where, kwargs)
        self._test.injector.add(rule)
        return rule

    def verdict(
        self,
        policy: Policy | None = None,
        price: Callable[[LLMCall], float | None] | None = None,
    ) -> Verdict:
        """The resilience verdict over the calls so far (the app is taken to have returned);
        `policy` defaults to the run's (`--llm-chaos-verdict`)."""
        self._test.judged_by_test = True  # llm_chaos_gate leaves the outcome to the test
        return judge(
            self._capture.calls,
            seed=self.seed,
            app_raised=False,
            policy=policy or self._test.policy,
            price=price,
        )

    def assert_resilient(
        self,
        strict: bool = False,
        ignore: Sequence[str] = (),
        price: Callable[[LLMCall], float | None] | None = None,
        policy: Policy | None = None,
    ) -> Verdict:
        """Fail with the verdict unless the client coped (see `LLMObs.assert_resilient`)."""
        __tracebackhide__ = True
        verdict = self.verdict(policy=policy, price=price)
        verdict.findings = [f for f in verdict.findings if f.code not in ignore]
        if verdict.failures(strict):
            self._test.assertion_failed = True
            raise AssertionError(verdict.explain(strict))
        return verdict
