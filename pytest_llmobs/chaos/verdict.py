"""The resilience verdict: what the client did about the faults, judged from its traffic.

Input is the test's `LLMCall`s (one per HTTP attempt, with start times, durations,
statuses and the `llmobs.chaos.*` attributes of the faulted ones). Calls with the same
URL and request body are one *request*: later ones are its retries, whether the SDK or
the app sent them.

Findings (severity: error fails `assert_resilient()`, warning fails it with
`strict=True`, info never fails):

- `not_retried` (error): a retryable fault (429, 5xx, 529, timeout, reset) was neither
  retried nor answered by a fallback call.
- `retried_non_retryable` (error): the same request was sent again after a fault that
  retrying cannot fix (quota, context length, content filter).
- `retry_after_ignored` (error): a retry came sooner than `retry-after(-ms)` asked.
- `retry_storm` (error): more than `max_retries` retries of one request, `storm_retries`
  retries each sooner than `min_backoff_ms`, or `storm_retries` retries with less than
  `storm_window_ms` of waiting between them in all.
- `no_backoff` (warning): two or more retries whose waits do not grow (each at least
  `backoff_growth` times the one before, less 5 % for timer jitter).
- `no_read_timeout` (error): on `timeout` / `stall_mid_stream` the client had no read
  timeout, or one above `max_read_timeout_s`.
- `partial_output_used` (error): the text of a damaged answer reappears in a later request.
- `malformed_chunk_ignored` (warning): the client skipped an event that does not parse and
  read on, so part of the answer may be missing.
- `partial_output_accepted`: a damaged answer (cut, truncated, error event, malformed,
  filtered, length) was neither retried, continued, replaced by a fallback, nor failed on;
  error when the SDK gave no sign (truncated stream, length, filter), warning when the SDK
  raised and the app swallowed it.
- `fell_back` / `gave_up` (info): a fault answered by a different request; retries ran
  out while the fault persisted.
- `token_spike` / `retry_cost` (info): tokens (and dollars, when priced) spent on attempts
  that were thrown away or inflated.

Whether the app *raised* after a silently truncated answer is visible only from the test
outcome: the automatic end-of-test verdict uses it; `assert_resilient()`, called inside
the test, takes "the app returned normally" as given.

The thresholds are a `Policy`, set for a run with `--llm-chaos-verdict` / ini
`llm_chaos_verdict` (`Policy.parse`: `min_backoff_ms=50 storm_window_ms=2000 …`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..calls import LLMCall

Severity = Literal["error", "warning", "info"]
_SILENT = frozenset({"stream_truncated", "truncate_length", "content_filter"})


@dataclass(frozen=True)
class Policy:
    """The verdict's thresholds. Defaults leave the SDKs' own retry schedules alone (openai,
    anthropic: 0.5 s doubling; botocore: jittered from 50 ms for 5xx and 1 s for throttling;
    google-genai: 1 s doubling) and catch clients that hammer."""

    max_attempts: int = 5  # attempts of one request (max_retries + 1)
    min_backoff_s: float = 0.1  # a retry sooner than this after a failure is immediate
    max_read_timeout_s: float = 120.0
    retry_after_slack_s: float = 0.05  # a retry may come this much early…
    retry_after_ratio: float = 0.9  # …or after this share of the wait asked
    storm_retries: int = 3  # this many immediate retries, or within the window, are a storm
    storm_window_s: float = 0.5
    backoff_growth: float = 1.1  # each wait at least this times the one before

    @classmethod
    def parse(cls, text: str) -> Policy:
        """`max_retries=4 min_backoff_ms=100 …` (spaces or commas between) → a Policy.

        Raises ValueError naming the bad key or value and the valid keys."""
        values: dict[str, Any] = {}
        for item in text.replace(",", " ").split():
            name, sep, raw = item.partition("=")
            key = _POLICY_KEYS.get(name)
            if key is None or not sep:
                problem = f"unknown key {name!r}" if key is None else f"{item!r} needs a value"
                raise ValueError(
                    f"{problem}; valid keys: {', '.join(_POLICY_KEYS)} (e.g. min_backoff_ms=100)"
                )
            values[key.field] = key.convert(name, raw)
        return cls(**values)

    def describe(self) -> str:
        """The thresholds that differ from the defaults, as `parse` reads them."""
        default = Policy()
        return " ".join(
            f"{name}={key.shown(getattr(self, key.field)):g}"
            for name, key in _POLICY_KEYS.items()
            if getattr(self, key.field) != getattr(default, key.field)
        )


@dataclass(frozen=True)
class _Key:
    """One `llm_chaos_verdict` key: field value = number * scale + offset."""

    field: str
    integral: bool = False
    low: float = 0.0
    high: float = float("inf")
    scale: float = 1.0
    offset: int = 0

    def convert(self, name: str, raw: str) -> float | int:
        try:
            number = float(raw)
        except ValueError:
            number = float("nan")
        if not self.low <= number <= self.high or (self.integral and not number.is_integer()):
            kind = "an integer" if self.integral else "a number"
            unbounded = self.high == float("inf")
            limit = f">= {self.low:g}" if unbounded else f"from {self.low:g} to {self.high:g}"
            raise ValueError(f"{name}={raw!r} must be {kind} {limit}")
        if self.integral:
            return int(number) + self.offset
        return number * self.scale

    def shown(self, value: float) -> float:
        return (value - self.offset) / self.scale


_MS = 0.001
# Waits measured on the wire jitter (timers, a busy CI box): a wait counts as grown when it
# is at least `backoff_growth` times the one before, less this share.
_JITTER = 0.05
_POLICY_KEYS: dict[str, _Key] = {
    "max_retries": _Key("max_attempts", integral=True, offset=1),
    "min_backoff_ms": _Key("min_backoff_s", scale=_MS),
    "storm_retries": _Key("storm_retries", integral=True, low=2),
    "storm_window_ms": _Key("storm_window_s", scale=_MS),
    "backoff_growth": _Key("backoff_growth", low=1),
    "retry_after_tolerance_ms": _Key("retry_after_slack_s", scale=_MS),
    "retry_after_ratio": _Key("retry_after_ratio", high=1),
    "max_read_timeout_s": _Key("max_read_timeout_s"),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    calls: tuple[int, ...] = ()
    fault: str | None = None


@dataclass
class Verdict:
    seed: int | None
    faults: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    attempts: int = 0
    extra_tokens: int = 0
    extra_cost_usd: float | None = None

    def failures(self, strict: bool = False) -> list[Finding]:
        levels = ("error", "warning") if strict else ("error",)
        return [f for f in self.findings if f.severity in levels]

    @property
    def passed(self) -> bool:
        return not self.failures()

    @property
    def status(self) -> str:
        if not self.faults:
            return "no-faults"
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "status": self.status,
            "faults": self.faults,
            "findings": [asdict(f) | {"calls": list(f.calls)} for f in self.findings],
            "attempts": self.attempts,
            "extra_tokens": self.extra_tokens,
            "extra_cost_usd": self.extra_cost_usd,
        }

    def explain(self, strict: bool = False) -> str:
        lines = [
            f"llmobs chaos verdict: {self.status} (seed {self.seed}; reproduce with "
            f"--llm-chaos-seed={self.seed})"
        ]
        for fault in self.faults:
            lines.append(
                f"  fault   call #{fault['call']}: {fault['fault']} on {fault['provider']} "
                f"{fault['model'] or ''} → {fault['outcome']}"
            )
        for finding in self.findings:
            mark = "FAIL" if finding in self.failures(strict) else finding.severity
            lines.append(f"  {mark:<7} {finding.code}: {finding.message}")
        if self.extra_tokens:
            cost = f" (${self.extra_cost_usd:.6f})" if self.extra_cost_usd else ""
            lines.append(
                f"  cost    {self.extra_tokens} extra tokens{cost} spent on retries/faults"
            )
        return "\n".join(lines)


def judge(
    calls: Sequence[LLMCall],
    *,
    seed: int | None = None,
    app_raised: bool | None = False,
    policy: Policy | None = None,
    price: Callable[[LLMCall], float | None] | None = None,
) -> Verdict:
    """`price` (e.g. `Pricing.cost_usd`) turns the thrown-away attempts into dollars."""
    policy = policy or Policy()
    ordered = sorted(calls, key=lambda c: c.started_at)
    keys = [_request_key(c) for c in ordered]
    # A later attempt with the same URL and body is a retry only of a *failed* one: the same
    # question asked again after a good answer is a new request.
    chains: list[list[int]] = []
    chain_of: dict[int, list[int]] = {}
    open_chains: dict[tuple[str, str], list[int]] = {}
    for index, key in enumerate(keys):
        chain = open_chains.get(key)
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(index)
        chain_of[index] = chain
        if _failed(ordered[index]):
            open_chains[key] = chain
        else:
            open_chains.pop(key, None)
    verdict = Verdict(seed=seed, attempts=len(ordered))
    judge_ = _Judge(ordered, keys, chain_of, chains, verdict, policy, app_raised)
    for index, call in enumerate(ordered):
        if call.attributes.get("llmobs.chaos.fault"):
            judge_.fault(index, call)
    for chain in chains:
        judge_.chain(chain)
    judge_.costs(price)
    return verdict


class _Judge:
    def __init__(
        self,
        calls: list[LLMCall],
        keys: list[tuple[str, str]],
        chain_of: dict[int, list[int]],
        chains: list[list[int]],
        verdict: Verdict,
        policy: Policy,
        app_raised: bool | None,
    ) -> None:
        self.calls, self.keys, self.chain_of, self.chains = calls, keys, chain_of, chains
        self.verdict, self.policy, self.app_raised = verdict, policy, app_raised
        self.wasted: set[int] = set()

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        calls: Sequence[int],
        fault: str | None = None,
    ) -> None:
        self.verdict.findings.append(Finding(code, severity, message, tuple(calls), fault))

    def label(self, index: int) -> str:
        call = self.calls[index]
        return f"call #{index} ({call.operation} {call.request_model or call.model or '?'})"

    # -- one faulted call ---------------------------------------------------------------
    def fault(self, index: int, call: LLMCall) -> None:
        attrs = call.attributes
        name = str(attrs["llmobs.chaos.fault"])
        chain = self.chain_of[index]
        position = chain.index(index)
        retry = chain[position + 1] if position + 1 < len(chain) else None
        later = [i for i in range(index + 1, len(self.calls)) if self.keys[i] != self.keys[index]]
        fallback = next((i for i in later if _same_prompt(self.calls[i], call)), None)
        outcome = "retried" if retry is not None else "fell back" if fallback is not None else "-"
        retryable = attrs.get("llmobs.chaos.retryable")
        retry_after = _float(attrs.get("llmobs.chaos.retry_after_s"))
        where = self.label(index)
        if retry is not None:
            self.wasted.add(index)
            if retry_after is not None:
                waited = self.gap(index, retry)
                policy = self.policy
                if waited + policy.retry_after_slack_s < retry_after * policy.retry_after_ratio:
                    self.add(
                        "retry_after_ignored",
                        "error",
                        f"{where} got {name} with retry-after {retry_after:g} s; the retry "
                        f"came after {waited:.3f} s",
                        (index, retry),
                        name,
                    )
        if retryable is True and retry is None:
            if fallback is not None:
                self.add(
                    "fell_back",
                    "info",
                    f"{where} got {name}; answered by a fallback request ({self.label(fallback)})",
                    (index, fallback),
                    name,
                )
            elif position > 0:
                outcome = "gave up"
                self.add(
                    "gave_up",
                    "info",
                    f"{where} got {name} on attempt {position + 1}; no more retries",
                    chain[: position + 1],
                    name,
                )
            else:
                outcome = "not retried"
                self.add(
                    "not_retried",
                    "error",
                    f"{where} got {name}, which is retryable, and was never retried "
                    f"(nor replaced by a fallback)",
                    (index,),
                    name,
                )
        if retryable is False and retry is not None:
            self.add(
                "retried_non_retryable",
                "error",
                f"{where} got {name}, which retrying cannot fix, and was sent again "
                f"({self.label(retry)})",
                (index, retry),
                name,
            )
        if name in ("timeout", "stall_mid_stream"):
            self.read_timeout(index, attrs.get("llmobs.chaos.read_timeout_s"), name)
        if attrs.get("llmobs.chaos.damages_output"):
            outcome = self.damaged(index, call, name, retry, later, fallback) or outcome
        if name == "token_spike":
            self.spike(index, call, attrs)
        self.verdict.faults.append(
            {
                "call": index,
                "fault": name,
                "rule": attrs.get("llmobs.chaos.rule"),
                "provider": call.provider,
                "model": call.request_model or call.model,
                "status_code": call.status_code,
                "error_type": call.error_type,
                "outcome": outcome,
            }
        )

    def read_timeout(self, index: int, value: Any, name: str) -> None:
        timeout = _float(value)
        limit = self.policy.max_read_timeout_s
        if timeout is None:
            self.add(
                "no_read_timeout",
                "error",
                f"{self.label(index)} hit {name} with no read timeout set: a stalled "
                f"provider would hang it forever",
                (index,),
                name,
            )
        elif timeout > limit:
            self.add(
                "no_read_timeout",
                "error",
                f"{self.label(index)} hit {name} with a read timeout of {timeout:g} s "
                f"(more than {limit:g} s): a stall would block it that long",
                (index,),
                name,
            )

    def damaged(
        self,
        index: int,
        call: LLMCall,
        name: str,
        retry: int | None,
        later: list[int],
        fallback: int | None,
    ) -> str | None:
        if retry is not None or fallback is not None:
            return None
        where = self.label(index)
        if name == "malformed_chunk" and not call.truncated and call.error_type is None:
            self.add(
                "malformed_chunk_ignored",
                "warning",
                f"{where} got an event that does not parse; the client skipped it and read on "
                f"(part of the answer may be missing)",
                (index,),
                name,
            )
            return "skipped"
        partial = (call.output_text or "").strip()
        for i in later:
            body = _body_text(self.calls[i])
            if len(partial) >= 8 and partial in body:
                if _continues(self.calls[i], partial):
                    return "continued"
                self.add(
                    "partial_output_used",
                    "error",
                    f"{where} got {name}; its partial output was passed on in "
                    f"{self.label(i)} as if complete",
                    (index, i),
                    name,
                )
                return "partial output used"
        if later:
            self.add(
                "partial_output_accepted",
                "warning",
                f"{where} got {name} (damaged answer); the app went on to other calls "
                f"without retrying it",
                (index,),
                name,
            )
            return "moved on"
        if self.app_raised:
            return "app raised"
        if name in _SILENT:
            self.add(
                "partial_output_accepted",
                "error",
                f"{where} got {name}: the SDK accepted it silently and the app neither "
                f"retried, continued nor failed (a partial answer taken as complete)",
                (index,),
                name,
            )
        else:
            self.add(
                "partial_output_accepted",
                "warning",
                f"{where} got {name}: the SDK raised, the app swallowed it without "
                f"retrying or failing",
                (index,),
                name,
            )
        return "accepted"

    def spike(self, index: int, call: LLMCall, attrs: dict[str, Any]) -> None:
        factor = _float(json.loads(str(attrs.get("llmobs.chaos.params") or "{}")).get("factor"))
        total = call.usage.total
        if factor and factor > 1 and total:
            extra = total - round(total / factor)
            self.verdict.extra_tokens += extra
            self.add(
                "token_spike",
                "info",
                f"{self.label(index)} reported {total} tokens, {factor:g} times the real usage "
                f"(+{extra}); only a token budget would notice",
                (index,),
                "token_spike",
            )

    # -- one request and its retries ------------------------------------------------------
    def chain(self, chain: list[int]) -> None:
        policy = self.policy
        if len(chain) > policy.max_attempts:
            self.add(
                "retry_storm",
                "error",
                f"{self.label(chain[0])} was sent {len(chain)} times (more than "
                f"{policy.max_attempts}: max_retries={policy.max_attempts - 1})",
                chain,
            )
            return
        # Waits the client chose: not those after a fault that said how long to wait.
        gaps = [
            self.gap(a, b)
            for a, b in itertools.pairwise(chain)
            if _float(self.calls[a].attributes.get("llmobs.chaos.retry_after_s")) is None
            and _failed(self.calls[a])
        ]
        waits = ", ".join(f"{g:.3f}" for g in gaps)
        burst = policy.storm_retries
        immediate = sum(g < policy.min_backoff_s for g in gaps)
        window = min((sum(gaps[i : i + burst]) for i in range(len(gaps) - burst + 1)), default=None)
        if immediate >= burst:
            self.add(
                "retry_storm",
                "error",
                f"{self.label(chain[0])} was retried {len(gaps)} times with waits of {waits} s: "
                f"{immediate} sooner than {policy.min_backoff_s * 1000:g} ms (min_backoff_ms)",
                chain,
            )
        elif window is not None and window < policy.storm_window_s:
            self.add(
                "retry_storm",
                "error",
                f"{self.label(chain[0])} was retried {len(gaps)} times with waits of {waits} s: "
                f"{burst} retries within {window * 1000:.0f} ms (storm_window_ms="
                f"{policy.storm_window_s * 1000:g})",
                chain,
            )
        elif len(gaps) >= 2 and all(
            b < a * policy.backoff_growth * (1 - _JITTER) for a, b in itertools.pairwise(gaps)
        ):
            self.add(
                "no_backoff",
                "warning",
                f"{self.label(chain[0])} retried with waits of {waits} s: each should be at "
                f"least {policy.backoff_growth:g} times the one before (backoff_growth)",
                chain,
            )

    def gap(self, a: int, b: int) -> float:
        first, second = self.calls[a], self.calls[b]
        return second.started_at - (first.started_at + (first.duration_s or 0.0))

    def costs(self, price: Callable[[LLMCall], float | None] | None) -> None:
        for chain in self.chains:
            self.wasted.update(chain[:-1])  # every attempt but the last was thrown away
        cost = 0.0
        tokens = 0
        priced = False
        for index in sorted(self.wasted):
            call = self.calls[index]
            tokens += call.usage.total
            value = price(call) if price is not None else None
            if value is not None:
                priced = True
                cost += value
        if tokens:
            self.verdict.extra_tokens += tokens
            self.add(
                "retry_cost",
                "info",
                f"{tokens} tokens spent on {len(self.wasted)} attempts that were thrown away",
                sorted(self.wasted),
            )
        if priced:
            self.verdict.extra_cost_usd = cost


def _request_key(call: LLMCall) -> tuple[str, str]:
    body = json.dumps(call.request_body, sort_keys=True, default=str)
    return call.url, body


def _same_prompt(other: LLMCall, call: LLMCall) -> bool:
    """A fallback: the same conversation sent elsewhere (another model or endpoint)."""
    a, b = other.request_body, call.request_body
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    prompt_a = a.get("messages", a.get("input"))
    prompt_b = b.get("messages", b.get("input"))
    return prompt_a is not None and prompt_a == prompt_b


def _body_text(call: LLMCall) -> str:
    return json.dumps(call.request_body, ensure_ascii=False, default=str)


def _continues(call: LLMCall, partial: str) -> bool:
    """Anthropic-style continuation: the partial answer sent back as the last (assistant)
    message, for the model to carry on from."""
    body = call.request_body if isinstance(call.request_body, dict) else {}
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return False
    last = messages[-1]
    return last.get("role") == "assistant" and partial in json.dumps(last, ensure_ascii=False)


def _failed(call: LLMCall) -> bool:
    return call.error_type is not None or (call.status_code or 0) >= 400 or call.truncated


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
