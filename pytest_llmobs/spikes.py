"""Token spikes: one call that used far more tokens than the same call usually does.

"The same call" is the same prompt key: the model plus a short hash of the request (provider,
operation, requested model and the JSON body minus the fields cassette matching ignores:
`user`, `metadata`, `safety_identifier`, `idempotency_key`). The key is the same live, on
replay and on every machine, so it can be compared across runs.

What a call is compared with, first found wins:

1. ``baseline``: the baseline file's entry for the test has this prompt key (the most tokens
   that prompt used in the test when the baseline was written);
2. ``recorded``: the same prompt was replayed from a cassette in this run: the median of
   those recorded calls;
3. ``session``: the median of the other calls with the same prompt key in this run.

A call is a spike when its total tokens exceed ``factor`` times that reference and by at least
``min_tokens`` (so 5 → 20 tokens is noise, not a spike). Failed calls and calls without
usage are never spikes and never references. Pure: the plugin decides what a spike does.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .calls import LLMCall

_IGNORED_BODY_KEYS = frozenset({"user", "metadata", "safety_identifier", "idempotency_key"})
SPIKE_KEYS = ("factor", "min_tokens")


class SpikeError(ValueError):
    """Bad `llm_token_spike` value."""


def prompt_hash(call: LLMCall) -> str | None:
    """12 hex digits identifying the request (None when its body is not a JSON object)."""
    body = call.request_body
    if not isinstance(body, dict):
        return None
    kept = {k: v for k, v in body.items() if k not in _IGNORED_BODY_KEYS}
    text = json.dumps(
        [call.provider, call.operation, call.request_model, kept],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


def prompt_key(record: Mapping[str, Any]) -> str | None:
    """``"<model> <prompt hash>"`` of a call record, or None without a hash."""
    digest = record.get("prompt_hash")
    return f"{record.get('model') or '?'} {digest}" if digest else None


def record_tokens(record: Mapping[str, Any]) -> int | None:
    """Total tokens of a successful call record; None for errors and calls without usage."""
    if (record.get("status_code") or 0) >= 400 or record.get("error_type"):
        return None
    usage = record.get("usage") or {}
    if usage.get("total_tokens") is not None:
        return int(usage["total_tokens"])
    if usage.get("input_tokens") is None and usage.get("output_tokens") is None:
        return None
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


@dataclass(frozen=True)
class SpikeRule:
    factor: float = 3.0
    min_tokens: int = 100
    enabled: bool = True

    @classmethod
    def parse(cls, text: str) -> SpikeRule:
        """``"factor=3 min_tokens=100"`` (either may be left out), or ``off``."""
        text = text.strip()
        if text.lower() in ("off", "none", "0"):
            return cls(enabled=False)
        values: dict[str, float] = {}
        for item in text.replace(",", " ").split():
            name, sep, raw = item.partition("=")
            if name not in SPIKE_KEYS or not sep:
                raise SpikeError(
                    f"llm_token_spike: {item!r} is not KEY=VALUE with a key of "
                    f"{', '.join(SPIKE_KEYS)} (e.g. factor=3 min_tokens=100), or off"
                )
            try:
                values[name] = float(raw)
            except ValueError:
                raise SpikeError(f"llm_token_spike: {name}={raw!r} is not a number") from None
        factor = values.get("factor", cls.factor)
        min_tokens = values.get("min_tokens", cls.min_tokens)
        if not factor > 1 or min_tokens < 0 or not float(min_tokens).is_integer():
            raise SpikeError(
                "llm_token_spike: factor must be > 1 and min_tokens a whole number >= 0 "
                f"(got factor={factor:g} min_tokens={min_tokens:g})"
            )
        return cls(factor=factor, min_tokens=int(min_tokens))

    def describe(self) -> str:
        return f"factor={self.factor:g} min_tokens={self.min_tokens}" if self.enabled else "off"


@dataclass(frozen=True)
class Spike:
    nodeid: str
    index: int  # the call's position in the test (0-based, as in `llmobs.calls`)
    key: str
    tokens: int
    reference: float
    source: str  # baseline | recorded | session

    @property
    def ratio(self) -> float:
        return self.tokens / self.reference if self.reference else float("inf")

    @property
    def message(self) -> str:
        return (
            f"token spike: call #{self.index + 1} ({self.key}) used {self.tokens} tokens, "
            f"{self.ratio:.1f}x its {self.source} usage ({self.reference:g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "call": self.index,
            "prompt": self.key,
            "tokens": self.tokens,
            "reference": self.reference,
            "source": self.source,
            "ratio": round(self.ratio, 3),
        }


def find_spikes(
    tests: Mapping[str, Sequence[Mapping[str, Any]]],
    rule: SpikeRule,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Spike]:
    """Every spike in the run (nodeid → call records), in test then call order."""
    if not rule.enabled:
        return []
    seen: list[tuple[str, int, str, int, bool]] = []  # (nodeid, index, key, tokens, replayed)
    for nodeid, records in tests.items():
        for i, record in enumerate(records):
            key, tokens = prompt_key(record), record_tokens(record)
            if key is not None and tokens is not None:
                seen.append((nodeid, i, key, tokens, record.get("source") == "replay"))
    # Per prompt key, every call's tokens and the replayed ones', sorted: the median of "the
    # others" is then a lookup, not a pass over every call with that prompt (a suite that
    # sends one prompt 10,000 times would otherwise take quadratic time).
    everyone: dict[str, list[int]] = {}
    replayed: dict[str, list[int]] = {}
    for _, _, key, tokens, was_replayed in seen:
        everyone.setdefault(key, []).append(tokens)
        if was_replayed:
            replayed.setdefault(key, []).append(tokens)
    for values in (*everyone.values(), *replayed.values()):
        values.sort()
    out = []
    for nodeid, i, key, tokens, was_replayed in seen:
        prompts = ((baseline or {}).get(nodeid) or {}).get("prompts") or {}
        mine = tokens if was_replayed else None
        found = _reference(prompts.get(key), replayed.get(key, []), mine, everyone[key], tokens)
        if found is None:
            continue
        reference, source = found
        if tokens > rule.factor * reference and tokens - reference >= rule.min_tokens:
            out.append(Spike(nodeid, i, key, tokens, reference, source))
    return out


def _reference(
    in_baseline: Any,
    replayed: Sequence[int],
    mine: int | None,
    everyone: Sequence[int],
    tokens: int,
) -> tuple[float, str] | None:
    """What a call's tokens are held against: the baseline's figure for its prompt, else the
    median of the other replayed calls with that prompt, else of all the others."""
    if isinstance(in_baseline, int | float):
        return float(in_baseline), "baseline"
    recorded = _median_without(replayed, mine)
    if recorded is not None:
        return recorded, "recorded"
    session = _median_without(everyone, tokens)
    return None if session is None else (session, "session")


def _median_without(ordered: Sequence[int], value: int | None) -> float | None:
    """The median of sorted `ordered` with one occurrence of `value` left out (None: none
    left out); None when nothing remains."""
    n = len(ordered) - (value is not None)
    if n <= 0:
        return None
    gap = bisect.bisect_left(ordered, value) if value is not None else len(ordered)

    def at(k: int) -> int:  # the k-th of what remains
        return ordered[k if k < gap else k + 1]

    return float(at(n // 2)) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
