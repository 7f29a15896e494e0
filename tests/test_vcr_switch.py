"""The one-line switch for pytest-recording users: uninstall pytest-recording, install
pytest-llmobs, and the suite passes unchanged.

- Unit: deciding whether pytest-recording will be loaded, reading `vcr_config`, cassette
  names, vcrpy-way matching of vcrpy-written interactions, the network block.
- End to end (real SDKs against the local provider server): a pytest-recording suite is
  recorded by pytest-recording itself, then replayed offline by pytest-llmobs alone and by
  pytest-recording alone, with the same outcomes; who owns `--record-mode` in each way of
  loading the two plugins; record modes side by side; bad `vcr_config` keys.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

# Loaded once for the session: pytester's in-process runs drop what they import.
import boto3  # noqa: F401
import pytest
import vcr  # noqa: F401
import yaml
from inner import INNER_ARGS
from test_cassettes import dead_url
from test_cassettes_format import vcrpy_yaml

from pytest_llmobs.cassettes import vcr_config, vcrpy_version
from pytest_llmobs.cassettes.cassette import LLMCassette, StoredRequest
from pytest_llmobs.cassettes.matching import MatchRules, RequestFilters
from pytest_llmobs.cassettes.vcr_compat import recording_will_load
from pytest_llmobs.cassettes.vcr_network import blocked
from pytest_llmobs.cassettes.vcrpy_matching import apply_filters
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.testing import ProviderServer


# -- will pytest-recording be loaded? ------------------------------------------------------------
@pytest.mark.parametrize(
    ("plugin_args", "autoload", "installed", "env", "expected"),
    [
        ([], True, True, "", True),  # installed, autoloaded
        ([], True, False, "", False),  # not installed
        (["no:recording"], True, True, "", False),
        (["recording", "no:recording"], True, True, "", False),  # the last one wins
        (["no:recording", "recording"], True, True, "", True),
        ([], False, True, "", False),  # PYTEST_DISABLE_PLUGIN_AUTOLOAD
        (["pytest_recording.plugin"], False, True, "", True),
        (["no:recording", "pytest_recording.plugin"], True, True, "", True),  # another name
        (["no:pytest_recording.plugin", "pytest_recording.plugin"], False, True, "", False),
        (["recording"], False, True, "", True),  # -p by entry point name, autoload off
        ([], False, True, "pytest_recording.plugin", True),  # PYTEST_PLUGINS
        (["no:pytest_recording"], True, True, "", False),
    ],
)
def test_recording_will_load(
    plugin_args: list[str], autoload: bool, installed: bool, env: str, expected: bool
) -> None:
    assert (
        recording_will_load(
            plugin_args, registered=False, autoload=autoload, installed=installed, env_plugins=env
        )
        is expected
    )
    # already loaded (an earlier entry point): nothing else matters
    assert recording_will_load(plugin_args, registered=True, autoload=False, installed=False)


# -- vcr_config ------------------------------------------------------------------------------
def test_vcr_config_keys_are_honoured_or_rejected_by_name() -> None:
    parsed = vcr_config.VcrConfig.parse(
        {
            "record_mode": "new_episodes",
            "match_on": ["method", "uri", "body"],
            "filter_headers": ["authorization", ("x-team", "TEAM")],
            "filter_query_parameters": ["api_key"],
            "filter_post_data_parameters": [("password", None)],
            "decode_compressed_response": True,
            "allow_playback_repeats": True,
            "ignore_localhost": True,
            "ignore_hosts": ["Metadata.Internal"],
            "serializer": "yaml",
            "allowed_hosts": ["api.example.com"],
        }
    )
    assert parsed.record_mode == "new_episodes"
    assert parsed.match_on == ("method", "uri", "body")
    assert parsed.filters == RequestFilters(
        headers=(("authorization", None), ("x-team", "TEAM")),
        query=(("api_key", None),),
        post_data=(("password", None),),
    )
    assert parsed.allow_playback_repeats
    assert parsed.bypass_hosts == {"metadata.internal", "localhost", "127.0.0.1", "0.0.0.0"}
    assert vcr_config.VcrConfig.parse({}) == vcr_config.VcrConfig()

    def hook(request: Any) -> Any:
        return request

    rejected = {
        "before_record_request": (hook, "llm_redact_keys"),
        "before_record_response": (hook, "no request/response hooks"),
        "custom_patches": ((), "intercepts the HTTP clients itself"),
        "persister": (object(), "reads and writes the cassette files itself"),
        "path_transformer": (hook, "vcr_cassette_dir or default_cassette_name fixture"),
        "cassette_library_dir": ("x", "override the vcr_cassette_dir fixture"),
        "serializer": ("json", "serializer='json' is not supported"),
        "record_on_exception": (False, "saves all/rewrite recordings only after a pass"),
        "record_mode": ("any", "record_mode='any' is not one of"),
        "match_on": (["method", "my_matcher"], "'my_matcher' is not one of vcrpy's matchers"),
        "filter_headers": ("authorization", "must be a list"),
        "recrod_mode": ("once", "'recrod_mode' is not a vcrpy / pytest-recording setting"),
    }
    for key, (value, message) in rejected.items():
        with pytest.raises(ValueError, match=None) as info:
            vcr_config.VcrConfig.parse({key: value})
        assert message in str(info.value), (key, str(info.value))
        assert key in str(info.value), key


def test_cassette_names_are_pytest_recordings() -> None:
    class TestGroup:
        pass

    assert vcr_config.default_cassette_name(None, "test_x[a/b?c]") == "test_x[a-b-c]"
    assert vcr_config.default_cassette_name(TestGroup, "test_y") == "TestGroup.test_y"
    assert vcr_config.cassette_path("/c", "name") == "/c/name.yaml"
    assert vcr_config.cassette_path("/c", "name.yaml") == "/c/name.yaml"
    assert vcr_config.cassette_path("/c", "name.yml") == "/c/name.yml.yaml"
    long = vcr_config.cassette_path("/c", "t" * 400)
    assert len(os.path.basename(long)) <= 255 and long.endswith(".yaml") and "..." in long

    class Mark:
        def __init__(self, *args: Any) -> None:
            self.args = args

    extras = vcr_config.extra_paths("/c", [Mark("a.yaml", "/abs/b.yaml"), Mark("a.yaml")], "/c/m")
    assert extras == ("/c/a.yaml", "/abs/b.yaml")
    with pytest.raises(ValueError, match="non-empty strings"):
        vcr_config.extra_paths("/c", [Mark(3)], "/c/m")


# -- matching vcrpy-written interactions ------------------------------------------------------
def _cassette(path: Path, rules: MatchRules) -> LLMCassette:
    return LLMCassette.open(path, "none", rules, Redactor())


def _request(url: str, body: dict[str, Any]) -> StoredRequest:
    return StoredRequest(
        {
            "method": "POST",
            "uri": url,
            "headers": {"content-type": ["application/json"]},
            "body": {"json": body},
        }
    )


def test_vcrpy_written_interactions_match_the_way_vcrpy_would(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    vcrpy_yaml(path, "http://127.0.0.1:9/v1/chat/completions", body, b'{"id": "1"}')
    other_port = "http://127.0.0.1:8080/v1/chat/completions"
    same = "http://127.0.0.1:9/v1/chat/completions"
    default = MatchRules.build(vcrpy_match_on=("method", "scheme", "host", "port", "path"))

    vcrpy_way = _cassette(path, default)
    assert vcrpy_way.foreign and vcrpy_way.vcrpy_matching
    assert not vcrpy_way.can_play_response_for(_request(other_port, body))  # port differs
    # vcrpy's default ignores the body: the two recorded requests replay in order
    first = vcrpy_way.play_response(_request(same, {"model": "different"}))
    second = vcrpy_way.play_response(_request(same, {}))
    assert first["status"]["code"] == 200 and first["body"]["string"] == b'{"id": "1"}'
    assert second["headers"]["Content-Type"] == ["text/event-stream"]
    assert not vcrpy_way.can_play_response_for(_request(same, body))  # both played
    assert vcrpy_way.all_played and vcrpy_way.play_count == 2
    assert vcrpy_way.vcrpy_differences(_request(other_port, body), 0) == ["port (8080 != 9)"]

    with_body = _cassette(path, MatchRules.build(vcrpy_match_on=("method", "path", "body")))
    assert not with_body.can_play_response_for(_request(same, {"model": "different"}))
    assert with_body.can_play_response_for(_request(other_port, body))  # port not compared

    llm_aware = _cassette(path, MatchRules.build())  # llm_match_vcrpy_cassettes = llm
    assert not llm_aware.vcrpy_matching
    assert llm_aware.can_play_response_for(_request(other_port, body))  # loopback port ignored
    assert not llm_aware.can_play_response_for(_request(same, {"model": "different"}))


def test_vcrpy_filters_apply_to_matching_and_recording() -> None:
    filters = RequestFilters(
        headers=(("authorization", None), ("x-team", "TEAM")),
        query=(("session", None),),
        post_data=(("password", None),),
    )
    stored = {
        "method": "POST",
        "uri": "https://api.example.com/v1/login?session=abc&page=2",
        "headers": {
            "Authorization": ["Bearer x"],
            "X-Team": ["red"],
            "Content-Type": ["application/json"],
        },
        "body": {"json": {"user": "ann", "password": "hunter2"}},
    }
    out = apply_filters(stored, filters)
    assert out["uri"] == "https://api.example.com/v1/login?page=2"
    assert {k.lower(): v for k, v in out["headers"].items()} == {
        "x-team": ["TEAM"],
        "content-type": ["application/json"],
    }
    assert out["body"] == {"json": {"user": "ann"}}
    rules = MatchRules.build().with_vcrpy(None, filters)
    other = {**stored, "uri": "https://api.example.com/v1/login?page=2&session=xyz"}
    assert rules.normalize(stored).key == rules.normalize(other).key


# -- the network block -----------------------------------------------------------------------
def test_network_block_is_pytest_recordings_and_is_lifted() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = server.getsockname()
        message = r"^Network is disabled for host '127.0.0.1'$"
        with (
            blocked(None, False),
            socket.socket() as client,
            pytest.raises(RuntimeError, match=message),
        ):
            client.connect(address)
        with blocked([r"127\.0\.0\.1"], False), socket.socket() as client:
            client.connect(address)
        with blocked(["example"], True), socket.socket() as client:
            assert client.connect_ex(address) == 0  # loopback is a private address
        message = r"\(allowed hosts: 'example'\)$"
        with (
            blocked(["example"], False),
            socket.socket() as client,
            pytest.raises(RuntimeError, match=message),
        ):
            client.connect_ex(address)
        with socket.socket() as client:
            client.connect(address)  # restored


# -- end to end: a pytest-recording suite, switched ------------------------------------------
CONFTEST = """
import json, os, pathlib
import pytest


@pytest.fixture(scope="module")
def vcr_config():
    return {
        "filter_headers": ["authorization", "x-api-key", "x-amz-date",
                           "x-amz-security-token", ("user-agent", "tests")],
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request):
    return os.path.join(os.path.dirname(request.module.__file__), "recordings",
                        request.module.__name__)


@pytest.fixture
def keep(request):
    \"\"\"Test harness: what each test got, and the LLM calls pytest-llmobs saw.\"\"\"
    worker = getattr(request.config, "workerinput", {}).get("workerid", "")  # under -n 2
    results = pathlib.Path(os.environ["RESULTS"] + worker)

    def save(out):
        calls = []
        if request.config.pluginmanager.hasplugin("llmobs"):
            calls = [[c.provider, c.source, c.status_code, c.usage.input_tokens,
                      c.usage.output_tokens] for c in request.getfixturevalue("llmobs").calls]
        data = json.loads(results.read_text()) if results.exists() else {}
        data[request.node.nodeid] = {"out": out, "calls": calls}
        results.write_text(json.dumps(data))

    return save
"""

SUITE = """
import os, uuid
import anthropic, boto3, openai, pytest, requests
from botocore.config import Config

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


def oai():
    return openai.OpenAI(base_url=URL + "/v1", api_key="sk-test-0000", max_retries=0)


def chat(content="say hello to the test"):
    r = oai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}])
    return [r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens]


@pytest.mark.vcr
def test_openai_chat(keep):
    keep(chat())


@pytest.mark.vcr
def test_openai_stream(keep):
    deltas, usage = [], None
    for chunk in oai().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    keep([deltas, usage.prompt_tokens, usage.completion_tokens])


@pytest.mark.vcr
class TestAnthropic:
    def client(self):
        return anthropic.Anthropic(base_url=URL, api_key="sk-ant-test-0000", max_retries=0)

    def test_message(self, keep):
        r = self.client().messages.create(model="claude-x", max_tokens=50, messages=MESSAGES)
        keep([r.content[0].text, r.usage.input_tokens, r.usage.output_tokens])

    def test_system_prompt(self, keep):
        r = self.client().messages.create(model="claude-x", max_tokens=50, system="be brief",
                                          messages=MESSAGES)
        keep([r.content[0].text, r.stop_reason])


@pytest.mark.vcr
@pytest.mark.parametrize("model", ["anthropic.claude-test-v1:0", "amazon.nova-test-v1:0"],
                         ids=["claude/v1", "nova"])
def test_bedrock_converse(model, keep):
    client = boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    r = client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    keep([r["output"]["message"]["content"][0]["text"], r["usage"]["inputTokens"]])


@pytest.mark.vcr
def test_plain_requests(keep):
    r = requests.post(URL + "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                      headers={"Authorization": "Bearer sk-test-0000"})
    keep([r.status_code, r.json()["choices"][0]["message"]["content"]])


@pytest.mark.vcr
@pytest.mark.default_cassette("shared-greeting")
def test_records_the_shared_cassette(keep):
    keep(chat("a greeting many tests use"))


@pytest.mark.vcr("shared-greeting.yaml")
def test_reads_the_shared_cassette(keep):
    keep(chat("a greeting many tests use"))


@pytest.mark.vcr
def test_the_vcr_fixture(vcr, record_mode, keep):
    out = chat()
    assert vcr.play_count == (1 if record_mode == "none" else 0)
    assert len(vcr.requests) == 1 and vcr.requests[0].uri.endswith("/v1/chat/completions")
    assert vcr.responses[0]["status"]["code"] == 200
    keep(out)


@pytest.mark.vcr
def test_a_prompt_that_changes_every_run(keep):
    keep(chat(f"request {uuid.uuid4()}"))


@pytest.mark.vcr
def test_whose_cassette_goes_missing(keep):
    keep(chat("this one will be deleted"))


def test_without_network():
    assert "vcr" not in os.environ
"""

# Tests the replays must fail, both plugins alike (the rest pass)
FAIL_ON_REPLAY = {
    "test_assistant.py::test_a_prompt_that_changes_every_run",
    "test_assistant.py::test_whose_cassette_goes_missing",
}


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    passed, skipped, failed = result.reprec.listoutcomes()  # type: ignore[attr-defined]
    out = {r.nodeid: "passed" for r in passed}
    out.update({r.nodeid: "skipped" for r in skipped})
    out.update({r.nodeid: "failed" for r in failed})
    return out


def run_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[pytest.RunResult, dict[str, Any]]:
    results = pytester.path / "results.json"
    results.unlink(missing_ok=True)
    monkeypatch.setenv("RESULTS", str(results))
    result = pytester.runpytest(*INNER_ARGS, "-p", "no:respx", *args)
    data: dict[str, Any] = json.loads(results.read_text()) if results.exists() else {}
    return result, data


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.yaml"))
    }


@pytest.mark.with_pytest_recording
def test_a_pytest_recording_suite_replays_the_same_with_pytest_llmobs_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_assistant=SUITE)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with ProviderServer() as server:  # stopped after recording: the replays are offline
        server.configure(reply="one two three four", gzip=True)
        monkeypatch.setenv("LLM_URL", server.url)
        recording, live = run_suite(pytester, monkeypatch, "-p", "no:llmobs", "--record-mode=once")
        sent = len(server.requests)
    assert set(outcomes(recording).values()) == {"passed"}, recording.outlines[-30:]
    assert len(outcomes(recording)) == 13
    assert sent == 11  # the shared cassette answered test_reads_the_shared_cassette
    folder = pytester.path / "recordings" / "test_assistant"
    names = sorted(tree(folder))
    assert names == sorted(
        [
            "TestAnthropic.test_message.yaml",
            "TestAnthropic.test_system_prompt.yaml",
            "shared-greeting.yaml",
            "test_a_prompt_that_changes_every_run.yaml",
            "test_bedrock_converse[claude-v1].yaml",
            "test_bedrock_converse[nova].yaml",
            "test_openai_chat.yaml",
            "test_openai_stream.yaml",
            "test_plain_requests.yaml",
            "test_the_vcr_fixture.yaml",
            "test_whose_cassette_goes_missing.yaml",
        ]
    )
    for raw in tree(folder).values():  # pytest-recording's files: vcrpy's layout, filtered
        doc = yaml.safe_load(raw)
        assert "llmobs_cassette" not in doc, raw[:200]
        headers = {k.lower() for i in doc["interactions"] for k in i["request"]["headers"]}
        assert "authorization" not in headers and "x-api-key" not in headers
    (folder / "test_whose_cassette_goes_missing.yaml").unlink()
    recorded = tree(folder)

    llmobs, replayed = run_suite(pytester, monkeypatch, "-p", "no:recording", "--record-mode=none")
    assert tree(folder) == recorded  # replayed as they are, nothing written
    recording_alone, replayed_by_recording = run_suite(
        pytester, monkeypatch, "-p", "no:llmobs", "--record-mode=none"
    )
    expected = {
        nodeid: "failed" if nodeid in FAIL_ON_REPLAY else "passed" for nodeid in outcomes(recording)
    }
    assert outcomes(llmobs) == outcomes(recording_alone) == expected
    for nodeid, got in live.items():
        if nodeid not in FAIL_ON_REPLAY:
            assert replayed[nodeid]["out"] == replayed_by_recording[nodeid]["out"] == got["out"]
    calls = {nodeid: got["calls"] for nodeid, got in replayed.items()}
    assert calls["test_assistant.py::test_openai_chat"] == [["openai", "replay", 200, 5, 4]]
    assert calls["test_assistant.py::TestAnthropic::test_message"] == [
        ["anthropic", "replay", 200, 5, 4]
    ]
    bedrock = calls["test_assistant.py::test_bedrock_converse[claude/v1]"]
    assert [c[:3] for c in bedrock] == [["aws.bedrock", "replay", 200]] and bedrock[0][3] > 0
    assert all(c[1] == "replay" and c[3] > 0 for each in calls.values() for c in each)
    # the same under pytest-xdist: each worker serves pytest-recording's surface itself
    xdist = pytester.runpytest_subprocess(
        *INNER_ARGS, "-p", "no:respx", "-p", "no:recording", "--record-mode=none", "-n", "2"
    )
    xdist.assert_outcomes(passed=len(expected) - len(FAIL_ON_REPLAY), failed=len(FAIL_ON_REPLAY))
    assert tree(folder) == recorded
    text = "\n".join(llmobs.outlines)

    assert "pytest-llmobs: request not in cassette (record mode 'none')" in text
    assert (
        "matched the way vcrpy does (match_on: method, scheme, host, port, path, query, body)"
        in text
    )
    assert "vcrpy's matchers that differ: body" in text
    assert "pytest-llmobs: no cassette" in text and "test_whose_cassette_goes_missing.yaml" in text


# -- who serves pytest-recording's surface ----------------------------------------------------
OWNER = """
import json, os, pathlib, pytest


@pytest.mark.vcr
def test_owner(request, vcr, llm_cassette):
    pathlib.Path(os.environ["RESULTS"]).write_text(json.dumps({
        "vcr": type(vcr).__module__,
        "llmobs_mode": llm_cassette.mode,
        "record_mode": request.config.getoption("--record-mode"),
        "served_by_llmobs": request.config.pluginmanager.has_plugin("llmobs-vcr"),
    }))
"""


@pytest.mark.with_pytest_recording
@pytest.mark.parametrize(
    ("autoload", "plugins", "owner"),
    [
        (True, [], "pytest-recording"),  # both installed, autoloaded
        (True, ["no:recording"], "pytest-llmobs"),
        (False, ["pytest_llmobs.plugin", "pytest_recording.plugin"], "pytest-recording"),
        (False, ["pytest_recording.plugin", "pytest_llmobs.plugin"], "pytest-recording"),
        (False, ["pytest_llmobs.plugin"], "pytest-llmobs"),
    ],
    ids=[
        "autoload",
        "no-recording",
        "p-llmobs-then-recording",
        "p-recording-then-llmobs",
        "p-llmobs",
    ],
)
def test_the_record_mode_flag_has_one_owner(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    autoload: bool,
    plugins: list[str],
    owner: str,
) -> None:
    if not autoload:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    results = pytester.path / "owner.json"
    monkeypatch.setenv("RESULTS", str(results))
    pytester.makepyfile(test_owner=OWNER)
    args = [arg for plugin in plugins for arg in ("-p", plugin)]
    result = pytester.runpytest(*INNER_ARGS, *args, "--record-mode=none")
    result.assert_outcomes(passed=1)
    seen = json.loads(results.read_text())
    assert seen["record_mode"] == "none"
    if owner == "pytest-recording":  # its vcrpy cassette; ours is off for the test
        assert seen == {**seen, "vcr": "vcr.cassette", "llmobs_mode": "off"}
        assert not seen["served_by_llmobs"]
    else:
        assert seen["vcr"] == "pytest_llmobs.cassettes.cassette"
        assert seen["llmobs_mode"] == "none" and seen["served_by_llmobs"]


# -- record modes, side by side --------------------------------------------------------------
MODES = """
import json, os, pathlib, openai, pytest


@pytest.mark.vcr
def test_answer():
    client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", api_key="sk-test-0000",
                           max_retries=0)
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "what changed?"}])
    pathlib.Path(os.environ["RESULTS"]).write_text(json.dumps(r.choices[0].message.content))
"""
ONLY = {"pytest-recording": ("-p", "no:llmobs"), "pytest-llmobs": ("-p", "no:recording")}


@pytest.mark.with_pytest_recording
def test_record_modes_behave_as_in_pytest_recording(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_modes=MODES)
    results = pytester.path / "answer.json"
    monkeypatch.setenv("RESULTS", str(results))
    cassette = pytester.path / "cassettes" / "test_modes" / "test_answer.yaml"

    def answer(plugin: str, mode: str) -> tuple[str, int]:
        sent = len(provider.requests)
        result = pytester.runpytest(
            *INNER_ARGS, "-p", "no:respx", *ONLY[plugin], f"--record-mode={mode}"
        )
        result.assert_outcomes(passed=1)
        return json.loads(results.read_text()), len(provider.requests) - sent

    provider.configure(reply="old answer")
    assert answer("pytest-recording", "once") == ("old answer", 1)
    original = cassette.read_bytes()
    provider.configure(reply="new answer")
    expected = {  # (answer, requests sent) in the mode, then what a replay of its cassette says
        "new_episodes": (("old answer", 0), ("old answer", 0)),
        "all": (("new answer", 1), ("new answer", 0)),
        "rewrite": (("new answer", 1), ("new answer", 0)),
    }
    # vcrpy 7 keeps the old interaction beside the re-recorded one in `all` and replays the
    # first; vcrpy 8 and later, and pytest-llmobs, replace it.
    vcrpy_7 = vcrpy_version.release(vcrpy_version.installed() or "0") < (8,)
    for mode, (during, after) in expected.items():
        for plugin in ONLY:
            cassette.write_bytes(original)
            assert answer(plugin, mode) == during, (plugin, mode)
            kept_old = vcrpy_7 and plugin == "pytest-recording" and mode == "all"
            assert answer(plugin, "none") == (("old answer", 0) if kept_old else after), (
                plugin,
                mode,
            )
            if mode == "new_episodes":
                assert cassette.read_bytes() == original, plugin  # nothing new: untouched

    cassette.unlink()
    result = pytester.runpytest(
        *INNER_ARGS, "-p", "no:respx", "-p", "no:recording", "--record-mode=none"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-llmobs: no cassette *test_answer.yaml to replay from (record mode 'none')",
            "next: record it with --llm-record-mode=once*",
        ]
    )


# -- vcr_config keys pytest-llmobs does not honour ---------------------------------------------
BAD = """
import pytest


def hook(request):
    return request


@pytest.mark.vcr(before_record_request=hook)
def test_hook():
    pass


@pytest.mark.vcr(custom_patches=())
def test_patches():
    pass


@pytest.mark.vcr(serializer="json")
def test_serializer():
    pass


@pytest.mark.vcr(recrod_mode="once")
def test_typo():
    pass


@pytest.mark.vcr
def test_from_vcr_config():
    pass


@pytest.fixture
def vcr_config(request):
    return {"filter_sensitive_data": {"<KEY>": "k"}} if "from_vcr" in request.node.name else {}
"""


def test_vcr_config_keys_not_honoured_fail_the_test_naming_the_replacement(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bad=BAD)
    result = pytester.runpytest(*INNER_ARGS, "--record-mode=none")
    result.assert_outcomes(errors=5)
    prefix = "usage error: test_bad.py::{}: @pytest.mark.vcr / vcr_config: "
    result.stdout.fnmatch_lines_random(
        [
            "*" + prefix.format("test_hook") + "before_record_request is not supported: "
            "pytest-llmobs runs no request/response hooks*llm_redact_keys*",
            "*" + prefix.format("test_patches") + "custom_patches is not supported: "
            "pytest-llmobs intercepts the HTTP clients itself*",
            "*" + prefix.format("test_serializer") + "serializer='json' is not supported*",
            "*"
            + prefix.format("test_typo")
            + "'recrod_mode' is not a vcrpy / pytest-recording setting; known: *record_mode*",
            "*" + prefix.format("test_from_vcr_config") + "filter_sensitive_data is not "
            "supported: secrets are always redacted by pytest-llmobs*",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()

    pytester.makeconftest(
        "def pytest_recording_configure(config, vcr):\n"
        "    vcr.register_matcher('mine', lambda r1, r2: True)\n"
    )
    result = pytester.runpytest(*INNER_ARGS, "--record-mode=none", "-k", "patches")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*pytest_recording_configure is implemented*give custom matchers as functions*"]
    )


# -- --block-network ---------------------------------------------------------------------------
BLOCK = """
import os, openai, pytest, requests

URL = os.environ["LLM_URL"]


@pytest.mark.block_network
def test_blocked():
    with pytest.raises(RuntimeError, match="^Network is disabled for host '127.0.0.1'$"):
        requests.get(URL + "/health")


@pytest.mark.block_network(allowed_hosts=[r"127\\.0\\.0\\.1"])
def test_allowed_host():
    requests.get(URL + "/health")


@pytest.mark.block_network(allow_private_ips=True)
def test_private_ips_allowed():
    requests.get(URL + "/health")


@pytest.mark.vcr
@pytest.mark.block_network
def test_records_and_replays_under_the_block(record_mode):
    client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-test-0000", max_retries=0)
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content


def test_blocked_by_the_flag_only(request):
    if request.config.getoption("--block-network"):
        with pytest.raises(RuntimeError, match="Network is disabled"):
            requests.get(URL + "/health")
    else:
        requests.get(URL + "/health")
"""


@pytest.mark.with_pytest_recording
def test_block_network_as_in_pytest_recording(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    pytester.makepyfile(test_block=BLOCK)
    base = (*INNER_ARGS, "-p", "no:respx")
    pytester.runpytest(*base, *ONLY["pytest-recording"], "--record-mode=once").assert_outcomes(
        passed=5
    )
    cassette = (
        pytester.path / "cassettes" / "test_block" / "test_records_and_replays_under_the_block.yaml"
    )
    recorded = cassette.read_bytes()
    sent = len([r for r in provider.requests if r.path.endswith("/chat/completions")])
    assert sent == 1
    for plugin in ONLY:
        result = pytester.runpytest(*base, *ONLY[plugin], "--record-mode=none", "--block-network")
        result.assert_outcomes(passed=5)
    assert len([r for r in provider.requests if r.path.endswith("/chat/completions")]) == sent
    assert cassette.read_bytes() == recorded


# -- llm_match_vcrpy_cassettes -------------------------------------------------------------------
MATCHING = """
import os, httpx, pytest

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def call():
    r = httpx.post(os.environ["LLM_URL"] + "/v1/chat/completions", json=BODY)
    return r.json()["choices"][0]["message"]["content"]


@pytest.mark.vcr
def test_marked():
    assert call() == "hi from 2023"


def test_unmarked():
    assert call() == "hi from 2023"
"""


@pytest.mark.parametrize(
    ("setting", "passed"),
    [
        ("auto", {"test_unmarked"}),  # vcrpy's way for `vcr` tests: the port differs
        ("vcrpy", set()),
        ("llm", {"test_marked", "test_unmarked"}),  # LLM-aware: a loopback port is ignored
    ],
)
def test_llm_match_vcrpy_cassettes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setting: str, passed: set[str]
) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    answer = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi from 2023"},
                }
            ],
        }
    ).encode()
    folder = pytester.path / "cassettes" / "test_matching"
    folder.mkdir(parents=True)
    for name in ("test_marked", "test_unmarked"):
        vcrpy_yaml(folder / f"{name}.yaml", "http://127.0.0.1:9/v1/chat/completions", body, answer)
    pytester.makepyfile(test_matching=MATCHING)
    monkeypatch.setenv("LLM_URL", dead_url())  # replays only: nothing listens there
    result = pytester.runpytest(
        *INNER_ARGS, "--record-mode=none", f"--llm-match-vcrpy-cassettes={setting}"
    )
    got = {
        nodeid.split("::")[1] for nodeid, outcome in outcomes(result).items() if outcome == "passed"
    }
    assert got == passed
    if "test_marked" not in passed:
        result.stdout.fnmatch_lines(["*vcrpy's matchers that differ: port (* != 9)*"])


# -- recording through pytest-llmobs, with vcrpy's filters ---------------------------------------
FILTERED = """
import os, uuid, openai, pytest


@pytest.fixture
def vcr_config():
    return {"filter_headers": [("x-team", "TEAM")], "filter_query_parameters": ["session"],
            "allow_playback_repeats": True}


@pytest.mark.vcr
def test_twice(vcr, disable_recording):
    client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", api_key="sk-test-0000",
                           max_retries=0, default_headers={"x-team": "red"},
                           default_query={"session": str(uuid.uuid4())})
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": "hi"}])
    if disable_recording:
        assert vcr is None
    else:
        taped = int(os.environ["TAPED"])  # what vcrpy itself does with the repeat
        assert vcr.play_count == 2 and len(vcr.data) == taped
"""

# allow_playback_repeats replays a repeat on a cassette being recorded from vcrpy 9 on;
# vcrpy 7 and 8 play nothing from a cassette that was not loaded, so record it twice.
TAPED = 1 if vcrpy_version.release(vcrpy_version.installed() or "0") >= (9,) else 2


def test_recording_through_pytest_llmobs_applies_vcrpy_filters(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_filtered=FILTERED)
    monkeypatch.setenv("TAPED", str(TAPED))
    pytester.runpytest(*INNER_ARGS, "--record-mode=once").assert_outcomes(passed=1)
    assert len(provider.requests) == TAPED
    assert provider.requests[0].headers["x-team"] == "red"
    cassette = pytester.path / "cassettes" / "test_filtered" / "test_twice.yaml"
    interactions = json.loads(cassette.read_text())["interactions"]
    assert len(interactions) == TAPED
    request = interactions[0]["request"]
    assert "session=" not in request["uri"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-team"] == ["TEAM"] and "sk-test-0000" not in cassette.read_text()
    recorded = cassette.read_bytes()

    monkeypatch.setenv("LLM_URL", dead_url())  # another session id, replayed twice, offline
    pytester.runpytest(*INNER_ARGS, "--record-mode=none").assert_outcomes(passed=1)
    assert cassette.read_bytes() == recorded

    monkeypatch.setenv("LLM_URL", provider.url)
    pytester.runpytest(*INNER_ARGS, "--record-mode=none", "--disable-recording").assert_outcomes(
        passed=1
    )
    assert len(provider.requests) == TAPED + 2 and cassette.read_bytes() == recorded
