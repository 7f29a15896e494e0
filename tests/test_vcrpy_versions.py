"""The installed vcrpy is one the plugin supports: the floor check, and everything the
plugin takes from vcrpy's `Cassette` (record modes, play order, the one internal it
overrides), run against whichever vcrpy is installed. The floor and latest test sets
install different vcrpy releases (7.0 … 9.x), so these run meaningfully under each."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from inner import INNER_ARGS
from test_cassettes import dead_url

from pytest_llmobs.atomic import write_atomic
from pytest_llmobs.cassettes import vcrpy_version
from pytest_llmobs.cassettes.cassette import LLMCassette, StoredRequest, StoredResponse
from pytest_llmobs.cassettes.format import CassetteError, dumps_document
from pytest_llmobs.cassettes.matching import MatchRules
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.testing import ProviderServer

ROOT = Path(__file__).resolve().parent.parent
URL = "https://api.openai.com/v1/chat/completions"
INSTALLED = vcrpy_version.installed()


# -- the floor ------------------------------------------------------------------------------
def test_installed_vcrpy_meets_the_floor_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [requirement] = [d for d in project["dependencies"] if d.startswith("vcrpy")]
    floor = ".".join(map(str, vcrpy_version.FLOOR))
    assert requirement == f"vcrpy>={floor}"
    assert INSTALLED is not None
    assert vcrpy_version.release(INSTALLED) >= vcrpy_version.FLOOR, INSTALLED
    assert vcrpy_version.problem(INSTALLED) is None


def test_version_check() -> None:
    assert vcrpy_version.release("8.1.1") == (8, 1, 1)
    assert vcrpy_version.release("9.0.0rc1") == (9, 0, 0)
    assert vcrpy_version.release("unknown") == ()
    for supported in ("7.0", "7.0.0", "8.1.1", "10.2"):
        assert vcrpy_version.problem(supported) is None, supported
    assert vcrpy_version.problem("6.0.2") == (
        "pytest-llmobs needs vcrpy >= 7.0, but vcrpy 6.0.2 is installed: "
        "pip install -U 'vcrpy>=7.0'"
    )
    assert "vcrpy 1.0" in (vcrpy_version.problem("1.0") or "")
    assert "not installed" in (vcrpy_version.problem(None) or "")


@pytest.mark.parametrize(
    ("found", "says"),
    [("6.0.2", "but vcrpy 6.0.2 is installed"), (None, "which is not installed")],
)
def test_older_or_missing_vcrpy_is_a_usage_error_before_any_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, found: str | None, says: str
) -> None:
    monkeypatch.setattr(vcrpy_version, "installed", lambda: found)
    pytester.makepyfile("def test_never_runs():\n    raise AssertionError\n")
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-llmobs needs vcrpy >= 7.0, {says}: *"])
    assert "pip install -U 'vcrpy>=7.0'" in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


# -- the cassette, unit by unit ---------------------------------------------------------------
def request(q: int, started_at: float = 0.0) -> StoredRequest:
    stored = {"method": "POST", "uri": URL, "headers": {}, "body": {"json": {"q": q}}}
    made = StoredRequest(stored)
    made.started_at = started_at
    return made


def response(status: int) -> StoredResponse:
    return StoredResponse({"status": status, "headers": {}, "body": {"json": {"a": status}}})


def interactions(path: Path) -> list[tuple[int, int]]:
    doc = json.loads(path.read_text())
    return [
        (i["request"]["body"]["json"]["q"], i["response"]["status"]) for i in doc["interactions"]
    ]


LOADED = [(1, 200), (2, 201), (1, 202)]


@pytest.fixture
def cassette_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    write_atomic(path, dumps_document([(request(q).stored, response(s).stored) for q, s in LOADED]))
    return path


def test_identical_requests_replay_in_recorded_order_through_the_index(
    cassette_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one vcrpy internal we override: vcrpy's lookups must go through it (were they
    # to run vcrpy's own matching instead, they would not find our stored requests).
    looked_up: list[Any] = []
    index_lookup = LLMCassette._responses

    def spy(self: LLMCassette, incoming: Any) -> Any:
        looked_up.append(incoming)
        return index_lookup(self, incoming)

    monkeypatch.setattr(LLMCassette, "_responses", spy)
    cassette = LLMCassette.open(cassette_file, "none", MatchRules(), Redactor())
    assert cassette.path == cassette_file and cassette.exists and len(cassette) == 3
    played = []
    for q in (1, 2, 1):
        incoming = request(q)
        assert incoming in cassette
        assert cassette.can_play_response_for(incoming)
        played.append(cassette.play_response(incoming).stored["status"])
    assert played == [200, 201, 202]
    assert len(looked_up) == 9  # `in`, can_play_response_for and play_response, 3 times
    assert not cassette.can_play_response_for(request(1))  # both already played
    assert cassette.all_played and cassette.play_count == 3
    assert cassette.write_protected and not cassette.dirty
    assert not cassette.save() and interactions(cassette_file) == LOADED


def test_once_plays_and_never_records_into_an_existing_cassette(cassette_file: Path) -> None:
    before = cassette_file.read_bytes()
    cassette = LLMCassette.open(cassette_file, "once", MatchRules(), Redactor())
    assert cassette.play_response(request(2)).stored["status"] == 201
    assert cassette.write_protected and not cassette.save()
    assert cassette_file.read_bytes() == before


def test_once_records_a_new_cassette(tmp_path: Path) -> None:
    path = tmp_path / "new" / "c.yaml"
    cassette = LLMCassette.open(path, "once", MatchRules(), Redactor())
    assert not cassette.exists and not cassette.write_protected
    assert not cassette.can_play_response_for(request(1))
    cassette.record(request(1, started_at=2.0), response(300))
    cassette.record(request(1, started_at=1.0), response(301))
    # recorded counts as played: a third identical request is not answered from this run
    assert not cassette.can_play_response_for(request(1))
    assert cassette.save() and not cassette.dirty
    assert interactions(path) == [(1, 301), (1, 300)]  # in the order the calls started


@pytest.mark.parametrize(
    ("mode", "saved"),
    [
        # adds what this run made, in the order the calls started
        ("new_episodes", [*LOADED, (5, 305), (1, 301), (1, 300)]),
        # what this run made replaces the loaded interactions with the same request
        ("all", [(2, 201), (5, 305), (1, 301), (1, 300)]),
        # only what this run made
        ("rewrite", [(5, 305), (1, 301), (1, 300)]),
    ],
)
def test_what_each_recording_mode_saves(
    cassette_file: Path, mode: str, saved: list[tuple[int, int]]
) -> None:
    cassette = LLMCassette.open(cassette_file, mode, MatchRules(), Redactor())
    assert cassette.exists == (mode != "rewrite")
    assert not cassette.write_protected
    # all and rewrite never replay; new_episodes replays what it has
    assert cassette.can_play_response_for(request(2)) == (mode == "new_episodes")
    for q, status, started_at in ((1, 300, 3.0), (5, 305, 1.0), (1, 301, 2.0)):
        cassette.record(request(q, started_at), response(status))
    assert cassette.dirty and cassette.save()
    assert interactions(cassette_file) == saved


# -- YAML cassettes -----------------------------------------------------------------------------
OLD_VCRPY_YAML = """\
interactions:
- request:
    body: !!python/object/new:_io.BytesIO
      state: !!python/tuple
      - !!binary |
        eyJxIjogMX0=
      - 0
      - null
    headers: {}
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body: {string: !!python/unicode '{"a": 200}'}
    headers: {Content-Type: [application/json]}
    status: {code: 200, message: OK}
- request:
    body: !!python/object/apply:builtins.iter
      args:
      - [!!python/str '{"q": 2}']
    headers: {}
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body: {string: '{"a": 201}'}
    headers: {Content-Type: [application/json]}
    status: {code: 201, message: Created}
version: 1
"""


def test_old_vcrpy_yaml_tags_for_plain_values_and_bodies_are_read(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_VCRPY_YAML)
    cassette = LLMCassette.open(path, "none", MatchRules(), Redactor())
    assert [cassette.play_response(request(q)).stored["status"] for q in (2, 1)] == [201, 200]


def test_yaml_cassettes_never_run_code(tmp_path: Path) -> None:
    # vcrpy's own loader ran this before vcrpy 8.5; ours refuses it, whatever is installed.
    ran = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"interactions: !!python/object/apply:os.mkdir [{str(ran)!r}]\nversion: 1\n")
    before = path.read_bytes()
    with pytest.raises(CassetteError, match=r"line 1, column 15: invalid YAML: .*python/object"):
        LLMCassette.open(path, "new_episodes", MatchRules(), Redactor())
    assert not ran.exists() and path.read_bytes() == before


# -- end to end, through the plugin -----------------------------------------------------------
INNER = """
import json, os, pathlib
import openai

def test_it(llm_cassette):
    client = openai.OpenAI(base_url=os.environ["LLM_URL"] + "/v1", max_retries=0)
    messages = [{"role": "user", "content": os.environ["PROMPT"]}]
    answers = [
        client.chat.completions.create(
            model="gpt-4o", messages=messages, extra_headers={"x-fake-reply": reply}
        ).choices[0].message.content
        for reply in os.environ["REPLIES"].split(",")
    ]
    cassette = llm_cassette.cassette
    seen = [answers, cassette.path.name, cassette.play_count, cassette.all_played, len(cassette)]
    pathlib.Path(os.environ["RESULTS"]).write_text(json.dumps(seen))
"""


def test_record_and_replay_in_every_mode_through_the_plugin(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=INNER)
    path = pytester.path / "cassettes" / "test_inner" / "test_it.yaml"
    results = pytester.path / "results.json"
    monkeypatch.setenv("RESULTS", str(results))
    live, offline = os.environ["LLM_URL"], dead_url()

    def run(mode: str, prompt: str, replies: str, url: str) -> list[Any]:
        monkeypatch.setenv("PROMPT", prompt)
        monkeypatch.setenv("REPLIES", replies)
        monkeypatch.setenv("LLM_URL", url)
        pytester.runpytest(*INNER_ARGS, f"--llm-record-mode={mode}").assert_outcomes(passed=1)
        seen: list[Any] = json.loads(results.read_text())
        return seen

    def saved() -> list[tuple[str, str]]:
        return [
            (
                i["request"]["body"]["json"]["messages"][0]["content"],
                i["response"]["body"]["json"]["choices"][0]["message"]["content"],
            )
            for i in json.loads(path.read_text())["interactions"]
        ]

    assert run("once", "same", "first,second", live) == [
        ["first", "second"],
        "test_it.yaml",
        2,
        True,
        2,
    ]
    recorded = path.read_bytes()
    # offline, identical requests get their answers in the order they were recorded
    assert run("none", "same", "x,y", offline) == [["first", "second"], "test_it.yaml", 2, True, 2]
    assert run("once", "same", "x,y", offline)[0] == ["first", "second"]
    assert path.read_bytes() == recorded  # replaying never rewrites
    assert run("new_episodes", "other", "third", live)[0] == ["third"]
    assert saved() == [("same", "first"), ("same", "second"), ("other", "third")]
    # all: re-records what it makes (both "same" replaced by this run's), keeps the rest
    assert run("all", "same", "fresh", live) == [["fresh"], "test_it.yaml", 1, False, 4]
    assert saved() == [("other", "third"), ("same", "fresh")]
    assert run("rewrite", "new", "only", live) == [["only"], "test_it.yaml", 1, True, 1]
    assert saved() == [("new", "only")]
    assert run("none", "new", "x", offline)[0] == ["only"]
