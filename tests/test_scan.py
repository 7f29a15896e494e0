"""`llmobs scan`: file:line findings, exit codes, formats, and redacted files scanning clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_llmobs import scan
from pytest_llmobs.cli import main
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.scan import FileFinding, scan_paths

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
    assert notes == [(tmp_path / "blob.json", "binary")]
    # A file named explicitly is read whatever its suffix.
    assert [f.path.name for f in scan_paths([tmp_path / "module.py"])] == ["module.py"]


def test_large_files_are_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "MAX_BYTES", 64)
    big = tmp_path / "big.log"
    big.write_text(f"{OPENAI}\n" * 10)
    notes: list[str] = []
    assert scan_paths([big], on_skip=lambda p, why: notes.append(why)) == []
    assert notes and "larger than" in notes[0]


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
