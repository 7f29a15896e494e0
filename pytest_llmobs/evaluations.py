"""Evaluation results: a quality score (from DeepEval, a heuristic, a judge model) attached
to one LLM call, so it lands in the same trace, report and gate as the call's figures.

The span event follows the OpenTelemetry GenAI semantic conventions, event
`gen_ai.evaluation.result` (open-telemetry/semantic-conventions-genai,
model/gen-ai/events.yaml, stability: development): `gen_ai.evaluation.name` (required),
`gen_ai.evaluation.score.value` and `gen_ai.evaluation.score.label` (conditionally
required: when applicable), `gen_ai.evaluation.explanation` (recommended),
`gen_ai.response.id` (recommended, to correlate with the evaluated completion) and
`error.type` when the evaluation itself failed. The event is parented to the evaluated
GenAI operation span, as the convention asks: here, a span event on that span.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import format_span_id

from .calls import LLMCall

EVENT = "gen_ai.evaluation.result"


class EvaluationError(ValueError):
    """A bad `llmobs.evaluate(...)` argument; the message says which and what to pass."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation result; `call` is the index of the evaluated call in the test's
    calls (None: the test had no call to attach it to)."""

    name: str
    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    call: int | None = None
    response_id: str | None = None
    error_type: str | None = None

    def event_attributes(self) -> dict[str, Any]:
        """The `gen_ai.evaluation.result` event's attributes (unset ones left out)."""
        attrs: dict[str, Any] = {
            "gen_ai.evaluation.name": self.name,
            "gen_ai.evaluation.score.value": self.score,
            "gen_ai.evaluation.score.label": self.label,
            "gen_ai.evaluation.explanation": self.explanation,
            "gen_ai.response.id": self.response_id,
            "error.type": self.error_type,
        }
        return {k: v for k, v in attrs.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "label": self.label,
            "explanation": self.explanation,
            "call": self.call,
            "error_type": self.error_type,
        }


def make(
    name: Any,
    *,
    score: Any = None,
    label: Any = None,
    explanation: Any = None,
    call: Any = None,
    calls: Sequence[LLMCall] = (),
    error_type: str | None = None,
) -> tuple[Evaluation, LLMCall | None]:
    """A checked `Evaluation` and the call it is about: `call` is an `LLMCall` of this
    test, an index into `calls`, or None for the test's last call."""
    where = f"llmobs.evaluate({name!r})"
    if not isinstance(name, str) or not name.strip():
        raise EvaluationError(f"{where}: the name must be a non-empty string, e.g. 'faithfulness'")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        raise EvaluationError(f"{where}: score={score!r} must be a finite number, e.g. 0.82")
    if label is not None and not isinstance(label, str):
        raise EvaluationError(f"{where}: label={label!r} must be a string, e.g. 'relevant'")
    if explanation is not None and not isinstance(explanation, str):
        raise EvaluationError(f"{where}: explanation must be a string")
    if score is None and label is None and error_type is None:
        raise EvaluationError(f"{where}: give a score=, a label=, or both")
    target = _target(where, call, calls)
    index = next((i for i, c in enumerate(calls) if c is target), None)
    evaluation = Evaluation(
        name,
        None if score is None else float(score),
        label,
        explanation,
        index,
        target.response_id if target is not None else None,
        error_type,
    )
    return evaluation, target


def _target(where: str, call: Any, calls: Sequence[LLMCall]) -> LLMCall | None:
    if call is None:
        return calls[-1] if calls else None
    if isinstance(call, LLMCall):
        if not any(c is call for c in calls):
            raise EvaluationError(f"{where}: call= is not one of this test's llmobs.calls")
        return call
    if isinstance(call, int) and not isinstance(call, bool):
        try:
            return calls[call]
        except IndexError:
            raise EvaluationError(
                f"{where}: call={call} but the test has {len(calls)} call(s) (llmobs.calls)"
            ) from None
    raise EvaluationError(f"{where}: call= must be one of llmobs.calls or an index into it")


def with_event(spans: list[ReadableSpan], call: LLMCall, evaluation: Evaluation) -> bool:
    """Replace the call's span in `spans` by a copy carrying the evaluation event (a finished
    span cannot be changed); False when the span is not among them."""
    from .tracing import span_with

    span_id = call.attributes.get("llmobs.span_id")
    for i, span in enumerate(spans):
        if span.context is not None and format_span_id(span.context.span_id) == span_id:
            event = Event(EVENT, evaluation.event_attributes())
            spans[i] = span_with(span, events=(*span.events, event))
            return True
    return False


# -- figures and the min_score gate ---------------------------------------------------------
def scores(evaluations: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per evaluation name, the lowest score recorded (the gate and reports show the worst)."""
    out: dict[str, float] = {}
    for e in evaluations:
        score = e.get("score")
        if isinstance(score, int | float):
            out[e["name"]] = min(float(score), out.get(e["name"], math.inf))
    return out


def below(
    evaluations: Sequence[Mapping[str, Any]], limits: Mapping[str, float]
) -> list[tuple[str, float, float | None, list[int]]]:
    """(name, limit, lowest score or None if none was recorded, indexes of the calls whose
    score is below) for each `min_score` entry not met."""
    found = scores(evaluations)
    out = []
    for name, limit in limits.items():
        actual = found.get(name)
        if actual is not None and actual >= limit:
            continue
        low = [
            e["call"]
            for e in evaluations
            if e.get("name") == name
            and isinstance(e.get("score"), int | float)
            and e["score"] < limit
            and e.get("call") is not None
        ]
        out.append((name, limit, actual, low))
    return out


# -- DeepEval ------------------------------------------------------------------------------
def from_deepeval(metric: Any, test_case: Any = None) -> dict[str, Any]:
    """The `llmobs.evaluate` arguments for a DeepEval metric (any `BaseMetric`: `measure`,
    then `score`, `reason`, `success`, `threshold`, `error`, `__name__`), measuring it first
    when `test_case` is given. Only the metric's public attributes are read."""
    if test_case is not None:
        metric.measure(test_case)
    name = getattr(metric, "__name__", None) or type(metric).__name__
    score = getattr(metric, "score", None)
    error = getattr(metric, "error", None)
    success = getattr(metric, "success", None)
    label = None if success is None else ("pass" if success else "fail")
    reason = getattr(metric, "reason", None)
    return {
        "name": str(name),
        "score": score,
        "label": label,
        "explanation": str(error) if error else reason,
        "error_type": "_OTHER" if error else None,  # the convention's fallback error.type
    }
