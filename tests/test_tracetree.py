"""Trace structure: expected trees in four match modes, side-by-side failures, snapshots."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from pytest_llmobs import Range, Span
from pytest_llmobs.snapshots import SnapshotTarget, check_snapshot, dumps, span_shape
from pytest_llmobs.testing import ProviderServer
from pytest_llmobs.tracetree import compile_spec, match_trace, render_forest

# -- synthetic spans -----------------------------------------------------------------------


class Trace:
    """Builds finished spans with a private provider: `with t("name", attr=1): ...`."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("test")

    @contextmanager
    def __call__(
        self, name: str, kind: SpanKind = SpanKind.INTERNAL, **attrs: Any
    ) -> Iterator[None]:
        with self.tracer.start_as_current_span(
            name, kind=kind, attributes={k.replace("__", "."): v for k, v in attrs.items()}
        ) as span:
            yield
            if attrs.get("error__type"):
                span.set_status(Status(StatusCode.ERROR))

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def rag_trace() -> Trace:
    """rag.answer
    |-- rag.retrieve
    |   `-- embeddings text-embedding-3-small
    |-- chat gpt-4o          (5 output tokens)
    `-- chat gpt-4o-mini     (50 output tokens)"""
    t = Trace()
    with t("rag.answer", gen_ai__conversation__id="c-1"):
        with (
            t("rag.retrieve"),
            t("embeddings text-embedding-3-small", kind=SpanKind.CLIENT, server__port=1234),
        ):
            pass
        with t(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            gen_ai__request__model="gpt-4o",
            gen_ai__usage__output_tokens=5,
            gen_ai__response__finish_reasons=("stop",),
        ):
            pass
        with t(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            gen_ai__request__model="gpt-4o-mini",
            gen_ai__usage__output_tokens=50,
            gen_ai__response__id="chatcmpl-123",
        ):
            pass
    return t


SAME = {"rag.answer": {"rag.retrieve": ["embeddings *"], "chat *": 2}}
REORDERED = {"rag.answer": {"chat *": 2, "rag.retrieve": ["embeddings *"]}}
PART = {"rag.answer": ["chat gpt-4o-mini"]}
MORE = {"rag.answer": {"rag.retrieve": ["embeddings *"], "chat *": 2, "rerank": {}}}


@pytest.mark.parametrize(
    ("expected", "passes"),
    [
        (SAME, {"strict", "unordered", "subset", "superset"}),
        (REORDERED, {"unordered", "subset", "superset"}),
        (PART, {"subset"}),
        (MORE, {"superset"}),
    ],
    ids=["same", "reordered", "part", "more"],
)
@pytest.mark.parametrize("mode", ["strict", "unordered", "subset", "superset"])
def test_mode_matrix(expected: Any, passes: set[str], mode: Any) -> None:
    mismatch = match_trace(expected, rag_trace().spans, mode)
    assert (mismatch is None) == (mode in passes), mismatch


def test_strict_failure_shows_both_trees_side_by_side() -> None:
    mismatch = match_trace(REORDERED, rag_trace().spans, "strict")
    assert mismatch is not None
    lines = mismatch.message.splitlines()
    assert lines[0] == (
        "trace does not match the expected tree (mode=strict): "
        "under 'rag.answer': expected 'chat *', got 'rag.retrieve'"
    )
    table = "\n".join(lines[2:])
    assert table == (
        "   expected             |    actual\n"
        "------------------------+---------------------------------------------\n"
        "   rag.answer           |    rag.answer\n"
        ">> |-- chat * (x2)      | >> |-- rag.retrieve\n"
        "   `-- rag.retrieve     |    |   `-- embeddings text-embedding-3-small\n"
        "       `-- embeddings * |    |-- chat gpt-4o\n"
        "                        |    `-- chat gpt-4o-mini"
    )


def test_unordered_failure_too_many() -> None:
    mismatch = match_trace(
        {"rag.answer": ["rag.retrieve", "chat *"]}, rag_trace().spans, "unordered"
    )
    assert mismatch is not None
    assert "under 'rag.answer': unexpected span 'rag.retrieve'" not in mismatch.message
    # rag.retrieve has a child the expected leaf does not: that is the first difference
    assert mismatch.difference.reason == (
        "under 'rag.answer > rag.retrieve': unexpected span 'embeddings text-embedding-3-small'"
    )
    mismatch = match_trace(
        {"rag.answer": [{"rag.retrieve": ["embeddings *"]}, "chat *"]},
        rag_trace().spans,
        "unordered",
    )
    assert mismatch is not None
    assert mismatch.difference.reason == (
        "under 'rag.answer': one 'chat *' too many (expected 1, found 2)"
    )
    assert ">> `-- chat gpt-4o-mini" in mismatch.message


def test_subset_failure_missing_span() -> None:
    mismatch = match_trace({"rag.answer": ["rerank"]}, rag_trace().spans, "subset")
    assert mismatch is not None
    assert mismatch.difference.reason == "under 'rag.answer': expected 'rerank', found none"
    assert ">> `-- rerank" in mismatch.message
    assert ">> rag.answer" in mismatch.message  # where it should have been


def test_subset_roots_anchor_anywhere() -> None:
    spans = rag_trace().spans
    assert match_trace({"rag.retrieve": ["embeddings *"]}, spans, "subset") is None
    assert match_trace({"chat *": 2}, spans, "subset") is None
    mismatch = match_trace({"chat *": 3}, spans, "subset")
    assert mismatch is not None
    assert mismatch.difference.reason == "at the top level: expected 3 x 'chat *', found 2"


def test_superset_failure_unexpected_span() -> None:
    mismatch = match_trace({"rag.answer": {"chat *": (0, 5)}}, rag_trace().spans, "superset")
    assert mismatch is not None
    assert mismatch.difference.reason == (
        "under 'rag.answer': unexpected span 'rag.retrieve' (not in the expected tree)"
    )
    assert ">> |-- rag.retrieve" in mismatch.message


def test_attribute_predicates() -> None:
    spans = rag_trace().spans

    def ok(attrs: dict[str, Any]) -> bool:
        expected = {
            "rag.answer": {"rag.retrieve": ["embeddings *"], "chat *": {"count": 2, "attrs": attrs}}
        }
        return match_trace(expected, spans, "strict") is None

    assert ok({"gen_ai.request.model": re.compile(r"gpt-4o.*")})
    assert ok({"gen_ai.usage.output_tokens": (1, 100)})
    assert ok({"gen_ai.usage.output_tokens": Range(1, None)})
    assert ok({"gen_ai.usage.output_tokens": int})
    assert ok({"gen_ai.usage.output_tokens": lambda v: v % 5 == 0})
    assert ok({"gen_ai.request.model": ...})
    assert ok({"error.type": None})
    assert not ok({"gen_ai.usage.output_tokens": (1, 10)})
    assert not ok({"gen_ai.request.model": "gpt-4o"})
    assert not ok({"gen_ai.request.model": None})
    assert not ok({"missing.attribute": ...})
    assert not ok({"gen_ai.usage.output_tokens": lambda v: 1 / 0})
    # sequences compare as lists; a spec's own attributes with keyword arguments
    first = Span("chat gpt-4o", gen_ai__response__finish_reasons=["stop"])
    tree = Span("rag.answer", Span("rag.retrieve", "embeddings *"), first, "chat gpt-4o-mini")
    assert match_trace(tree, spans, "strict") is None


def test_attribute_failure_message() -> None:
    spec = Span(
        "rag.answer",
        Span("rag.retrieve", "embeddings *"),
        Span("chat *", count=2, attrs={"gen_ai.usage.output_tokens": Range(1, 10)}),
    )
    mismatch = match_trace(spec, rag_trace().spans, "strict")
    assert mismatch is not None
    assert mismatch.difference.reason == (
        "under 'rag.answer': expected 'chat *' (#2), got 'chat gpt-4o-mini': "
        "gen_ai.usage.output_tokens: expected in 1..10, got 50"
    )
    assert ">> `-- chat * (x2) [gen_ai.usage.output_tokens in 1..10]" in mismatch.message
    assert ">> `-- chat gpt-4o-mini" in mismatch.message


def test_counts() -> None:
    spans = rag_trace().spans
    for count, ok in [(2, True), ((1, 3), True), ((3, None), False), (Range(0, 1), False)]:
        expected = {"rag.answer": {"rag.retrieve": ["embeddings *"], "chat *": {"count": count}}}
        assert (match_trace(expected, spans, "strict") is None) is ok, count
    # optional spans: count 0..1 lets a span be there or not
    expected = {"rag.answer": {"rerank": (0, 1), "rag.retrieve": ["embeddings *"], "chat *": 2}}
    assert match_trace(expected, spans, "strict") is None
    # strict order with counts: a greedy glob must give spans back to a later sibling
    expected = {
        "rag.answer": {"rag.retrieve": ["embeddings *"], "chat *": (1, 2), "chat gpt-4o-mini": 1}
    }
    assert match_trace(expected, spans, "strict") is None


def test_spec_forms_and_errors() -> None:
    assert [s.name for s in compile_spec(["a", {"b": None, "c": 2}, Span("d")])] == list("abcd")
    [only] = compile_spec({"a": {"children": {"b": {}}, "attrs": {"k": 1}, "count": (0, 2)}})
    assert (only.name, [c.name for c in only.children], only.attrs) == ("a", ["b"], {"k": 1})
    assert str(only.count) == "0..2"
    with pytest.raises(TypeError, match="count must be"):
        Span("a", count="many")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max < min"):
        Span("a", count=(3, 1))
    with pytest.raises(TypeError, match="no parent span"):
        compile_spec(["a", ["b"]])
    with pytest.raises(TypeError, match="is not a span"):
        compile_spec(42)
    with pytest.raises(ValueError, match="strict, unordered, subset, superset"):
        match_trace("a", [], "loose")  # type: ignore[arg-type]


def test_empty_and_multiple_roots() -> None:
    assert match_trace([], [], "strict") is None
    mismatch = match_trace("a", [], "strict")
    assert mismatch is not None and "(no spans)" in mismatch.message
    t = Trace()
    with t("one"):
        pass
    with t("two"):
        pass
    assert match_trace(["one", "two"], t.spans, "strict") is None
    assert match_trace(["two", "one"], t.spans, "unordered") is None
    assert render_forest(t.spans) == "one\ntwo"


# -- snapshots -----------------------------------------------------------------------------


def test_snapshot_shape_is_stable() -> None:
    shape = span_shape(rag_trace().spans)
    [root] = shape["spans"]
    assert root["attributes"] == {"gen_ai.conversation.id": "<id>"}
    names = [child["name"] for child in root["children"]]
    assert names == ["chat gpt-4o", "chat gpt-4o-mini", "rag.retrieve"]  # canonical order
    mini = root["children"][1]
    assert mini["kind"] == "CLIENT"
    # tokens dropped, ids masked, model kept
    assert mini["attributes"] == {
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.id": "<id>",
    }
    assert root["children"][0]["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    embeddings = root["children"][2]["children"][0]
    assert "attributes" not in embeddings  # server.port dropped
    ordered = span_shape(rag_trace().spans, ordered=True)
    assert [c["name"] for c in ordered["spans"][0]["children"]] == [
        "rag.retrieve",
        "chat gpt-4o",
        "chat gpt-4o-mini",
    ]
    kept = span_shape(rag_trace().spans, keep=["gen_ai.usage.*"], drop=["gen_ai.request.*"])
    assert kept["spans"][0]["children"][1]["attributes"] == {
        "gen_ai.response.id": "<id>",
        "gen_ai.usage.output_tokens": 50,
    }
    assert dumps(shape) == dumps(span_shape(rag_trace().spans))  # run to run


def test_snapshot_files(tmp_path: Path) -> None:
    target = SnapshotTarget.for_test(tmp_path / "test_rag.py", "test_rag.py::TestX::test_y[a/b]")
    path = target.path()
    assert path == tmp_path / "__llmobs_snapshots__" / "test_rag" / "TestX.test_y[a_b].json"
    assert target.path().name == "TestX.test_y[a_b].1.json"
    assert target.path("after retry").name == "TestX.test_y[a_b].after_retry.json"

    shape = span_shape(rag_trace().spans)
    missing = check_snapshot(shape, path, update=False)
    assert missing.outcome == "missing" and missing.failed and not path.exists()
    assert "--llm-snapshot-update" in missing.message
    assert check_snapshot(shape, path, update=True).outcome == "created"
    assert json.loads(path.read_text()) == shape
    assert check_snapshot(shape, path, update=False).outcome == "matched"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    t = Trace()
    with t("rag.answer", gen_ai__conversation__id="c-2"):
        with t("chat gpt-4o", gen_ai__request__model="gpt-4o"):
            pass
        with t("chat gpt-4o-mini", gen_ai__request__model="gpt-4.1"):
            pass
    changed = check_snapshot(span_shape(t.spans), path, update=False)
    assert changed.outcome == "differs"
    assert changed.message.splitlines() == [
        f"trace does not match snapshot {path}",
        "  rag.answer > chat gpt-4o: attribute gen_ai.response.finish_reasons: removed ['stop']",
        "  rag.answer > chat gpt-4o: kind: removed 'CLIENT'",
        "  rag.answer > chat gpt-4o-mini: attribute gen_ai.request.model: "
        "'gpt-4o-mini' -> 'gpt-4.1'",
        "  rag.answer > chat gpt-4o-mini: attribute gen_ai.response.id: removed '<id>'",
        "  rag.answer > chat gpt-4o-mini: kind: removed 'CLIENT'",
        "  rag.answer: child span: removed span 'rag.retrieve' (+1 below)",
        "(run pytest with --llm-snapshot-update to accept the new trace)",
    ]
    assert check_snapshot(span_shape(t.spans), path, update=True).outcome == "updated"
    assert check_snapshot(span_shape(t.spans), path, update=False).outcome == "matched"
    path.write_text("{not json")
    broken = check_snapshot(shape, path, update=False)
    assert broken.outcome == "differs" and "cannot be read" in broken.message


# -- end to end: real SDKs against the local provider server --------------------------------

HEADER = """
import os
import openai, pytest
from opentelemetry import trace
from pytest_llmobs import Range, Span

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
tracer = trace.get_tracer("app")


def oai():
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0)


def agent(model="gpt-4o"):
    with tracer.start_as_current_span("agent.run"):
        with tracer.start_as_current_span("tool.search"):
            pass
        oai().chat.completions.create(model=model, messages=MESSAGES)
        # the app's own level: an SDK's span (anthropic 2.x has one) would make the tree
        # depend on the SDK release
        with tracer.start_as_current_span("agent.review"):
            oai().chat.completions.create(model="o3-mini", messages=MESSAGES)
"""


# What the app above produces.
TREE = """
EXPECTED = {"agent.run": {
    "tool.search": {},
    "chat gpt-4o": {"attrs": {"gen_ai.provider.name": "openai",
                              "gen_ai.usage.output_tokens": Range(1, 20)}},
    "agent.review": {"chat o3-mini": {}},
}}
"""


def test_assert_trace_end_to_end(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    pytester.makepyfile(
        test_inner=HEADER
        + TREE
        + """
@pytest.mark.parametrize("mode", ["strict", "unordered", "subset", "superset"])
def test_passes(llmobs, mode):
    agent()
    llmobs.assert_trace(EXPECTED, mode=mode)
    # subset: expected roots may sit anywhere, so this finds both chat spans
    llmobs.assert_trace(Span("chat *", count=2, attrs={"gen_ai.operation.name": "chat"}),
                        mode="subset")

def test_strict_fails(llmobs):
    agent()
    llmobs.assert_trace({"agent.run": ["chat gpt-4o", "tool.search",
                                       {"agent.review": ["chat o3-mini"]}]})

def test_unordered_fails(llmobs):
    agent(model="gpt-4o-mini")
    llmobs.assert_trace(EXPECTED, mode="unordered")

def test_subset_fails(llmobs):
    agent()
    llmobs.assert_trace({"agent.run": {"chat *": 3}}, mode="subset")

def test_superset_fails(llmobs):
    agent()
    llmobs.assert_trace({"agent.run": ["tool.search", "chat gpt-4o"]}, mode="superset")
"""
    )
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=4, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_strict_fails _*",
            "E *trace does not match the expected tree (mode=strict): under 'agent.run': "
            "expected 'chat gpt-4o', got 'tool.search'",
            "E *   expected * |    actual",
            "E *   agent.run * |    agent.run",
            "E *>> |-- chat gpt-4o * | >> |-- tool.search",
            "E *   |-- tool.search * |    |-- chat gpt-4o",
            "E *   `-- agent.review * |    `-- agent.review",
            "E *       `-- chat o3-mini |        `-- chat o3-mini",
            "*_ test_unordered_fails _*",
            "E *(mode=unordered): under 'agent.run': expected 'chat gpt-4o', found none; "
            "left over: 'chat gpt-4o-mini'",
            "E *>> |-- chat gpt-4o [gen_ai.provider.name='openai', * | >> |-- chat gpt-4o-mini",
            "*_ test_subset_fails _*",
            "E *(mode=subset): under 'agent.run': expected 3 x 'chat *', found 1",
            "E *>> `-- chat * (x3)*|    |-- tool.search",
            "*_ test_superset_fails _*",
            "E *(mode=superset): under 'agent.run': unexpected span "
            "'agent.review' (not in the expected tree)",
            "E * | >> `-- agent.review",
        ]
    )


def test_snapshot_create_compare_update(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        HEADER
        + """
def test_agent(llmobs):
    agent(model=os.environ.get("MODEL", "gpt-4o"))
    llmobs.assert_trace_snapshot()
"""
    )
    pytester.makepyfile(test_inner=body)
    snapshot = pytester.path / "__llmobs_snapshots__" / "test_inner" / "test_agent.json"

    missing = pytester.runpytest(*INNER_ARGS)
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(
        [
            "E *trace snapshot *test_agent.json does not exist.",
            "E *Run pytest with --llm-snapshot-update to create it*",
        ]
    )
    assert not snapshot.exists()

    pytester.runpytest(*INNER_ARGS, "--llm-snapshot-update").assert_outcomes(passed=1)
    golden = json.loads(snapshot.read_text())
    [root] = golden["spans"]
    assert root["name"] == "agent.run"
    chat = next(c for c in root["children"] if c["name"] == "chat gpt-4o")
    assert chat["attributes"]["gen_ai.request.model"] == "gpt-4o"
    assert "gen_ai.usage.input_tokens" not in chat["attributes"]
    assert "server.port" not in chat["attributes"]
    assert chat["attributes"]["gen_ai.response.id"] == "<id>"

    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)  # a second run compares equal

    monkeypatch.setenv("MODEL", "gpt-4.1")
    changed = pytester.runpytest(*INNER_ARGS)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(
        [
            "E *trace does not match snapshot *test_agent.json",
            "E *agent.run > chat gpt-4o: attribute gen_ai.request.model: 'gpt-4o' -> 'gpt-4.1'",
            "E *agent.run > chat gpt-4o: name: 'chat gpt-4o' -> 'chat gpt-4.1'",
            "E *(run pytest with --llm-snapshot-update to accept the new trace)",
        ]
    )
    pytester.makeini("[pytest]\nllm_snapshot_update = true\n")  # the ini twin
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)
    assert "chat gpt-4.1" in snapshot.read_text()


# -- descendants, every difference at once, status / kind / duration, normalised snapshots --
def test_descendant_operator_skips_the_sdk_span() -> None:
    t = Trace()
    with t("app.handle"):
        with t("anthropic.messages.create"), t("chat claude", kind=SpanKind.CLIENT):
            pass
        with t("tool.search"):
            pass
    spans = t.spans
    # direct parent/child fails, the descendant operator does not need the SDK level
    assert match_trace({"app.handle": ["chat *", "tool.search"]}, spans) is not None
    for mode in ("strict", "unordered", "subset", "superset"):
        assert match_trace({"app.handle": ["... chat *", "tool.search"]}, spans, mode) is None
        assert (
            match_trace(
                Span("app.handle", Span("chat *", descendant=True), Span("tool.search")),
                spans,
                mode,
            )
            is None
        )
    assert (
        match_trace({"app.handle": {"chat *": {"descendant": True}, "tool.search": 1}}, spans)
        is None
    )
    # it still checks what it names: the span's predicates and that it is below the parent
    mismatch = match_trace({"app.handle": ["... chat *", "tool.search", "... embeddings *"]}, spans)
    assert mismatch is not None
    assert mismatch.difference.reason == (
        "under 'app.handle' (any depth): expected 'embeddings *', found none"
    )
    assert (
        ">> |-- ... embeddings *" in mismatch.message
        or ">> `-- ... embeddings *" in mismatch.message
    )
    mismatch = match_trace(
        {"app.handle": [Span("... chat *", kind="INTERNAL"), "tool.search"]}, spans
    )
    assert mismatch is not None
    assert mismatch.difference.reason == (
        "under 'app.handle' (any depth): 'app.handle > anthropic.messages.create > chat claude': "
        "kind: expected INTERNAL, got CLIENT"
    )
    # the level it skips is not an extra span in strict mode; a real extra still is
    t = Trace()
    with t("app.handle"):
        with t("anthropic.messages.create"), t("chat claude", kind=SpanKind.CLIENT):
            pass
        with t("tool.search"), t("other"):
            pass
    mismatch = match_trace({"app.handle": ["... chat *", "tool.search"]}, t.spans, "unordered")
    assert mismatch is not None and "unexpected span 'other'" in mismatch.message


def test_every_difference_is_reported_with_the_tree() -> None:
    expected = {
        "rag.answer": {
            "rag.retrieve": ["embeddings other-model"],
            "chat gpt-4o": {"attrs": {"gen_ai.usage.output_tokens": Range(10, 20)}},
            "chat gpt-4o-mini": {},
            "rerank": {},
        }
    }
    mismatch = match_trace(expected, rag_trace().spans, "strict")
    assert mismatch is not None
    reasons = [d.reason for d in mismatch.differences]
    assert reasons == [
        "under 'rag.answer > rag.retrieve': expected 'embeddings other-model', "
        "got 'embeddings text-embedding-3-small'",
        "under 'rag.answer': expected 'chat gpt-4o', got 'chat gpt-4o': "
        "gen_ai.usage.output_tokens: expected in 10..20, got 5",
        "under 'rag.answer': expected 'rerank', found none",
    ]
    lines = mismatch.message.splitlines()
    assert lines[0].endswith("(mode=strict): 3 differences")
    assert lines[1:4] == [f"  {n}. {r}" for n, r in enumerate(reasons, 1)]
    marked = [line for line in lines if line.startswith(">>") or "| >>" in line]
    assert len(marked) == 4  # three expected lines and the two actual spans, rows shared
    for unordered in ("unordered",):
        m = match_trace(expected, rag_trace().spans, unordered)
        assert m is not None and len(m.differences) == 3, m


def test_status_kind_and_duration_predicates() -> None:
    t = Trace()
    with t("root"):
        with t("tool.search", error__type="Timeout"):
            pass
        with t("chat gpt-4o", kind=SpanKind.CLIENT):
            pass
    spans = t.spans
    good = Span(
        "root",
        Span("tool.search", status="error", duration_lt=5.0),
        Span("chat *", kind=SpanKind.CLIENT, status="UNSET", duration_gt=0.0),
        duration_lt=5.0,
    )
    assert match_trace(good, spans) is None
    assert (
        match_trace(
            {"root": {"tool.search": {"status": "ERROR"}, "chat *": {"kind": "CLIENT"}}}, spans
        )
        is None
    )
    mismatch = match_trace(
        Span(
            "root", Span("tool.search", status="OK"), Span("chat *", kind="SERVER", duration_lt=0.0)
        ),
        spans,
    )
    assert mismatch is not None
    assert [d.reason for d in mismatch.differences] == [
        "under 'root': expected 'tool.search', got 'tool.search': status: expected OK, got ERROR",
        "under 'root': expected 'chat *', got 'chat gpt-4o': kind: expected SERVER, got CLIENT",
    ]
    assert "tool.search [status=OK]" in mismatch.message
    slow = match_trace(Span("root", "tool.search", Span("chat *", duration_gt=60)), spans)
    assert slow is not None and re.search(
        r"duration: expected > 60s, got \d\.\d{6}s", slow.difference.reason
    )
    with pytest.raises(TypeError, match="status must be one of UNSET, OK, ERROR"):
        Span("x", status="failed")
    with pytest.raises(TypeError, match="duration_lt is a duration in seconds"):
        Span("x", duration_lt="1s")


def test_snapshots_normalise_ports_ids_and_timestamps() -> None:
    def shape(port: int, trace_id: str, when: str) -> dict[str, Any]:
        t = Trace()
        with t(
            "POST",
            kind=SpanKind.CLIENT,
            url__full=f"http://127.0.0.1:{port}/v1/chat/completions",
            server__address="127.0.0.1",
            http__request__header__traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
            app__started=when,
            note="kept: 12:30 and gpt-4o-2024-08-06",
        ):
            pass
        return span_shape(t.spans)

    first = shape(18080, "4bf92f3577b34da6a3ce929d0e0e4736", "2026-01-02T03:04:05.678Z")
    second = shape(18081, "0af7651916cd43dd8448eb211c80319c", "2026-02-03T04:05:06Z")
    assert dumps(first) == dumps(second)
    attrs = first["spans"][0]["attributes"]
    assert attrs["url.full"] == "http://127.0.0.1:<port>/v1/chat/completions"
    assert attrs["http.request.header.traceparent"] == "00-<id>-<id>-01"
    assert attrs["note"] == "kept: 12:30 and gpt-4o-2024-08-06"
    assert attrs["app.started"] == "<time>"  # no *time* in the key: the value says it
