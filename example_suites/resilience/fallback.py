"""An answer service that prefers OpenAI and falls back to Anthropic.

OpenAI gets one retry (the SDK's own, honouring `retry-after`); when it still fails — a
429 or 5xx, a dropped connection, a stream that breaks off or ends without its finish
reason — the same conversation goes to Anthropic, whose SDK retries a 529 by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import anthropic
import httpx2
import openai


@dataclass
class Result:
    text: str
    provider: str


class IncompleteAnswer(Exception):
    """The stream ended without a finish reason: the text may be cut."""


@dataclass
class AnswerService:
    primary: openai.OpenAI
    fallback: anthropic.Anthropic
    primary_model: str = "gpt-4o-mini"
    fallback_model: str = "claude-3-5-haiku-latest"

    def answer(self, question: str) -> Result:
        messages = [{"role": "user", "content": question}]
        try:
            return Result(self._openai(messages), "openai")
        except (openai.APIError, httpx2.TransportError, IncompleteAnswer):
            reply = self.fallback.messages.create(
                model=self.fallback_model,
                max_tokens=300,
                messages=messages,
            )
            return Result("".join(b.text for b in reply.content if b.type == "text"), "anthropic")

    def _openai(self, messages: list[dict[str, str]]) -> str:
        stream = self.primary.chat.completions.create(
            model=self.primary_model,
            messages=messages,
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},  # token counts (and cost) for streams
        )
        pieces, finish = [], None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        if finish != "stop":
            raise IncompleteAnswer(f"stream ended with finish_reason={finish!r}")
        return "".join(pieces)
