"""`LLMObs`: what the `llmobs` fixture hands a test."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import reduce
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .budgets import TestChecks, Violation, check_test
from .calls import LLMCall, Usage
from .capture import TestCapture
from .chaos.control import ChaosControl
from .chaos.verdict import Verdict, judge
from .context import context, group_by, missing_context, user_action
from .evaluations import Evaluation, from_deepeval, with_event
from .evaluations import make as make_evaluation
from .pricing import Pricing
from .snapshots import SnapshotTarget, check_snapshot, span_shape
from .tracetree import Mode, match_trace


class LLMObs:
    """A live view of the current test's LLM calls and spans."""

    def __init__(
        self,
        capture: TestCapture,
        *,
        snapshots: SnapshotTarget | None = None,
        checks: TestChecks | None = None,
        pricing: Pricing | None = None,
        chaos: ChaosControl | None = None,
    ) -> None:
        self._capture = capture
        self._snapshots = snapshots
        self._checks = checks or TestChecks()
        self._pricing = pricing or Pricing()
        self._chaos = chaos

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call (one per HTTP attempt) so far, in completion order."""
        return list(self._capture.calls)

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every finished span so far: the app's, instrumentations', and ours."""
        return list(self._capture.spans)

    @property
    def usage(self) -> Usage:
        """Token usage summed over all calls (a call without a `total_tokens` of its own, such
        as Anthropic's, adds its input + output to the total)."""
        return reduce(lambda a, b: a + b, (c.usage for c in self._capture.calls), Usage())

    # -- cost and budgets (pricing.py, budgets.py) ------------------------------------------

    @property
    def cost_usd(self) -> float | None:
        """What the calls so far cost in USD; None if any call's cost is unknown (see
        `unpriced_calls`): an unknown price is never counted as zero."""
        total = self._pricing.total(self._capture.calls)
        return total.usd if total.complete else None

    @property
    def unpriced_calls(self) -> list[tuple[LLMCall, str]]:
        """The calls whose cost is unknown, each with the reason."""
        return self._pricing.total(self._capture.calls).unpriced

    def cost_of(self, call: LLMCall) -> float | None:
        """One call's cost in USD (None if unknown)."""
        return self._pricing.cost_usd(call)

    def violations(self) -> list[Violation]:
        """This test's llm_budget limits and truncation check over the calls so far (what
        the plugin will report after the test), without failing."""
        evaluations = [e.to_dict() for e in self._capture.evaluations]
        return check_test(list(self._capture.calls), self._checks, self._pricing, evaluations)

    def find_spans(self, name: str | None = None, **attributes: Any) -> list[ReadableSpan]:
        """Spans whose name matches the glob `name` and whose attributes equal the given ones.

        Attribute keys use `__` for dots: `find_spans(gen_ai__request__model="gpt-4o")`;
        a dict can be passed too: `find_spans(**{"gen_ai.request.model": "gpt-4o"})`.
        """
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        return [
            span
            for span in self._capture.spans
            if (name is None or fnmatchcase(span.name, name)) and _has(span, wanted)
        ]

    # -- evaluations (evaluations.py) -------------------------------------------------------

    @property
    def evaluations(self) -> list[Evaluation]:
        """The evaluation results recorded so far, in order."""
        return list(self._capture.evaluations)

    def evaluate(
        self,
        name: str,
        *,
        score: float | None = None,
        label: str | None = None,
        explanation: str | None = None,
        call: LLMCall | int | None = None,
    ) -> Evaluation:
        """Record a quality score on a call (default: the last one) as the OpenTelemetry
        GenAI `gen_ai.evaluation.result` event on its span; it shows in the report, JUnit,
        summary.json and `llmobs diff`, and `llm_budget(min_score={name: limit})` gates it."""
        return self._record(name, score, label, explanation, call)

    def evaluate_deepeval(
        self, metric: Any, test_case: Any = None, *, call: LLMCall | int | None = None
    ) -> Evaluation:
        """Record a DeepEval metric (a `BaseMetric`), measured on `test_case` when given,
        under the metric's name: score, `pass`/`fail` label, reason as explanation."""
        found = from_deepeval(metric, test_case)
        return self._record(
            found["name"],
            found["score"],
            found["label"],
            found["explanation"],
            call,
            found["error_type"],
        )

    def _record(
        self,
        name: Any,
        score: Any,
        label: Any,
        explanation: Any,
        call: Any,
        error_type: str | None = None,
    ) -> Evaluation:
        __tracebackhide__ = True
        evaluation, target = make_evaluation(
            name,
            score=score,
            label=label,
            explanation=explanation,
            call=call,
            calls=self._capture.calls,
            error_type=error_type,
        )
        self._capture.evaluations.append(evaluation)
        if target is not None:
            with_event(self._capture.spans, target, evaluation)
        return evaluation

    # -- chaos (chaos/) ----------------------------------------------------------------------

    @property
    def chaos(self) -> ChaosControl:
        """Inject faults (`llmobs.chaos.inject("rate_limit", times=2)`), read what was
        injected, the seed, and the verdict."""
        if self._chaos is None:
            raise RuntimeError("llmobs.chaos needs the llmobs fixture of a running test")
        return self._chaos

    def resilience(self) -> Verdict:
        """The resilience verdict over the calls so far (see `pytest_llmobs.chaos.verdict`)."""
        price = self._pricing.cost_usd
        if self._chaos is not None:
            return self._chaos.verdict(price=price)
        return judge(self._capture.calls, price=price)

    def assert_resilient(self, strict: bool = False, ignore: Sequence[str] = ()) -> None:
        """Fail with the findings unless the client coped with the injected faults: errors
        fail; `strict=True` fails on warnings too; `ignore` drops finding codes."""
        __tracebackhide__ = True
        if self._chaos is not None:
            self._chaos.assert_resilient(strict, ignore, price=self._pricing.cost_usd)
            return
        verdict = self.resilience()
        verdict.findings = [f for f in verdict.findings if f.code not in ignore]
        if verdict.failures(strict):
            raise AssertionError(verdict.explain(strict))

    # -- trace structure (tracetree.py, snapshots.py) -------------------------------------

    def assert_trace(self, expected: Any, mode: Mode = "strict") -> None:
        """Fail unless the finished spans form the `expected` tree.

        `expected`: a name glob, a dict `{name_glob: children | count | options}`, a list of
        siblings, or `Span(name, *children, count=…, attrs={…})`; see `pytest_llmobs.tracetree`.
        `mode`: `strict` (same tree, same order), `unordered` (sibling order free), `subset`
        (expected ⊆ actual: more spans allowed, the expected roots may sit anywhere),
        `superset` (actual ⊆ expected: every span is an expected one, some may be missing).
        A name written `"... glob"` matches at any depth below its parent; `Span(...)` takes
        `status=`, `kind=`, `duration_lt=` / `duration_gt=` (seconds). A failure lists every
        difference, with both trees. Only finished spans count: call it after the `with`
        blocks of the spans have closed.
        """
        __tracebackhide__ = True
        mismatch = match_trace(expected, self._capture.spans, mode)
        if mismatch is not None:
            raise AssertionError(mismatch.message)

    def assert_trace_snapshot(
        self,
        name: str | None = None,
        *,
        ordered: bool = False,
        drop: Sequence[str] = (),
        keep: Sequence[str] = (),
    ) -> None:
        """Compare the trace's stable shape with its golden file next to the test
        (`__llmobs_snapshots__/<module>/<test>[.<name>].json`).

        A missing or different snapshot fails; `--llm-snapshot-update` writes it instead.
        `ordered=True` keeps siblings in start order (default: sorted, so concurrency cannot
        make it flaky); `drop` / `keep` are attribute globs to leave out / keep verbatim.
        """
        __tracebackhide__ = True
        if self._snapshots is None:
            raise RuntimeError("assert_trace_snapshot needs the llmobs fixture of a test item")
        shape = span_shape(self._capture.spans, ordered=ordered, drop=drop, keep=keep)
        result = check_snapshot(shape, self._snapshots.path(name), self._snapshots.update)
        if result.failed:
            raise AssertionError(result.message)

    # -- context and user actions (context.py) ---------------------------------------------

    context = staticmethod(context)
    user_action = staticmethod(user_action)

    def assert_context_propagated(
        self, *keys: str, scope: str = "llm", under: str | None = None
    ) -> None:
        """Fail, naming the spans, unless every LLM span (`scope="all"`: every span; `under`:
        only below spans matching this name glob) carries each key (default
        `gen_ai.conversation.id`; field names such as `"stage"` or `"conversation_id"` work)."""
        __tracebackhide__ = True
        problem = missing_context(self._capture.spans, keys, scope=scope, under=under)
        if problem is not None:
            raise AssertionError(problem)

    def calls_by(self, field: str) -> dict[str | None, list[LLMCall]]:
        """The calls grouped by a context field (`"stage"`, `"conversation_id"`, or an
        attribute name such as `"user.action.name"`), in first-seen order; None = unset."""
        return group_by(self._capture.calls, field)


def _has(span: ReadableSpan, wanted: dict[str, Any]) -> bool:
    attrs = span.attributes or {}
    for key, value in wanted.items():
        actual = attrs.get(key)
        if isinstance(actual, Sequence) and not isinstance(actual, str):
            actual = list(actual)
        if actual != value:
            return False
    return True
