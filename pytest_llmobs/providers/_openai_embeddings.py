"""OpenAI embeddings (`POST …/embeddings`): one JSON body, input usage only."""

from __future__ import annotations

from ..calls import LLMCall, Usage
from ..intercept.exchange import Exchange
from ._common import apply_http_error, body_for_record, body_json, check_body
from ._json import JSONObject, integer, nonempty, obj


def parse_embeddings(call: LLMCall, exchange: Exchange, request: JSONObject) -> None:
    """Fill `call` from an embeddings response (the request is never streamed)."""
    body = body_json(exchange)
    call.response_body = body_for_record(exchange, body)
    apply_http_error(call, exchange, body)
    check_body(call, exchange, body)
    data = obj(body)
    call.response_model = nonempty(data.get("model"))
    usage = obj(data.get("usage"))
    if usage:
        call.usage = Usage(
            input_tokens=integer(usage.get("prompt_tokens")),
            total_tokens=integer(usage.get("total_tokens")),
        )
