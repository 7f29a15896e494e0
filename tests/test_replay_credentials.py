"""Replay needs no key: placeholder credentials for the SDKs in a run no request can leave,
never recorded, printed or sent, and the environment as it was afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.cassettes import hooks
from pytest_llmobs.cassettes.credentials import PLACEHOLDERS, ReplayCredentials
from pytest_llmobs.intercept.exchange import Exchange
from pytest_llmobs.redaction import Redactor, find_secrets
from pytest_llmobs.settings import Settings
from pytest_llmobs.testing import ProviderServer

PLACEHOLDER_OF = {name: value for p in PLACEHOLDERS for name, value in p.values}
VARIABLES_IN_ORDER = list(PLACEHOLDER_OF)
VARIABLES = sorted(PLACEHOLDER_OF)
VALUES = list(PLACEHOLDER_OF.values())
# Everything that counts as the user's own configuration of some SDK.
CONFIGURATION = sorted({name for p in PLACEHOLDERS for name in p.configured_by})


@pytest.fixture
def bare_env(
    provider: ProviderServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ProviderServer:
    """No credential of any SDK in the environment, a home without config files, and the
    user's default record mode (none): a CI replay job."""
    for name in CONFIGURATION:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LLMOBS_RECORD_MODE", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return provider


# -- unit: which placeholders, and putting the environment back ---------------------------
def test_supplies_only_what_nothing_configures(tmp_path: Path) -> None:
    env = {"ANTHROPIC_PROFILE": "work", "GEMINI_API_KEY": "", "PATH": "/bin"}
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n")
    credentials = ReplayCredentials.supply(env, home=tmp_path)
    # anthropic has a profile, boto3 a config file; an empty GEMINI_API_KEY is no key
    assert credentials.names == ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "GEMINI_API_KEY"]
    assert env["OPENAI_API_KEY"].startswith("sk-llmobs") and env["GEMINI_API_KEY"]
    assert "ANTHROPIC_API_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    env["AZURE_OPENAI_API_KEY"] = "set-by-the-test-itself"  # changed since: left alone
    credentials.restore()
    expected = {"ANTHROPIC_PROFILE": "work", "GEMINI_API_KEY": "", "PATH": "/bin"}
    assert env == {**expected, "AZURE_OPENAI_API_KEY": "set-by-the-test-itself"}
    assert credentials.names == []


def test_an_xdist_worker_keeps_its_controllers_placeholders(tmp_path: Path) -> None:
    controller_env: dict[str, str] = {}
    controller = ReplayCredentials.supply(controller_env, home=tmp_path)
    worker_env = dict(controller_env)  # what the worker process inherits
    worker = ReplayCredentials.supply(worker_env, home=tmp_path)
    assert worker.names == controller.names == VARIABLES_IN_ORDER
    worker.restore()  # the worker set nothing, so it removes nothing
    assert worker_env == controller_env
    controller.restore()
    assert controller_env == {}


def test_the_placeholders_are_secrets_to_the_redactor() -> None:
    for value in VALUES:
        if value.startswith("llmobs"):  # the AWS secret key: never sent, only signs
            continue
        assert [f.kind for f in find_secrets(f"key: {value}", pii=False)], value
    text = json.dumps({"note": " ".join(VALUES)})
    redacted = Redactor().text(text)
    assert not any(value in redacted for value in VALUES), redacted


def test_carried_by_looks_at_headers_and_url(tmp_path: Path) -> None:
    credentials = ReplayCredentials.supply({}, home=tmp_path)

    def exchange(url: str, *headers: tuple[str, str]) -> Exchange:
        return Exchange(
            client="httpx", method="GET", url=url, request_headers=list(headers), request_body=b""
        )

    signed = "AWS4-HMAC-SHA256 Credential=AKIALLMOBSREPLAY0000/20250101/us-east-1/s3/aws4_request"
    assert credentials.carried_by(exchange("https://s3.amazonaws.com/b", ("authorization", signed)))
    bearer = ("Authorization", "Bearer " + PLACEHOLDER_OF["OPENAI_API_KEY"])
    assert credentials.carried_by(exchange("https://x/v1/models", bearer)) == "OPENAI_API_KEY"
    maps = f"https://maps/api?key={PLACEHOLDER_OF['GEMINI_API_KEY']}"
    assert credentials.carried_by(exchange(maps)) == "GEMINI_API_KEY"
    assert (
        credentials.carried_by(exchange("https://x/", ("authorization", "Bearer sk-mine"))) is None
    )


@pytest.mark.parametrize(
    ("settings", "kms", "supplied"),
    [
        (Settings(), False, VARIABLES_IN_ORDER),
        (Settings(llm_allow_hosts=("localhost:8080", "[::1]:9000", "127.0.0.1")), False, True),
        (Settings(llm_allow_hosts=()), False, True),
        (Settings(llm_record_mode="once"), False, None),
        (Settings(llm_record_mode="off"), False, None),
        (Settings(llm_allow_hosts=("localhost", "*")), False, None),
        (Settings(llm_allow_hosts=("api.internal",)), False, None),
        (Settings(llm_encrypt_key_env="KEY"), True, VARIABLES_IN_ORDER[:-2]),  # no AWS
    ],
)
def test_only_a_replay_that_stays_on_this_machine_gets_them(
    settings: Settings,
    kms: bool,
    supplied: list[str] | bool | None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in CONFIGURATION:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if kms:
        monkeypatch.setenv("KEY", "aws-kms:alias/artifacts")
    credentials = hooks._replay_credentials(settings)
    try:
        if supplied is None:
            assert credentials is None
            assert not any(name in os.environ for name in VARIABLES)
        else:
            assert credentials is not None
            expected = VARIABLES_IN_ORDER if supplied is True else supplied
            assert credentials.names == expected
            assert all(name in os.environ for name in expected)
    finally:
        if credentials is not None:
            credentials.restore()
    assert not any(name in os.environ for name in VARIABLES)


# -- end to end: record with keys, replay with none -----------------------------------------
REPLAY = """
import json, os, pathlib
import anthropic, boto3, openai, pytest
from google import genai
from google.genai import types

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
CLIENT = openai.OpenAI(base_url=URL + "/v1", max_retries=0)  # built at import, no key


def test_every_sdk_without_a_key(llmobs):
    chat = CLIENT.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    legacy = CLIENT.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    claude = anthropic.Anthropic(base_url=URL, max_retries=0).messages.create(
        model="claude-test", max_tokens=50, messages=MESSAGES)
    bedrock = boto3.client("bedrock-runtime", endpoint_url=URL, region_name="us-east-1")
    converse = bedrock.converse(
        modelId="amazon.nova-test-v1:0",
        messages=[{"role": "user", "content": [{"text": "say hello"}]}])
    gemini = genai.Client(http_options=types.HttpOptions(base_url=URL))
    generated = gemini.models.generate_content(model="gemini-test", contents="hi")
    texts = [chat.choices[0].message.content, legacy.choices[0].text, claude.content[0].text,
             converse["output"]["message"]["content"][0]["text"], generated.text]
    assert all(texts)
    assert [c.provider for c in llmobs.calls] == [
        "openai", "openai", "anthropic", "aws.bedrock", "gcp.gemini"]
    pathlib.Path(os.environ["RESULTS"]).write_text(json.dumps(
        [texts, [c.source for c in llmobs.calls]]))
"""


def test_replay_needs_no_key_and_the_placeholder_is_nowhere(
    pytester: pytest.Pytester, bare_env: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = pytester.path / "results.json"
    monkeypatch.setenv("RESULTS", str(results))
    pytester.makepyfile(test_inner=REPLAY)
    with monkeypatch.context() as recording:  # recording needs the real keys
        recording.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0000000000000000")
        recording.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key-000000000000")
        recording.setenv("GEMINI_API_KEY", "AIza-test-not-a-real-key")
        recording.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        recording.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        pytester.runpytest(*INNER_ARGS, "--llm-record-mode=once").assert_outcomes(passed=1)
    texts, sources = json.loads(results.read_text())
    assert set(sources) == {"live"}
    sent = len(bare_env.requests)

    monkeypatch.setenv("LLM_URL", dead_url())
    result = pytester.runpytest(*INNER_ARGS, "-v")  # record mode none: the default
    result.assert_outcomes(passed=1)
    assert json.loads(results.read_text()) == [texts, ["replay"] * 5]
    assert len(bare_env.requests) == sent
    result.stdout.fnmatch_lines(  # -v: the header has one line without
        [
            "llmobs replay: placeholder credentials for OPENAI_API_KEY, AZURE_OPENAI_API_KEY, "
            "ANTHROPIC_API_KEY, GEMINI_API_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
        ]
    )
    # the environment is as it was, and no artifact, cassette or output holds a placeholder
    assert not any(name in os.environ for name in VARIABLES)
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.name == "prompts.jsonl" for p in written)
    texts_out = [p.read_text(errors="replace") for p in written]
    texts_out.append("\n".join(result.outlines + result.errlines))
    for value in VALUES:
        assert not any(value in text for text in texts_out), value


BLOCKED = """
import os, openai, pytest

URL = os.environ["LLM_URL"]

@pytest.mark.llm_cassette(record_mode="once")
def test_records_without_a_key(llmobs):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

@pytest.mark.llm_cassette(allow_hosts=["*"])
def test_reaches_an_allowed_host_without_a_key():
    openai.OpenAI(base_url=URL + "/v1", max_retries=0).models.list()
"""


def test_a_placeholder_never_leaves_the_process(
    pytester: pytest.Pytester, bare_env: ProviderServer
) -> None:
    pytester.makepyfile(test_inner=BLOCKED)
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(failed=2)
    assert bare_env.requests == []  # nothing was sent, so no 401 was recorded either
    assert not (pytester.path / "cassettes").exists()
    result.stdout.fnmatch_lines(
        [
            "*_ test_records_without_a_key _*",
            "pytest-llmobs: request blocked: it would reach the network with the replay "
            "placeholder for OPENAI_API_KEY (record mode 'once')",
            "  test:      test_inner.py::test_records_without_a_key",
            "  cassette:  */test_records_without_a_key.yaml",
            "  request:   POST http://127.0.0.1:*/v1/chat/completions",
            "*",
            "next: set OPENAI_API_KEY to record or to call the provider*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_reaches_an_allowed_host_without_a_key _*",
            "pytest-llmobs: request blocked: * placeholder for OPENAI_API_KEY (record mode 'none')",
            "  request:   GET http://127.0.0.1:*/v1/models",
        ]
    )
    assert not any(value in result.stdout.str() for value in VALUES)


KEYS_AS_SET = """
import os

def test_env():
    print("SEEN", ",".join(sorted(k for k in os.environ if k in {names!r})))
    print("OPENAI", os.environ.get("OPENAI_API_KEY"))
"""


@pytest.mark.parametrize(
    ("args", "user_key", "seen"),
    [
        (("--llm-record-mode=once",), None, "*SEEN "),
        (("--llm-allow-hosts=*",), None, "*SEEN "),
        ((), "sk-the-users-own", "*SEEN ANTHROPIC_API_KEY,*,OPENAI_API_KEY"),
    ],
)
def test_no_placeholder_where_a_request_could_leave_or_a_key_is_set(
    pytester: pytest.Pytester,
    bare_env: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    user_key: str | None,
    seen: str,
) -> None:
    if user_key:
        monkeypatch.setenv("OPENAI_API_KEY", user_key)
    pytester.makepyfile(test_inner=KEYS_AS_SET.format(names=set(VARIABLES)))
    result = pytester.runpytest(*INNER_ARGS, "-s", "-v", *args)  # -v: the header names them
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([seen, f"OPENAI {user_key}"])
    # with the user's own key, the other SDKs still get theirs, OPENAI_API_KEY none
    header = [line for line in result.outlines if line.startswith("llmobs replay:")]
    names = [line.split(" for ")[1].split(", ") for line in header]
    assert [("OPENAI_API_KEY" in n) for n in names] == ([False] if user_key else [])
    assert os.environ.get("OPENAI_API_KEY") == user_key
    assert not any(name in os.environ for name in VARIABLES if name != "OPENAI_API_KEY")
