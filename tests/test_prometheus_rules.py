"""The Prometheus alerting rules shipped in pytest_llmobs/prometheus/: checked and unit
tested with Debian's real promtool, and their metric names cross-checked against what the
plugin pushes (llmobs_ci_*) and what the chaos proxy serves (llmobs_proxy_*)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_support import PROMTOOL, Pushgateway, needs_promtool, running_pushgateway

from pytest_llmobs.alerts import Alert, parse_rule
from pytest_llmobs.chaos.proxy import Metrics
from pytest_llmobs.report.sinks import PUSH_METRICS, RunFigures, push, run_registry

RULES = "llmobs-alerts.rules.yml"
TESTS = "llmobs-alerts.tests.yml"
_METRIC = re.compile(r"\b(llmobs_[a-z0-9_]+|push_time_seconds)\b")


def shipped(name: str) -> Path:
    path = Path(str(resources.files("pytest_llmobs") / "prometheus" / name))
    assert path.is_file(), f"{name} is not in the package"
    return path


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(shipped(RULES).read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES, cwd=shipped(RULES).parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", TESTS, cwd=shipped(TESTS).parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
@pytest.mark.parametrize(
    ("old", "new", "alert"),
    [
        # a threshold too loose: the bad run no longer fires
        ("(llmobs_ci_calls) > 0.05", "(llmobs_ci_calls) > 0.5", "LLMCIErrorRateHigh"),
        # a threshold too tight: the healthy run starts firing
        (
            "(llmobs_ci_p95_latency_seconds) > 10",
            "(llmobs_ci_p95_latency_seconds) > 1",
            "LLMCIP95LatencyHigh",
        ),
        # injected faults counted as errors: the mild proxy scenario starts alerting
        ('fault="none", status=~"0|429|5.."', 'status=~"0|429|5.."', "LLMProxyErrorRateHigh"),
    ],
)
def test_promtool_unit_tests_catch_a_broken_rule(
    tmp_path: Path, old: str, new: str, alert: str
) -> None:
    text = shipped(RULES).read_text()
    assert text.count(old) == 1
    (tmp_path / RULES).write_text(text.replace(old, new))
    shutil.copy(shipped(TESTS), tmp_path / TESTS)
    result = promtool("test", "rules", TESTS, cwd=tmp_path)
    assert result.returncode == 1
    assert f"alertname: {alert}," in result.stdout + result.stderr


def test_every_rule_is_labelled_documented_and_tested() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    tests = yaml.safe_load(shipped(TESTS).read_text())
    tested: dict[str, set[bool]] = {}
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            tested.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    for rule in rules():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        # every alert is seen firing and seen staying quiet
        assert tested.get(rule["alert"]) == {True, False}, rule["alert"]


# -- the names in the rules are the names pushed and served --------------------------------
def _sample_names(families: Any) -> set[str]:
    return {sample.name for family in families for sample in family.samples}


def _pushed_registry() -> Any:
    alert = Alert(parse_rule("calls > 0 severity=critical"), "session", 3)
    record = {
        "provider": "openai",
        "model": "gpt-4o",
        "stream": True,
        "duration_s": 0.5,
        "time_to_first_chunk_s": 0.1,
        "usage": {"input_tokens": 1, "output_tokens": 2},
        "cost_usd": 0.001,
        "attributes": {"llmobs.chaos.fault": "rate_limit"},
    }
    tests = {"t": {"outcome": "passed", "calls": [record]}}
    return run_registry(tests, RunFigures(alerts=[alert], regressions=1, spikes=1, duration_s=2))


def _served_by_proxy() -> set[str]:
    metrics = Metrics()  # the registry behind the proxy's GET /metrics
    metrics.requests.labels("POST", "200", "openai", "none").inc()
    metrics.faults.labels("rate_limit", "openai", "rule").inc()
    metrics.upstream_errors.labels("ClientConnectorError").inc()
    metrics.duration.labels("openai").observe(0.3)
    metrics.in_flight.inc()
    return _sample_names(metrics.registry.collect())


def _rule_metrics() -> dict[str, set[str]]:
    return {rule["alert"]: set(_METRIC.findall(rule["expr"])) for rule in rules()}


def test_rule_metric_names_exist() -> None:
    pushed = _sample_names(_pushed_registry().collect())
    served = _served_by_proxy()
    known = pushed | served | {"push_time_seconds"}  # the Pushgateway's own, per group
    for alert, used in _rule_metrics().items():
        assert used, alert
        assert used <= known, f"{alert} uses {sorted(used - known)}, not pushed or served"
    used = set().union(*_rule_metrics().values())
    # every proxy figure has an alert; the CI ones the README lists do too
    assert {
        "llmobs_proxy_requests_total",
        "llmobs_proxy_faults_injected_total",
        "llmobs_proxy_request_duration_seconds_bucket",
        "llmobs_proxy_upstream_errors_total",
    } <= used
    assert {
        "llmobs_ci_calls",
        "llmobs_ci_errors",
        "llmobs_ci_truncations",
        "llmobs_ci_p95_latency_seconds",
        "llmobs_ci_p95_ttft_seconds",
        "llmobs_ci_tokens",
        "llmobs_ci_cost_usd",
        "llmobs_ci_injected_faults",
        "llmobs_ci_alerts_firing",
    } <= used
    assert {name for name in used if name.startswith("llmobs_ci_")} <= set(PUSH_METRICS)


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with running_pushgateway(tmp_path) as gateway:
        yield gateway


def test_rule_names_match_a_real_push(pushgateway: Pushgateway) -> None:
    delivery = push(pushgateway.url, _pushed_registry(), job="pytest_llmobs", instance="ci")
    assert delivery.ok, delivery.line
    served = set(pushgateway.metrics())
    for alert, used in _rule_metrics().items():
        ci = {name for name in used if not name.startswith("llmobs_proxy_")}
        assert ci <= served, f"{alert}: {sorted(ci - served)} not on the Pushgateway"


def test_rules_ship_as_package_data() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"prometheus/*.yml"' in text
    assert shipped(RULES).parent == shipped(TESTS).parent
