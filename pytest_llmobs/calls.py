"""The data model every check and report works on: one `LLMCall` per HTTP attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them; `None` where it reported nothing."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            input_tokens=add(self.input_tokens, other.input_tokens),
            output_tokens=add(self.output_tokens, other.output_tokens),
            # a call without a total (Anthropic reports none) counts its input + output
            total_tokens=add(self.known_total, other.known_total),
            cached_input_tokens=add(self.cached_input_tokens, other.cached_input_tokens),
            cache_creation_input_tokens=add(
                self.cache_creation_input_tokens, other.cache_creation_input_tokens
            ),
            reasoning_tokens=add(self.reasoning_tokens, other.reasoning_tokens),
        )

    def as_dict(self) -> dict[str, int | None]:
        """The counts by field name (`dataclasses.asdict` deep-copies: slow per call record)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The inverse of `as_dict`; names it does not know are ignored."""
        return cls(**{name: data.get(name) for name in _USAGE_FIELDS})

    @property
    def known_total(self) -> int | None:
        """The provider's total, else input + output; None when no count is known."""
        if self.total_tokens is not None:
            return self.total_tokens
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def total(self) -> int:
        """Total tokens, derived from input + output when the provider gave no total."""
        if self.total_tokens is not None:
            return self.total_tokens
        return (self.input_tokens or 0) + (self.output_tokens or 0)


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


@dataclass
class LLMCall:
    """One HTTP attempt against an LLM API, parsed from the exact bytes exchanged.

    Times are seconds. `started_at` is wall-clock (epoch) time; the others are measured
    from the moment the request was handed to the transport. On a replayed call the
    measured figures are what this run saw and `recorded_*` what the recording saw.
    """

    provider: str
    operation: str
    url: str
    request_model: str | None = None
    response_model: str | None = None
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reasons: tuple[str, ...] = ()
    truncated: bool = False
    truncation_reason: str | None = None
    status_code: int | None = None
    error: str | None = None
    error_type: str | None = None
    attempt: int = 0
    request_id: str | None = None
    response_id: str | None = None
    started_at: float = 0.0
    duration_s: float | None = None
    time_to_first_chunk_s: float | None = None
    chunk_offsets_s: tuple[float, ...] = ()
    source: str = "live"
    recorded_duration_s: float | None = None
    recorded_time_to_first_chunk_s: float | None = None
    server_address: str | None = None
    server_port: int | None = None
    request_body: Any = None
    response_body: Any = None
    output_text: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for."""
        return self.response_model or self.request_model

    @property
    def effective_duration_s(self) -> float | None:
        """Recorded duration on instant replay, measured duration otherwise."""
        if self.recorded_duration_s is not None and self.source == "replay":
            return self.recorded_duration_s
        return self.duration_s

    @property
    def effective_time_to_first_chunk_s(self) -> float | None:
        """Recorded TTFT on replay, measured TTFT otherwise. None on a replay whose recording
        has no timing (a vcrpy cassette): what the replay measured is no TTFT of the call."""
        if self.source == "replay":
            return self.recorded_time_to_first_chunk_s
        return self.time_to_first_chunk_s
