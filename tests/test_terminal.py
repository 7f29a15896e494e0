"""What a run and the `llmobs` command print: a one-line header (every setting with -v), the
chaos seed only when chaos is on, counted nouns, calls that got no response said as such,
and a result line (or one JSON object) from every command."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from inner import INNER_ARGS

import pytest_llmobs
from pytest_llmobs.chaos.catalog import FAULTS, fault_table, fault_text
from pytest_llmobs.cli import main
from pytest_llmobs.settings import Settings
from pytest_llmobs.testing import ProviderServer
from pytest_llmobs.words import count, plural

VERSION = pytest_llmobs.__version__

CALLS = """
import os, openai, pytest

def client():
    return openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", api_key="sk-test", max_retries=0)

def chat():
    client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

def test_one():
    chat()

@pytest.mark.skipif(os.environ.get("ONE") == "1", reason="one test only")
def test_two():
    chat()
    chat()
"""


def _header(result: pytest.RunResult) -> list[str]:
    """The lines pytest printed before collecting."""
    lines = result.outlines
    end = next(i for i, line in enumerate(lines) if line.startswith(("collect", "rootdir")))
    return [line for line in lines[:end] if line.startswith(("llmobs", "  "))]


# -- the header --------------------------------------------------------------------------------
def test_the_header_is_one_short_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*INNER_ARGS)
    # LLMOBS_RECORD_MODE=off comes from this suite's conftest, as a user's env would
    assert _header(result) == [f"llmobs {VERSION}: record mode off (env); -v shows every setting"]


def test_the_header_names_what_is_on_and_no_secret(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile("def test_x(): pass")
    secret = "https://hooks.example.invalid/services/T0/B0/s3cr3t-w3bh00k"
    args = [
        "--llm-record-mode=none",
        "--llm-budget-mode=warn",
        "--llm-chaos=rate_limit",
        "--llm-chaos-seed=5",
        "--llm-mask-pii",
        "--llm-session-budget=max_calls=9",
        f"--llm-alert-webhook={secret}",
        "--llm-alert=error_rate > 0.5",
    ]
    result = pytester.runpytest(*INNER_ARGS, *args)
    assert _header(result) == [
        f"llmobs {VERSION}: record mode none (cli); checks warn; on: chaos rate_limit, "
        "session budget, PII masking, alerts; -v shows every setting",
        "llmobs chaos: seed=5 (cli/ini; reproduce with --llm-chaos-seed=5), scenario=--llm-chaos="
        "rate_limit (rate_limit times=1)",
    ]
    verbose = pytester.runpytest(*INNER_ARGS, *args, "-v")
    lines = _header(verbose)
    assert lines[0] == (
        f"llmobs {VERSION}: record mode none (cli); checks warn; on: chaos rate_limit, "
        "session budget, PII masking, alerts"
    )
    assert lines[1].startswith("llmobs settings: llm_hosts=-, ")
    settings = " ".join(lines[1:])
    for item in ("llm_budget_mode=warn (cli)", "llm_alert_webhook=<redacted> (cli)"):
        assert item in settings
    assert all(len(line) <= 100 for line in lines[1:-2]) and "seed=5" in lines[-2]
    assert lines[-1].startswith("llmobs replay: placeholder credentials for ")  # -v only
    assert secret not in verbose.stdout.str() + result.stdout.str()


def test_every_setting_is_in_the_verbose_header() -> None:
    lines = Settings(llm_hosts=("llm.corp=openai",)).detail_lines(width=60)
    shown = " ".join(lines)
    for item in Settings().header_items():
        name = item.split("=", 1)[0]
        assert f" {name}=" in f" {shown}", name
    assert "llm_hosts=llm.corp=openai," in shown
    assert all(len(line) <= 60 for line in lines if line.count("=") > 1)
    assert lines[-1][-1] != ","


def test_chaos_from_markers_gets_no_header_line(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    """Without --llm-chaos the seed matters to tests with chaos markers only, and their
    verdict and the chaos summary name it; -v shows it in the header as well."""
    pytester.makepyfile(
        CALLS + "\n@pytest.mark.llm_chaos('server_error')\ndef test_chaos():\n"
        "    with pytest.raises(openai.InternalServerError):\n        chat()\n"
    )
    # the gate only reports: this test is about the header, not the verdict
    result = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=3", "--llm-chaos-gate=warn")
    result.assert_outcomes(passed=3)
    assert not [line for line in _header(result) if "chaos" in line]
    result.stdout.fnmatch_lines(["*llmobs chaos (seed 3)*", "llmobs chaos: 1 test with faults*"])
    verbose = pytester.runpytest(*INNER_ARGS, "--llm-chaos-seed=3", "--llm-chaos-gate=warn", "-v")
    assert any(line.startswith("llmobs chaos: seed=3 (cli/ini;") for line in _header(verbose))


# -- counted nouns ----------------------------------------------------------------------------
def test_counted_nouns() -> None:
    assert [count(n, "LLM call") for n in (0, 1, 2)] == ["0 LLM calls", "1 LLM call", "2 LLM calls"]
    assert plural(2, "retry") == "retries" and plural(3, "directory") == "directories"
    assert plural(2, "more test") == "more tests" and plural(1, "test") == "test"
    assert plural(2, "pass") == "passes"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ("1", "llmobs: 1 LLM call in 1 test, * input + * output tokens"),
        ("0", "llmobs: 3 LLM calls in 2 tests, * input + * output tokens"),
    ],
)
def test_plural_forms_in_the_summary(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    line: str,
) -> None:
    provider.configure(reply="hi")
    monkeypatch.setenv("ONE", env)
    pytester.makepyfile(CALLS)
    result = pytester.runpytest(*INNER_ARGS)
    result.stdout.fnmatch_lines([line])
    assert "(s)" not in result.stdout.str()


# -- calls that got no response ------------------------------------------------------------
NO_ANSWER = """
import os, openai, pytest

def chat(stream=False):
    client = openai.OpenAI(base_url=os.environ["DEAD_URL"] + "/v1", api_key="sk-x", max_retries=0)
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=stream
    )

@pytest.mark.llm_budget(max_output_tokens=100, max_cost_usd=1)
def test_caught():
    with pytest.raises(openai.APIConnectionError):
        chat(stream=True)

def test_uncaught():
    chat()
"""


def test_a_refused_connection_while_recording_is_said_as_such(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an unknown-usage budget violation with stream_options advice: the call got no
    response, so it has no usage to report, costs nothing and nothing is recorded."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DEAD_URL", f"http://127.0.0.1:{port}")
    pytester.makepyfile(NO_ANSWER)
    result = pytester.runpytest(*INNER_ARGS, "--llm-record-mode=once", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "stream_options" not in out and "violation" not in out
    assert "LLM checks failed" not in out and "unknown" not in out
    result.stdout.fnmatch_lines(
        [
            "*APIConnectionError*",
            "llmobs: 2 LLM calls got no response (nothing to record, no tokens, no cost):",
            f"  ConnectError: *Connection refused — http://127.0.0.1:{port}/v1/chat/completions "
            "in test_*.py::test_caught #1 (+1 more)",
            "llmobs cost: $0.00 for 2 calls",
        ]
    )
    assert not list(pytester.path.rglob("*.yaml"))  # no cassette of a call never answered
    assert "slowest calls" not in out  # a refused connection is no latency


# -- the command line ------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"llmobs (pytest-llmobs) {VERSION}\n"


def test_list_faults_is_a_plain_table_unless_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--list-faults"]) == 0
    out = capsys.readouterr().out
    assert out == fault_text() + "\n"
    assert "|" not in out and "`" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["fault", "retry?", "parameters"]
    assert lines[1].split()[:3] == ["rate_limit", "yes", "retry_after=1.0"]
    for name in FAULTS:
        assert any(line.startswith(f"{name} ") for line in lines), name
    assert all(len(line) <= 88 for line in lines)
    assert main(["proxy", "--list-faults", "--markdown"]) == 0
    assert capsys.readouterr().out == fault_table() + "\n"


def test_a_reader_that_stops_early_is_no_traceback() -> None:
    """`llmobs proxy --list-faults | head -1`: the closed pipe ends the command quietly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_llmobs.cli", "proxy", "--list-faults"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before the command (still importing) writes a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""
