"""A streaming support chatbot on Anthropic.

It streams each answer to the user as it arrives, keeps the conversation history, and
deals with the two ways an answer can end early: a stream that stops without its
`message_stop` (asked again) and an answer cut at `max_tokens` (continued: the partial
answer goes back as the start of the assistant's turn and the model carries on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic

SYSTEM = "You are the support assistant of Acme Audio. Be brief and friendly."


@dataclass
class Turn:
    text: str
    attempts: int = 1
    continued: bool = False


@dataclass
class SupportBot:
    client: anthropic.Anthropic
    model: str = "claude-3-5-haiku-latest"
    max_tokens: int = 300
    history: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, question: str, on_text: Callable[[str], None] = lambda _: None) -> Turn:
        messages = [*self.history, {"role": "user", "content": question}]
        turn = Turn("")
        for attempt in range(1, 3):
            text, stop_reason = self._stream(messages, on_text)
            turn.attempts = attempt
            if stop_reason is not None:  # None: the stream ended without message_stop
                break
        else:
            raise RuntimeError("the answer stream broke off twice")
        if stop_reason == "max_tokens":  # cut short: let the model finish its sentence
            prefix = text
            more, _ = self._stream([*messages, {"role": "assistant", "content": prefix}], on_text)
            text, turn.continued = prefix + more, True
        turn.text = text
        self.history = [*messages, {"role": "assistant", "content": text}]
        return turn

    def _stream(
        self, messages: list[dict[str, Any]], on_text: Callable[[str], None]
    ) -> tuple[str, str | None]:
        pieces = []
        with self.client.messages.stream(
            model=self.model,
            max_tokens=self.max_tokens,
            system=SYSTEM,
            messages=messages,
        ) as stream:
            for piece in stream.text_stream:
                on_text(piece)
                pieces.append(piece)
            final = stream.get_final_message()
        return "".join(pieces), final.stop_reason
