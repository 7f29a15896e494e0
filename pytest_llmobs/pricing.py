"""What a call cost, in USD: the maintained `genai-prices` tables, plus the user's own prices.

No price list lives in this code. A call is priced by the first matching rule of the user's
prices file (``llm_prices = prices.toml``), else by `genai-prices` (bundled snapshot, current
prices, no network). A call nobody has a price for costs `None`, with the reason: it is never
silently counted as zero.

Token semantics (`Usage`, as the providers normalise it): ``input_tokens`` counts every input
token, cache reads (``cached_input_tokens``) and cache writes
(``cache_creation_input_tokens``) included; ``output_tokens`` counts every output token,
reasoning (``reasoning_tokens``) included. Each part is priced at its own rate.

Prices file (USD per 1M tokens; the first rule whose globs match wins; the model glob is
tried on the response model, then the request model)::

    [models."ft:gpt-4o-mini:acme:*"]
    input = 0.30
    output = 1.20
    cached = 0.15        # cache reads; default: input
    cache_write = 0.30   # cache writes; default: input
    reasoning = 1.20     # reasoning tokens; default: output
    provider = "openai"  # optional glob on gen_ai.provider.name

    [models."llama3*"]   # local models are free, but say so
    input = 0
    output = 0
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from .calls import LLMCall, Usage

PRICE_KEYS = ("input", "output", "cached", "cache_write", "reasoning", "provider")

# gen_ai.provider.name → genai-prices provider ids, tried in order.
_GENAI_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure.ai.openai": ("azure", "openai"),
    "azure.ai.inference": ("azure",),
    "anthropic": ("anthropic",),
    "aws.bedrock": ("aws",),
    "gcp.gemini": ("google",),
    "gcp.vertex_ai": ("google",),
    "gcp.gen_ai": ("google",),
    "mistral_ai": ("mistral",),
    "x_ai": ("x-ai",),
}


class PricesFileError(ValueError):
    """The prices file is missing or malformed (the message names file, rule and key)."""


@dataclass(frozen=True)
class PriceRule:
    """User prices for models matching `model` (glob), USD per 1M tokens."""

    model: str
    input: float
    output: float
    cached: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    provider: str | None = None
    source: str = ""

    def matches(self, provider: str, models: Iterable[str]) -> bool:
        if self.provider is not None and not fnmatchcase(provider, self.provider):
            return False
        return any(fnmatchcase(m, self.model) for m in models)

    def cost(self, usage: Usage) -> float:
        tokens = _Tokens.of(usage)
        uncached = max(tokens.input - tokens.cached - tokens.cache_write, 0)
        plain_output = max(tokens.output - tokens.reasoning, 0)
        per_million = (
            uncached * self.input
            + tokens.cached * _or(self.cached, self.input)
            + tokens.cache_write * _or(self.cache_write, self.input)
            + plain_output * self.output
            + tokens.reasoning * _or(self.reasoning, self.output)
        )
        return per_million / 1_000_000


@dataclass(frozen=True)
class Cost:
    """A call's cost: `usd` is None when unknown, and then `problem` says why."""

    usd: float | None
    source: str = ""  # genai-prices | the prices file rule | "not billed"
    problem: str | None = None


@dataclass
class CostTotal:
    """Several calls: the known part, and the calls whose cost is unknown (with why)."""

    usd: float = 0.0
    unpriced: list[tuple[LLMCall, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unpriced


@dataclass(frozen=True)
class _Tokens:
    input: int
    output: int
    cached: int
    cache_write: int
    reasoning: int

    @classmethod
    def of(cls, usage: Usage) -> _Tokens:
        return cls(
            usage.input_tokens or 0,
            usage.output_tokens or 0,
            usage.cached_input_tokens or 0,
            usage.cache_creation_input_tokens or 0,
            usage.reasoning_tokens or 0,
        )


class Pricing:
    """Prices calls: the user's rules first, then genai-prices. Lookups are cached."""

    def __init__(self, rules: Iterable[PriceRule] = ()) -> None:
        self.rules = tuple(rules)
        self._cost = lru_cache(maxsize=8192)(self._compute)
        self._recorded: dict[tuple[Any, ...], Cost] = {}

    @classmethod
    def from_file(cls, path: Path | None) -> Pricing:
        return cls(load_rules(path) if path is not None else ())

    def cost(self, call: LLMCall) -> Cost:
        key = _key(call)
        recorded = self._recorded.get(key)
        return recorded if recorded is not None else self._cost(*key)

    def remember(self, call: LLMCall, cost: Cost) -> None:
        """A cost worked out where the call ran, with these prices (an xdist worker's call
        record): the controller checks the session without loading genai-prices' table
        (and, in a process without the SDK, pydantic) to work it out again."""
        if len(self._recorded) < 16384:
            self._recorded[_key(call)] = cost

    def cost_usd(self, call: LLMCall) -> float | None:
        """USD, or None when no price is known for the call's model (or it reported no usage)."""
        return self.cost(call).usd

    def total(self, calls: Iterable[LLMCall]) -> CostTotal:
        out = CostTotal()
        for call in calls:
            cost = self.cost(call)
            if cost.usd is None:
                out.unpriced.append((call, cost.problem or "unknown"))
            else:
                out.usd += cost.usd
        return out

    def _compute(
        self,
        provider: str,
        response_model: str | None,
        request_model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached: int | None,
        cache_write: int | None,
        reasoning: int | None,
        failed: str,  # "" | "error" (HTTP 4xx/5xx) | "no response"
    ) -> Cost:
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            cache_creation_input_tokens=cache_write,
            reasoning_tokens=reasoning,
        )
        if input_tokens is None and output_tokens is None:
            if failed:
                return Cost(
                    0.0, f"not billed ({'error response' if failed == 'error' else failed})"
                )
            return Cost(
                None,
                problem="the provider reported no token usage (an OpenAI stream needs "
                'stream_options={"include_usage": True})',
            )
        models = [m for m in (response_model, request_model) if m]
        for rule in self.rules:
            if rule.matches(provider, models):
                return Cost(rule.cost(usage), rule.source)
        problem = None
        for model in dict.fromkeys(models):
            usd, problem = _genai_cost(provider, model, usage)
            if usd is not None:
                return Cost(usd, "genai-prices")
        shown = " / ".join(dict.fromkeys(models)) or "(no model name)"
        return Cost(None, problem=problem or f"no known price for {shown} ({provider})")


def _key(call: LLMCall) -> tuple[Any, ...]:
    """What a call's price depends on: `Pricing._compute`'s arguments."""
    usage = call.usage
    return (
        call.provider,
        call.response_model,
        call.request_model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_input_tokens,
        usage.reasoning_tokens,
        _failed(call),
    )


def _failed(call: LLMCall) -> str:
    if call.status_code is not None and call.status_code >= 400:
        return "error"
    return "no response" if call.no_response else ""


def cost_usd(call: LLMCall) -> float | None:
    """A call's cost from genai-prices alone (no prices file): USD, or None if unknown."""
    return _DEFAULT.cost_usd(call)


_DEFAULT = Pricing()


# -- genai-prices ----------------------------------------------------------------------
@lru_cache(maxsize=1024)
def _genai_model(provider: str, model: str) -> tuple[str | None, str | None]:
    """(genai-prices provider id that knows `model`, None) or (None, why not)."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    for provider_id in _GENAI_PROVIDERS.get(provider, (provider,)):
        try:
            snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
        return provider_id, None
    return None, f"no known price for {model} ({provider})"


def _genai_cost(provider: str, model: str, usage: Usage) -> tuple[float | None, str | None]:
    provider_id, problem = _genai_model(provider, model)
    if provider_id is None:
        return None, problem
    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    tokens = _Tokens.of(usage)
    genai_usage = GenaiUsage(
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cached,
        cache_write_tokens=tokens.cache_write,
        output_reasoning_tokens=tokens.reasoning,
    )
    try:
        price = calc_price(genai_usage, model, provider_id=provider_id)
    except (LookupError, ValueError) as exc:
        return None, f"genai-prices could not price {model} ({provider}): {exc}"
    return float(price.total_price), None


# -- prices file -----------------------------------------------------------------------
def load_rules(path: Path) -> list[PriceRule]:
    """Parse a prices file; every problem raises `PricesFileError` naming file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PricesFileError(f"prices file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PricesFileError(f"prices file {path}: {exc}") from None
    models = data.get("models")
    extra = set(data) - {"models"}
    if extra or not isinstance(models, dict):
        raise PricesFileError(
            f'prices file {path}: expected [models."<glob>"] tables only'
            + (f", found {', '.join(sorted(extra))}" if extra else "")
        )
    return [_rule(path, glob, table) for glob, table in models.items()]


def _rule(path: Path, glob: str, table: Any) -> PriceRule:
    where = f'prices file {path}, [models."{glob}"]'
    if not isinstance(table, dict):
        raise PricesFileError(f"{where}: expected a table of prices")
    unknown = set(table) - set(PRICE_KEYS)
    if unknown:
        raise PricesFileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: "
            + ", ".join(PRICE_KEYS)
        )
    for required in ("input", "output"):
        if required not in table:
            raise PricesFileError(f"{where}: {required} is required (USD per 1M tokens)")
    prices: dict[str, float | None] = {}
    for key in ("input", "output", "cached", "cache_write", "reasoning"):
        value = table.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise PricesFileError(
                f"{where}: {key} = {value!r} is not a price (a number >= 0, USD per 1M tokens)"
            )
        prices[key] = None if value is None else float(value)
    provider = table.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise PricesFileError(f"{where}: provider must be a string (glob)")
    return PriceRule(
        model=glob,
        input=prices["input"] or 0.0,
        output=prices["output"] or 0.0,
        cached=prices["cached"],
        cache_write=prices["cache_write"],
        reasoning=prices["reasoning"],
        provider=provider,
        source=f"{path.name} [models.{glob!r}]",
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
