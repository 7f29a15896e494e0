"""Cassette files without pytest runs: the format, old vcrpy cassettes, matching, the
upgrade command, atomic writes and load speed."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_llmobs.atomic import write_atomic
from pytest_llmobs.cassettes import synthetic
from pytest_llmobs.cassettes.cassette import LLMCassette, StoredRequest
from pytest_llmobs.cassettes.cli import upgrade_file
from pytest_llmobs.cassettes.format import (
    CassetteError,
    decode_body,
    decode_chunk,
    dumps_document,
    encode_body,
    encode_chunk,
    load,
)
from pytest_llmobs.cassettes.interactions import from_exchange, to_canned
from pytest_llmobs.cassettes.matching import MatchRules, normalize_url
from pytest_llmobs.cassettes.naming import safe_name
from pytest_llmobs.cli import main as llmobs_main
from pytest_llmobs.intercept.exchange import Exchange
from pytest_llmobs.redaction import Redactor

URL = "https://api.openai.com/v1/chat/completions"


# -- bodies and chunks are stored readably and come back byte for byte ----------------------
@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"b":[1,2]}',
        b'{"a": 1, "b": [1, 2]}',
        json.dumps({"a": {"b": "caf\u00e9"}}, indent=2).encode(),
        json.dumps({"a": "caf\u00e9"}).encode(),  # ASCII-escaped
        b'{"a":1}\n',
        b'{"a":1.0E5}',  # not reproducible as JSON: kept as text
        b"plain text answer",
        b"\x89PNG\r\n\x1a\n\x00\x00binary",
        b"",
    ],
)
def test_bodies_round_trip_exactly(data: bytes) -> None:
    stored = encode_body(data)
    assert decode_body(stored) == data
    if data.startswith(b"{") and b"E5" not in data:
        assert "json" in stored


@pytest.mark.parametrize(
    ("data", "kind", "field"),
    [
        (b'data: {"id":"c1","choices":[]}\n\n', "sse", "data"),
        (b'event: message_stop\ndata: {"type":"message_stop"}\n\n', "sse", "event"),
        (b'data: {"a":1}\n\ndata: {"a":2}\n\n', "sse", "events"),
        (b"data: [DONE]\n\n", "sse", "text"),
        (b'data: {"a":1', "sse", "text"),  # an event cut across two chunks
        (b": keep-alive\r\n\r\n", "sse", "text"),
        (b'{"done":false}\n', "ndjson", "line"),
        (b'{"done":false}\n{"done":true}\n', "ndjson", "lines"),
        (b"\x00\x00\x00\x10binary frame", "binary", "base64"),
    ],
)
def test_stream_chunks_are_events_and_exact(data: bytes, kind: str, field: str) -> None:
    item = encode_chunk(0.1234567, data, kind)
    assert field in item and item["t"] == 0.123457
    assert decode_chunk(item) == data


def test_document_is_json_yaml_and_one_line_per_chunk() -> None:
    request = {"method": "POST", "uri": URL, "headers": {"a": ["1"]}, "body": {"json": {"x": 1}}}
    stream = [encode_chunk(0.1 * i, b'data: {"i":%d}\n\n' % i, "sse") for i in range(3)]
    response = {"status": 200, "headers": {}, "stream": stream, "timing": {"end": 0.3}}
    text = dumps_document([(request, response)] * 2)
    assert json.loads(text) == yaml.safe_load(text)  # JSON is YAML: both readers agree
    assert sum('{"t": ' in line for line in text.splitlines()) == 6
    path = Path(os.devnull)
    assert json.loads(text)["interactions"][0]["response"]["stream"][1] == stream[1]
    assert path  # (keeps the helper signature honest for mypy)


def _exchange(chunks: list[bytes], headers: list[tuple[str, str]], **kw: Any) -> Exchange:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    exchange = Exchange(
        "httpx",
        "POST",
        URL + "?key=AIzaSyA-planted-google-key-0123456789abc",
        [("authorization", "Bearer sk-proj-plantedplantedplanted0123"), ("x-api-key", "k")],
        body.encode(),
        **kw,
    )
    exchange.got_headers(200, headers, "OK")
    for i, chunk in enumerate(chunks):
        exchange.chunks.append(chunk)
        exchange.chunk_offsets.append(0.1 * (i + 1))
    exchange.end_offset = 0.1 * len(chunks) + 0.01
    exchange.complete = True
    return exchange


def test_gzip_stream_is_stored_decoded_per_chunk_and_replayed() -> None:
    events = [b'data: {"i":%d}\n\n' % i for i in range(3)]
    compressor = __import__("zlib").compressobj(wbits=31)
    raw = [compressor.compress(e) + compressor.flush(2) for e in events]
    raw[-1] += compressor.flush()
    exchange = _exchange(raw, [("content-type", "text/event-stream"), ("content-encoding", "gzip")])
    stored = from_exchange(exchange, Redactor())
    assert stored is not None
    request, response = stored
    assert response["encoding"] == "gzip"
    assert [decode_chunk(c) for c in response["stream"]] == events
    assert "AIza" not in json.dumps(request) and "planted" not in json.dumps(request)
    canned = to_canned(response, 1.0, {})
    assert [c for _, c in canned.chunks] == events
    assert [round(t, 3) for t, _ in canned.chunks] == [0.1, 0.2, 0.3]
    assert canned.body_decoded and ("content-encoding", "gzip") not in canned.headers
    assert canned.duration_s == pytest.approx(0.31)


def test_json_body_keeps_chunk_boundaries() -> None:
    body = json.dumps({"id": "x", "choices": []}, indent=2).encode()
    exchange = _exchange([body[:10], body[10:]], [("content-type", "application/json")])
    stored = from_exchange(exchange, Redactor())
    assert stored is not None
    response = stored[1]
    assert response["body"]["style"] == "indent2"
    assert [c for _, c in to_canned(response, 0.0, {}).chunks] == [body[:10], body[10:]]


# -- old vcrpy cassettes ----------------------------------------------------------------------
def vcrpy_yaml(path: Path, url: str, request_body: dict[str, Any], answer: bytes) -> bytes:
    """A cassette as vcrpy / pytest-recording write it: gzip `!!binary` body included."""
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    gz = gzip.compress(answer)
    cassette = {
        "requests": [
            Request("POST", url, json.dumps(request_body), {"Authorization": "Bearer sk-x"}),
            Request("POST", url, json.dumps({**request_body, "stream": True}), {}),
        ],
        "responses": [
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {
                    "Content-Type": ["application/json"],
                    "Content-Encoding": ["gzip"],
                    "Content-Length": [str(len(gz))],
                    "Set-Cookie": ["session=abcdef0123456789; Path=/"],
                },
                "body": {"string": gz},
            },
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {"Content-Type": ["text/event-stream"]},
                "body": {"string": 'data: {"a":1}\n\ndata: [DONE]\n\n'},
            },
        ],
    }
    text = serialize(cassette, yamlserializer)
    path.write_text(text)
    return text.encode()


def test_vcrpy_cassette_loads_and_upgrades_losslessly(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    answer = json.dumps({"id": "1", "choices": [{"message": {"content": "hi"}}]}).encode()
    original = vcrpy_yaml(path, URL, {"model": "gpt-4o", "messages": []}, answer)
    assert b"!!binary" in original
    pairs, ours = load(path)
    assert not ours and len(pairs) == 2
    before = [to_canned(resp.value, 0.0, {}) for _, resp in pairs]
    assert b"".join(c for _, c in before[0].chunks) == answer
    assert ("Content-Length", str(len(answer))) in before[0].headers

    assert llmobs_main(["cassettes", "upgrade", "--check", str(tmp_path)]) == 1
    assert path.read_bytes() == original  # --check changes nothing
    assert llmobs_main(["cassettes", "upgrade", str(tmp_path)]) == 0
    text = path.read_text()
    assert '"llmobs_cassette": 1' in text and "sk-x" not in text and "abcdef012345" not in text
    assert '"content": "hi"' in text  # decompressed, readable
    pairs, ours = load(path)
    assert ours
    after = [to_canned(resp.value, 0.0, {}) for _, resp in pairs]
    for old, new in zip(before, after, strict=True):
        assert (old.status, old.reason, old.chunks) == (new.status, new.reason, new.chunks)
    assert upgrade_file(path, Redactor()) == "current"


def test_corrupt_cassettes_are_named_with_line_and_column(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.yaml"
    bad_json.write_text('{\n  "llmobs_cassette": 1,\n  "interactions": [\n    {oops}\n  ]\n}\n')
    with pytest.raises(CassetteError, match=r"bad.yaml: line 4, column 6: invalid JSON"):
        load(bad_json)
    bad_yaml = tmp_path / "bad2.yaml"
    bad_yaml.write_text("interactions:\n- request: {method: POST\n  response: [\n")
    with pytest.raises(CassetteError, match=r"bad2.yaml: line \d+, column \d+: invalid YAML"):
        load(bad_yaml)
    not_utf8 = tmp_path / "bad3.yaml"
    not_utf8.write_bytes(b"interactions: []\n# \xff\xfe\n")
    with pytest.raises(CassetteError, match=r"line 2, column 3: not UTF-8"):
        load(not_utf8)
    before = bad_json.read_bytes()
    assert llmobs_main(["cassettes", "upgrade", str(bad_json)]) == 1
    assert bad_json.read_bytes() == before


def test_a_broken_interaction_is_reported_when_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    request = {"method": "POST", "uri": URL, "headers": {}, "body": {"json": {"m": 1}}}
    text = dumps_document([(request, {"status": 200, "headers": {}})] * 3)
    lines = text.splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if '"status": 200' in line)
    lines[target] = lines[target].replace("200", "2oo")
    path.write_text("".join(lines))
    pairs, ours = load(path)  # opening scans; a response is parsed when it is played
    assert ours and len(pairs) == 3
    with pytest.raises(CassetteError, match=rf"line {target + 1}, column \d+: invalid JSON"):
        _ = pairs[0][1].value


def test_atomic_write_never_leaves_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    write_atomic(path, "old content\n")

    def broken_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new content\n" * 1000)
    assert path.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # temp file removed


# -- matching ---------------------------------------------------------------------------------
def _req(body: Any, uri: str = URL) -> StoredRequest:
    return StoredRequest({"method": "POST", "uri": uri, "headers": {}, "body": {"json": body}})


def test_matching_ignores_key_order_volatile_fields_query_secrets_and_loopback_ports() -> None:
    rules = MatchRules.build(["messages.*.name"], ["ts"])
    a = rules.normalize(
        _req({"model": "m", "user": "u1", "messages": [{"role": "user", "n": 1}]}).stored
    )
    b = rules.normalize(
        _req(
            {
                "messages": [{"n": 1, "role": "user", "name": "bob"}],
                "model": "m",
                "user": "u2",
                "metadata": {"run": 7},
            }
        ).stored
    )
    assert a.key == b.key
    c = rules.normalize(_req({"model": "m", "messages": [{"role": "user", "n": 2}]}).stored)
    assert c.key != a.key
    assert normalize_url("http://127.0.0.1:4321/v1/x?b=2&a=1&key=s&ts=9", rules.ignore_query) == (
        "http://127.0.0.1/v1/x?a=1&b=2"
    )
    assert normalize_url("https://API.openai.com:443/v1") == "https://api.openai.com/v1"
    assert normalize_url("http://llm.corp:8080/v1") == "http://llm.corp:8080/v1"


def test_identical_requests_replay_in_order_and_index_lookup(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    request = {"method": "POST", "uri": URL, "headers": {}, "body": {"json": {"q": 1}}}
    other = {"method": "POST", "uri": URL, "headers": {}, "body": {"json": {"q": 2}}}
    pairs = [(request, {"status": s, "headers": {}}) for s in (429, 200)]
    write_atomic(path, dumps_document([*pairs, (other, {"status": 201, "headers": {}})]))
    cassette = LLMCassette.open(path, "none", MatchRules(), Redactor())
    statuses = []
    for body in ({"q": 1}, {"q": 2}, {"q": 1}):
        incoming = _req(body)
        assert cassette.can_play_response_for(incoming)
        statuses.append(cassette.play_response(incoming).stored["status"])
    assert statuses == [429, 201, 200]
    assert not cassette.can_play_response_for(_req({"q": 1}))  # all played
    assert cassette.all_played


# -- naming -----------------------------------------------------------------------------------
def test_safe_names_are_portable_stable_and_unique() -> None:
    assert safe_name("test_plain[gpt-4o-0.2]") == "test_plain[gpt-4o-0.2]"
    odd = safe_name("test_x[a/b: c?]")
    assert odd.startswith("test_x[a_b__c_]-") and odd == safe_name("test_x[a/b: c?]")
    assert safe_name("test_x[a/b]") != safe_name("test_x[a_b]")
    long = safe_name("test_" + "x" * 300)
    assert len(long) <= 100 and long != safe_name("test_" + "x" * 299)


# -- speed and memory -------------------------------------------------------------------------
def test_large_cassette_loads_in_bounded_memory(tmp_path: Path) -> None:
    """Load speed against vcrpy is a benchmark figure (benchmarks/bench_replay.py --load),
    not a timed test; here: same content, bounded memory, and it replays."""
    from vcr.cassette import Cassette

    n = 1000
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "vcrpy.yaml"
    synthetic.write_llmobs(ours, n)
    synthetic.write_vcrpy(theirs, n)
    vcr_cassette = Cassette.load(path=str(theirs), record_mode="none")
    cassette = LLMCassette.open(ours, "none", MatchRules(), Redactor())
    assert len(cassette) == len(vcr_cassette) == n
    tracemalloc.start()
    try:
        LLMCassette.open(ours, "none", MatchRules(), Redactor())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * ours.stat().st_size
    # and it all replays
    requests = [_req(body) for body, _, _ in synthetic.traffic(n)]
    assert all(cassette.can_play_response_for(r) for r in requests[:50])


# -- big cassettes: one streaming pass, memory about the file once, truncation found at once --
class _CountingStream:
    """A binary file that counts the bytes handed out (the scan's work, not a clock's)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        self._file.close()


def test_big_cassette_loads_at_most_twice_its_size(tmp_path: Path) -> None:
    """Peak Python memory of opening a cassette and building the request index (what the
    first replayed request does) ÷ file size. The issue's bound is 2.5x in RSS; tracemalloc
    sees a bit less than RSS, so it is held to 2x here (today about 1.7x)."""
    path = tmp_path / "big.yaml"
    synthetic.write_llmobs(path, 800)  # about 4 MB
    size = path.stat().st_size
    tracemalloc.start()
    try:
        cassette = LLMCassette.open(path, "none", MatchRules(), Redactor())
        cassette._ensure_index()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(cassette) == 800
    assert peak / size < 2.0, f"peak {peak / size:.2f}x the file"


@pytest.mark.parametrize(
    "cut",
    ["inside_request", "inside_response", "after_comma", "after_interaction", "in_tail"],
)
def test_truncated_cassette_is_reported_in_one_pass_and_left_alone(
    tmp_path: Path, cut: str
) -> None:
    from pytest_llmobs.cassettes.format import scan_stream

    path = tmp_path / "cut.yaml"
    synthetic.write_llmobs(path, 600)
    whole = path.read_bytes()
    last = whole.rindex(b"\n    {\n")
    at = {
        "inside_request": last + 40,
        "inside_response": whole.index(b'"response"', last) + 30,
        "after_comma": last,
        "after_interaction": last - 1,
        "in_tail": len(whole) - 3,
    }[cut]
    path.write_bytes(whole[:at])
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    size = path.stat().st_size
    stream = _CountingStream(path)
    try:
        with pytest.raises(
            CassetteError, match=rf"cut\.yaml: truncated: the file ends at byte {size:,}"
        ):
            scan_stream(stream, path)  # type: ignore[arg-type]
    finally:
        stream.close()
    assert stream.read_bytes == size  # every byte read once: no second pass, no full parse
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message and f"byte {size:,} (line " in message
    inside = cut.startswith("inside")
    assert ("inside interaction 600" in message) == inside
    assert f"{600 if cut == 'in_tail' else 599} interactions before it are complete" in message
    assert peak / size < 2.0
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_big_corrupt_json_is_not_retried_as_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken middle (not our layout any more) is parsed in full: the JSON error is
    reported, without libyaml's minutes-long retry on a big file."""
    import pytest_llmobs.cassettes.format as fmt

    monkeypatch.setattr(fmt, "YAML_FALLBACK_MAX", 100_000)
    path = tmp_path / "broken.yaml"
    synthetic.write_llmobs(path, 200)
    text = path.read_text()
    middle = text.index('\n    {\n      "request"', len(text) // 2)
    path.write_text(text[:middle] + "\n    # a comment YAML would skip" + text[middle:])
    assert path.stat().st_size > fmt.YAML_FALLBACK_MAX
    line = text[:middle].count("\n") + 2
    with pytest.raises(CassetteError, match=rf"broken\.yaml: line {line}, column 5: invalid JSON"):
        load(path)
    monkeypatch.setattr(fmt, "YAML_FALLBACK_MAX", 16 << 20)
    pairs, ours = load(path)  # small enough: read as YAML, as a hand edit may need
    assert ours and len(pairs) == 200
