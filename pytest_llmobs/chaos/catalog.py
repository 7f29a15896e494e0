"""The fault catalog: every fault by name, its parameters, and how it is rendered for the
request it hits, in that provider's own wire format (`dialects.py`).

A fault renders to an `Injection`, which says one of three things:

* `reply`     — answer with this status, headers and body instead of the provider
  (rate limits, overload, server and request errors);
* `transport` — fail below HTTP: no headers before the read timeout, or a reset;
* `damage`    — let a successful answer through, damaged on the way (`damage.py`).

The test process serves an injection through the interceptor (damaging a synthesized
answer), the staging proxy through aiohttp (damaging the real upstream stream): two
delivery paths, one implementation of every fault.
"""

from __future__ import annotations

import json
import random
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from ..intercept.exchange import decode_content
from ..providers.openai import azure_deployment
from .damage import Damage
from .dialects import DIALECTS, Dialect, Reply, RequestInfo

if TYPE_CHECKING:
    from ..intercept.exchange import Exchange
    from ..providers import ProviderRegistry

Kind = Literal["status", "transport", "damage"]
DEFAULT_TEXT = "This answer was synthesized by pytest-llmobs chaos for a damaged response."


class ChaosConfigError(ValueError):
    """A fault, rule or scenario that cannot work; the message says what would."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None is a valid value

    def coerce(self, value: Any, where: str) -> Any:
        if value is None and (self.optional or self.default is None):
            return None
        if isinstance(value, str) and self.kind is not str:
            value = value.strip()
            if self.kind is bool:
                value = value.lower() in ("1", "true", "yes", "on")
        try:
            if self.kind is float and not isinstance(value, bool):
                converted: Any = float(value)
                if converted < 0 or converted != converted:
                    raise ValueError
            elif self.kind is int and not isinstance(value, bool):
                converted = int(value)
                if converted < 0 or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
            elif self.kind is str:
                converted = str(value)
            elif self.kind is bool and isinstance(value, bool):
                converted = value
            else:
                raise ValueError
        except (TypeError, ValueError):
            kind = {
                float: "a number >= 0",
                int: "an integer >= 0",
                str: "a string",
                bool: "true or false",
            }[self.kind]
            raise ChaosConfigError(f"{where}: {self.name}={value!r} must be {kind}") from None
        if self.choices and converted not in self.choices:
            valid = ", ".join(map(str, self.choices))
            raise ChaosConfigError(f"{where}: {self.name}={value!r} is not one of: {valid}")
        return converted


_AFTER = Param("after", int, 2, "output events delivered before the fault strikes")
_TEXT = Param("text", str, DEFAULT_TEXT, "text of the synthesized answer (test process only)")
_HANG = Param("hang_s", float, 5.0, "longest simulated hang before the client's read timeout fires")


@dataclass(frozen=True)
class Fault:
    name: str
    kind: Kind
    summary: str
    wire: str  # what the providers send, for the docs table
    retryable: bool | None  # would a well-behaved client retry it? None: either is fine
    damages_output: bool = False  # the answer is partial / unusable, but may look complete
    stream_only: bool = False
    params: tuple[Param, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def coerce(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """Validated parameters with defaults filled in; unknown names are an error."""
        out = self.defaults()
        for name, value in raw.items():
            spec = self.param(name)
            if spec is None:
                valid = ", ".join(p.name for p in self.params) or "(none)"
                raise ChaosConfigError(
                    f"{where}: fault {self.name!r} has no parameter {name!r}; valid: {valid}"
                )
            out[name] = spec.coerce(value, where)
        return out

    def kind_for(self, params: dict[str, Any], info: RequestInfo) -> Kind:
        if self.name == "content_filter" and (
            params.get("variant") == "output" or info.provider == "anthropic"
        ):
            return "damage"  # Anthropic filters output only: stop_reason "refusal"
        return self.kind

    def applies(self, info: RequestInfo, params: dict[str, Any] | None = None) -> bool:
        dialect = DIALECTS.get(info.provider)
        if dialect is None or info.api not in dialect.apis or self.name in dialect.not_applicable:
            return False
        params = params or self.defaults()
        kind = self.kind_for(params, info)
        if kind == "damage" and (info.api == "embeddings" or not dialect.can_damage(info)):
            return False
        if not dialect.supports(self.name, params, info):
            return False
        return not (self.stream_only and not info.stream)


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "rate_limit",
            "status",
            "rate limited, retry after a short wait",
            "429 + `retry-after` (+ `retry-after-ms` OpenAI/Azure) + rate-limit headers; "
            "Anthropic `rate_limit_error`, Azure `code: 429`; Bedrock `ThrottlingException` "
            "(asks no wait); Gemini `RESOURCE_EXHAUSTED` + RetryInfo `retryDelay`",
            True,
            params=(Param("retry_after", float, 1.0, "seconds asked to wait"),),
        ),
        Fault(
            "quota_exhausted",
            "status",
            "out of quota / credit: retrying cannot help",
            "429 + `x-should-retry: false`: OpenAI/Azure `insufficient_quota`, Anthropic "
            "`enforced_spend_limit_reached`; Bedrock 400 `ServiceQuotaExceededException`; "
            "Gemini 429 `RESOURCE_EXHAUSTED`, a per-day QuotaFailure and no RetryInfo",
            False,
        ),
        Fault(
            "long_retry_after",
            "status",
            "rate limited with a wait longer than a client should block",
            "429 as `rate_limit` with `retry-after: 300` / Gemini `retryDelay: 300s` (openai "
            "3.x gives up above 120 s, anthropic 2.x waits); not on Bedrock or Vertex AI, "
            "which never ask for a wait",
            None,
            params=(Param("retry_after", float, 300.0, "seconds asked to wait"),),
        ),
        Fault(
            "overloaded",
            "status",
            "provider overloaded",
            "Anthropic 529 `overloaded_error`; OpenAI 503 `server_is_overloaded`; Azure 503 "
            "`ServiceUnavailable`; Bedrock 503 `ServiceUnavailableException`; Gemini 503 "
            "`UNAVAILABLE`",
            True,
            params=(Param("retry_after", float, None, "seconds asked to wait", optional=True),),
        ),
        Fault(
            "server_error",
            "status",
            "internal server error",
            "500 OpenAI `server_error` / Anthropic `api_error` / Azure `InternalServerError` / "
            "Bedrock `InternalServerException` / Gemini `INTERNAL`",
            True,
            params=(
                Param("status", int, 500, "HTTP status", choices=(500, 502, 503, 504)),
                Param("retry_after", float, None, "seconds asked to wait", optional=True),
            ),
        ),
        Fault(
            "timeout",
            "transport",
            "no response headers before the client's read timeout",
            "nothing: the client's own read timeout fires (httpx `ReadTimeout`, which openai "
            "and anthropic raise as `APITimeoutError`; requests `ReadTimeout`, botocore "
            "`ReadTimeoutError`)",
            True,
            params=(_HANG,),
        ),
        Fault(
            "connection_reset",
            "transport",
            "connection dropped before any response",
            "connection closed: httpx `RemoteProtocolError` (openai, anthropic: "
            "`APIConnectionError`), requests `ConnectionError`, botocore `ConnectionClosedError`",
            True,
        ),
        Fault(
            "stall_mid_stream",
            "damage",
            "stream stops sending, connection stays open",
            "some events, then silence until the read timeout (`ReadTimeout` mid-body: openai "
            "3.x and anthropic >= 2.17 raise `APITimeoutError` from it, anthropic <= 2.16 lets "
            "it through)",
            None,
            damages_output=True,
            params=(_AFTER, _HANG, _TEXT),
        ),
        Fault(
            "stream_cut",
            "damage",
            "connection dropped after N chunks",
            "some events, then the connection closes mid-body (incomplete chunked read, "
            "`RemoteProtocolError`: openai 3.x and anthropic >= 2.17 raise `APIConnectionError` "
            "from it, anthropic <= 2.16 lets it through)",
            None,
            damages_output=True,
            params=(_AFTER, _TEXT),
        ),
        Fault(
            "stream_truncated",
            "damage",
            "stream ends cleanly, early, without its terminator",
            "some events, then a clean end: no `[DONE]` / `message_stop` / finish reason / "
            "Bedrock `messageStop`; the SDKs accept it silently",
            None,
            damages_output=True,
            params=(_AFTER, _TEXT),
        ),
        Fault(
            "stream_error_event",
            "damage",
            "error event inside a 200 stream",
            'OpenAI `data: {"error": …}`; Anthropic `event: error` `overloaded_error`; '
            "Responses `event: error`; Bedrock exception frame (`serviceUnavailableException`, "
            "`modelStreamErrorException`, `throttlingException`: botocore `EventStreamError`); "
            'Gemini `data: {"error": …}`',
            None,
            damages_output=True,
            stream_only=True,
            params=(
                _AFTER,
                Param(
                    "error",
                    str,
                    "overloaded",
                    "error kind",
                    choices=("overloaded", "server_error", "rate_limit"),
                ),
                _TEXT,
            ),
        ),
        Fault(
            "malformed_chunk",
            "damage",
            "one event's JSON is cut off",
            "an event whose JSON does not parse (the SDKs raise a JSON error; Bedrock: a valid "
            "frame whose JSON is cut)",
            None,
            damages_output=True,
            params=(_AFTER, _TEXT),
        ),
        Fault(
            "slow_stream",
            "damage",
            "latency and jitter on every chunk",
            "the whole answer, each event delayed by `delay_s` ± `jitter_s`, first by "
            "`ttft_s` more",
            None,
            params=(
                Param("ttft_s", float, 0.2, "extra delay before the first event"),
                Param("delay_s", float, 0.05, "delay before every event"),
                Param("jitter_s", float, 0.02, "± random jitter per event (seeded)"),
                _TEXT,
            ),
        ),
        Fault(
            "context_length",
            "status",
            "request too long for the model",
            "400 OpenAI/Azure `context_length_exceeded` (param `messages`); Anthropic "
            '`invalid_request_error` "prompt is too long"; Bedrock `ValidationException`; '
            "Gemini `INVALID_ARGUMENT` (input token count exceeds the maximum)",
            False,
            params=(
                Param(
                    "limit",
                    int,
                    None,
                    "context window named in the message (default: "
                    "128000 OpenAI, 200000 Anthropic/Bedrock, 1048576 Gemini)",
                    optional=True,
                ),
            ),
        ),
        Fault(
            "content_filter",
            "status",
            "content filtered (prompt or output)",
            "prompt: Azure 400 `content_filter` + `innererror.content_filter_result`, OpenAI "
            "400 `invalid_prompt`, Bedrock 200 from a guardrail (`guardrail_intervened` / "
            "`amazon-bedrock-guardrailAction: INTERVENED`), Gemini 200 with "
            "`promptFeedback.blockReason`; output: `finish_reason: content_filter` (Azure "
            "filter results), Anthropic `stop_reason: refusal`, Bedrock `content_filtered`, "
            "Gemini `finishReason: SAFETY`",
            False,
            damages_output=True,
            params=(
                Param(
                    "variant",
                    str,
                    "prompt",
                    "which side was filtered",
                    choices=("prompt", "output"),
                ),
                Param(
                    "category",
                    str,
                    "violence",
                    "Azure category",
                    choices=("hate", "jailbreak", "self_harm", "sexual", "violence"),
                ),
                _AFTER,
                _TEXT,
            ),
        ),
        Fault(
            "truncate_length",
            "damage",
            "answer cut at the token limit",
            "`finish_reason: length` / `stop_reason: max_tokens` / Responses `incomplete` "
            "(`max_output_tokens`) / Bedrock `max_tokens` (Llama `length`) / Gemini `MAX_TOKENS`",
            None,
            damages_output=True,
            params=(
                Param("after", int, None, "output events kept (default: all)", optional=True),
                _TEXT,
            ),
        ),
        Fault(
            "token_spike",
            "damage",
            "usage inflated by a factor",
            "the answer as is, every usage count (and Bedrock's token-count headers) "
            "multiplied by `factor`",
            None,
            params=(Param("factor", float, 10.0, "multiplier for the usage counts"), _TEXT),
        ),
    )
}


def fault_named(name: str, where: str) -> Fault:
    fault = FAULTS.get(str(name).strip())
    if fault is None:
        raise ChaosConfigError(
            f"{where}: unknown fault {name!r}; valid faults: {', '.join(FAULTS)}"
        )
    return fault


# -- what a request is ------------------------------------------------------------------
def describe(exchange: Exchange, registry: ProviderRegistry) -> RequestInfo | None:
    """The request as a fault sees it, or None when it is no LLM call we can fault.

    Cheap on purpose (the proxy asks for every request): the path says which API, one
    JSON parse gives model and stream flag, a user route or the providers' own signs
    (Anthropic's version header, Azure's deployment path or host, AWS signatures) say
    which provider.
    """
    if exchange.method != "POST":
        return None
    target = _path_target(exchange.path)
    api = target[0] if target is not None else _api(exchange.path)
    if api is None:
        return None
    try:
        raw = decode_content(exchange.request_body, exchange.request_header("content-encoding"))
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    try:
        route = registry.route_for(exchange)
    except ValueError:
        return None
    query = urlsplit(exchange.url).query
    if target is not None:  # Bedrock and Gemini name model and streaming in the path
        _, model_id, streaming = target
        provider = route.provider if route is not None else _cloud_provider(exchange, api)
        if provider is None:
            return None
        return RequestInfo(
            provider,
            api,
            model_id,
            streaming,
            path=exchange.path,
            host=exchange.host,
            query=query,
            body=body,
        )
    deployment = azure_deployment(exchange.path)
    provider = route.provider if route is not None else _provider(exchange, api, body, deployment)
    if provider is None:
        return None
    options = body.get("stream_options")
    model = body.get("model")
    return RequestInfo(
        provider=provider,
        api=api,
        model=model if isinstance(model, str) and model else deployment or "",
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        path=exchange.path,
        host=exchange.host,
        query=query,
        body=body,
    )


_BEDROCK_PATH = re.compile(
    r"/model/(?P<model>[^/]+)/"
    r"(?P<action>converse-stream|converse|invoke-with-response-stream|invoke)$"
)
_GEMINI_PATH = re.compile(
    r"/(?:tunedModels|models)/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)


def _path_target(path: str) -> tuple[str, str, bool] | None:
    """(api, model, stream) of a Bedrock or Gemini path, which say all three."""
    path = path.rstrip("/")
    found = _BEDROCK_PATH.search(path)
    if found is not None:
        action = found["action"]
        api = "converse" if action.startswith("converse") else "invoke"
        return api, unquote(found["model"]), action.endswith("stream")
    found = _GEMINI_PATH.search(path)
    if found is not None:
        return "generate_content", unquote(found["model"]), found["method"].startswith("stream")
    return None


def _cloud_provider(exchange: Exchange, api: str) -> str | None:
    if api != "generate_content":  # Bedrock: its host, or a request AWS-signed for it
        auth = exchange.request_header("authorization") or ""
        signed = auth.startswith("AWS4-") or exchange.request_header("x-amz-date") is not None
        return "aws.bedrock" if signed or "bedrock" in exchange.host else None
    vertex = "/publishers/" in exchange.path or exchange.host.endswith("aiplatform.googleapis.com")
    return "gcp.vertex_ai" if vertex else "gcp.gemini"


def _provider(
    exchange: Exchange, api: str, body: dict[str, Any], deployment: str | None
) -> str | None:
    has_model = isinstance(body.get("model"), str) or deployment is not None
    if api == "messages":
        if exchange.request_header("anthropic-version") or (
            exchange.path.rstrip("/").endswith("/v1/messages")
            and has_model
            and isinstance(body.get("messages"), list)
        ):
            return "anthropic"
        return None
    if not has_model or (api == "chat" and not isinstance(body.get("messages"), list)):
        return None
    host = exchange.host
    azure = (
        deployment is not None
        or host.endswith(".openai.azure.com")
        or (host.endswith(".azure.com") and "/openai/" in exchange.path)
    )
    return "azure.ai.openai" if azure else "openai"


def _api(path: str) -> str | None:
    path = path.rstrip("/")
    for suffix, api in (
        ("/chat/completions", "chat"),
        ("/responses", "responses"),
        ("/embeddings", "embeddings"),
        ("/messages", "messages"),
    ):
        if path.endswith(suffix):
            return api
    return None


# -- rendering ---------------------------------------------------------------------------
@dataclass
class Injection:
    """One fault, rendered for one request."""

    fault: Fault
    params: dict[str, Any]
    info: RequestInfo
    dialect: Dialect
    reply: Reply | None = None
    transport: Literal["timeout", "reset"] | None = None
    damage: Damage | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def hang_s(self) -> float:
        return float(self.params.get("hang_s") or 5.0)


def render(
    fault: Fault,
    params: dict[str, Any],
    info: RequestInfo,
    rng: random.Random,
    *,
    rule: str = "",
    seed: int | None = None,
) -> Injection:
    dialect = DIALECTS[info.provider]
    kind = fault.kind_for(params, info)
    injection = Injection(fault, params, info, dialect)
    if kind == "status":
        injection.reply = dialect.error(fault.name, params, info)
    elif kind == "transport":
        injection.transport = "timeout" if fault.name == "timeout" else "reset"
    else:
        injection.damage = Damage(fault.name, params, dialect, info, rng)
    retryable = fault.retryable
    if kind == "damage" and fault.name == "content_filter":
        retryable = False
    # A 200 answered in place of the provider's (a blocked prompt) is damaged output too.
    replaced = injection.reply is not None and injection.reply.status < 400
    injection.annotations = {
        "chaos.fault": fault.name,
        "chaos.kind": kind,
        "chaos.rule": rule or None,
        "chaos.retryable": retryable,
        "chaos.retry_after_s": dialect.announced_retry_after(fault.name, params),
        "chaos.damages_output": fault.damages_output and (kind == "damage" or replaced),
        "chaos.params": json.dumps(
            {k: v for k, v in params.items() if k != "text" and v is not None}, sort_keys=True
        ),
        "chaos.seed": seed,
    }
    return injection


def fault_text(width: int = 88) -> str:
    """The catalog for a terminal (`llmobs proxy --list-faults`): a row per fault (name,
    retry?, parameters), what the client sees wrapped under it, then where faults skip."""
    rows = [("fault", "retry?", "parameters")]
    for fault in FAULTS.values():
        retry = {True: "yes", False: "no", None: "-"}[fault.retryable]
        params = ", ".join(f"{p.name}={p.default!r}" for p in fault.params if p.name != "text")
        rows.append((fault.name, retry, params or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = []
    wires = [None, *(fault.wire for fault in FAULTS.values())]
    for (name, retry, params), wire in zip(rows, wires, strict=True):
        lines.append(f"{name:<{widths[0]}}  {retry:<{widths[1]}}  {params}".rstrip())
        if wire:
            plain = wire.replace("`", "")
            lines += textwrap.wrap(plain, width, initial_indent="    ", subsequent_indent="    ")
    notes = _skip_notes()
    if notes:
        lines += ["", SKIPS]
        for note in notes:
            lines += textwrap.wrap(
                note.replace("`", ""), width, initial_indent="  - ", subsequent_indent="    "
            )
    return "\n".join(lines)


def fault_table() -> str:
    """The catalog as a Markdown table (the docs, `llmobs proxy --list-faults --markdown`)."""
    lines = ["| fault | what the client sees | retry? | parameters |", "|---|---|---|---|"]
    for fault in FAULTS.values():
        retry = {True: "yes", False: "no", None: "—"}[fault.retryable]
        params = ", ".join(f"`{p.name}`={p.default!r}" for p in fault.params if p.name != "text")
        lines.append(f"| `{fault.name}` | {fault.wire} | {retry} | {params or '—'} |")
    notes = _skip_notes()
    if notes:
        lines += ["", SKIPS, "", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


SKIPS = "Where a fault cannot happen, rules skip the call:"


def _skip_notes() -> list[str]:
    """Faults a provider cannot have, and each provider's limits, in Markdown."""
    notes = [
        f"`{name}` does not apply to `{dialect.provider}`: {why}."
        for dialect in DIALECTS.values()
        for name, why in dialect.not_applicable.items()
    ]
    notes += [
        f"`{dialect.provider}`: {dialect.limitation}."
        for dialect in DIALECTS.values()
        if dialect.limitation
    ]
    return notes
