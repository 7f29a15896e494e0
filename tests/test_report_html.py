"""report.html: built from the artifact files (single run, xdist, merge), self-contained,
escaped, capped; and loaded in a real headless Chromium without console errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_support import load, needs_chromium, png_size
from inner import INNER_ARGS
from report_support import EMAIL, PRICES, SECRET

from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.report.html import Limits, collect, embed_json
from pytest_llmobs.summary import figures
from pytest_llmobs.testing import ProviderServer

XSS = '</script><img src=x onerror="window.__xss=1"><!-- & \u2028'

SUITE = f"""
import os
import anthropic, openai, pytest
from opentelemetry import trace

URL = os.environ["LLM_URL"]
tracer = trace.get_tracer("app")


def ant():
    return anthropic.Anthropic(base_url=URL, max_retries=0)


def ask(text, **kw):
    return ant().messages.create(
        model="claude-test", max_tokens=kw.pop("max_tokens", 50),
        messages=[{{"role": "user", "content": text}}], **kw
    )


def test_plain(llmobs):
    with tracer.start_as_current_span("app.answer"):
        ask("hello there, my key is {SECRET} and mail {EMAIL}")
        ask({XSS!r})


def test_stream(llmobs):
    with ant().messages.stream(
        model="claude-test", max_tokens=50, messages=[{{"role": "user", "content": "stream it"}}]
    ) as stream:
        for _ in stream.text_stream:
            pass


@pytest.mark.llm_chaos("rate_limit", times=1, retry_after=0)
def test_chaos_retry(llmobs):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=2)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "retry me"}}]
    )
    assert reply.choices[0].message.content


@pytest.mark.llm_budget(max_output_tokens=1)
def test_over_budget(llmobs):
    ask("too long an answer please")


def test_fails_after_call(llmobs):
    ask("then fail")
    assert False, "boom"


def test_no_llm():
    assert True
"""
IDS = [
    f"test_inner.py::{name}"
    for name in (
        "test_plain",
        "test_stream",
        "test_chaos_retry",
        "test_over_budget",
        "test_fails_after_call",
        "test_no_llm",
    )
]


def inner_env(provider: ProviderServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(
        LLM_URL=provider.url,
        OPENAI_API_KEY="sk-test-not-a-real-key-0000000000000000",
        ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key-000000000000",
        LLMOBS_RECORD_MODE="off",
    )
    return env


def run_inner(root: Path, provider: ProviderServer, *args: str) -> subprocess.CompletedProcess[str]:
    (root / "test_inner.py").write_text(SUITE)
    (root / "prices.toml").write_text(PRICES)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *INNER_ARGS, "--llm-prices=prices.toml", *args],
        cwd=root,
        env=inner_env(provider),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def report(provider_server: ProviderServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the inner suite (PII masked), shared by this module's read-only tests."""
    provider_server.reset()
    provider_server.configure(reply="one two three four", ttft_s=0.02)
    root = tmp_path_factory.mktemp("report")
    result = run_inner(root, provider_server, "--llm-mask-pii", "-p", "no:xdist")
    assert "2 failed, 4 passed" in result.stdout, result.stdout + result.stderr
    return root / "llmobs-artifacts"


def page_data(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="llmobs-data">(.*?)</script>', html, re.S
    )
    assert match, "no embedded data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def by_id(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in data["tests"]}


def test_every_test_with_status_calls_tokens_cost_latency(report: Path) -> None:
    data = page_data((report / "report.html").read_text())
    summary = json.loads((report / "summary.json").read_text())
    tests = by_id(data)
    assert list(tests) == IDS
    for nodeid, test in summary["tests"].items():
        row, figs = tests[nodeid], figures(test)
        assert row["outcome"] == test["outcome"]
        for key in ("calls", "input_tokens", "output_tokens", "cost_usd", "p95_latency_s"):
            assert row[key] == figs[key], (nodeid, key)
    plain = tests["test_inner.py::test_plain"]
    assert plain["calls"] == 2 and plain["cost_usd"] > 0 and plain["p95_latency_s"] > 0
    assert tests["test_inner.py::test_stream"]["ttft_p50_s"] > 0
    assert tests["test_inner.py::test_over_budget"]["outcome"] == "failed"
    assert [f["key"] for f in tests["test_inner.py::test_over_budget"]["findings"]] == [
        "max_output_tokens"
    ]
    assert tests["test_inner.py::test_no_llm"]["calls"] == 0
    assert data["totals"] == summary["totals"]


def test_waterfall_nesting_ttft_and_chaos_faults(report: Path) -> None:
    tests = by_id(page_data((report / "report.html").read_text()))
    spans = tests["test_inner.py::test_plain"]["spans"]
    app = next(s for s in spans if s["name"] == "app.answer")
    chats = [s for s in spans if s["name"] == "chat claude-test"]
    assert app["depth"] == 0 and app["start_ms"] == 0
    # under the app's span (the SDK's own span may sit in between)
    assert len(chats) == 2 and all(s["depth"] > app["depth"] and s["llm"] for s in chats)
    assert spans.index(app) < spans.index(chats[0])  # children follow their parent
    assert chats[0]["start_ms"] < chats[1]["start_ms"]
    assert all(0 < s["dur_ms"] <= app["dur_ms"] for s in chats)
    [stream] = [
        s for s in tests["test_inner.py::test_stream"]["spans"] if s["name"] == "chat claude-test"
    ]
    assert stream["ttft_ms"] and 0 < stream["ttft_ms"] <= stream["dur_ms"]

    chaos = tests["test_inner.py::test_chaos_retry"]
    assert [f["fault"] for f in chaos["faults"]] == ["rate_limit"]
    assert chaos["chaos_verdict"] == "pass"
    faulted = [s for s in chaos["spans"] if s["fault"]]
    assert [s["fault"] for s in faulted] == ["rate_limit"] and faulted[0]["error"]
    assert any(s["verdict"] == "pass" for s in chaos["spans"])
    rows = chaos["call_rows"]
    assert [(r["status_code"], r["fault"]) for r in rows] == [(429, "rate_limit"), (200, None)]
    assert [x["fault"] for x in chaos["excerpts"]] == ["rate_limit", None]


def test_excerpts_are_redacted_and_masked(report: Path) -> None:
    html = (report / "report.html").read_text()
    assert SECRET not in html and EMAIL not in html
    plain = by_id(page_data(html))["test_inner.py::test_plain"]
    first, second = plain["excerpts"]
    [message] = first["messages"]
    assert message["role"] == "user" and "<EMAIL_" in message["text"]
    assert "sk-ant-api03" not in message["text"] and "hello there" in message["text"]
    assert first["response"] == "one two three four"
    assert second["messages"][0]["text"] == XSS  # content intact, as data


def test_content_is_escaped_and_nothing_is_fetched(report: Path) -> None:
    html = (report / "report.html").read_text()
    assert XSS not in html and "<img" not in html and "<!--" not in html
    assert "\u2028" not in html
    assert html.count("</script>") == 2  # the data block's and the script's own
    # outside the data block: no remote URL at all (the SVG namespace is a name, not a fetch)
    markup = re.sub(r'(<script type="application/json"[^>]*>).*?</script>', r"\1", html, flags=re.S)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", markup)) == {"http://www.w3.org/2000/svg"}
    refs = re.findall(r"""(?:src|href|action|srcset)\s*=\s*["']?([^"'\s>]+)""", markup)
    assert refs == ["data:,"]
    assert not re.search(r"@import|url\(|fetch\(|XMLHttpRequest|WebSocket|\.src\s*=", markup)
    # the policy allows exactly the inline script and style it carries
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy and "default-src 'none'" in policy.group(1)
    script = re.findall(r"<script>(.*?)</script>", html, re.S)[0]
    style = re.findall(r"<style>(.*?)</style>", html, re.S)[0]
    for source in (script, style):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy.group(1)
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script and "eval(" not in script


def test_embed_json_cannot_close_the_script_block() -> None:
    text = embed_json({"x": XSS, "y": "a]]>b & <!-- -->"})
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == {"x": XSS, "y": "a]]>b & <!-- -->"}


def test_limits_bound_spans_excerpts_and_text(report: Path) -> None:
    small = Limits(spans_per_test=1, excerpts_per_test=1, text_chars=5, total_text_chars=12)
    tests = by_id(collect(report, limits=small))
    plain = tests["test_inner.py::test_plain"]
    assert len(plain["spans"]) == 1 and plain["spans_omitted"] >= 2
    assert plain["spans"][0]["name"] == "app.answer"  # the root comes first
    assert len(plain["excerpts"]) == 1 and plain["excerpts_omitted"] == 1
    text = plain["excerpts"][0]["messages"][0]["text"]
    assert text.startswith("hello…") and "more chars" in text
    data = collect(report, limits=small)
    assert data["budget_exhausted"]
    later = by_id(data)["test_inner.py::test_fails_after_call"]["excerpts"][0]
    assert later["over_budget"] and later["messages"] == [] and later["response"] is None
    assert later["model"] == "claude-test"  # the figures stay


def test_xdist_shards_and_merge_share_one_report(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four", ttft_s=0.02)
    shards = [pytester.path / "shard0", pytester.path / "shard1"]
    select = "plain or stream or chaos"
    run_inner(pytester.path, provider, "-n", "2", "-k", select, f"--llm-artifacts={shards[0]}")
    pytester.runpytest(
        *INNER_ARGS,
        "--llm-prices=prices.toml",
        "-k",
        f"not ({select})",
        f"--llm-artifacts={shards[1]}",
    ).assert_outcomes(passed=1, failed=2)
    first = by_id(page_data((shards[0] / "report.html").read_text()))
    assert sorted(first) == sorted(IDS[:3])
    assert all(first[i]["spans"] and first[i]["excerpts"] for i in first)  # via xdist workers
    merged = pytester.path / "merged"
    assert llmobs(["merge", *map(str, shards), "-o", str(merged)]) == 0
    tests = by_id(page_data((merged / "report.html").read_text()))
    assert sorted(tests) == sorted(IDS)
    assert (
        tests["test_inner.py::test_plain"]["spans"] == first["test_inner.py::test_plain"]["spans"]
    )
    assert [f["fault"] for f in tests["test_inner.py::test_chaos_retry"]["faults"]] == [
        "rate_limit"
    ]
    assert tests["test_inner.py::test_fails_after_call"]["excerpts"][0]["response"]


@needs_chromium
async def test_page_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    url = (report / "report.html").as_uri()
    page = await load(
        url,
        tmp_path / "profile",
        actions=("document.getElementById('expand-all').click()",),
        facts={
            "rows": "document.querySelectorAll('#tests tr.test').length",
            "open": "document.querySelectorAll('#tests tr.detail:not([hidden])').length",
            "bars": "document.querySelectorAll('.wf-bar').length",
            "fault_bars": "[...document.querySelectorAll('.wf-bar.fault')].length",
            "ttft_marks": "document.querySelectorAll('.wf-ttft').length",
            "nested": "[...document.querySelectorAll('.wf-label')]"
            ".some(e => parseInt(e.style.paddingLeft) > 0)",
            "chart_bars": "document.querySelectorAll('#charts rect').length",
            "excerpts": "document.querySelectorAll('.excerpt').length",
            "images": "document.images.length",
            "xss_ran": "typeof window.__xss !== 'undefined'",
            "xss_shown": f"document.body.textContent.includes({json.dumps(XSS)})",
            "failed_badges": "document.querySelectorAll('.status.failed').length",
            "excerpt_headers": "[...document.querySelectorAll('.excerpt header')]"
            ".map(e => e.textContent)",
        },
    )
    assert page.errors() == []
    assert page.requests == [url]  # nothing fetched but the page itself
    f = page.facts
    assert f["rows"] == len(IDS) and f["open"] == len(IDS)
    # a bar per span the page holds (anthropic 2.x adds a span of its own to each call)
    spans = sum(len(t["spans"]) for t in page_data((report / "report.html").read_text())["tests"])
    assert f["bars"] == spans >= 9 and f["fault_bars"] == 1 and f["ttft_marks"] >= 1
    assert f["nested"]
    assert f["chart_bars"] >= 6  # 5 tests with calls x in/out, plus cost bars
    assert f["excerpts"] == 7 and f["failed_badges"] == 2
    assert f["images"] == 0 and not f["xss_ran"] and f["xss_shown"]
    # why each call is in prompts.jsonl, in words (its `kept` field is a code)
    why = {m.strip() for h in f["excerpt_headers"] for m in re.findall(r"logged: [^·⚡]*", h)}
    assert all(h.count("logged: ") == 1 for h in f["excerpt_headers"])
    assert why == {"logged: every call is", "logged: the test failed"}
    assert not any("kept" in h for h in f["excerpt_headers"])
    assert png_size(page.screenshot) == (1280, 2000) and len(page.screenshot) > 30_000
    (tmp_path / "report.png").write_bytes(page.screenshot)


@needs_chromium
async def test_filter_and_deep_link_in_chromium(report: Path, tmp_path: Path) -> None:
    url = (report / "report.html").as_uri()
    visible = "[...document.querySelectorAll('#tests tr.test')].filter(r => !r.hidden).length"
    page = await load(
        url + "#test=" + "test_inner.py::test_stream",
        tmp_path / "profile",
        actions=(
            "window.openAtStart = document.querySelectorAll('tr.detail:not([hidden])').length",
            "const s = document.querySelector('.toolbar select'); s.value = 'failed';"
            " s.dispatchEvent(new Event('change'))",
        ),
        facts={"open_at_start": "window.openAtStart", "failed_visible": visible},
        size=(1024, 768),
    )
    assert page.errors() == []
    assert page.facts == {"open_at_start": 1, "failed_visible": 2}
    assert png_size(page.screenshot) == (1024, 768)
