"""Synthetic LLM traffic for load benchmarks and tests: the same interactions written as a
vcrpy YAML cassette and as an llmobs cassette (half chat completions, half SSE streams,
shaped like real OpenAI traffic)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .format import Interaction, dumps_document, encode_body, encode_chunk

_WORDS = tuple(
    [
        "the",
        "model",
        "answers",
        "questions",
        "about",
        "invoices",
        "refunds",
        "shipping",
        "orders",
        "accounts",
        "and",
        "returns",
        "with",
        "short",
        "factual",
        "sentences",
        "citing",
        "the",
        "policy",
        "section",
        "it",
        "used",
    ]
)

_REQUEST_HEADERS = {
    "accept": ["application/json"],
    "accept-encoding": ["gzip, deflate"],
    "authorization": ["Bearer <redacted>"],
    "connection": ["keep-alive"],
    "content-type": ["application/json"],
    "host": ["api.openai.com"],
    "user-agent": ["OpenAI/Python 3.57.0"],
    "x-stainless-arch": ["x64"],
    "x-stainless-async": ["false"],
    "x-stainless-lang": ["python"],
    "x-stainless-os": ["Linux"],
    "x-stainless-package-version": ["3.57.0"],
    "x-stainless-retry-count": ["0"],
    "x-stainless-runtime": ["CPython"],
    "x-stainless-runtime-version": ["3.11.7"],
}


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def traffic(n: int, seed: int = 7) -> list[tuple[dict[str, Any], dict[str, Any], bool]]:
    """(request body, response body or chunk list, streamed?) for n calls."""
    rng = random.Random(seed)
    out: list[tuple[dict[str, Any], dict[str, Any], bool]] = []
    for i in range(n):
        stream = i % 2 == 1
        request: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a support assistant. " + _text(rng, 40)},
                {"role": "user", "content": f"question {i}: " + _text(rng, 30)},
            ],
            "temperature": 0.2,
        }
        if stream:
            request["stream"] = True
        answer = _text(rng, 40 if stream else 60)
        response: dict[str, Any] = {
            "id": f"chatcmpl-{i:08d}",
            "object": "chat.completion.chunk" if stream else "chat.completion",
            "created": 1700000000 + i,
            "model": "gpt-4o-mini-2024-07-18",
            "answer": answer,
        }
        out.append((request, response, stream))
    return out


def _sse_chunks(response: dict[str, Any]) -> list[bytes]:
    words = response["answer"].split()
    base = {k: response[k] for k in ("id", "object", "created", "model")}
    chunks = []
    for j in range(0, len(words), 2):
        delta = {"content": " ".join(words[j : j + 2]) + " "}
        event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        chunks.append(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    chunks.append(b"data: " + json.dumps(final, separators=(",", ":")).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def _json_body(response: dict[str, Any]) -> bytes:
    body = {
        **{k: response[k] for k in ("id", "object", "created", "model")},
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response["answer"]},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 90, "completion_tokens": 60, "total_tokens": 150},
    }
    return json.dumps(body, indent=2).encode()


def _response_headers(stream: bool) -> dict[str, list[str]]:
    return {
        "content-type": ["text/event-stream; charset=utf-8" if stream else "application/json"],
        "openai-processing-ms": ["412"],
        "openai-version": ["2020-10-01"],
        "x-request-id": ["req_0123456789abcdef"],
        "x-ratelimit-limit-requests": ["10000"],
        "x-ratelimit-remaining-requests": ["9999"],
    }


URL = "https://api.openai.com/v1/chat/completions"


def write_llmobs(path: Path, n: int, url: str = URL) -> None:
    interactions: list[Interaction] = []
    for request, response, stream in traffic(n):
        stored_request = {
            "method": "POST",
            "uri": url,
            "headers": _REQUEST_HEADERS,
            "body": {"json": request},
        }
        stored: dict[str, Any] = {"status": 200, "reason": "OK"}
        stored["headers"] = _response_headers(stream)
        if stream:
            chunks = _sse_chunks(response)
            stored["stream"] = [
                encode_chunk(0.3 + 0.02 * j, chunk, "sse") for j, chunk in enumerate(chunks)
            ]
            stored["timing"] = {"headers": 0.29, "end": 0.3 + 0.02 * len(chunks)}
        else:
            body = _json_body(response)
            stored["body"] = encode_body(body)
            stored["timing"] = {"headers": 0.61, "chunks": [[0.61, len(body)]], "end": 0.61}
        interactions.append((stored_request, stored))
    write_atomic(path, dumps_document(interactions))


def write_vcrpy(path: Path, n: int, url: str = URL) -> None:
    """The same traffic as vcrpy would have saved it (bodies buffered, no timing)."""
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    requests, responses = [], []
    for request, response, stream in traffic(n):
        headers = {k: v[0] for k, v in _REQUEST_HEADERS.items()}
        requests.append(Request("POST", url, json.dumps(request), headers))
        body = b"".join(_sse_chunks(response)) if stream else _json_body(response)
        responses.append(
            {
                "status": {"code": 200, "message": "OK"},
                "headers": _response_headers(stream),
                "body": {"string": body},
            }
        )
    path.write_text(serialize({"requests": requests, "responses": responses}, yamlserializer))
