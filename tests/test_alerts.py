"""Alert rules (ini llm_alert, --llm-alert-rules TOML) and their sinks: terminal, JUnit, a
Slack-compatible webhook (a local receiver) and Debian's real prometheus-pushgateway."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from prometheus_support import (
    Pushgateway,
    WebhookReceiver,
    free_port,
    needs_pushgateway,
    running_pushgateway,
    running_webhook,
)

from pytest_llmobs.alerts import (
    METRICS,
    Alert,
    AlertRuleError,
    counts,
    evaluate,
    load_rules_file,
    parse_rule,
)
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.report.sinks import (
    PUSH_METRICS,
    RunFigures,
    post_webhook,
    run_registry,
    safe_url,
    slack_payload,
)
from pytest_llmobs.testing import ProviderServer

SECRET_PATH = "/services/T000/B000/XXXXwebhookSECRETxxxx"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with running_webhook() as receiver:
        yield receiver


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with running_pushgateway(tmp_path) as gateway:
        yield gateway


def rec(
    model: str = "gpt-4o",
    status: int = 200,
    *,
    tokens: int = 10,
    source: str = "live",
    attempt: int = 0,
    duration: float = 0.5,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": model,
        "status_code": status,
        "source": source,
        "attempt": attempt,
        "duration_s": duration,
        "usage": {"input_tokens": tokens, "output_tokens": tokens, "total_tokens": None},
        "cost_usd": 0.001,
        **extra,
    }


# -- rules -----------------------------------------------------------------------------------
def test_parse_rule_forms() -> None:
    rule = parse_rule('error_rate > 0.05 scope=session severity=critical name="LLM errors"')
    assert (rule.metric, rule.op, rule.threshold, rule.scope, rule.severity) == (
        "error_rate",
        ">",
        0.05,
        "session",
        "critical",
    )
    assert rule.title == "LLM errors" and rule.condition == "error_rate > 0.05"
    compact = parse_rule("p95_latency_s>=2.5")
    assert (compact.op, compact.threshold, compact.scope, compact.severity) == (
        ">=",
        2.5,
        "session",
        "warning",
    )
    assert compact.title == "p95_latency_s >= 2.5"
    verdict = parse_rule("chaos_verdict == fail scope=test model=gpt-4o*")
    assert verdict.threshold == "fail" and verdict.model == "gpt-4o*"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("eror_rate > 0.1", r"unknown metric 'eror_rate' \(did you mean error_rate\?\)"),
        ("error_rate => 0.1", "is not METRIC OP THRESHOLD"),
        ("error_rate > lots", "threshold 'lots' of error_rate is not a number"),
        ("error_rate > 0.1 scope=global", "scope='global' is not one of session, model, test"),
        ("error_rate > 0.1 severity=page", "severity='page' is not one of info, warning"),
        ("error_rate > 0.1 sevrity=info", r"unknown key 'sevrity' \(did you mean severity\?\)"),
        ("error_rate > 0.1 critical", "'critical' is not KEY=VALUE"),
        ("chaos_verdict > fail", "chaos_verdict compares with == or !="),
        ("chaos_verdict == broken", "one of fail, pass, no-faults"),
        ("chaos_verdict == fail scope=model", "scope test or session, not model"),
    ],
)
def test_bad_rules_say_what_is_valid(line: str, message: str) -> None:
    with pytest.raises(AlertRuleError, match=message):
        parse_rule(line)


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        "[[alert]]\n"
        'when = "cost_usd > 2.5"\n'
        'severity = "critical"\n'
        'name = "CI cost"\n'
        "\n"
        "[[alert]]\n"
        'metric = "retries"\n'
        'op = ">="\n'
        "threshold = 3\n"
        'scope = "test"\n'
    )
    first, second = load_rules_file(path)
    assert (first.metric, first.threshold, first.severity, first.title) == (
        "cost_usd",
        2.5,
        "critical",
        "CI cost",
    )
    assert (second.metric, second.op, second.threshold, second.scope) == (
        "retries",
        ">=",
        3,
        "test",
    )
    assert first.origin.endswith("alerts.toml [[alert]] #1")
    for text, message in (
        ("[[alert]]\nmetric = ", "not valid TOML"),
        ("[[alerts]]\nwhen = 'calls > 1'\n", "expected \\[\\[alert\\]\\] tables only"),
        ("[[alert]]\nwhen = 'calls > 1'\nop = '<'\n", "give either when or metric"),
        ("[[alert]]\nwhen = 'calls > 1 scope=test'\n", "is not METRIC OP THRESHOLD"),
        ("[[alert]]\nmetric = 'calls'\nop = '>'\nthreshold = 1\nlevel = 2\n", "unknown key"),
    ):
        path.write_text(text)
        with pytest.raises(AlertRuleError, match=message):
            load_rules_file(path)
    with pytest.raises(AlertRuleError, match="not found"):
        load_rules_file(tmp_path / "missing.toml")


def test_evaluate_per_scope() -> None:
    tests = {
        "t::ok": {"calls": [rec("gpt-4o"), rec("gpt-4o-mini", tokens=100)]},
        "t::bad": {"calls": [rec("gpt-4o", 500), rec("gpt-4o", attempt=1, duration=3.0)]},
        "t::chaos": {
            "calls": [
                rec("gpt-4o-mini", 429, source="chaos", attributes={"llmobs.chaos.fault": "x"})
            ],
            "chaos": {"status": "fail"},
        },
        "t::none": {"calls": []},
    }
    rules = [
        parse_rule("error_rate > 0.1"),  # 1 of 5: the injected 429 is not an error
        parse_rule("error_rate > 0.25 scope=model"),  # gpt-4o: 1 of 3
        parse_rule("retries >= 1 scope=test severity=info"),
        parse_rule("chaos_verdict == fail scope=test"),
        parse_rule("injected_faults > 0 model=gpt-4o-mini"),
        parse_rule("total_tokens > 10000 severity=critical"),  # quiet
        parse_rule("p95_latency_s > 2"),
    ]
    fired = [(a.rule.metric, a.key, a.value) for a in evaluate(rules, tests)]
    assert fired == [
        ("error_rate", "session", 0.2),
        ("error_rate", "gpt-4o", 1 / 3),
        ("retries", "t::bad", 1),
        ("chaos_verdict", "t::chaos", "fail"),
        ("injected_faults", "session", 1),
        ("p95_latency_s", "session", 3.0),
    ]
    assert counts(evaluate(rules, tests)) == {"info": 1, "warning": 5, "critical": 0}
    assert set(METRICS) >= {
        "error_rate",
        "truncation_count",
        "p95_latency_s",
        "cost_usd",
        "total_tokens",
        "retries",
        "chaos_verdict",
    }


# -- sinks, directly -----------------------------------------------------------------------
def _alerts(n: int = 1) -> list[Alert]:
    rule = parse_rule("error_rate > 0.05 severity=critical name=errors")
    return [Alert(rule, "session", 0.25) for _ in range(n)]


def test_slack_payload_shape() -> None:
    payload = slack_payload(_alerts(), {"project": "demo", "tests": 3, "run": None})
    assert payload["text"].startswith("pytest-llmobs: 1 LLM alert firing (1 critical)")
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "pytest-llmobs: 1 LLM alert firing (1 critical)"},
    }
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "*CRITICAL* errors" in section["text"]["text"]
    assert "`error_rate > 0.05`: error_rate = *0.25*" in section["text"]["text"]
    assert context["elements"][0]["text"] == "project: demo · tests: 3"
    big = slack_payload(_alerts(60), {})
    assert len(big["blocks"]) <= 50  # Slack's limit
    assert "… and 20 more" in big["blocks"][-1]["text"]["text"]


def test_slack_payload_uses_the_sessions_redaction_rules() -> None:
    """The webhook carries test ids and models: masked like the artifacts, PII included
    when the session masks it."""
    rule = parse_rule("error_rate > 0.05 scope=test")
    alerts = [Alert(rule, "test_x.py::test_mail[jane.doe@example.com]", 0.5)]
    plain = json.dumps(slack_payload(alerts, {}))
    assert "jane.doe@example.com" in plain  # no PII masking by default
    masked = json.dumps(slack_payload(alerts, {}, Redactor(mask_pii=True)))
    assert "jane.doe@example.com" not in masked and "<EMAIL_" in masked


def test_safe_url_keeps_only_scheme_and_host() -> None:
    assert safe_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"
    assert safe_url("http://user:pw@gw.local:9091") == "http://gw.local:9091"
    assert safe_url("http://gw.local:9091/?token=abc") == "http://gw.local:9091/…"


def test_post_webhook_delivers_and_reports_failures(webhook: WebhookReceiver) -> None:
    payload = slack_payload(_alerts(), {})
    ok = post_webhook(webhook.url + SECRET_PATH, payload)
    assert ok.ok and webhook.received[0].body == payload
    assert webhook.received[0].headers["content-type"] == "application/json"
    webhook.status = 403
    failed = post_webhook(webhook.url + SECRET_PATH, payload)
    assert not failed.ok and "HTTP 403" in failed.line and "SECRET" not in failed.line
    down = post_webhook(f"http://127.0.0.1:{free_port()}{SECRET_PATH}", payload, timeout=2)
    assert not down.ok and "Connection refused" in down.line and "SECRET" not in down.line


def test_push_metric_names_are_the_declared_ones() -> None:
    tests = {
        "t": {
            "outcome": "passed",
            "calls": [
                rec(stream=True, time_to_first_chunk_s=0.2, attributes={"llmobs.chaos.fault": "x"})
            ],
        }
    }
    registry = run_registry(tests, RunFigures(alerts=_alerts()))
    names = {family.name for family in registry.collect()}
    assert names == set(PUSH_METRICS)


# -- end to end ------------------------------------------------------------------------------
SUITE = """
import os
import openai, pytest

URL = os.environ["LLM_URL"]


def ask(model="gpt-4o-mini", status=None):
    headers = {"x-fake-status": str(status)} if status else {}
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], extra_headers=headers
    )


def test_ok(llmobs):
    ask()
    ask("gpt-4o")


def test_errors(llmobs):
    ask()
    with pytest.raises(openai.InternalServerError):
        ask("gpt-4o", status=500)


def test_chaos(llmobs):
    llmobs.chaos.inject("rate_limit")
    with pytest.raises(openai.RateLimitError):
        ask()
    assert llmobs.resilience().status == "fail"  # never retried: known, and this test says so
"""

RULES = """
[pytest]
llm_alert =
    error_rate > 0.1 scope=session severity=critical name="LLM errors"
    error_rate > 0.3 scope=model
    chaos_verdict == fail scope=test
    injected_faults >= 1 severity=info
    total_tokens > 1000000 severity=critical
"""


def _setup(pytester: pytest.Pytester, rules: str = RULES) -> None:
    pytester.makepyfile(test_inner=SUITE)
    pytester.makeini(rules)


def test_alerts_fire_to_terminal_junit_summary_and_webhook(
    pytester: pytest.Pytester, provider: ProviderServer, webhook: WebhookReceiver
) -> None:
    _setup(pytester)
    result = pytester.runpytest(
        *INNER_ARGS,
        f"--llm-alert-webhook={webhook.url}{SECRET_PATH}",
        "--junitxml=pytest-junit.xml",
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 1  # a critical alert fails the run (--llm-budget-mode=fail)
    result.stdout.fnmatch_lines(
        [
            "*llmobs alerts: 4 firing*",
            "CRITICAL LLM errors: error_rate = 0.2 (error_rate > 0.1) [session]",
            "WARNING error_rate > 0.3: error_rate = 0.5 (error_rate > 0.3) [model gpt-4o]",
            "WARNING chaos_verdict == fail: chaos_verdict = fail (chaos_verdict == fail) "
            "[test test_inner.py::test_chaos]",
            "INFO injected_faults >= 1: injected_faults = 1 (injected_faults >= 1) [session]",
            f"llmobs: webhook {webhook.url}/…: delivered*",
        ]
    )
    assert "SECRET" not in result.stdout.str() + result.stderr.str()
    [post] = webhook.received
    assert post.path == SECRET_PATH
    assert post.body["text"].startswith("pytest-llmobs: 4 LLM alerts firing (1 critical)")
    kinds = [b["type"] for b in post.body["blocks"]]
    assert kinds == ["header", "section", "section", "section", "section", "context"]
    assert "tests: 3 · LLM calls: 5" in post.body["blocks"][-1]["elements"][0]["text"]

    summary = json.loads((pytester.path / "llmobs-artifacts" / "summary.json").read_text())
    assert [(a["metric"], a["key"], a["severity"]) for a in summary["alerts"]] == [
        ("error_rate", "session", "critical"),
        ("error_rate", "gpt-4o", "warning"),
        ("chaos_verdict", "test_inner.py::test_chaos", "warning"),
        ("injected_faults", "session", "info"),
    ]
    junit = ET.parse(pytester.path / "llmobs-artifacts" / "llmobs-junit.xml")
    cases = [c for c in junit.iter("testcase") if c.get("classname") == "llmobs.alerts"]
    assert [c.get("name") for c in cases] == [
        "LLM errors",
        "error_rate > 0.3 [gpt-4o]",
        "chaos_verdict == fail [test_inner.py::test_chaos]",
        "injected_faults >= 1",
    ]
    assert [f.get("type") for c in cases for f in c.iter("failure")] == ["llmobs.alert.critical"]
    suite = {p.get("name"): p.get("value") for p in junit.find("testsuite/properties") or []}
    assert suite["llmobs.alerts_firing"] == "4"
    own = ET.parse(pytester.path / "pytest-junit.xml")
    props = [(p.get("name"), p.get("value")) for p in own.find("testsuite/properties") or []]
    assert ("llmobs.alerts_firing", "4") in props
    assert (
        "llmobs.alert",
        "CRITICAL LLM errors: error_rate = 0.2 (error_rate > 0.1) [session]",
    ) in props


def test_a_dead_webhook_is_a_warning_not_a_failure(
    pytester: pytest.Pytester, provider: ProviderServer, webhook: WebhookReceiver
) -> None:
    _setup(pytester, "[pytest]\nllm_alert = error_rate > 0.1\n")
    webhook.status = 500
    result = pytester.runpytest(*INNER_ARGS, f"--llm-alert-webhook={webhook.url}{SECRET_PATH}")
    result.assert_outcomes(passed=3, warnings=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*LLMAlertDeliveryWarning: llmobs: webhook http://127.0.0.1:*/… failed: HTTP 500*"]
    )
    gone = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    result = pytester.runpytest(*INNER_ARGS, "-v", "-W", "error", f"--llm-alert-webhook={gone}")
    assert result.ret == 0  # even with warnings as errors
    result.stdout.fnmatch_lines(["llmobs: webhook http://127.0.0.1:*/… failed: *refused*"])
    output = result.stdout.str() + result.stderr.str()
    assert "SECRET" not in output
    # the header (-v) shows that a webhook is set, never its URL
    assert "llm_alert_webhook=<redacted> (cli)" in output


def test_rules_file_and_usage_errors(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    _setup(pytester, "[pytest]\n")
    (pytester.path / "alerts.toml").write_text(
        '[[alert]]\nwhen = "retries > 5"\n\n[[alert]]\nwhen = "calls >= 5"\nseverity = "info"\n'
    )
    result = pytester.runpytest(*INNER_ARGS, "--llm-alert-rules=alerts.toml")
    assert result.ret == 0  # an info alert does not fail the run
    result.stdout.fnmatch_lines(["INFO calls >= 5: calls = 5 (calls >= 5) [session]"])
    result = pytester.runpytest(*INNER_ARGS, "--llm-alert=eror_rate > 1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llm_alert 'eror_rate > 1': unknown metric 'eror_rate'*"])
    result = pytester.runpytest(*INNER_ARGS, "--llm-alert-rules=nope.toml")
    result.stderr.fnmatch_lines(["*alert rules file */nope.toml not found*"])
    result = pytester.runpytest(*INNER_ARGS, "--llm-alert-webhook=hooks.slack.com/x")
    result.stderr.fnmatch_lines(["*--llm-alert-webhook*is not an http(s):// URL*"])


def test_warn_mode_keeps_the_exit_status(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    _setup(pytester)
    result = pytester.runpytest(*INNER_ARGS, "--llm-budget-mode=warn")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["CRITICAL LLM errors: *"])


def test_under_xdist_the_controller_alerts_once(
    pytester: pytest.Pytester, provider: ProviderServer, webhook: WebhookReceiver
) -> None:
    _setup(pytester)
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "-n", "2", f"--llm-alert-webhook={webhook.url}/hook"
    )
    result.assert_outcomes(passed=3)
    [post] = webhook.received  # once, from the controller, over every worker's tests
    assert post.body["text"].startswith("pytest-llmobs: 4 LLM alerts firing (1 critical)")
    summary = json.loads((pytester.path / "llmobs-artifacts" / "summary.json").read_text())
    assert len(summary["alerts"]) == 4  # written while xdist waited for its workers


# -- Pushgateway -----------------------------------------------------------------------------
def _series(
    gateway: Pushgateway, name: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for sample_labels, value in gateway.metrics().get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            rest = {k: v for k, v in sample_labels.items() if k not in labels}
            out[tuple(sorted(rest.items()))] = value
    return out


@needs_pushgateway
def test_pushgateway_receives_the_run(
    pytester: pytest.Pytester, provider: ProviderServer, pushgateway: Pushgateway
) -> None:
    _setup(pytester)
    group = {"job": "ci-test", "instance": "runner-1"}
    args = (
        *INNER_ARGS,
        f"--llm-pushgateway={pushgateway.url}",
        "--llm-pushgateway-job=ci-test",
        "--llm-pushgateway-instance=runner-1",
    )
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(
        [f"llmobs: pushgateway {pushgateway.url}: pushed job=ci-test instance=runner-1"]
    )
    summary = json.loads((pytester.path / "llmobs-artifacts" / "summary.json").read_text())
    model = (("model", "gpt-4o"), ("provider", "openai"))
    mini = (("model", "gpt-4o-mini"), ("provider", "openai"))
    assert _series(pushgateway, "llmobs_ci_calls", **group) == {model: 2, mini: 3}
    assert _series(pushgateway, "llmobs_ci_errors", **group) == {model: 1, mini: 0}
    assert _series(pushgateway, "llmobs_ci_injected_faults", **group) == {
        (("fault", "rate_limit"),): 1
    }
    tokens = _series(pushgateway, "llmobs_ci_tokens", **group)
    assert (
        sum(v for k, v in tokens.items() if ("kind", "input") in k)
        == (summary["totals"]["input_tokens"])
    )
    assert (
        sum(v for k, v in tokens.items() if ("kind", "output") in k)
        == (summary["totals"]["output_tokens"])
    )
    cost = sum(_series(pushgateway, "llmobs_ci_cost_usd", **group).values())
    assert cost == pytest.approx(summary["totals"]["cost_usd"])
    assert _series(pushgateway, "llmobs_ci_alerts_firing", **group) == {
        (("severity", "critical"),): 1,
        (("severity", "warning"),): 2,
        (("severity", "info"),): 1,
    }
    assert _series(pushgateway, "llmobs_ci_tests", **group)[(("outcome", "passed"),)] == 3
    [p95] = _series(pushgateway, "llmobs_ci_p95_latency_seconds", **group).values()
    assert p95 == pytest.approx(summary["totals"]["p95_latency_s"], rel=1e-6)
    assert _series(pushgateway, "push_time_seconds", **group)

    # the next run replaces the group: no stale errors or faults
    pytester.runpytest(*args, "-k", "test_ok")
    assert _series(pushgateway, "llmobs_ci_errors", **group) == {model: 0, mini: 0}
    assert _series(pushgateway, "llmobs_ci_injected_faults", **group) == {}


@needs_pushgateway
def test_pushgateway_credentials_and_outage(
    pytester: pytest.Pytester, provider: ProviderServer, pushgateway: Pushgateway
) -> None:
    _setup(pytester, "[pytest]\n")
    with_auth = pushgateway.url.replace("http://", "http://ci:s3cretPW@")
    result = pytester.runpytest(*INNER_ARGS, f"--llm-pushgateway={with_auth}", "-k", "test_ok")
    result.stdout.fnmatch_lines(
        [f"llmobs: pushgateway {pushgateway.url}: pushed job=pytest_llmobs*"]
    )
    assert "s3cretPW" not in result.stdout.str()
    assert _series(pushgateway, "llmobs_ci_calls", job="pytest_llmobs")
    gone = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest(*INNER_ARGS, f"--llm-pushgateway={gone}", "-k", "test_ok")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"llmobs: pushgateway {gone} failed: *; the run's result is*"])
