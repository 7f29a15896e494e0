"""Semantic context and user actions: baggage stamped on spans and LLMCalls, across threads,
asyncio tasks and an HTTP hop (traceparent/baggage through a Starlette TestClient)."""

from __future__ import annotations

import pytest
from inner import INNER_ARGS

from pytest_llmobs.testing import ProviderServer

HEADER = """
import asyncio, os, threading
import anthropic, openai, pytest
from concurrent.futures import ThreadPoolExecutor
from opentelemetry import baggage, context as otel_context, trace
import pytest_llmobs
from pytest_llmobs.context import ContextThreadPoolExecutor, bind

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
tracer = trace.get_tracer("app")


def oai():
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0)


def chat(model="gpt-4o"):
    return oai().chat.completions.create(model=model, messages=MESSAGES)
"""


def run(
    pytester: pytest.Pytester,
    body: str,
    *args: str,
    passed: int = 1,
    failed: int = 0,
    subprocess: bool = False,
) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runner(*INNER_ARGS, *args)
    result.assert_outcomes(passed=passed, failed=failed)
    return result


CONTEXT_TESTS = """
def test_stamps_spans_and_calls(llmobs):
    with llmobs.context(conversation_id="conv-1", tenant="acme") as entries:
        assert entries == {"gen_ai.conversation.id": "conv-1", "llmobs.context.tenant": "acme"}
        with tracer.start_as_current_span("app.turn"):
            chat()
        # anthropic 2.x parents our span to its own through traceparent (no baggage there):
        # the call's attributes still carry the context, and so does our span
        anthropic.Anthropic(base_url=URL, max_retries=0).messages.create(
            model="claude-test", max_tokens=20, messages=MESSAGES)
    chat("outside")
    inside = [c for c in llmobs.calls if c.request_model != "outside"]
    assert [c.attributes["gen_ai.conversation.id"] for c in inside] == ["conv-1", "conv-1"]
    assert all(c.attributes["llmobs.context.tenant"] == "acme" for c in inside)
    [outside] = llmobs.calls_by("conversation_id")[None]
    assert outside.request_model == "outside"
    names = ["app.turn", "chat gpt-4o", "chat claude-test"]
    names += [s.name for s in llmobs.find_spans("anthropic.messages.create")]  # anthropic 2.x
    for name in names:
        [span] = llmobs.find_spans(name)
        assert span.attributes["gen_ai.conversation.id"] == "conv-1", name
    llmobs.assert_context_propagated("conversation_id", "tenant", under="app.turn")

def test_threads_need_binding_tasks_do_not(llmobs):
    with pytest_llmobs.context(conversation_id="conv-2"):
        t = threading.Thread(target=bind(chat), args=("bound-thread",))
        t.start(); t.join()
        with ContextThreadPoolExecutor(2) as pool:
            list(pool.map(chat, ["pool-1", "pool-2"]))
        with ThreadPoolExecutor(1) as plain:
            plain.submit(chat, "plain-pool").result()
    groups = llmobs.calls_by("conversation_id")
    assert sorted(c.request_model for c in groups["conv-2"]) == [
        "bound-thread", "pool-1", "pool-2"]
    assert [c.request_model for c in groups[None]] == ["plain-pool"]

async def test_asyncio_tasks(llmobs):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)

    async def turn(conversation):
        with llmobs.context(conversation_id=conversation):
            await asyncio.gather(*[client.chat.completions.create(
                model=f"{conversation}-{i}", messages=MESSAGES) for i in range(3)])

    await asyncio.gather(turn("a"), turn("b"))
    groups = llmobs.calls_by("conversation_id")
    assert sorted(c.request_model for c in groups["a"]) == ["a-0", "a-1", "a-2"]
    assert sorted(c.request_model for c in groups["b"]) == ["b-0", "b-1", "b-2"]
    llmobs.assert_context_propagated()

def test_stages_and_plain_baggage(llmobs):
    with llmobs.context(conversation_id="conv-3"):
        for stage in ["retrieve", "rerank", "answer"]:
            with llmobs.context(stage=stage):
                chat(f"{stage}-model")
        with llmobs.context(stage=None):
            chat("no-stage")
    token = otel_context.attach(baggage.set_baggage("session.id", "s-9"))
    try:
        chat("app-baggage")
    finally:
        otel_context.detach(token)
    stages = llmobs.calls_by("stage")
    assert list(stages) == ["retrieve", "rerank", "answer", None]
    assert [c.request_model for c in stages["rerank"]] == ["rerank-model"]
    assert all(c.attributes["gen_ai.conversation.id"] == "conv-3"
               for c in llmobs.calls[:4])
    [span] = llmobs.find_spans("chat app-baggage")
    assert span.attributes["session.id"] == "s-9"
    assert llmobs.calls[-1].attributes["session.id"] == "s-9"
"""


def test_context_stamping(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    run(pytester, CONTEXT_TESTS, passed=4)


def test_context_under_xdist(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    run(pytester, CONTEXT_TESTS, "-n", "2", passed=4, subprocess=True)


def test_assert_context_propagated_names_the_spans(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    result = run(
        pytester,
        """
def test_lost_in_a_thread(llmobs):
    with llmobs.context(conversation_id="conv-4"):
        with tracer.start_as_current_span("agent.run"):
            chat("kept")
            worker = threading.Thread(target=chat, args=("lost",))  # no bind(): context lost
            worker.start(); worker.join()
    llmobs.assert_context_propagated("gen_ai.conversation.id")

def test_all_spans_scope(llmobs):
    with tracer.start_as_current_span("agent.run"):
        with llmobs.context(conversation_id="conv-5"):
            chat()
    llmobs.assert_context_propagated(scope="all")

def test_nothing_to_check(llmobs):
    llmobs.assert_context_propagated()
""",
        passed=0,
        failed=3,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_lost_in_a_thread _*",
            "E *AssertionError: gen_ai.conversation.id is missing on 1 of 2 LLM spans:",
            "E *  - chat lost  (span *)",
            "E *  (present on 1, with value(s) conv-4)",
            "E *threads need pytest_llmobs.context.bind(...) or ContextThreadPoolExecutor*",
            "*_ test_all_spans_scope _*",
            "E *gen_ai.conversation.id is missing on 1 of 2 spans:",
            "E *  - agent.run  (span *)",
            "*_ test_nothing_to_check _*",
            "E *no LLM spans to check: the test captured none",
        ]
    )


def test_user_action_stamps_everything_inside(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(
        pytester,
        """
def test_action(llmobs):
    with llmobs.user_action("checkout.submit", id="act-1", cart="c-7") as action:
        chat()
    with llmobs.user_action("search.query") as other:
        chat("gpt-4o-mini")
    first, second = llmobs.calls
    assert first.attributes["user.action.name"] == "checkout.submit"
    assert first.attributes["user.action.id"] == "act-1"
    assert first.attributes["user.action.cart"] == "c-7"
    assert second.attributes["user.action.name"] == "search.query"
    assert len(other.id) == 16 and second.attributes["user.action.id"] == other.id
    # traced back to the action: same trace, the action's span is the parent
    assert first.attributes["llmobs.trace_id"] == action.trace_id
    assert second.attributes["llmobs.trace_id"] == other.trace_id != action.trace_id
    [action_span] = llmobs.find_spans("checkout.submit")
    assert action_span.attributes["user.action.id"] == "act-1"
    [chat_span] = llmobs.find_spans("chat gpt-4o")
    assert chat_span.parent.span_id == action_span.context.span_id
    assert trace.format_span_id(chat_span.context.span_id) == first.attributes["llmobs.span_id"]
    llmobs.assert_trace({"checkout.submit": ["chat gpt-4o"], "search.query": ["chat *"]})
    assert list(llmobs.calls_by("user.action.name")) == ["checkout.submit", "search.query"]

def test_without_span(llmobs):
    with llmobs.user_action("page.load", span=False) as action:
        chat()
    assert action.trace_id is None and llmobs.find_spans("page.load") == []
    assert llmobs.calls[0].attributes["user.action.name"] == "page.load"
""",
        passed=2,
    )


def test_traceparent_links_frontend_event_through_test_client(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    run(
        pytester,
        """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from pytest_llmobs import TraceContextMiddleware

def checkout_sync(request):  # sync endpoints run in a worker thread
    reply = chat()
    return JSONResponse({"text": reply.choices[0].message.content})

async def checkout_async(request):
    client = openai.AsyncOpenAI(base_url=URL + "/v1", max_retries=0)
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return JSONResponse({"text": reply.choices[0].message.content})

app = Starlette(routes=[Route("/checkout", checkout_sync, methods=["POST"]),
                        Route("/checkout-async", checkout_async, methods=["POST"])])
app.add_middleware(TraceContextMiddleware)

def test_link(llmobs):
    client = TestClient(app)
    with llmobs.user_action("checkout.submit", id="click-42") as action:
        with tracer.start_as_current_span("frontend.click") as click:
            assert client.post("/checkout", headers=action.headers()).status_code == 200
            assert client.post("/checkout-async", headers=action.headers()).status_code == 200
    client.post("/checkout")  # no headers: a trace of its own, no action
    linked, linked_async, unlinked = llmobs.calls
    for call in (linked, linked_async):
        assert call.attributes["user.action.name"] == "checkout.submit"
        assert call.attributes["user.action.id"] == "click-42"
        assert call.attributes["llmobs.trace_id"] == action.trace_id
    assert "user.action.name" not in unlinked.attributes
    assert unlinked.attributes["llmobs.trace_id"] != action.trace_id
    llmobs.assert_trace({"checkout.submit": {"frontend.click": {
        "POST /checkout": {"chat gpt-4o": {"attrs": {"user.action.id": "click-42"}}},
        "POST /checkout-async": ["chat gpt-4o-mini"]}}}, mode="subset")
    [server] = llmobs.find_spans("POST /checkout", user__action__id="click-42")
    assert server.attributes["http.response.status_code"] == 200
    assert server.parent.span_id == click.get_span_context().span_id
    llmobs.assert_context_propagated("user.action.name", under="checkout.submit", scope="all")

def test_middleware_without_server_span(llmobs):
    plain = Starlette(routes=[Route("/checkout", checkout_sync, methods=["POST"])])
    plain.add_middleware(TraceContextMiddleware, server_span=False)
    with tracer.start_as_current_span("frontend.click"):
        with pytest_llmobs.context(conversation_id="conv-9"):
            headers = pytest_llmobs.trace_headers()
    assert set(headers) == {"traceparent", "baggage"}
    TestClient(plain).post("/checkout", headers=headers)
    llmobs.assert_trace({"frontend.click": ["chat gpt-4o"]})
    assert llmobs.calls[0].attributes["gen_ai.conversation.id"] == "conv-9"
""",
        passed=2,
    )
