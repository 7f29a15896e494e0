"""`llmobs scan`: file:line findings, exit codes, formats, and redacted files scanning clean."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import openai
import pytest
import yaml
from botocore.config import Config

from pytest_llmobs import scan
from pytest_llmobs.cli import main
from pytest_llmobs.redaction import Redactor, find_secrets
from pytest_llmobs.scan import FileFinding, scan_paths
from pytest_llmobs.testing import ProviderServer

OPENAI = "sk-proj-Ab3dEf7hIj1kLm9nOp2qRs5tUv8wXy0z"
GOOGLE = "AIzaSyD3mo0KeyAbCdEfGhIjKlMnOpQrStUvWx1"


def _cassette(redactor: Redactor | None = None) -> str:
    """A vcrpy-shaped cassette with a leaked key, PII in the prompt and a keyed URL."""
    headers = [("authorization", f"Bearer {OPENAI}"), ("content-type", "application/json")]
    body = json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "I am bob@example.com"}]}
    ).encode()
    uri = f"https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key={GOOGLE}"
    if redactor is not None:
        headers = redactor.headers(headers)
        body = redactor.body(body, "application/json")
        uri = redactor.url(uri)
    cassette = {
        "interactions": [
            {
                "request": {
                    "body": body.decode(),
                    "headers": {k: [v] for k, v in headers},
                    "method": "POST",
                    "uri": uri,
                },
                "response": {
                    "body": {"string": '{"usage": {"prompt_tokens": 1234567890}}'},
                    "headers": {"x-request-id": ["req_123"]},
                    "status": {"code": 200, "message": "OK"},
                },
            }
        ],
        "version": 1,
    }
    return str(yaml.safe_dump(cassette, sort_keys=False, width=1000))


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    root.mkdir()
    (root / "test_chat.yaml").write_text(_cassette())
    return root


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_scan_paths_reports_file_line_kind(leaky: Path) -> None:
    file = leaky / "test_chat.yaml"
    findings = scan_paths([leaky])
    kinds = {(f.kind, f.line) for f in findings}
    assert ("openai_key", _line_of(file, OPENAI)) in kinds
    assert ("google_api_key", _line_of(file, GOOGLE)) in kinds
    assert ("email", _line_of(file, "bob@example.com")) in kinds
    assert all(f.path == file for f in findings)
    assert all(OPENAI not in f.excerpt and GOOGLE not in f.excerpt for f in findings)
    first = next(f for f in findings if f.kind == "openai_key")
    line = file.read_text().splitlines()[first.line - 1]
    assert line[first.column - 1 :].startswith(OPENAI)
    assert {f.kind for f in scan_paths([leaky], pii=False)} == {"openai_key", "google_api_key"}


def test_redacted_and_masked_cassette_scans_clean(tmp_path: Path) -> None:
    (tmp_path / "masked.yaml").write_text(_cassette(Redactor(mask_pii=True)))
    assert scan_paths([tmp_path]) == []
    (tmp_path / "secrets_only.yaml").write_text(_cassette(Redactor()))
    assert [f.kind for f in scan_paths([tmp_path])] == ["email"]  # PII was not masked
    assert scan_paths([tmp_path], pii=False) == []


def test_walk_filters_suffixes_skip_dirs_and_binaries(tmp_path: Path) -> None:
    leak = f"key {OPENAI}\n"
    (tmp_path / "notes.md").write_text(leak)
    (tmp_path / "trace.jsonl").write_text(leak)
    (tmp_path / "module.py").write_text(leak)  # not an artifact kind: ignored when walking
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "leak.txt").write_text(leak)
    (tmp_path / "blob.json").write_bytes(b"\x00\x01" + leak.encode())
    notes: list[tuple[Path, str]] = []
    found = scan_paths([tmp_path], on_skip=lambda p, why: notes.append((p, why)))
    assert sorted(f.path.name for f in found) == ["notes.md", "trace.jsonl"]
    assert notes == [(tmp_path / "blob.json", "binary (not text), not scanned")]
    # A file named explicitly is read whatever its suffix.
    assert [f.path.name for f in scan_paths([tmp_path / "module.py"])] == ["module.py"]


def _reference(text: str, path: Path) -> list[tuple[int, int, str]]:
    """What scanning the whole text at once finds (line, column, kind)."""
    out = []
    for f in find_secrets(text, pii=True):
        line = text.count("\n", 0, f.start) + 1
        out.append((line, f.start - text.rfind("\n", 0, f.start), f.kind))
    return out


def test_windows_see_across_their_cuts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a small window at a time: every finding once, on its line and column, also a
    private key block and a YAML list value cut by a window, and a line longer than one."""
    monkeypatch.setattr(scan, "_WINDOW", 300)
    monkeypatch.setattr(scan, "_OVERLAP", 120)
    monkeypatch.setattr(scan, "_READ_BYTES", 64)
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEpAIBAAKCAQEA7bq9Xz\n" * 3
    key += "-----END RSA PRIVATE KEY-----\n"
    lines = [f"line {i} ünïcödé filler text\n" for i in range(40)]
    lines[7] = f"token={OPENAI}\n"
    lines[15] = key
    lines[22] = "api_key:\n- Zq8rT2vK9mN4bX7cW1\n"
    lines[30] = "x" * 700 + f" {GOOGLE} " + "y" * 400 + "\n"  # longer than a window
    lines[35] = "contact bob@example.com\n"
    text = "".join(lines) + f"last {OPENAI}"  # no final newline
    file = tmp_path / "app.log"
    file.write_text(text)
    found = [(f.line, f.column, f.kind) for f in scan_paths([file])]
    assert found == _reference(text, file)
    assert {k for _, _, k in found} >= {"openai_key", "private_key", "secret_field", "email"}
    assert ("google_api_key" in {k for _, _, k in found}) and len(found) == len(set(found))


def test_files_over_50_mb_are_read(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with big.open("w") as out:
        filler = "an ordinary log line with nothing secret in it at all\n" * 1000
        for _ in range(1000):  # 56 MB
            out.write(filler)
        out.write(f"key {OPENAI}\n")
    assert big.stat().st_size > 50 * 1024 * 1024
    notes: list[str] = []
    [found] = scan_paths([big], on_skip=lambda p, why: notes.append(why))
    assert (found.line, found.kind, notes) == (1_000_001, "openai_key", [])


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_paths([tmp_path / "nope"])


def test_many_findings_get_right_lines(tmp_path: Path) -> None:
    file = tmp_path / "app.log"
    file.write_text("".join(f"line {i}\n" if i % 3 else f"token={OPENAI}\n" for i in range(1, 31)))
    assert [f.line for f in scan_paths([file])] == list(range(3, 31, 3))


# -- command line ------------------------------------------------------------------------
def test_cli_exit_codes_and_text_output(
    leaky: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(leaky)]) == 1
    out, err = capsys.readouterr()
    file = leaky / "test_chat.yaml"
    assert f"{file}:{_line_of(file, OPENAI)}: openai_key: sk-p" in out
    assert OPENAI not in out
    assert re.search(r"^llmobs scan: \d+ findings? in 1 file \(of 1 scanned\); redact", err, re.M)

    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "ok.json").write_text('{"usage": {"prompt_tokens": 1234567890}}')
    assert main(["scan", str(clean)]) == 0
    assert (
        capsys.readouterr().out == "llmobs scan: no credentials or unmasked PII found in 1 file\n"
    )

    assert main(["scan", str(clean), str(tmp_path / "missing.yaml")]) == 2
    _, err = capsys.readouterr()
    assert "no such file or directory" in err and "missing.yaml" in err


def test_cli_no_pii_and_github_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prompts.txt").write_text("contact: bob@example.com, +44 20 7946 0958\n")
    assert main(["scan", "--no-pii", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "llmobs scan: no credentials found in 1 file\n"
    assert main(["scan", "--format", "github", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    path = str(tmp_path / "prompts.txt").replace(":", "%3A").replace(",", "%2C")
    assert lines[0].startswith(f"::error file={path},line=1,col=10,title=llmobs scan%3A email::")
    assert lines[1].startswith(f"::error file={path},line=1,col=27,")
    assert len(lines) == 2


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json: one object on stdout, for CI scripts; the exit status as in text mode."""
    (tmp_path / "prompts.txt").write_text("contact: bob@example.com\n")
    (tmp_path / "ok.json").write_text("{}")
    assert main(["scan", "--json", str(tmp_path)]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["files_scanned"] == 2 and found["skipped"] == []
    [finding] = found["findings"]
    assert finding == {
        "path": str(tmp_path / "prompts.txt"),
        "line": 1,
        "column": 10,
        "kind": "email",
        "excerpt": finding["excerpt"],
    }
    assert "bob@example.com" not in finding["excerpt"]
    assert main(["scan", "--no-pii", "--format", "json", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_finding_str() -> None:
    f = FileFinding(Path("c.yaml"), 3, 5, "openai_key", "sk-p****0z")
    assert str(f) == "c.yaml:3: openai_key: sk-p****0z"


def test_console_script(leaky: Path, tmp_path: Path) -> None:
    exe = shutil.which("llmobs", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the llmobs console script is not installed next to this interpreter")
    dirty = subprocess.run([exe, "scan", str(leaky)], capture_output=True, text=True, check=False)
    assert dirty.returncode == 1, dirty.stderr
    assert ": openai_key: " in dirty.stdout and OPENAI not in dirty.stdout
    (tmp_path / "ok.md").write_text("nothing to see\n")
    clean = subprocess.run(
        [exe, "scan", str(tmp_path / "ok.md")], capture_output=True, text=True, check=False
    )
    assert (clean.returncode, clean.stdout) == (
        0,
        "llmobs scan: no credentials or unmasked PII found in 1 file\n",
    )
    missing = subprocess.run(
        [exe, "scan", str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr


# -- vcrpy's !!binary values, header rules, base64 header values ---------------------------
STS_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIBd3ExAmPlE0123456789abcdEFGH"


def _vcrpy_cassette(
    path: Path, server: ProviderServer, *, gzip_answer: bool = True, **vcr_options: Any
) -> None:
    """Plain vcrpy records boto3 (header values as !!binary) and a gzip OpenAI answer."""
    import vcr

    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="ASIAY34FZKBOKMUTVV7A",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_session_token=STS_TOKEN,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    messages: Any = [{"role": "user", "content": [{"text": "hi"}]}]
    with vcr.VCR(**vcr_options).use_cassette(str(path)):
        client.converse(modelId="m", messages=messages)
        if not gzip_answer:
            return
        openai.OpenAI(
            base_url=server.url + "/v1", api_key="sk-x", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_vcrpy_binary_header_values_and_bodies(
    tmp_path: Path, provider: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.configure(reply=f"your key is {OPENAI}", gzip=True)
    leaky = tmp_path / "leaky.yaml"
    _vcrpy_cassette(leaky, provider)
    raw = leaky.read_text()
    assert "!!binary" in raw
    assert STS_TOKEN not in raw  # boto3's header values are bytes: vcrpy writes base64
    found = scan_paths([leaky], pii=False)
    kinds = {(f.kind, f.line) for f in found}
    assert ("secret_header (!!binary)", _line_of(leaky, "X-Amz-Security-Token") + 2) in kinds
    assert ("secret_header (!!binary)", _line_of(leaky, "Authorization") + 2) in kinds
    assert "openai_key (!!binary)" in {f.kind for f in found}  # the gzip body, inflated
    assert all(STS_TOKEN[8:-4] not in f.excerpt for f in found)
    assert main(["scan", str(leaky)]) == 1
    out = capsys.readouterr().out
    assert f"{leaky}:{_line_of(leaky, 'X-Amz-Security-Token') + 2}: secret_header" in out

    # what pytest-recording users filter: no credential left in the headers
    provider.configure(reply="hello")
    filtered = tmp_path / "filtered.yaml"
    secret_headers = ["authorization", "x-amz-security-token"]
    _vcrpy_cassette(filtered, provider, gzip_answer=False, filter_headers=secret_headers)
    assert scan_paths([filtered], pii=False) == []


def test_header_lists_and_base64_header_values(tmp_path: Path) -> None:
    hidden = base64.b64encode(OPENAI.encode()).decode()
    headers = {
        "PRIVATE-TOKEN": ["glpatAbCdEf0123456789"],  # GitLab
        "x-functions-key": ["Zq8rT2vK9mN4bX7cW1pL"],  # Azure Functions
        "x-debug-context": [hidden],  # base64 of an OpenAI key
        "content-type": ["application/json"],
        "x-request-id": ["c2VlZCBub3RoaW5nIGhlcmU="],  # base64 of harmless text
    }
    as_yaml = tmp_path / "vcrpy.yaml"
    as_yaml.write_text(yaml.safe_dump({"interactions": [{"request": {"headers": headers}}]}))
    as_json = tmp_path / "ours.json"
    as_json.write_text(json.dumps({"interactions": [{"request": {"headers": headers}}]}, indent=2))
    # YAML `name:` + `- value` the text rules know; a JSON list of values only the header rules
    for file, kind in ((as_yaml, "secret_field"), (as_json, "secret_header")):
        found = {(f.kind, f.line) for f in scan_paths([file])}
        assert found == {
            (kind, _line_of(file, "glpat")),
            (kind, _line_of(file, "Zq8r")),
            ("openai_key (base64)", _line_of(file, hidden)),
        }, file
    # the two header names are redacted by default, so what the plugin writes scans clean
    redacted = dict(Redactor().headers([(k, v[0]) for k, v in headers.items()]))
    assert redacted["PRIVATE-TOKEN"] == redacted["x-functions-key"] == "<redacted>"
    clean = {k: [v] for k, v in redacted.items() if k != "x-debug-context"}
    as_json.write_text(json.dumps({"interactions": [{"request": {"headers": clean}}]}))
    assert scan_paths([as_json]) == []


def test_what_cannot_be_read_fails_the_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"token: {OPENAI}\nheaders:\n  X-Amz-Security-Token:\n  - !!binary |\n    not*base64!\n"
    )
    (tmp_path / "blob.json").write_bytes(b"\x00\x01binary")
    notes: list[tuple[str, str]] = []
    found = scan_paths([tmp_path], on_skip=lambda p, why: notes.append((p.name, why)))
    assert [f.kind for f in found] == ["openai_key"]  # what could be read is still reported
    assert notes == [
        ("blob.json", "binary (not text), not scanned"),
        ("broken.yaml", "line 5: a !!binary value is not valid base64"),
    ]
    assert main(["scan", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert f"{broken}:1: openai_key" in out
    assert f"could not read {broken}: line 5: a !!binary value is not valid base64" in err
    assert f"could not read {tmp_path / 'blob.json'}: binary" in err
    assert "incomplete" in err
    assert main(["scan", str(tmp_path / "blob.json")]) == 2
    capsys.readouterr()
    a_directory = tmp_path / "sub.yaml"
    a_directory.mkdir()
    problems: list[str] = []
    assert scan.scan_file(a_directory, on_skip=lambda p, why: problems.append(why)) == []
    assert problems and problems[0].startswith("unreadable (")
