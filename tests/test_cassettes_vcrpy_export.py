"""Cassettes stay readable by vcrpy: `llmobs cassettes downgrade`, an honest `upgrade`, and
the plugin keeping a vcrpy cassette in vcrpy's format when it records into it.

1. Units: the llmobs → vcrpy conversion (what replay serves, byte for byte, read back by
   the installed vcrpy itself), the CLI's messages, exit codes and atomicity, the save path.
2. End to end with the real SDKs against a provider server of the test's own (stopped
   before every replay, so nothing can go live): the plugin records (openai sync and
   streaming over gzip, anthropic streaming, bedrock converse and converse_stream with its
   binary event stream); `llmobs cassettes downgrade`; PLAIN vcrpy (the plugin not loaded)
   replays the files and the SDKs get the same answers; so does the plugin again; and
   upgrade → downgrade → upgrade keeps every served byte.
3. The plugin recording new_episodes into a cassette plain vcrpy wrote: the file stays
   vcrpy's, and plain vcrpy replays the old and the new interactions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Loaded once for the session: pytester's in-process runs drop what they import.
import boto3  # noqa: F401
import pytest
import vcr
import yaml
from inner import INNER_ARGS
from test_cassettes_format import vcrpy_yaml

from pytest_llmobs.atomic import write_atomic
from pytest_llmobs.cassettes.cassette import LLMCassette, StoredRequest, StoredResponse
from pytest_llmobs.cassettes.cli import _served
from pytest_llmobs.cassettes.format import (
    CassetteError,
    dumps_document,
    encode_body,
    encode_chunk,
    load,
)
from pytest_llmobs.cassettes.interactions import to_canned
from pytest_llmobs.cassettes.matching import MatchRules
from pytest_llmobs.cassettes.vcrpy_compat import dumps_vcrpy, vcrpy_serializer
from pytest_llmobs.cli import main as llmobs_main
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.testing import ProviderServer

URL = "https://api.openai.com/v1/chat/completions"
ANSWER = json.dumps({"id": "c1", "choices": [{"message": {"content": "caf\u00e9 \u2028"}}]})
SSE = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
EVENTS = bytes(range(256)) * 3  # an AWS event stream is binary: not UTF-8


def request(body: Any = None, uri: str = URL) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "method": "POST",
        "uri": uri,
        "headers": {"Content-Type": ["application/json"], "Authorization": ["<redacted>"]},
    }
    if body is not None:
        stored["body"] = {"json": body}
    return stored


def gzip_json_response() -> dict[str, Any]:
    """A JSON answer the recording stored decoded from gzip (the headers as received)."""
    return {
        "status": 200,
        "reason": "OK",
        "headers": {
            "Content-Type": ["application/json"],
            "Content-Encoding": ["gzip"],
            "Content-Length": ["77"],
            "x-request-id": ["req-1"],
        },
        "encoding": "gzip",
        "body": encode_body(ANSWER.encode()),
        "timing": {"headers": 0.1, "chunks": [[0.2, len(ANSWER.encode())]], "end": 0.2},
    }


def sse_response() -> dict[str, Any]:
    pieces = [SSE[:14], SSE[14:30], SSE[30:]]  # received in 3 chunks, one event split
    return {
        "status": 200,
        "headers": {"content-type": ["text/event-stream"], "content-encoding": ["gzip"]},
        "encoding": "gzip",
        "stream": [encode_chunk(0.1 * (i + 1), p, "sse") for i, p in enumerate(pieces)],
        "timing": {"headers": 0.05, "end": 0.31},
    }


def binary_response() -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"Content-Type": ["application/vnd.amazon.eventstream"]},
        "stream": [
            encode_chunk(0.1, EVENTS[:300], "binary"),
            encode_chunk(0.2, EVENTS[300:], "binary"),
        ],
        "timing": {"headers": 0.05, "end": 0.2},
    }


INTERACTIONS = [
    (request({"model": "m", "messages": []}), gzip_json_response()),
    (request({"model": "m", "stream": True}), sse_response()),
    (request(uri="https://bedrock.example/model/x/converse-stream"), binary_response()),
    ({"method": "GET", "uri": "https://example.com/health"}, {"status": 204, "headers": {}}),
]


def served_bytes(response: dict[str, Any]) -> bytes:
    return b"".join(chunk for _, chunk in to_canned(response, 0.0, {}).chunks)


def vcrpy_reads(path: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """(requests, responses) as the installed vcrpy loads the cassette for replay."""
    with vcr.VCR().use_cassette(str(path), record_mode="none") as cassette:
        return list(cassette.requests), list(cassette.responses)


def header(headers: dict[str, list[str]], name: str) -> list[str] | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


# -- 1. the conversion ---------------------------------------------------------------------
def test_downgraded_cassette_is_what_replay_serves_and_vcrpy_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = dumps_vcrpy(INTERACTIONS, path)
    path.write_text(text)
    raw = yaml.safe_load(text)
    assert raw["version"] == 1 and len(raw["interactions"]) == 4
    assert list(raw["interactions"][0]) == ["request", "response"]
    assert "llmobs_cassette" not in text and "!!binary" in text  # only the event stream
    assert text.count("!!binary") == 1

    requests, responses = vcrpy_reads(path)
    for (stored_request, stored), vcr_request, vcr_response in zip(
        INTERACTIONS, requests, responses, strict=True
    ):
        # the bytes the plugin would serve, none lost: the stream joined, gzip removed
        assert vcr_response["body"]["string"] == served_bytes(stored)
        assert vcr_response["status"]["code"] == stored["status"]
        assert vcr_response["status"]["message"] == to_canned(stored, 0.0, {}).reason
        assert header(vcr_response["headers"], "content-encoding") is None
        assert vcr_request.method == stored_request["method"]
        assert vcr_request.uri == stored_request["uri"]
    json_response, sse, events, empty = responses
    assert json.loads(json_response["body"]["string"]) == json.loads(ANSWER)
    assert header(json_response["headers"], "content-length") == [str(len(ANSWER.encode()))]
    assert header(json_response["headers"], "x-request-id") == ["req-1"]
    assert sse["body"]["string"] == SSE
    assert events["body"]["string"] == EVENTS
    assert empty["body"]["string"] == b"" and empty["status"]["message"] == "No Content"
    assert json.loads(requests[0].body) == {"model": "m", "messages": []}
    assert requests[3].body is None
    assert requests[0].headers["Authorization"] == "<redacted>"
    # headers keep the order they were received in (vcrpy's readers do not care)
    assert list(raw["interactions"][0]["response"]["headers"]) == [
        "Content-Type",
        "Content-Length",
        "x-request-id",
    ]


@pytest.mark.parametrize(
    "data",
    [
        "caf\u00e9 \u2028 \u2029 \x85 \ufeff \U0001f600".encode(),
        b"line\r\nbreaks\rand\ttabs\n",
        b"\x00\x01 control \x7f\x1b[0m",
        b"  leading and trailing spaces  ",
        b"null",
        b"123",
        b"yes",
        b"- a: b\n# not a comment",
        b"'single' \"double\" \\backslash",
        (b"word " * 40).strip(),  # longer than the YAML line width: folded, not changed
        b"\xff\xfe not UTF-8",
    ],
)
def test_every_body_comes_back_as_the_same_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.yaml"
    response = {"status": 200, "headers": {}, "body": encode_body(data)}
    path.write_text(dumps_vcrpy([(request(), response)], path))
    _, [vcr_response] = vcrpy_reads(path)
    assert vcr_response["body"]["string"] == data


def test_a_recorded_connection_failure_cannot_be_downgraded(tmp_path: Path) -> None:
    cut = {**sse_response(), "error": "reset"}
    with pytest.raises(CassetteError, match=r"c.yaml: interaction 2: .*recorded reset.*partial"):
        dumps_vcrpy([INTERACTIONS[0], (request(), cut)], tmp_path / "c.yaml")
    # the client closing the stream itself (after [DONE]) is no failure: what came is kept
    closed = {**sse_response(), "error": "closed"}
    text = dumps_vcrpy([(request(), closed)], tmp_path / "c.yaml")
    assert yaml.safe_load(text)["interactions"][0]["response"]["body"]["string"] == SSE.decode()


def test_json_serializer_for_vcrpy_json_cassettes(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    text = dumps_vcrpy(INTERACTIONS[:2], path, "json")
    assert json.loads(text)["interactions"][1]["response"]["body"]["string"] == SSE.decode()
    path.write_text(text)
    with vcr.VCR(serializer="json").use_cassette(str(path), record_mode="none") as cassette:
        assert cassette.responses[1]["body"]["string"] == SSE
    with pytest.raises(CassetteError, match="interaction 3 has a binary body"):
        dumps_vcrpy(INTERACTIONS, path, "json")


def test_which_files_are_vcrpy_cassettes(tmp_path: Path) -> None:
    ours = tmp_path / "ours.yaml"
    write_atomic(ours, dumps_document(INTERACTIONS))
    theirs = tmp_path / "theirs.yaml"
    vcrpy_yaml(theirs, URL, {"model": "m"}, b"{}")
    theirs_json = tmp_path / "theirs.json"
    theirs_json.write_text(dumps_vcrpy(INTERACTIONS[:1], theirs_json, "json"))
    hand_yaml = tmp_path / "hand.yaml"  # our format, hand-converted to YAML: still ours
    hand_yaml.write_text("llmobs_cassette: 1\ninteractions: []\n")
    empty_vcrpy = tmp_path / "empty.yaml"
    empty_vcrpy.write_text("interactions: []\nversion: 1\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("interactions: [\n")
    blank = tmp_path / "blank.yaml"
    blank.write_text("\n")
    found = {
        p.name: vcrpy_serializer(p)
        for p in (ours, theirs, theirs_json, hand_yaml, empty_vcrpy, broken, blank)
    }
    found["missing.yaml"] = vcrpy_serializer(tmp_path / "missing.yaml")
    assert found == {
        "ours.yaml": None,
        "theirs.yaml": "yaml",
        "theirs.json": "json",
        "hand.yaml": None,
        "empty.yaml": "yaml",
        "broken.yaml": None,
        "blank.yaml": None,
        "missing.yaml": None,
    }


# -- the commands ----------------------------------------------------------------------------
def test_downgrade_check_writes_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ours.yaml"
    write_atomic(path, dumps_document(INTERACTIONS))
    original = path.read_bytes()

    assert llmobs_main(["cassettes", "downgrade", "--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"would downgrade (llmobs format → vcrpy format): {path}" in out
    assert "1 would be downgraded, 0 already vcrpy format, 0 failed" in out
    assert out.count("vcrpy cassettes have no timing") == 1
    assert path.read_bytes() == original  # --check changes nothing

    assert llmobs_main(["cassettes", "downgrade", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"downgraded (llmobs format → vcrpy format): {path}" in out
    assert "1 downgraded, 0 already vcrpy format, 0 failed" in out
    assert out.count("vcrpy cassettes have no timing") == 1
    _, responses = vcrpy_reads(path)
    assert [r["body"]["string"] for r in responses] == [
        served_bytes(resp) for _, resp in INTERACTIONS
    ]
    downgraded = path.read_bytes()

    for args in (["--check"], []):  # already vcrpy's: untouched, nothing pending
        assert llmobs_main(["cassettes", "downgrade", *args, str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert f"ok (already vcrpy format): {path}" in out
        assert "no timing" not in out
        assert path.read_bytes() == downgraded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.yaml"]  # no temp file left


def test_unreadable_files_are_reported_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    write_atomic(good, dumps_document(INTERACTIONS[:1]))
    corrupt = tmp_path / "corrupt.yaml"
    corrupt.write_text('{\n  "llmobs_cassette": 1,\n  "interactions": [\n    {oops}\n  ]\n}\n')
    cut = tmp_path / "cut.yaml"  # readable, but vcrpy could not replay it faithfully
    write_atomic(cut, dumps_document([(request(), {**sse_response(), "error": "timeout"})]))
    before = {p: p.read_bytes() for p in (corrupt, cut)}

    args = ["cassettes", "downgrade", "--check", "--json", str(tmp_path)]
    assert llmobs_main(args) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err == ""  # each file's error is in the object
    assert [(f["path"], f["status"]) for f in result["files"]] == [
        (str(corrupt), "failed"),
        (str(cut), "failed"),
        (str(good), "would be downgraded"),
    ]
    assert "invalid JSON" in result["files"][0]["error"]
    assert (result["changed"], result["current"], result["failed"]) == (1, 0, 2)

    assert llmobs_main(["cassettes", "downgrade", str(tmp_path), str(tmp_path / "no.yaml")]) == 1
    captured = capsys.readouterr()
    assert f"error: cassette {corrupt}: line 4, column 6: invalid JSON" in captured.err
    assert f"error: cassette {cut}: interaction 1: its response ended in a recorded timeout" in (
        captured.err
    )
    assert "no.yaml: no such file, or it is empty (left untouched)" in captured.err
    assert captured.err.count("(left untouched)") == 3
    assert "1 downgraded, 0 already vcrpy format, 3 failed" in captured.out
    assert {p: p.read_bytes() for p in before} == before
    assert vcrpy_serializer(good) == "yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.yaml", "cut.yaml", "good.yaml"]


def test_upgrade_says_its_files_are_for_pytest_llmobs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "a_theirs.yaml"
    vcrpy_yaml(theirs, URL, {"model": "m"}, ANSWER.encode())
    other = tmp_path / "b_theirs.yaml"
    vcrpy_yaml(other, URL, {"model": "n"}, ANSWER.encode())
    ours = tmp_path / "c_ours.yaml"
    write_atomic(ours, dumps_document(INTERACTIONS))

    assert llmobs_main(["cassettes", "upgrade", "--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"would upgrade (vcrpy format → llmobs format): {theirs}",
        f"would upgrade (vcrpy format → llmobs format): {other}",
        f"ok (already llmobs format): {ours}",
        "2 would be upgraded, 1 already llmobs format, 0 failed",
        "note: upgraded cassettes are read by pytest-llmobs only; vcrpy and pytest-recording "
        "can no longer load them. `llmobs cassettes downgrade PATH…` writes them back in "
        "vcrpy's format.",
    ]
    assert llmobs_main(["cassettes", "upgrade", "--check", "--json", str(tmp_path)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == [
        {"path": str(theirs), "status": "would be upgraded"},
        {"path": str(other), "status": "would be upgraded"},
        {"path": str(ours), "status": "current"},
    ]
    assert (result["changed"], result["current"], result["failed"]) == (2, 1, 0)
    assert result["check"] is True and "read by pytest-llmobs only" in result["note"]
    assert llmobs_main(["cassettes", "upgrade", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"upgraded (vcrpy format → llmobs format): {theirs}" in out
    assert out.count("read by pytest-llmobs only") == 1  # once per run, not per file
    assert llmobs_main(["cassettes", "upgrade", str(tmp_path)]) == 0
    assert "read by pytest-llmobs only" not in capsys.readouterr().out  # nothing upgraded


def test_help_texts_name_both_directions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        llmobs_main(["cassettes", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "upgrade" in out and "downgrade" in out and "read by pytest-llmobs only" in out
    with pytest.raises(SystemExit):
        llmobs_main(["cassettes", "upgrade", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "vcrpy and pytest-recording can no longer load them" in out
    assert "llmobs cassettes downgrade PATH" in out
    with pytest.raises(SystemExit):
        llmobs_main(["cassettes", "downgrade", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "vcrpy 7, 8 and 9" in out and "Timing is lost" in out and "Content-Encoding" in out


def test_upgrade_downgrade_upgrade_keeps_every_served_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    vcrpy_yaml(path, URL, {"model": "m", "messages": []}, ANSWER.encode())
    assert llmobs_main(["cassettes", "upgrade", str(path)]) == 0
    first = [(r.value, s.value) for r, s in load(path)[0]]
    assert first[0][1]["encoding"] == "gzip"  # stored decoded
    assert llmobs_main(["cassettes", "downgrade", str(path)]) == 0
    assert vcrpy_serializer(path) == "yaml"
    assert llmobs_main(["cassettes", "upgrade", str(path)]) == 0
    again = [(r.value, s.value) for r, s in load(path)[0]]
    assert [_served(pair, encoding=False) for pair in again] == [
        _served(pair, encoding=False) for pair in first
    ]


# -- the plugin saving into a vcrpy cassette ---------------------------------------------------
def fresh(body: dict[str, Any], response: dict[str, Any]) -> tuple[StoredRequest, StoredResponse]:
    return StoredRequest(request(body)), StoredResponse(response)


@pytest.mark.parametrize("mode", ["new_episodes", "all", "rewrite"])
def test_recording_into_a_vcrpy_cassette_keeps_it_vcrpys(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "c.yaml"
    vcrpy_yaml(path, URL, {"model": "m", "messages": []}, ANSWER.encode())
    assert b"sk-x" in path.read_bytes() and b"session=abcdef" in path.read_bytes()
    cassette = LLMCassette.open(path, mode, MatchRules(), Redactor())
    cassette.record(*fresh({"model": "new"}, binary_response()))
    assert cassette.save()
    assert vcrpy_serializer(path) == "yaml"
    text = path.read_text()
    assert "sk-x" not in text and "abcdef0123456789" not in text  # loaded ones redacted too
    requests, responses = vcrpy_reads(path)
    kept = 1 if mode == "rewrite" else 3  # rewrite keeps only what this run recorded
    assert len(responses) == kept
    assert responses[-1]["body"]["string"] == EVENTS
    assert json.loads(requests[-1].body) == {"model": "new"}
    if mode != "rewrite":
        assert json.loads(responses[0]["body"]["string"]) == json.loads(ANSWER)  # was gzip
        assert responses[1]["body"]["string"] == b'data: {"a":1}\n\ndata: [DONE]\n\n'


def test_new_and_llmobs_cassettes_are_written_in_the_llmobs_format(tmp_path: Path) -> None:
    new = tmp_path / "new.yaml"
    ours = tmp_path / "ours.yaml"
    write_atomic(ours, dumps_document(INTERACTIONS[:1]))
    for path in (new, ours):
        cassette = LLMCassette.open(path, "new_episodes", MatchRules(), Redactor())
        cassette.record(*fresh({"model": "new"}, gzip_json_response()))
        assert cassette.save()
        assert path.read_text().startswith('{\n  "llmobs_cassette": 1')


def test_what_vcrpy_cannot_hold_is_never_half_written(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    original = vcrpy_yaml(path, URL, {"model": "m"}, ANSWER.encode())
    cassette = LLMCassette.open(path, "new_episodes", MatchRules(), Redactor())
    cassette.record(*fresh({"model": "new"}, {**sse_response(), "error": "timeout"}))
    # the session reports it as "could not be written" with this message
    with pytest.raises(CassetteError, match="interaction 3: its response ended in a recorded"):
        cassette.save()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# -- 2. end to end: record with the plugin, downgrade, replay with plain vcrpy ---------------
SUITE = """
import json, os, pathlib
import anthropic, boto3, openai, pytest
from botocore.config import Config

URL = os.environ["LLM_URL"]
RESULTS = pathlib.Path(os.environ["RESULTS"])
MESSAGES = [{"role": "user", "content": "say hello to the test"}]


@pytest.fixture(autouse=True)
def plain_vcrpy(request):
    \"\"\"VCR_MODE set: plain vcrpy (what pytest-recording runs) records or replays this test
    at the plugin's default cassette path, with its default serializer and matching.\"\"\"
    mode = os.environ.get("VCR_MODE")
    if not mode:
        yield
        return
    import vcr

    path = request.path.parent / "cassettes" / request.path.stem / f"{request.node.name}.yaml"
    with vcr.VCR(filter_headers=["authorization", "x-api-key"]).use_cassette(
            str(path), record_mode=mode):
        yield


def save(request, out):
    calls = []
    if request.config.pluginmanager.hasplugin("llmobs"):
        calls = [
            [c.provider, c.stream, c.source, c.status_code, c.usage.input_tokens,
             c.usage.output_tokens, list(c.finish_reasons), c.output_text]
            for c in request.getfixturevalue("llmobs").calls
        ]
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[request.node.name] = {"out": out, "calls": calls}
    RESULTS.write_text(json.dumps(data))


def openai_chat(client):
    plain = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    deltas, usage, finish = [], None, None
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    return [
        [plain.choices[0].message.content, plain.usage.prompt_tokens,
         plain.usage.completion_tokens, plain.choices[0].finish_reason],
        [deltas, usage.prompt_tokens, usage.completion_tokens, finish],
    ]


def anthropic_stream(client):
    with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    return [deltas, final.usage.input_tokens, final.usage.output_tokens, final.stop_reason]


def test_openai(request):
    client = openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0000")
    save(request, openai_chat(client))


def test_anthropic(request):
    client = anthropic.Anthropic(base_url=URL, max_retries=0, api_key="sk-ant-test-0000")
    save(request, [anthropic_stream(client)])


def test_bedrock(request):
    client = boto3.client(
        "bedrock-runtime", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    messages = [{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}]
    plain = client.converse(modelId="anthropic.claude-test-v1:0", messages=messages)
    events = list(client.converse_stream(modelId="amazon.nova-test-v1:0",
                                         messages=messages)["stream"])
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    [meta] = [e["metadata"] for e in events if "metadata" in e]
    [stop] = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
    save(request, [
        [plain["output"]["message"]["content"][0]["text"], plain["usage"]["inputTokens"],
         plain["usage"]["outputTokens"], plain["stopReason"]],
        [deltas, meta["usage"]["inputTokens"], meta["usage"]["outputTokens"], stop],
    ])


def test_new_episode(request):
    \"\"\"One call plain vcrpy records; with NEW set, a second one the plugin adds.\"\"\"
    out = openai_chat(openai.OpenAI(base_url=URL + "/v1", max_retries=0, api_key="sk-test-0"))
    if os.environ.get("NEW"):
        client = anthropic.Anthropic(base_url=URL, max_retries=0, api_key="sk-ant-test-0000")
        out.append(anthropic_stream(client))
    save(request, out)
"""

TESTS = ("test_openai", "test_anthropic", "test_bedrock")
# (input, output tokens) and the finish reason the provider server reports for the prompt
USAGE = (5, 4)
FINISH = {"test_openai": "stop", "test_anthropic": "end_turn", "test_bedrock": "end_turn"}
PROVIDER = {"test_openai": "openai", "test_anthropic": "anthropic", "test_bedrock": "aws.bedrock"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """A provider server of the test's own: stopping it leaves its port dead, and the
    cassettes keep matching that URL for plain vcrpy (which matches on host and port)."""
    with ProviderServer() as server:
        server.configure(reply="one two three four", gzip=True)
        monkeypatch.setenv("LLM_URL", server.url)
        yield server


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pytester.makepyfile(test_exported_suite=SUITE)
    return pytester.path / "cassettes" / "test_exported_suite"


def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tests: tuple[str, ...], *args: str
) -> dict[str, Any]:
    results = pytester.path / "results.json"
    results.unlink(missing_ok=True)
    monkeypatch.setenv("RESULTS", str(results))
    selection = " or ".join(tests)
    result = pytester.runpytest(*INNER_ARGS, "-k", selection, *args)
    result.assert_outcomes(passed=len(tests))
    data: dict[str, Any] = json.loads(results.read_text())
    return data


def check_calls(replayed: dict[str, Any], live: dict[str, Any]) -> None:
    """Each call replayed by the plugin, as the provider reported it when the SDK saw it."""
    for name in TESTS:
        calls = replayed[name]["calls"]
        assert [c[0] for c in calls] == [PROVIDER[name]] * len(calls), name
        assert {c[2] for c in calls} == {"replay"}, name
        outs = live[name]["out"]
        assert len(calls) == len(outs), name
        for call, (sdk_text, sdk_in, sdk_out, sdk_finish) in zip(calls, outs, strict=True):
            assert (call[4], call[5]) == (sdk_in, sdk_out) == USAGE, name
            assert call[6] == [sdk_finish] == [FINISH[name]], name
            text = sdk_text if isinstance(sdk_text, str) else "".join(t or "" for t in sdk_text)
            assert call[7] == text == "one two three four", name


def test_recorded_by_the_plugin_downgraded_and_replayed_by_plain_vcrpy(
    pytester: pytest.Pytester,
    server: ProviderServer,
    suite: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = run(pytester, monkeypatch, TESTS, "--llm-record-mode=once")
    sent = len(server.requests)
    assert sent == 5
    assert {c[2] for name in TESTS for c in live[name]["calls"]} == {"live"}
    paths = {name: suite / f"{name}.yaml" for name in TESTS}
    recorded = {name: [(r.value, s.value) for r, s in load(p)[0]] for name, p in paths.items()}
    assert all(load(p)[1] for p in paths.values())  # the llmobs format
    openai_plain, openai_stream = (resp for _, resp in recorded["test_openai"])
    assert openai_plain["encoding"] == openai_stream["encoding"] == "gzip"  # gzip'd answers
    assert len(openai_stream["stream"]) > 1
    bedrock_stream = recorded["test_bedrock"][1][1]
    assert all("base64" in chunk for chunk in bedrock_stream["stream"])  # binary events

    capsys.readouterr()
    assert llmobs_main(["cassettes", "downgrade", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "3 downgraded, 0 already vcrpy format, 0 failed" in out
    assert "vcrpy cassettes have no timing" in out
    downgraded = {name: p.read_bytes() for name, p in paths.items()}
    for name, raw in downgraded.items():
        doc = yaml.safe_load(raw)
        assert "llmobs_cassette" not in doc and doc["version"] == 1, name
        assert len(doc["interactions"]) == len(recorded[name]), name
    assert b"!!binary" in downgraded["test_bedrock"]
    assert b"content-encoding" not in downgraded["test_openai"].lower()
    assert sorted(p.name for p in suite.iterdir()) == sorted(p.name for p in paths.values())

    server.stop()  # offline from here on: nothing answers at the recorded URL
    # plain vcrpy, the plugin not loaded: the SDKs get what they got live
    monkeypatch.setenv("VCR_MODE", "none")
    by_vcrpy = run(pytester, monkeypatch, TESTS, "-p", "no:llmobs")
    monkeypatch.delenv("VCR_MODE")
    for name in TESTS:
        assert by_vcrpy[name]["out"] == live[name]["out"], name
    # the plugin again, from the downgraded files
    by_plugin = run(pytester, monkeypatch, TESTS, "--llm-record-mode=none")
    for name in TESTS:
        assert by_plugin[name]["out"] == live[name]["out"], name
    check_calls(by_plugin, live)
    assert {name: p.read_bytes() for name, p in paths.items()} == downgraded  # never rewritten
    assert len(server.requests) == sent

    # and back: every byte replay serves is the one recorded (only the timing is gone)
    assert llmobs_main(["cassettes", "upgrade", str(suite)]) == 0
    for name, path in paths.items():
        again = [(r.value, s.value) for r, s in load(path)[0]]
        assert [_served(pair, encoding=False) for pair in again] == [
            _served(pair, encoding=False) for pair in recorded[name]
        ], name


def test_recording_new_episodes_into_a_vcrpy_cassette_keeps_it_vcrpys(
    pytester: pytest.Pytester,
    server: ProviderServer,
    suite: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = ("test_new_episode",)
    path = suite / "test_new_episode.yaml"
    monkeypatch.setenv("VCR_MODE", "once")
    first = run(pytester, monkeypatch, name, "-p", "no:llmobs")
    monkeypatch.delenv("VCR_MODE")
    original = yaml.safe_load(path.read_bytes())
    assert len(original["interactions"]) == 2 and "llmobs_cassette" not in original
    assert original["interactions"][0]["response"]["body"]["string"][:2] == b"\x1f\x8b"

    monkeypatch.setenv("NEW", "1")
    added = run(pytester, monkeypatch, name, "--llm-record-mode=new_episodes")
    assert [c[2] for c in added["test_new_episode"]["calls"]] == ["replay", "replay", "live"]
    assert added["test_new_episode"]["out"][:2] == first["test_new_episode"]["out"]
    assert vcrpy_serializer(path) == "yaml"
    doc = yaml.safe_load(path.read_bytes())
    assert len(doc["interactions"]) == 3
    assert doc["interactions"][2]["request"]["uri"].endswith("/v1/messages")
    saved = path.read_bytes()

    server.stop()
    monkeypatch.setenv("VCR_MODE", "none")
    by_vcrpy = run(pytester, monkeypatch, name, "-p", "no:llmobs")
    assert by_vcrpy["test_new_episode"]["out"] == added["test_new_episode"]["out"]
    monkeypatch.delenv("VCR_MODE")
    by_plugin = run(pytester, monkeypatch, name, "--llm-record-mode=none")
    assert by_plugin["test_new_episode"]["out"] == added["test_new_episode"]["out"]
    assert path.read_bytes() == saved
