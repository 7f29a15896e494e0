"""A help-centre assistant: retrieve → rerank → answer, with an order-lookup tool.

Plain application code: the official `openai` SDK and OpenTelemetry only (spans for the
pipeline steps, baggage for the step name). Nothing here knows about pytest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import openai
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

tracer = trace.get_tracer("help_center")

ARTICLES = {
    "refunds": "Refunds are accepted within 30 days of delivery, in the original packaging.",
    "shipping": "Standard shipping takes 3 to 5 business days; express ships the next day.",
    "warranty": "Every device has a two-year warranty covering manufacturing defects.",
    "accounts": "Reset your password from the sign-in page with the link we email you.",
}

LOOKUP_ORDER = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order's status by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


@dataclass
class Answer:
    text: str
    source: str
    tool_calls: list[str] = field(default_factory=list)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the pipeline step in the OpenTelemetry baggage: every span (and LLM call)
    inside carries `rag.stage`, so traces and reports can be grouped by step."""
    token = otel_context.attach(baggage.set_baggage("rag.stage", name))
    try:
        with tracer.start_as_current_span(f"rag.{name}"):
            yield
    finally:
        otel_context.detach(token)


class HelpCenter:
    def __init__(
        self,
        client: openai.OpenAI,
        *,
        chat_model: str = "gpt-4o-mini",
        embedding_model: str = "text-embedding-3-small",
    ) -> None:
        self.client = client
        self.chat_model = chat_model
        self.embedding_model = embedding_model
        self._vectors: dict[str, list[float]] = {}

    def _embed(self, texts: list[str]) -> list[list[float]]:
        reply = self.client.embeddings.create(model=self.embedding_model, input=texts)
        return [item.embedding for item in reply.data]

    def retrieve(self, question: str, k: int = 3) -> list[str]:
        """The k articles closest to the question (the corpus is embedded once)."""
        if not self._vectors:
            vectors = self._embed(list(ARTICLES.values()))
            self._vectors = dict(zip(ARTICLES, vectors, strict=True))
        [query] = self._embed([question])
        ranked = sorted(self._vectors, key=lambda name: -_cosine(query, self._vectors[name]))
        return ranked[:k]

    def rerank(self, question: str, candidates: list[str]) -> str:
        """Let the model pick the one article that answers the question (a forced tool
        call whose argument can only be one of the candidates)."""
        passages = "\n".join(f"[{name}] {ARTICLES[name]}" for name in candidates)
        pick = {
            "type": "function",
            "function": {
                "name": "pick_article",
                "parameters": {
                    "type": "object",
                    "properties": {"article": {"type": "string", "enum": candidates}},
                    "required": ["article"],
                },
            },
        }
        reply = self.client.chat.completions.create(
            model=self.chat_model,
            messages=[{"role": "user", "content": f"Question: {question}\n\n{passages}"}],
            tools=[pick],
            tool_choice={"type": "function", "function": {"name": "pick_article"}},
            max_tokens=50,
        )
        [call] = reply.choices[0].message.tool_calls or []
        return str(json.loads(call.function.arguments)["article"])

    def respond(self, question: str, article: str, max_rounds: int = 3) -> Answer:
        """Answer from the article. The model must look the order up first (a tool call);
        tool results go back until it answers in text."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"Answer from this article: {ARTICLES[article]}"},
            {"role": "user", "content": question},
        ]
        used: list[str] = []
        for round_ in range(max_rounds):
            reply = self.client.chat.completions.create(
                model=self.chat_model,
                messages=messages,
                tools=[LOOKUP_ORDER],
                tool_choice="required" if round_ == 0 else "auto",
                max_tokens=200,
            )
            message = reply.choices[0].message
            if not message.tool_calls:
                return Answer(message.content or "", article, used)
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                used.append(call.function.name)
                args = json.loads(call.function.arguments)
                result = {"order_id": args.get("order_id"), "status": "delivered 12 days ago"}
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
        raise RuntimeError(f"no answer after {max_rounds} rounds of tool calls")

    def answer(self, question: str) -> Answer:
        with tracer.start_as_current_span("rag.answer"):
            with stage("retrieve"):
                candidates = self.retrieve(question)
            with stage("rerank"):
                article = self.rerank(question, candidates)
            with stage("respond"):
                return self.respond(question, article)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)
