"""Every option declared once; resolved CLI > ini > environment > default.

Each `Option` becomes a `--llm-*` flag and its ini twin, so the two can never drift
apart. `Settings` is the frozen result the rest of the plugin reads; nothing else
calls `config.getoption`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pytest


@dataclass(frozen=True)
class Option:
    name: str  # ini key and Settings attribute; the flag is --name with _ → -
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    kind: str = "string"  # string | bool | linelist | float | int
    env: str | None = None
    secret: bool = False  # the value may hold credentials: never shown in the header

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "llm_hosts",
        "extra LLM endpoints as HOST[/PATH_PREFIX]=PROVIDER (repeatable), e.g. "
        "llm.corp/v2=openai; providers: openai, azure.ai.openai, anthropic",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_capture_content",
        "put prompts and completions on spans (gen_ai.input.messages / "
        "gen_ai.output.messages); off by default",
        default=False,
        kind="bool",
        env="LLMOBS_CAPTURE_CONTENT",
    ),
    Option(
        "llm_snapshot_update",
        "write missing trace snapshots (llmobs.assert_trace_snapshot) and rewrite those "
        "that differ, instead of failing",
        default=False,
        kind="bool",
    ),
    Option(
        "llm_chaos",
        "inject chaos into every test: a fault name (e.g. rate_limit) or a YAML scenario file "
        "(relative to the invocation directory)",
        default="",
        env="LLMOBS_CHAOS",
    ),
    Option(
        "llm_chaos_seed",
        "seed for chaos decisions (probabilities, jitter); the same seed gives the same "
        "faults. Default: the scenario's seed, else random (shown in the header)",
        default=None,
        kind="int",
        env="LLMOBS_CHAOS_SEED",
    ),
    Option(
        "llm_chaos_verdict",
        "resilience verdict thresholds, e.g. 'min_backoff_ms=100 storm_retries=3 "
        "storm_window_ms=500 max_retries=4 backoff_growth=1.1 retry_after_tolerance_ms=50 "
        "retry_after_ratio=0.9 max_read_timeout_s=120' (those are the defaults)",
        default="",
        env="LLMOBS_CHAOS_VERDICT",
    ),
    Option(
        "llm_chaos_gate",
        "what a failing resilience verdict does to a test that had faults injected (marker, "
        "matrix or --llm-chaos): fail the test, warn (it passes; the verdict is reported), "
        "or off",
        default="fail",
        choices=("fail", "warn", "off"),
        env="LLMOBS_CHAOS_GATE",
    ),
    Option(
        "llm_budget_mode",
        "what a violated llm_budget, a truncated answer or the session budget does: fail "
        "the test / run, warn (LLMBudgetWarning and a terminal note), or off (not checked)",
        default="fail",
        choices=("fail", "warn", "off"),
        env="LLMOBS_BUDGET_MODE",
    ),
    Option(
        "llm_session_budget",
        "limits for the whole run, e.g. 'max_cost_usd=2.50 max_total_tokens=200000' "
        "(llm_budget keys except allow_truncation); exceeding one fails the run at the end",
        default="",
    ),
    Option(
        "llm_prices",
        "TOML file of your own model prices (USD per 1M tokens), tried before genai-prices; "
        "relative to the rootdir",
        default="",
    ),
    # -- cassettes (pytest_llmobs/cassettes) ----------------------------------------------
    Option(
        "llm_record_mode",
        "cassette record mode: none = strict offline replay, a request not in the cassette "
        "fails the test; once = record a test whose cassette does not exist yet; "
        "new_episodes = replay what matches, record the rest; all = record everything again "
        "(keeping unmatched old interactions); rewrite = discard the cassette and record it "
        "anew; off = no cassettes, every request goes to the network",
        default="none",
        choices=("none", "once", "new_episodes", "all", "rewrite", "off"),
        env="LLMOBS_RECORD_MODE",
    ),
    Option(
        "llm_replay_timing",
        "replay pace: instant (default; calls still carry the recorded latency and TTFT as "
        "llmobs.recorded.*), realtime (the recorded chunk offsets), or a factor that scales "
        "them (0.5 = twice as fast)",
        default="instant",
        env="LLMOBS_REPLAY_TIMING",
    ),
    Option(
        "llm_cassette_dir",
        "directory for cassettes, relative to the rootdir (default: a cassettes/ directory "
        "next to each test module)",
        default="",
    ),
    Option(
        "llm_allow_hosts",
        "hosts (HOST, HOST:PORT, *.domain, *) whose non-LLM traffic goes to the network "
        "without cassettes; 'none' for no host. LLM calls always use cassettes",
        default=("localhost", "127.0.0.1", "::1"),
        kind="linelist",
    ),
    Option(
        "llm_match_ignore",
        "request body paths ignored when matching, added to user, metadata, "
        "safety_identifier, idempotency_key (dotted, * for any key or index: "
        "messages.*.name)",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_match_ignore_query",
        "URL query parameters ignored when matching (credentials and signatures already are)",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_match_vcrpy_cassettes",
        "how interactions in cassettes vcrpy / pytest-recording wrote are matched: vcrpy "
        "(as vcrpy would: its match_on, default method scheme host port path query), llm "
        "(LLM-aware, like the cassettes pytest-llmobs writes), or auto (vcrpy in tests "
        "marked vcr, llm elsewhere)",
        default="auto",
        choices=("auto", "vcrpy", "llm"),
    ),
    Option(
        "llm_mask_pii",
        "mask emails, phone numbers, card numbers and IBANs in cassettes with stable "
        "placeholders (<EMAIL_1a2b3c4d>); secrets are always redacted",
        default=False,
        kind="bool",
        env="LLMOBS_MASK_PII",
    ),
    Option(
        "llm_pii_patterns",
        "your own PII to mask, NAME=REGEX (repeatable), e.g. employee_id=EMP-[0-9]{6}",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_redact_keys",
        "extra header, query and JSON key names whose values are secrets (repeatable)",
        default=(),
        kind="linelist",
    ),
    # -- artifacts (pytest_llmobs/report) ------------------------------------------------
    Option(
        "llm_artifacts",
        "directory for CI artifacts (llmobs-junit.xml, traces.jsonl, traces.perfetto.json, "
        "prompts.jsonl, summary.json, report.html), relative to the invocation directory; "
        "written only "
        "when the run made LLM calls or an artifact option was given",
        default="llmobs-artifacts",
        env="LLMOBS_ARTIFACTS",
    ),
    Option(
        "llm_log_sample_rate",
        "share of LLM calls kept in prompts.jsonl, 0..1 (decided per call, the same in every "
        "run); calls from failed tests and calls that violate a check are always kept",
        default=1.0,
        kind="float",
        env="LLMOBS_LOG_SAMPLE_RATE",
    ),
    Option(
        "llm_log_content",
        "message and response content in artifacts (prompts.jsonl, span attributes): none, "
        "redacted (secrets removed; PII masked with --llm-mask-pii) or full (PII kept, "
        "secrets still removed)",
        default="redacted",
        choices=("none", "redacted", "full"),
        env="LLMOBS_LOG_CONTENT",
    ),
    # -- baselines and alerts (baseline.py, spikes.py, alerts.py, report/watch.py) ----------
    Option(
        "llm_baseline",
        "baseline JSON file (relative to the rootdir) to compare each test's tokens, cost, "
        "calls and p95 latency with; regressions fail or warn per --llm-budget-mode",
        default="",
    ),
    Option(
        "llm_baseline_update",
        "rewrite the --llm-baseline file from this run (passed tests with LLM calls; other "
        "entries kept) instead of comparing",
        default=False,
        kind="bool",
    ),
    Option(
        "llm_baseline_tolerance",
        "how far above the baseline a figure may go, FIGURE=+N% or +N or off, over the "
        "defaults calls=+0 total_tokens=+15% cost_usd=+10% p95_latency_s=+25%+0.05 (figures: "
        "calls, retries, input_tokens, output_tokens, total_tokens, cost_usd, p95_latency_s)",
        default="",
    ),
    Option(
        "llm_token_spike",
        "flag a call whose total tokens exceed FACTOR x the same prompt's baseline, recorded "
        "or in-run usage by at least MIN tokens: 'factor=3 min_tokens=100' (default), or off",
        default="factor=3 min_tokens=100",
    ),
    Option(
        "llm_alert",
        "alert rule (repeatable): METRIC OP THRESHOLD [scope=session|model|test] "
        "[severity=info|warning|critical] [name=...] [model=GLOB], e.g. "
        "'error_rate > 0.05 scope=session severity=critical'",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_alert_rules",
        "TOML file of [[alert]] rules (relative to the rootdir), added to llm_alert",
        default="",
    ),
    Option(
        "llm_alert_webhook",
        "URL that receives firing alerts as a Slack-compatible JSON POST (text + blocks); "
        "a failed delivery is a warning, never a failed run",
        default="",
        env="LLMOBS_ALERT_WEBHOOK",
        secret=True,
    ),
    Option(
        "llm_pushgateway",
        "Prometheus Pushgateway URL that receives the run's metrics (llmobs_ci_*) at the end "
        "(needs prometheus-client: pip install 'pytest-llmobs[alerts]')",
        default="",
        env="LLMOBS_PUSHGATEWAY",
        secret=True,
    ),
    Option(
        "llm_pushgateway_job",
        "job label of the pushed metrics",
        default="pytest_llmobs",
        env="LLMOBS_PUSHGATEWAY_JOB",
    ),
    Option(
        "llm_pushgateway_instance",
        "instance label of the pushed metrics (default: the host name)",
        default="",
        env="LLMOBS_PUSHGATEWAY_INSTANCE",
    ),
    Option(
        "llm_encrypt_key_env",
        "name of an environment variable holding the artifact key (base64, from `llmobs "
        "keygen`, or aws-kms:KEY_ID): prompts.jsonl, traces.jsonl, traces.perfetto.json and "
        "report.html are then written encrypted as NAME.enc (`llmobs decrypt` restores them)",
        default="",
    ),
    # -- live export (export.py) ---------------------------------------------------------
    Option(
        "llm_otlp_endpoint",
        "OTLP/HTTP traces URL (e.g. http://127.0.0.1:6006/v1/traces) that receives every "
        "captured span, redacted like the artifacts, in batches as the run goes; default: "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; "
        "'none' turns export off. Headers: OTEL_EXPORTER_OTLP_HEADERS",
        default="",
    ),
    Option(
        "llm_otlp_project",
        "project for exported spans, sent as the x-project-name header (Arize Phoenix)",
        default="",
        env="LLMOBS_OTLP_PROJECT",
    ),
    Option(
        "llm_otlp_timeout",
        "seconds one export may take (retries included), and the most the end of the run "
        "waits for the last spans",
        default=5.0,
        kind="float",
    ),
)


@dataclass(frozen=True)
class Settings:
    llm_hosts: tuple[str, ...] = ()
    llm_capture_content: bool = False
    llm_snapshot_update: bool = False
    llm_chaos: str = ""
    llm_chaos_seed: int | None = None
    llm_chaos_verdict: str = ""
    llm_chaos_gate: str = "fail"
    llm_budget_mode: str = "fail"
    llm_session_budget: str = ""
    llm_prices: str = ""
    llm_record_mode: str = "none"
    llm_replay_timing: str = "instant"
    llm_cassette_dir: str = ""
    llm_allow_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    llm_match_ignore: tuple[str, ...] = ()
    llm_match_ignore_query: tuple[str, ...] = ()
    llm_match_vcrpy_cassettes: str = "auto"
    llm_mask_pii: bool = False
    llm_pii_patterns: tuple[str, ...] = ()
    llm_redact_keys: tuple[str, ...] = ()
    llm_artifacts: str = "llmobs-artifacts"
    llm_log_sample_rate: float = 1.0
    llm_log_content: str = "redacted"
    llm_baseline: str = ""
    llm_baseline_update: bool = False
    llm_baseline_tolerance: str = ""
    llm_token_spike: str = "factor=3 min_tokens=100"
    llm_alert: tuple[str, ...] = ()
    llm_alert_rules: str = ""
    llm_alert_webhook: str = ""
    llm_pushgateway: str = ""
    llm_pushgateway_job: str = "pytest_llmobs"
    llm_pushgateway_instance: str = ""
    llm_encrypt_key_env: str = ""
    llm_otlp_endpoint: str = ""
    llm_otlp_project: str = ""
    llm_otlp_timeout: float = 5.0
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            value, source = _resolve(config, option)
            values[option.name] = _convert(option, value, source)
            sources[option.name] = source
        return cls(**values, sources=sources)

    def header(self, version: str, *, hint: bool = True) -> str:
        """The one header line: version, record mode, the check mode unless it is `fail`,
        and what is switched on (`-v` shows every setting: `detail_lines`)."""
        mode = self.llm_record_mode + _from(self.sources.get("llm_record_mode", "default"))
        parts = [f"record mode {mode}"]
        if self.llm_budget_mode != "fail":
            parts.append(f"checks {self.llm_budget_mode}")
        on = self.switched_on()
        if on:
            parts.append("on: " + ", ".join(on))
        if hint:
            parts.append("-v shows every setting")
        return f"llmobs {version}: " + "; ".join(parts)

    def switched_on(self) -> list[str]:
        """The features this run turns on, in words (chaos, masking, baselines, export …)."""
        on = []
        if self.llm_chaos:
            on.append(f"chaos {self.llm_chaos}")
        if self.llm_session_budget:
            on.append("session budget")
        if self.llm_replay_timing != "instant":
            on.append(f"replay timing {self.llm_replay_timing}")
        if self.llm_mask_pii or self.llm_pii_patterns:
            on.append("PII masking")
        if self.llm_log_content != "redacted":
            on.append(f"log content {self.llm_log_content}")
        if self.llm_capture_content:
            on.append("content on spans")
        if self.llm_snapshot_update:
            on.append("snapshot update")
        if self.llm_baseline:
            update = " (update)" if self.llm_baseline_update else ""
            on.append(f"baseline {self.llm_baseline}{update}")
        if self.llm_alert or self.llm_alert_rules:
            on.append("alerts")
        if self.llm_pushgateway:
            on.append("Pushgateway")
        if self.llm_encrypt_key_env:
            on.append("encrypted artifacts")
        if self.llm_otlp_endpoint and self.llm_otlp_endpoint != "none":
            on.append("OTLP export")
        return on

    def detail_lines(self, width: int = 100) -> list[str]:
        """Every setting (`header_items`), wrapped: the `-v` header."""
        lines = ["llmobs settings:"]
        for item in self.header_items():
            if len(lines[-1]) + len(item) + 2 > width and lines[-1].strip() != "":
                lines.append(" ")
            lines[-1] += f" {item},"
        lines[-1] = lines[-1].rstrip(",")
        return lines

    def header_items(self) -> list[str]:
        """`name=value` for the report header, non-defaults marked with where they came from."""
        items = []
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
            if value and f.name in _SECRET:
                shown = "<redacted>"
            source = self.sources.get(f.name, "default")
            items.append(
                f"{f.name}={shown or '-'}" + ("" if source == "default" else f" ({source})")
            )
        return items


_SECRET = frozenset(o.name for o in OPTIONS if o.secret)


def _from(source: str) -> str:
    return "" if source == "default" else f" ({source})"


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmobs", "LLM observability (pytest-llmobs)")
    for option in OPTIONS:
        # argparse %-formats help texts ("+15%" would break `pytest --help`); ini help is not
        kwargs: dict[str, Any] = {
            "dest": option.name,
            "default": None,
            "help": option.help.replace("%", "%%"),
        }
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", **kwargs)
        elif option.kind == "linelist":
            group.addoption(option.flag, action="append", metavar="VALUE", **kwargs)
        else:
            if option.choices:
                kwargs["help"] += f" ({'|'.join(option.choices)})"
            group.addoption(option.flag, metavar=option.name.upper(), **kwargs)
        ini_type = {"bool": "bool", "linelist": "linelist"}.get(option.kind, "string")
        parser.addini(option.name, option.help, type=ini_type, default=None)  # type: ignore[arg-type]


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str]:
    cli = config.getoption(option.name, default=None)
    if cli is not None and cli is not False:
        return cli, "cli"
    ini = config.getini(option.name)
    if ini not in (None, [], ""):
        return ini, "ini"
    if option.env and os.environ.get(option.env):
        return os.environ[option.env], "env"
    return option.default, "default"


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": lambda v: (
        v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")
    ),
    "linelist": lambda v: tuple(
        str(x).strip() for x in ([v] if isinstance(v, str) else v) if str(x).strip()
    ),
    "float": float,
    "int": int,
    "string": str,
}


def _convert(option: Option, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        converted = _CONVERTERS[option.kind](value)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"{option.flag} / ini {option.name} ({source}): {value!r} is not a valid {option.kind}"
        ) from None
    if option.choices and converted not in option.choices:
        raise pytest.UsageError(
            f"{option.flag} / ini {option.name} ({source}): {value!r} is not one of "
            f"{', '.join(option.choices)}"
        )
    return converted


def validated(values: Sequence[str], parse: Callable[[str], Any], where: str) -> list[Any]:
    """Parse each value, turning a ValueError into a UsageError that says where it came from."""
    out = []
    for value in values:
        try:
            out.append(parse(value))
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    return out
