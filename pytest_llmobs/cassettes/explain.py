"""Why a request got no recorded answer, in words a reviewer can act on.

Names the test, the cassette, the request (method, URL, model, an excerpt of the
messages) and shows a deepdiff against the closest recorded request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..words import count

if TYPE_CHECKING:
    from .cassette import LLMCassette, StoredRequest

MAX_CANDIDATES = 60
MAX_DIFF_LINES = 14
MAX_EXPLAINED = 3


@dataclass
class Miss:
    """A request the cassette could not answer (and that was not let through)."""

    nodeid: str | None
    path: Path
    mode: str
    reason: str  # no_match | played | missing | corrupt | placeholder
    request: StoredRequest | None = None
    cassette: LLMCassette | None = None
    error: str | None = None
    credential: str | None = None  # placeholder: the variable whose placeholder it carries
    count: int = 1
    key: Any = field(default=None, repr=False)

    def headline(self) -> str:
        if self.reason == "corrupt":
            return f"pytest-llmobs: {self.error}"
        if self.reason == "missing":
            return (
                f"pytest-llmobs: no cassette {self.path} to replay from (record mode '{self.mode}')"
            )
        if self.reason == "placeholder":
            return (
                f"pytest-llmobs: request blocked: it would reach the network with the replay "
                f"placeholder for {self.credential} (record mode '{self.mode}')"
            )
        if self.reason == "played":
            return (
                "pytest-llmobs: request made more often than it was recorded "
                f"(record mode '{self.mode}')"
            )
        return f"pytest-llmobs: request not in cassette (record mode '{self.mode}')"


def explain(misses: list[Miss]) -> str:
    """The failure text for one test phase: each distinct miss, the first ones in full."""
    parts = [_explain_one(miss) for miss in misses[:MAX_EXPLAINED]]
    rest = misses[MAX_EXPLAINED:]
    if rest:
        lines = [f"... and {count(len(rest), 'more request')} without a recorded answer:"]
        lines += [f"  {_request_line(m)}" for m in rest[:20]]
        if len(rest) > 20:
            lines.append(f"  ... {len(rest) - 20} more")
        parts.append("\n".join(lines))
    parts.append(_next_steps(misses))
    return "\n\n".join(parts)


def _explain_one(miss: Miss) -> str:
    lines = [miss.headline()]
    if miss.nodeid:
        lines.append(f"  test:      {miss.nodeid}")
    size = f" ({len(miss.cassette)} interactions)" if miss.cassette is not None else ""
    lines.append(f"  cassette:  {miss.path}{size}")
    if miss.request is not None:
        lines.append(f"  request:   {_request_line(miss)}")
        body = _body(miss.request)
        if isinstance(body, dict):
            model = body.get("model") or body.get("modelId")
            if model:
                lines.append(f"  model:     {model}")
            excerpt = message_excerpt(body)
            if excerpt:
                lines.append(f"  messages:  {excerpt}")
    if miss.reason == "played" and miss.cassette is not None and miss.request is not None:
        times = miss.cassette.times_recorded(miss.request)
        lines.append(
            f"  recorded {count(times, 'time')}, all already replayed in this test; a retry or a "
            "repeated call needs its own recording"
        )
    elif miss.reason == "no_match" and miss.cassette is not None and miss.request is not None:
        lines.extend(_closest(miss.cassette, miss.request))
    return "\n".join(lines)


def _request_line(miss: Miss) -> str:
    if miss.request is None:
        return "-"
    times = f"  (sent {miss.count} times)" if miss.count > 1 else ""
    return f"{miss.request.method} {miss.request.stored.get('uri', '')}{times}"


def _body(request: StoredRequest) -> Any:
    body = request.stored.get("body")
    return body.get("json") if isinstance(body, dict) else None


def message_excerpt(body: dict[str, Any], width: int = 60, most: int = 3) -> str:
    """`[role] text…` for the last few messages (chat, Responses, Anthropic, Gemini)."""
    messages = body.get("messages") or body.get("input") or body.get("contents")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list):
        prompt = body.get("prompt")
        return _short(prompt, width) if isinstance(prompt, str) else ""
    shown = []
    for message in messages[-most:]:
        if not isinstance(message, dict):
            continue
        role = message.get("role", "?")
        text = _text_of(message.get("content", message.get("parts")))
        shown.append(f"[{role}] {_short(text, width)}")
    more = f"({len(messages) - most} earlier) " if len(messages) > most else ""
    return more + " | ".join(shown)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                value = part.get("text") or part.get("content")
                texts.append(value if isinstance(value, str) else f"<{part.get('type', '?')}>")
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(texts)
    return "" if content is None else json.dumps(content, default=str)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return json.dumps(text if len(text) <= width else text[: width - 1] + "…", ensure_ascii=False)


def _closest(cassette: LLMCassette, request: StoredRequest) -> list[str]:
    from deepdiff import DeepDiff

    if not cassette.data:
        return ["  the cassette has no interactions"]
    incoming = cassette.normalize(request)
    recorded = [(i, cassette.normalize(r)) for i, (r, _) in enumerate(cassette.data)]
    same = [(i, n) for i, n in recorded if n.method == incoming.method and n.url == incoming.url]
    pool = same or recorded
    model = incoming.body.get("model") if isinstance(incoming.body, dict) else None
    if model is not None and len(pool) > MAX_CANDIDATES:
        pool.sort(key=lambda p: not _same_model(p[1].body, model))
    pool = pool[:MAX_CANDIDATES]
    best, best_distance = pool[0], float("inf")
    for candidate in pool:
        try:
            distance = DeepDiff(candidate[1].body, incoming.body, get_deep_distance=True).get(
                "deep_distance", 0.0 if candidate[1].body == incoming.body else 1.0
            )
        except Exception:
            distance = 1.0
        if distance < best_distance:
            best, best_distance = candidate, distance
    index, closest = best
    lines = [f"  closest recorded request (interaction {index + 1} of {len(cassette.data)}):"]
    vcrpy = cassette.vcrpy_differences(request, index)
    if vcrpy:  # a vcrpy-written interaction, matched the way vcrpy matches it
        match_on = [getattr(m, "__name__", str(m)) for m in cassette.rules.vcrpy_match_on or ()]
        lines.append(f"    matched the way vcrpy does (match_on: {', '.join(match_on)})")
        lines.append(f"    vcrpy's matchers that differ: {', '.join(vcrpy)}")
    if closest.method != incoming.method:
        lines.append(f"    method: recorded {closest.method}, sent {incoming.method}")
    if closest.url != incoming.url:
        lines.append(f"    url: recorded {closest.url}")
        lines.append(f"         sent     {incoming.url}")
    if closest.body == incoming.body:
        lines.append("    body: the same (ignoring " + ", ".join(cassette.rules.ignore_paths) + ")")
        return lines
    try:
        pretty = DeepDiff(closest.body, incoming.body, verbose_level=2).pretty()
    except Exception as exc:  # deepdiff on odd bodies: say so rather than fail the report
        pretty = f"(could not diff the bodies: {exc})"
    diff = [line for line in pretty.splitlines() if line.strip()]
    lines.append("    body differences (recorded → sent):")
    for line in diff[:MAX_DIFF_LINES]:
        lines.append("      " + (line if len(line) <= 220 else line[:219] + "…"))
    if len(diff) > MAX_DIFF_LINES:
        lines.append(f"      ... {len(diff) - MAX_DIFF_LINES} more differences")
    return lines


def _same_model(body: Any, model: Any) -> bool:
    return isinstance(body, dict) and body.get("model") == model


def _next_steps(misses: list[Miss]) -> str:
    names = [m.credential for m in misses if m.reason == "placeholder" and m.credential]
    if names:
        return (
            f"next: set {', '.join(dict.fromkeys(names))} to record or to call the provider; "
            "pytest-llmobs supplies a placeholder only so that SDKs can be built for a replay "
            "(record mode none, llm_allow_hosts on this machine only)"
        )
    if any(m.reason == "corrupt" for m in misses):
        return (
            "next: fix the file (it was left untouched), or delete it and record again with "
            "--llm-record-mode=once"
        )
    if any(m.reason == "missing" for m in misses):
        return (
            "next: record it with --llm-record-mode=once (then commit the cassette), or run "
            "live without cassettes with --llm-record-mode=off"
        )
    vcrpy = any(m.cassette is not None and m.cassette.vcrpy_matching for m in misses)
    return (
        "next: add what is missing with --llm-record-mode=new_episodes, or record the test "
        "again with --llm-record-mode=rewrite; ignore volatile body fields with ini "
        "llm_match_ignore (e.g. 'metadata', 'messages.*.name')"
        + (
            "; or match vcrpy-written cassettes LLM-aware (the port of a local server and "
            "volatile fields ignored) with ini llm_match_vcrpy_cassettes = llm"
            if vcrpy
            else ""
        )
    )
