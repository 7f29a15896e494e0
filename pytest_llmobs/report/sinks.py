"""Where alerts and the run's figures go besides the terminal and JUnit: a Slack-compatible
webhook and a Prometheus Pushgateway. Delivery never fails the run: a sink that is down
gives a `Delivery` with the problem, which the plugin turns into a warning. URLs are shown
as scheme://host/… only (webhook paths and userinfo are secrets).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..alerts import SEVERITIES, Alert, counts, errored, truncated
from ..budgets import percentile
from ..redaction import Redactor
from ..words import count

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TIMEOUT_S = 10.0
_MAX_BLOCKS = 40  # Slack accepts 50 blocks per message
_MAX_SECTION = 2900  # …and 3000 characters per section text
PUSH_METRICS = (
    "llmobs_ci_tests",
    "llmobs_ci_calls",
    "llmobs_ci_retries",
    "llmobs_ci_errors",
    "llmobs_ci_truncations",
    "llmobs_ci_tokens",
    "llmobs_ci_cost_usd",
    "llmobs_ci_p95_latency_seconds",
    "llmobs_ci_p95_ttft_seconds",
    "llmobs_ci_injected_faults",
    "llmobs_ci_alerts_firing",
    "llmobs_ci_baseline_regressions",
    "llmobs_ci_token_spikes",
    "llmobs_ci_run_duration_seconds",
)


def safe_url(url: str) -> str:
    """``https://hooks.slack.com/…``: scheme, host and port only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


@dataclass(frozen=True)
class Delivery:
    sink: str  # "webhook" | "pushgateway"
    target: str  # safe_url of where it went
    ok: bool
    detail: str = ""

    @property
    def line(self) -> str:
        if self.ok:
            return f"llmobs: {self.sink} {self.target}: {self.detail or 'delivered'}"
        return (
            f"llmobs: {self.sink} {self.target} failed: {self.detail}; the run's result is "
            "unchanged"
        )


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its secret parts from an error message."""
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query, parts.password or "", parts.username or ""):
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return Redactor().text(text)


# -- webhook -------------------------------------------------------------------------------
def slack_payload(
    alerts: Sequence[Alert], context: Mapping[str, Any], redactor: Redactor | None = None
) -> dict[str, Any]:
    """``text`` (the notification line) + ``blocks`` (header, one section per alert, context),
    as Slack incoming webhooks (and Mattermost, Rocket.Chat, Teams' Slack mode) take it;
    redacted with the session's rules (its key names, PII masking) when given them."""
    by = counts(alerts)
    worst = next((s for s in reversed(SEVERITIES) if by[s]), "info")
    title = f"pytest-llmobs: {count(len(alerts), 'LLM alert')} firing" + (
        f" ({by['critical']} critical)" if by["critical"] else ""
    )
    icon = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    shown = alerts[:_MAX_BLOCKS]
    for alert in shown:
        rule = alert.rule
        where = "session" if rule.scope == "session" else f"{rule.scope} `{alert.key}`"
        text = (
            f"{icon[rule.severity]} *{rule.severity.upper()}* {rule.title}\n"
            f"`{rule.condition}`: {rule.metric} = *{alert.shown_value}* ({where})"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:_MAX_SECTION]}})
    if len(alerts) > len(shown):
        more = f"… and {len(alerts) - len(shown)} more (see the run's JUnit / summary.json)"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": more}})
    facts = " · ".join(f"{k}: {v}" for k, v in context.items() if v not in (None, ""))
    if facts:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": facts[:_MAX_SECTION]}]}
        )
    lines = [title] + [f"- {a.message}" for a in alerts[:10]]
    if len(alerts) > 10:
        lines.append(f"- … {len(alerts) - 10} more")
    payload = {"text": "\n".join(lines), "blocks": blocks, "severity": worst}
    result: dict[str, Any] = (redactor or Redactor()).json(payload)
    return result


def post_webhook(url: str, payload: Mapping[str, Any], timeout: float = TIMEOUT_S) -> Delivery:
    """POST the JSON payload; any failure (down, timeout, non-2xx) is a failed `Delivery`."""
    import urllib.error  # only here: urllib.request takes ~10 ms to import
    import urllib.request

    target = safe_url(url)
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "user-agent": "pytest-llmobs"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return Delivery("webhook", target, False, f"HTTP {exc.code} {_scrub(str(exc.reason), url)}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery("webhook", target, False, _scrub(f"{type(exc).__name__}: {reason}", url))
    return Delivery(
        "webhook",
        target,
        True,
        f"delivered ({len(payload.get('blocks') or [])} blocks, HTTP {status})",
    )


# -- Pushgateway ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFigures:
    """What is pushed besides the tests: alerts, regressions, spikes, the run's duration."""

    alerts: Sequence[Alert] = ()
    regressions: int = 0
    spikes: int = 0
    duration_s: float = 0.0


def run_registry(tests: Mapping[str, Mapping[str, Any]], run: RunFigures) -> CollectorRegistry:
    """The run's figures as gauges in a fresh registry (nothing global is touched).

    Calls, errors, truncations, retries, tokens and cost are per provider and model, so
    rates are sums over them; percentiles are run-wide (they do not add up)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=registry)

    outcomes = gauge("llmobs_ci_tests", "Tests in the run, by outcome", ["outcome"])
    for outcome in ("passed", "failed", "skipped"):
        outcomes.labels(outcome).set(sum(1 for t in tests.values() if t.get("outcome") == outcome))
    per_model = ("provider", "model")
    calls = gauge("llmobs_ci_calls", "LLM HTTP attempts (retries included)", per_model)
    retries = gauge("llmobs_ci_retries", "LLM attempts after the first", per_model)
    errors = gauge(
        "llmobs_ci_errors", "Failed attempts (HTTP >= 400, transport), not injected", per_model
    )
    truncs = gauge("llmobs_ci_truncations", "Truncated or partial answers, not injected", per_model)
    tokens = gauge("llmobs_ci_tokens", "Tokens, by kind (input, output)", [*per_model, "kind"])
    cost = gauge("llmobs_ci_cost_usd", "Cost of the priced attempts, USD", per_model)
    faults = gauge("llmobs_ci_injected_faults", "Calls answered by a chaos fault", ["fault"])
    records = [c for t in tests.values() for c in t.get("calls") or []]
    for record in records:
        labels = (str(record.get("provider") or "?"), str(record.get("model") or "?"))
        usage = record.get("usage") or {}
        calls.labels(*labels).inc()
        retries.labels(*labels).inc(1 if record.get("attempt") else 0)
        # injected faults are llmobs_ci_injected_faults, not provider errors or truncations
        errors.labels(*labels).inc(1 if errored(record) else 0)
        truncs.labels(*labels).inc(1 if truncated(record) else 0)
        tokens.labels(*labels, "input").inc(int(usage.get("input_tokens") or 0))
        tokens.labels(*labels, "output").inc(int(usage.get("output_tokens") or 0))
        cost.labels(*labels).inc(float(record.get("cost_usd") or 0.0))
        if fault := (record.get("attributes") or {}).get("llmobs.chaos.fault"):
            faults.labels(str(fault)).inc()
    latencies = [float(r["duration_s"]) for r in records if r.get("duration_s") is not None]
    ttfts = [
        float(r["time_to_first_chunk_s"])
        for r in records
        if r.get("stream") and r.get("time_to_first_chunk_s") is not None
    ]
    for name, doc, values in (
        ("llmobs_ci_p95_latency_seconds", "p95 latency of the run's LLM attempts", latencies),
        ("llmobs_ci_p95_ttft_seconds", "p95 time to first chunk of the run's streams", ttfts),
    ):
        p95 = percentile(values, 95)
        if p95 is not None:
            gauge(name, doc).set(p95)
    firing = gauge("llmobs_ci_alerts_firing", "Alert rules firing, by severity", ["severity"])
    for severity, n in counts(run.alerts).items():
        firing.labels(severity).set(n)
    gauge("llmobs_ci_baseline_regressions", "Baseline regressions").set(run.regressions)
    gauge("llmobs_ci_token_spikes", "Calls flagged as token spikes").set(run.spikes)
    gauge("llmobs_ci_run_duration_seconds", "Wall time of the test run").set(run.duration_s)
    return registry


def push(
    url: str,
    registry: CollectorRegistry,
    *,
    job: str,
    instance: str,
    timeout: float = TIMEOUT_S,
) -> Delivery:
    """PUT the registry to the Pushgateway group job/instance (replacing the last run's)."""
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    target = safe_url(url)
    parts = urlsplit(url)
    gateway = url
    handler: Callable[..., Callable[[], None]] = default_handler
    if parts.username is not None:  # credentials in the URL: basic auth, not in the path
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        gateway = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        user, password = parts.username, parts.password

        def handler(
            url: str, method: str, timeout: float | None, headers: Any, data: bytes
        ) -> Callable[[], None]:
            result: Callable[[], None] = basic_auth_handler(
                url, method, timeout, headers, data, username=user, password=password
            )
            return result

    try:
        push_to_gateway(
            gateway,
            job=job,
            registry=registry,
            grouping_key={"instance": instance},
            timeout=timeout,
            handler=handler,
        )
    except Exception as exc:  # never fail the run over a metrics push
        reason = getattr(exc, "reason", None) or exc
        return Delivery(
            "pushgateway", target, False, _scrub(f"{type(exc).__name__}: {reason}", url)
        )
    return Delivery("pushgateway", target, True, f"pushed job={job} instance={instance}")
