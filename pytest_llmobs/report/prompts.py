"""`prompts.jsonl`: one record per LLM call, sampled, with content per the content mode.

Sampling is decided per call from a hash of the test id and the call's index, so the same
calls are kept in every run, in one process or under xdist. Calls from failed tests and
calls a check found responsible for a violation are always kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def sampled(nodeid: str, index: int, rate: float) -> bool:
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.blake2b(f"{nodeid}\x00{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def records(
    test: Mapping[str, Any], outcome: str, rate: float, run_id: str
) -> list[dict[str, Any]]:
    """The prompt-log records of one test's payload (content as the payload carries it)."""
    nodeid = str(test["nodeid"])
    out = []
    for call in test.get("calls") or []:
        index = int(call.get("index", 0))
        if outcome == "failed":
            why = "failed_test"
        elif call.get("violating"):
            why = "violation"
        elif sampled(nodeid, index, rate):
            why = "sampled"
        else:
            continue
        out.append(record(nodeid, call, why, run_id))
    return out


def record(nodeid: str, call: Mapping[str, Any], kept: str, run_id: str) -> dict[str, Any]:
    attrs = call.get("attributes") or {}
    content = call.get("content")
    usage = call.get("usage") or {}
    out: dict[str, Any] = {
        "run_id": run_id,
        "test_id": nodeid,
        "call_index": call.get("index"),
        "kept": kept,
        "context": call.get("context") or {},
        "conversation_id": attrs.get("gen_ai.conversation.id"),
        "user_action_id": attrs.get("user.action.id"),
        "trace_id": attrs.get("llmobs.trace_id"),
        "span_id": attrs.get("llmobs.span_id"),
        "provider": call.get("provider"),
        "operation": call.get("operation"),
        "model": call.get("model"),
        "url": call.get("url"),
        "stream": call.get("stream"),
        "attempt": call.get("attempt"),
        "source": call.get("source"),
        "started_at": call.get("started_at"),
        "parameters": (content or {}).get("params")
        or {"max_tokens": call.get("max_tokens"), "temperature": call.get("temperature")},
        "usage": {k: v for k, v in usage.items() if v is not None},
        "cost_usd": call.get("cost_usd"),
        "latency_s": call.get("duration_s"),
        "ttft_s": call.get("time_to_first_chunk_s") if call.get("stream") else None,
        "finish_reasons": call.get("finish_reasons") or [],
        "truncated": call.get("truncated"),
        "status_code": call.get("status_code"),
        "error": call.get("error"),
        "chaos_fault": attrs.get("llmobs.chaos.fault"),
        "violating": bool(call.get("violating")),
    }
    if content is not None:
        out["messages"] = content.get("messages")
        out["response"] = content.get("response")
    return out
