"""The data model every check and report works on: one `LLMCall` per HTTP attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them; `None` where it reported nothing."""

    input_tokens: int | None = None
    """Every input token, cached ones included, for every provider."""
    output_tokens: int | None = None
    """Output tokens, reasoning tokens included."""
    total_tokens: int | None = None
    """The provider's total, when it reports one (else see `total`)."""
    cached_input_tokens: int | None = None
    """Input tokens read from the provider's prompt cache."""
    cache_creation_input_tokens: int | None = None
    """Input tokens written to the prompt cache (Anthropic, Bedrock)."""
    reasoning_tokens: int | None = None
    """Reasoning / thinking tokens, part of `output_tokens`."""

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

    # The attribute docstrings below are the documentation site's LLMCall reference.
    provider: str
    """`openai`, `azure.ai.openai`, `anthropic`, `aws.bedrock`, `gcp.gemini`,
    `gcp.vertex_ai` or `ollama` (the span's `gen_ai.provider.name`)."""
    operation: str
    """`chat`, `text_completion`, `generate_content` or `embeddings`."""
    url: str
    """The request URL, credentials redacted."""
    request_model: str | None = None
    """The model the request asked for."""
    response_model: str | None = None
    """The model the response names."""
    stream: bool = False
    """Whether the request asked for a stream."""
    max_tokens: int | None = None
    """The request's output token limit."""
    temperature: float | None = None
    """The request's temperature."""
    usage: Usage = field(default_factory=Usage)
    """Token counts as reported (`Usage`); every count `None` when the provider reported
    none (an OpenAI stream without `stream_options={"include_usage": True}`)."""
    finish_reasons: tuple[str, ...] = ()
    """The provider's raw finish / stop reasons, one per choice."""
    truncated: bool = False
    """The answer was cut: a length limit, a stream without its terminator, an error event
    inside a 200 stream, or JSON output that does not parse. Never set on a non-2xx
    response."""
    truncation_reason: str | None = None
    """Why it is truncated (`length`, `max_tokens`, `stream_ended_without_terminator` ...)."""
    status_code: int | None = None
    """The HTTP status (`None` when the connection failed first)."""
    error: str | None = None
    """The provider's error message, or the transport exception's message."""
    error_type: str | None = None
    """The provider's error type or code (`rate_limit_exceeded`, `overloaded_error`), or the
    transport exception's class name (`ReadTimeout`)."""
    attempt: int = 0
    """0 for the first try; the SDK's retry count (`x-stainless-retry-count`, botocore's
    `amz-sdk-request`), else the nth identical request of the test."""
    request_id: str | None = None
    """The provider's request id header."""
    response_id: str | None = None
    """The id in the response body (`chatcmpl-...`, `msg_...`)."""
    started_at: float = 0.0
    """Wall-clock (epoch) time the request was sent."""
    duration_s: float | None = None
    """Seconds from the request to the end of the body, as measured in this run."""
    time_to_first_chunk_s: float | None = None
    """Seconds from the request to the first chunk of the body, measured in this run."""
    chunk_offsets_s: tuple[float, ...] = ()
    """Seconds from the request to each chunk of the body."""
    source: str = "live"
    """`live`, `replay` (from a cassette), `chaos` (answered by an injected fault), or the
    library that answered instead of the network (`vcrpy`, `respx`, `responses`)."""
    recorded_duration_s: float | None = None
    """On replay: `duration_s` of the recording."""
    recorded_time_to_first_chunk_s: float | None = None
    """On replay: `time_to_first_chunk_s` of the recording; `None` when it has no timing (a
    cassette plain vcrpy wrote), and then the call's TTFT is unknown, never 0."""
    server_address: str | None = None
    """The host the request went to."""
    server_port: int | None = None
    """The port the request went to."""
    request_body: Any = None
    """The parsed JSON request."""
    response_body: Any = None
    """The parsed response; a list of events for a stream."""
    output_text: str | None = None
    """The assistant's text, assembled from the body or the stream."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Context stamped on the call: baggage (`gen_ai.conversation.id`, `llmobs.context.*`),
    user actions (`user.action.*`), `llmobs.trace_id`, chaos (`llmobs.chaos.*`)."""

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for."""
        return self.response_model or self.request_model

    @property
    def no_response(self) -> bool:
        """No HTTP response at all: the connection was refused, or failed or timed out before
        a status line. Such a call has no usage to report and cost nothing."""
        return self.status_code is None and (self.error is not None or self.error_type is not None)

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
