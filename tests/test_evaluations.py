"""Evaluation results (`llmobs.evaluate`): the GenAI `gen_ai.evaluation.result` span event,
the `min_score` budget, scores in summary.json, JUnit and the report; the DeepEval adapter
over a stand-in metric of `BaseMetric`'s shape (DeepEval itself is not installed here)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from inner import INNER_ARGS

from pytest_llmobs.budgets import BudgetError, parse_budget
from pytest_llmobs.evaluations import below, from_deepeval, scores
from pytest_llmobs.testing import ProviderServer

SUITE = """
import os
import openai
import pytest
from opentelemetry import trace

URL = os.environ["LLM_URL"]
tracer = trace.get_tracer("app")


def ask():
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "what is pytest?"}]
    )


class ExactMatch:  # the shape of a DeepEval BaseMetric that needs no model
    __name__ = "Exact Match"

    def __init__(self, threshold):
        self.threshold = threshold
        self.score = self.reason = self.success = self.error = None

    def measure(self, test_case):
        self.score = 1.0 if test_case["actual"] == test_case["expected"] else 0.0
        self.success = self.score >= self.threshold
        self.reason = "same text" if self.success else "different text"
        return self.score


@pytest.mark.llm_budget(min_score={"faithfulness": 0.7})
def test_good(llmobs):
    with tracer.start_as_current_span("answer"):
        ask()
    llmobs.evaluate("faithfulness", score=0.9, label="faithful", explanation="cites the context")


@pytest.mark.llm_budget(min_score={"faithfulness": 0.7})
def test_bad(llmobs):
    ask()
    ask()
    llmobs.evaluate("faithfulness", score=0.4, call=0)
    llmobs.evaluate("faithfulness", score=0.95, call=llmobs.calls[1])


@pytest.mark.llm_budget(min_score={"relevance": 0.5})
def test_missing(llmobs):
    ask()


def test_deepeval(llmobs):
    answer = ask().choices[0].message.content
    metric = ExactMatch(threshold=0.5)
    llmobs.evaluate_deepeval(metric, {"actual": answer, "expected": answer})
    assert llmobs.evaluations[0].label == "pass"


def test_bad_argument(llmobs):
    ask()
    llmobs.evaluate("faithfulness", score="high")
"""


def _events(pytester: pytest.Pytester) -> dict[str, list[dict[str, Any]]]:
    """nodeid suffix → the gen_ai.evaluation.result events of its spans, attributes flat."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in (pytester.path / "llmobs-artifacts" / "traces.jsonl").read_text().splitlines():
        request = json.loads(line)
        for rs in request["resourceSpans"]:
            res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            name = res["test.case.name"]["stringValue"].split("::")[-1]
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for event in span.get("events") or []:
                        attrs = {
                            a["key"]: next(iter(a["value"].values())) for a in event["attributes"]
                        }
                        out.setdefault(name, []).append(
                            {"event": event["name"], "span": span["name"], **attrs}
                        )
    return out


def test_evaluations_end_to_end(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makepyfile(test_inner=SUITE)
    result = pytester.runpytest(*INNER_ARGS, "-rA")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*LLM checks failed for test_inner.py::test_bad*",
            "*min_score*faithfulness >= 0.7*faithfulness = 0.4*#1*",
            "*LLM checks failed for test_inner.py::test_missing*",
            "*min_score*relevance >= 0.5*missing*",
            "*no evaluation named 'relevance' was recorded*",
            "*EvaluationError: llmobs.evaluate('faithfulness'): score='high' must be a finite*",
        ]
    )
    events = _events(pytester)
    assert events["test_good"] == [
        {
            "event": "gen_ai.evaluation.result",
            "span": "chat gpt-4o-mini",
            "gen_ai.evaluation.name": "faithfulness",
            "gen_ai.evaluation.score.value": 0.9,
            "gen_ai.evaluation.score.label": "faithful",
            "gen_ai.evaluation.explanation": "cites the context",
            "gen_ai.response.id": events["test_good"][0]["gen_ai.response.id"],
        }
    ]
    assert events["test_good"][0]["gen_ai.response.id"]
    assert [e["gen_ai.evaluation.score.value"] for e in events["test_bad"]] == [0.4, 0.95]
    assert events["test_deepeval"][0]["gen_ai.evaluation.name"] == "Exact Match"
    assert events["test_deepeval"][0]["gen_ai.evaluation.score.label"] == "pass"
    assert events["test_deepeval"][0]["gen_ai.evaluation.explanation"] == "same text"

    summary = json.loads((pytester.path / "llmobs-artifacts" / "summary.json").read_text())
    good = summary["tests"]["test_inner.py::test_good"]
    assert good["evaluations"] == [
        {
            "name": "faithfulness",
            "score": 0.9,
            "label": "faithful",
            "explanation": "cites the context",
            "call": 0,
            "error_type": None,
        }
    ]
    assert good["calls"][0]["stage"] == "answer"
    bad = summary["tests"]["test_inner.py::test_bad"]
    assert [v["key"] for v in bad["violations"]] == ["min_score"]
    assert bad["violations"][0]["calls"] == [0]

    xml = ET.parse(pytester.path / "llmobs-artifacts" / "llmobs-junit.xml")
    props = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in xml.iter("testcase")
    }
    assert props["test_good"]["llmobs.score.faithfulness"] == "0.9"
    assert props["test_bad"]["llmobs.score.faithfulness"] == "0.4"  # the lowest one
    html = (pytester.path / "llmobs-artifacts" / "report.html").read_text()
    assert "cites the context" in html


def test_min_score_passes_at_the_limit_and_bad_markers_are_usage_errors(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(
        test_inner="""
import pytest

@pytest.mark.llm_budget(min_score={"faithfulness": 0.7})
def test_at_limit(llmobs):
    llmobs.evaluate("faithfulness", score=0.7)
"""
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)
    pytester.makepyfile(
        test_inner="""
import pytest

@pytest.mark.llm_budget(min_score={"faithfulness": "high"})
def test_bad_marker():
    pass
"""
    )
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_inner.py::test_bad_marker: llm_budget: min_score={'faithfulness': "
            "'high'} must be a dict of evaluation name to lowest score*"
        ]
    )


# -- pure parts --------------------------------------------------------------------------
def test_scores_and_below() -> None:
    evals = [
        {"name": "f", "score": 0.9, "call": 0},
        {"name": "f", "score": 0.5, "call": 1},
        {"name": "tone", "label": "polite", "score": None, "call": 1},
    ]
    assert scores(evals) == {"f": 0.5}
    assert below(evals, {"f": 0.6, "g": 0.1}) == [("f", 0.6, 0.5, [1]), ("g", 0.1, None, [])]
    assert below(evals, {"f": 0.5}) == []


def test_min_score_marker_validation() -> None:
    assert parse_budget({"min_score": {"f": 1}}).min_score == (("f", 1.0),)
    with pytest.raises(BudgetError, match=r"min_score=.*must be a dict of evaluation name"):
        parse_budget({"min_score": 0.7})


def test_from_deepeval_reads_the_public_metric_attributes() -> None:
    class Broken:
        __name__ = "Judge"
        score = None
        reason = None
        success = False
        error = "the judge model timed out"

    found = from_deepeval(Broken())
    assert found == {
        "name": "Judge",
        "score": None,
        "label": "fail",
        "explanation": "the judge model timed out",
        "error_type": "_OTHER",
    }
