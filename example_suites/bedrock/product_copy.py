"""Product descriptions on Amazon Bedrock (boto3 `bedrock-runtime`, the Converse API).

`describe` asks once; `describe_streaming` streams the text to a callback as it arrives
(ConverseStream) and returns it with the stop reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODEL = "amazon.nova-lite-v1:0"
PROMPT = "Write a two-sentence product description for: {product}"


@dataclass
class Copy:
    text: str
    stop_reason: str


class CopyWriter:
    def __init__(self, bedrock: Any, model: str = MODEL) -> None:
        self.bedrock = bedrock  # boto3.client("bedrock-runtime")
        self.model = model

    def _messages(self, product: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"text": PROMPT.format(product=product)}]}]

    def describe(self, product: str) -> Copy:
        reply = self.bedrock.converse(
            modelId=self.model,
            messages=self._messages(product),
            inferenceConfig={"maxTokens": 200, "temperature": 0.3},
        )
        text = "".join(part.get("text", "") for part in reply["output"]["message"]["content"])
        return Copy(text, reply["stopReason"])

    def describe_streaming(self, product: str, on_text: Callable[[str], None]) -> Copy:
        reply = self.bedrock.converse_stream(
            modelId=self.model,
            messages=self._messages(product),
            inferenceConfig={"maxTokens": 200},
        )
        pieces, stop_reason = [], ""
        for event in reply["stream"]:
            if "contentBlockDelta" in event:
                piece = event["contentBlockDelta"]["delta"].get("text", "")
                on_text(piece)
                pieces.append(piece)
            elif "messageStop" in event:
                stop_reason = event["messageStop"]["stopReason"]
        return Copy("".join(pieces), stop_reason)
