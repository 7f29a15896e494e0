"""Truncated and partial completions: which `LLMCall.truncation_reason`s fail a test, and
the sentence a developer reads for each.

The providers set `call.truncated` / `call.truncation_reason` while parsing; this module only
classifies and words them. Pure: no pytest, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .calls import LLMCall
from .words import count


@dataclass(frozen=True)
class TruncationKind:
    """One value of `LLMCall.truncation_reason` (``stream_error`` stands for every
    ``"stream_error: <type>"``)."""

    reason: str
    kind: str  # limit | stream | json | filter | client
    text: str  # the explanation
    plain: str  # what happened, in a few words: the finding's summary
    fails: bool = True


_KINDS = (
    TruncationKind(
        "length",
        "limit",
        'finish_reason "length": the answer stopped at the output token limit '
        "(max_tokens / max_completion_tokens, or Ollama num_predict)",
        "the answer was cut at max_tokens (finish_reason: length)",
    ),
    TruncationKind(
        "max_tokens",
        "limit",
        'stop_reason "max_tokens": the answer stopped at the max_tokens limit',
        "the answer was cut at max_tokens (stop_reason: max_tokens)",
    ),
    TruncationKind(
        "MAX_TOKENS",
        "limit",
        'finish reason "MAX_TOKENS": the answer stopped at the output token limit '
        "(Gemini maxOutputTokens, Cohere max_tokens)",
        "the answer was cut at the output token limit (finish reason: MAX_TOKENS)",
    ),
    TruncationKind(
        "LENGTH",
        "limit",
        'stop reason "LENGTH": the answer stopped at the output token limit',
        "the answer was cut at the output token limit (stop reason: LENGTH)",
    ),
    TruncationKind(
        "max_output_tokens",
        "limit",
        'status "incomplete" (max_output_tokens): the response stopped at max_output_tokens',
        "the answer was cut at max_output_tokens (status: incomplete)",
    ),
    TruncationKind(
        "incomplete",
        "limit",
        'status "incomplete": the response was not completed',
        "the response was not completed (status: incomplete)",
    ),
    TruncationKind(
        "model_context_window_exceeded",
        "limit",
        "the conversation filled the model's context window: the answer was cut",
        "the answer was cut: the conversation filled the context window "
        "(stop_reason: model_context_window_exceeded)",
    ),
    TruncationKind(
        "content_filter",
        "filter",
        "the content filter stopped the answer part-way",
        "the content filter stopped the answer part-way (finish_reason: content_filter)",
    ),
    TruncationKind(
        "stream_ended_without_terminator",
        "stream",
        "the stream ended without its terminator ([DONE] / message_stop / response.completed"
        " / done): the SDK accepted a partial answer as if it were complete",
        "the stream ended before its end marker: the answer is partial",
    ),
    TruncationKind(
        "stream_error",
        "stream",
        "the stream failed part-way (an error event after HTTP 200, or a broken "
        "connection): the answer is partial",
        "the stream broke off part-way: the answer is partial",
    ),
    TruncationKind(
        "invalid_json",
        "json",
        "JSON output was requested (response_format / tool-call arguments / response schema)"
        " but the answer does not parse as JSON",
        "the answer is not the JSON that was asked for",
    ),
    TruncationKind(
        "invalid_response_body",
        "json",
        "a 2xx answer whose body is not the JSON object the API promises",
        "the response body is not the JSON the API promises",
    ),
    TruncationKind(
        "stream_closed_by_client",
        "client",
        "the test code closed the stream before its end (e.g. broke out of the loop): "
        "partial by choice, not counted as a truncation",
        "the test closed the stream early (not a truncation)",
        fails=False,
    ),
)

TRUNCATION_REASONS: dict[str, TruncationKind] = {k.reason: k for k in _KINDS}
"""Every truncation reason the providers report, with its kind, its text and whether it
fails a test by default. Reasons not listed here (a new provider's) fail too."""


def classify(reason: str | None) -> TruncationKind:
    """The kind for a `truncation_reason` (``"stream_error: overloaded_error"`` included)."""
    reason = reason or "unknown"
    known = TRUNCATION_REASONS.get(reason)
    if known is not None:
        return known
    head, _, detail = reason.partition(":")
    if head == "stream_error":
        base = TRUNCATION_REASONS["stream_error"]
        text = base.text.replace("part-way", f"part-way with {detail.strip()}", 1)
        plain = base.plain.replace("part-way", f"part-way ({detail.strip()})", 1)
        return TruncationKind(reason, base.kind, text, plain)
    text = f"the provider reported a partial answer ({reason})"
    return TruncationKind(reason, "other", text, text)


def describe(call: LLMCall) -> str:
    """One line naming the call and why its answer is partial."""
    kind = classify(call.truncation_reason)
    limit = f", max_tokens={call.max_tokens}" if kind.kind == "limit" and call.max_tokens else ""
    attempt = f" attempt {call.attempt}" if call.attempt else ""
    return (
        f"{call.provider} {call.operation} {call.model or '?'}{attempt} "
        f"({call.url}{limit}): {kind.text}"
    )


@dataclass(frozen=True)
class Truncation:
    """A call whose answer is partial, as a finding of the truncation check."""

    call: LLMCall
    kind: TruncationKind

    @property
    def message(self) -> str:
        return describe(self.call)


def allowed_reason(reason: str) -> bool:
    """Whether `reason` names a known kind (or reason) usable in
    ``@pytest.mark.llm_allow_truncation("length", "stream")``."""
    return reason in TRUNCATION_REASONS or reason in _KIND_NAMES


_KIND_NAMES = frozenset(k.kind for k in _KINDS)


def check_truncation(
    calls: Iterable[LLMCall], allow: bool = False, allowed: Iterable[str] = ()
) -> list[Truncation]:
    """The calls whose truncation fails the test.

    `allow=True` allows every kind; `allowed` allows some: reasons (``"length"``) or kinds
    (``"limit"``, ``"stream"``, ``"json"``, ``"filter"``).
    """
    if allow:
        return []
    permitted = set(allowed)
    found = []
    for call in calls:
        if not call.truncated or call.source == "chaos":
            continue  # damage chaos injected on purpose is judged by the chaos verdict
        kind = classify(call.truncation_reason)
        if not kind.fails or kind.reason in permitted or kind.kind in permitted:
            continue
        if kind.kind == "stream" and "stream_error" in permitted:
            continue
        found.append(Truncation(call, kind))
    return found


def render(truncations: list[Truncation]) -> str:
    """The failure text: one line per truncated call, and how to allow it."""
    lines = [f"LLM answer truncated or partial ({count(len(truncations), 'call')}):"]
    lines += [f"  - {t.message}" for t in truncations]
    lines.append(
        "  If this is expected: @pytest.mark.llm_allow_truncation (all kinds, or e.g. "
        '("length")) or llm_budget(allow_truncation=True).'
    )
    return "\n".join(lines)
