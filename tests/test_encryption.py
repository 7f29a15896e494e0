"""Encrypted artifacts: --llm-encrypt-key-env, the .enc format, `llmobs keygen` /
`llmobs decrypt` / `llmobs merge --key-env`, and the AWS KMS envelope source against a local
fake KMS that speaks the real protocol to the real boto3."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3  # noqa: F401  (loaded once: pytester's in-process runs would drop it)
import pytest
from kms_support import FakeKms, aws_env
from report_support import jsonl, run_suite

from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.encryption import (
    DecryptError,
    EncryptedAtomicFile,
    EnvKeySource,
    KeySourceError,
    generate_key,
    key_source,
    read_text,
)
from pytest_llmobs.encryption.stream import CHUNK, TAG, read_header
from pytest_llmobs.redaction import Redactor
from pytest_llmobs.report.artifacts import ArtifactWriter
from pytest_llmobs.report.storage import artifact_lines
from pytest_llmobs.testing import ProviderServer

MARKER = "PROMPT-MARKER-d41d8cd9"
KEY_ENV = "LLMOBS_TEST_ARTIFACT_KEY"
CONTENT = {"prompts.jsonl", "traces.jsonl", "traces.perfetto.json", "report.html"}

BODY = f'''
import os, anthropic

URL = os.environ["LLM_URL"]


def ask(text):
    return anthropic.Anthropic(base_url=URL, max_retries=0).messages.create(
        model="claude-test", max_tokens=50, messages=[{{"role": "user", "content": text}}]
    )


def test_one(llmobs):
    ask("{MARKER} question one")


def test_two(llmobs):
    ask("{MARKER} question two")
    assert False, "fails, so its call is always logged"
'''


def files_with(root: Path, needle: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Every file under `root` whose bytes contain `needle`."""
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in skip and needle.encode() in p.read_bytes()
    ]


def run_encrypted(pytester: pytest.Pytester, provider: ProviderServer, *args: str) -> Path:
    provider.configure(reply=f"{MARKER} the answer")
    result = run_suite(
        pytester, f"--llm-encrypt-key-env={KEY_ENV}", "--llm-capture-content", *args, body=BODY
    )
    result.assert_outcomes(passed=1, failed=1)
    return pytester.path / "llmobs-artifacts"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_key()
    monkeypatch.setenv(KEY_ENV, value)
    monkeypatch.delenv("LLMOBS_ENCRYPT_KEY", raising=False)
    return value


def test_keygen_prints_a_fresh_256_bit_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs(["keygen"]) == 0 and llmobs(["keygen"]) == 0
    first, second = capsys.readouterr().out.split()
    assert first != second and len(base64.b64decode(first)) == 32
    assert isinstance(key_source(first), EnvKeySource)


def test_run_writes_content_artifacts_only_encrypted(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run_encrypted(pytester, provider)
    names = {p.name for p in out.iterdir()}
    assert names == {"llmobs-junit.xml", "summary.json"} | {n + ".enc" for n in CONTENT}
    # no plaintext anywhere on disk: not in the artifacts, not in a temporary file
    assert files_with(pytester.path, MARKER, skip=("test_inner.py",)) == []
    header, _ = read_header((out / "prompts.jsonl.enc").open("rb"))
    assert header["alg"] == "AES-256-GCM-STREAM" and header["key"]["source"] == "env"
    assert header["key"]["id"] == EnvKeySource.parse(key).id
    # figures stay readable: what `llmobs check` and CI dashboards need
    assert json.loads((out / "summary.json").read_text())["totals"]["calls"] == 2

    capsys.readouterr()
    assert llmobs(["decrypt", str(out), "--key-env", KEY_ENV]) == 0
    assert capsys.readouterr().out.count("→") == 4
    records = jsonl(out / "prompts.jsonl")
    assert [r["messages"]["messages"][0]["content"] for r in records] == [
        f"{MARKER} question one",
        f"{MARKER} question two",
    ]
    assert records[0]["response"] == f"{MARKER} the answer"
    assert MARKER in (out / "traces.jsonl").read_text()  # captured content on the spans
    assert json.loads((out / "traces.perfetto.json").read_text())["traceEvents"]
    assert MARKER in (out / "report.html").read_text()


def test_wrong_key_damaged_or_foreign_files_fail_cleanly(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = EnvKeySource.parse(key)
    target = EncryptedAtomicFile(tmp_path / "prompts.jsonl", source)
    target.write((MARKER + " line\n") * 20_000)  # several chunks
    sealed = target.commit()
    size = sealed.stat().st_size

    def decrypt(path: Path, *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = llmobs(["decrypt", str(path), "-o", str(tmp_path / "out.jsonl"), *args])
        assert not (tmp_path / "out.jsonl").exists()  # nothing, not even a partial file
        assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left over
        return code, capsys.readouterr().err

    monkeypatch.setenv("OTHER_KEY", generate_key())
    code, err = decrypt(sealed, "--key-env", "OTHER_KEY")
    assert code == 1 and "wrong key" in err and source.id in err
    code, err = decrypt(sealed, "--key-env", "UNSET_KEY_VARIABLE")
    assert code == 1 and "put that key in UNSET_KEY_VARIABLE" in err

    data = bytearray(sealed.read_bytes())
    data[size // 2] ^= 0x01  # one flipped bit in the middle chunk
    sealed.write_bytes(bytes(data))
    code, err = decrypt(sealed, "--key-env", KEY_ENV)
    assert code == 1 and "does not authenticate" in err

    data[size // 2] ^= 0x01
    sealed.write_bytes(bytes(data[: size - 100]))  # cut short
    code, err = decrypt(sealed, "--key-env", KEY_ENV)
    assert code == 1 and "does not authenticate" in err

    sealed.write_text('{"not": "encrypted"}\n')
    code, err = decrypt(sealed, "--key-env", KEY_ENV)
    assert code == 1 and "not an llmobs encrypted file" in err


def test_plaintext_never_reaches_the_disk_while_writing(tmp_path: Path, key: str) -> None:
    target = EncryptedAtomicFile(tmp_path / "prompts.jsonl", key_source(key))
    for i in range(5_000):
        target.write(f'{{"i": {i}, "text": "{MARKER}"}}\n')
    [tmp] = list(tmp_path.iterdir())
    assert tmp.name.startswith(".prompts.jsonl.enc.") and tmp.stat().st_size > CHUNK
    assert files_with(tmp_path, MARKER) == []  # what is streamed out is ciphertext
    target.discard()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "prompts.jsonl").write_text("stale plaintext from an unencrypted run\n")
    target = EncryptedAtomicFile(tmp_path / "prompts.jsonl", key_source(key))
    target.write(MARKER)
    assert target.commit().name == "prompts.jsonl.enc"
    assert [p.name for p in tmp_path.iterdir()] == ["prompts.jsonl.enc"]


def test_finished_encrypted_files_take_more_lines_after_reopening(tmp_path: Path) -> None:
    """The xdist controller writes its files while xdist waits for the workers; a call made
    by a later sessionfinish hook reopens them (report/hooks.py), here sealed ones."""
    source = key_source(generate_key())
    writer = ArtifactWriter(tmp_path, run_id="r", sample_rate=1.0, redactor=Redactor(), keys=source)
    traces = [json.dumps({"resourceSpans": [], "n": n}) for n in range(3)]
    writer.add_lines({"calls": True, "traces": traces[0], "prompts": []})
    writer.add_lines({"calls": True, "traces": traces[1], "prompts": []})
    assert "traces.jsonl.enc" in {p.name for p in writer.finish({})}
    writer.reopen()
    writer.add_lines({"calls": True, "traces": traces[2], "prompts": []})
    writer.finish({})
    assert list(artifact_lines(tmp_path / "traces.jsonl", source)) == traces
    assert files_with(tmp_path, '"n"') == [] and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_chunking_round_trips_and_detects_reordering(tmp_path: Path, size: int) -> None:
    source = key_source(generate_key())
    text = "".join(chr(0x61 + i % 26) for i in range(size))
    target = EncryptedAtomicFile(tmp_path / "x.txt", source)
    target.write(text)
    sealed = target.commit()
    assert read_text(sealed, source) == text
    raw = sealed.read_bytes()
    _, preamble = read_header(sealed.open("rb"))
    body = raw[len(preamble) :]
    block = CHUNK + TAG
    chunks = [body[i : i + block] for i in range(0, len(body), block)]
    assert len(chunks) == max(1, -(-size // CHUNK))
    if len(chunks) >= 2:  # swapped chunks, or a dropped last one, do not authenticate
        for damaged in (chunks[1] + chunks[0] + b"".join(chunks[2:]), b"".join(chunks[:-1])):
            sealed.write_bytes(preamble + damaged)
            with pytest.raises(DecryptError):
                read_text(sealed, source)
    edited = preamble.replace(b'"chunk":65536', b'"chunk":65537')
    sealed.write_bytes(edited + body)
    with pytest.raises(DecryptError):
        read_text(sealed, source)


def test_kms_envelope_with_a_local_kms(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeKms() as kms:
        for name, value in aws_env(kms).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(KEY_ENV, f"aws-kms:{kms.alias}")
        out = run_encrypted(pytester, provider)
        # one data key per file; the run never asks KMS to decrypt (it kept the plaintext key)
        assert kms.operations() == ["GenerateDataKey"] * 4
        assert all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIA") for a in kms.auth)
        request = kms.requests[0][1]
        assert request["KeyId"] == kms.alias and request["KeySpec"] == "AES_256"
        assert request["EncryptionContext"] == {"purpose": "pytest-llmobs artifacts"}
        header, _ = read_header((out / "report.html.enc").open("rb"))
        assert header["key"]["source"] == "aws-kms" and header["key"]["id"] == kms.arn
        assert files_with(pytester.path, MARKER, skip=("test_inner.py",)) == []

        monkeypatch.delenv(KEY_ENV)  # decrypting needs AWS access only
        assert llmobs(["decrypt", str(out / "prompts.jsonl.enc")]) == 0
        assert kms.operations()[4:] == ["Decrypt"]
        assert MARKER in (out / "prompts.jsonl").read_text()

    with FakeKms(key_uuid=kms.key_uuid) as impostor:  # same key id, other key material
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", impostor.url)
        capsys.readouterr()
        target = pytester.path / "report.html"
        code = llmobs(["decrypt", str(out / "report.html.enc"), "-o", str(target)])
        assert code == 1 and "InvalidCiphertextException" in capsys.readouterr().err
        assert not target.exists()


def test_merge_reads_and_writes_encrypted_directories(
    pytester: pytest.Pytester,
    provider: ProviderServer,
    key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shards = []
    for n, select in enumerate(("test_one", "test_two")):
        shard = pytester.path / f"shard{n}"
        provider.configure(reply=f"{MARKER} the answer")
        run_suite(
            pytester,
            f"--llm-encrypt-key-env={KEY_ENV}",
            f"--llm-artifacts={shard}",
            "-k",
            select,
            body=BODY,
        )
        shards.append(str(shard))
    merged = pytester.path / "merged"
    capsys.readouterr()
    assert llmobs(["merge", *shards, "-o", str(merged)]) == 2
    assert "is encrypted" in capsys.readouterr().err
    assert llmobs(["merge", *shards, "-o", str(merged), "--key-env", KEY_ENV]) == 0
    assert {p.name for p in merged.iterdir()} >= {n + ".enc" for n in CONTENT}
    assert files_with(merged, MARKER) == []
    source = key_source(key)
    records = [
        json.loads(line) for line in read_text(merged / "prompts.jsonl.enc", source).splitlines()
    ]
    assert sorted(r["test_id"].split("::")[1] for r in records) == ["test_one", "test_two"]
    assert MARKER in read_text(merged / "report.html.enc", source)


def test_bad_key_settings_are_usage_errors(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    result = run_suite(pytester, "--llm-encrypt-key-env=NO_SUCH_KEY_VARIABLE", body=BODY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable NO_SUCH_KEY_VARIABLE is not set*"])
    monkeypatch.setenv(KEY_ENV, "too-short")
    pytester.makeini(f"[pytest]\nllm_encrypt_key_env = {KEY_ENV}\n")
    result = run_suite(pytester, body=BODY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a base64-encoded 32-byte key*llmobs keygen*"])
    assert not (pytester.path / "llmobs-artifacts").exists()


PLUGIN = '''
import hashlib


class PassphraseDemo:
    """A toy key source: the data key is a hash of a passphrase (never do this)."""

    scheme = "demo"

    def __init__(self, passphrase):
        self.key = hashlib.sha256(passphrase.encode()).digest()

    def new_data_key(self):
        return self.key, {"source": "demo", "id": "demo", "wrapped": ""}

    def data_key(self, header):
        return self.key


def make(rest):
    return PassphraseDemo(rest)
'''


def test_key_sources_plug_in_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "demo_keys.py").write_text(PLUGIN)
    dist = tmp_path / "demo_keys-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-keys\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_llmobs.key_sources]\ndemo = demo_keys:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = key_source("demo:correct horse")
    target = EncryptedAtomicFile(tmp_path / "out" / "x.txt", source)
    target.write(MARKER)
    sealed = target.commit()
    assert MARKER.encode() not in sealed.read_bytes()
    assert read_text(sealed, key_source("demo:correct horse")) == MARKER
    with pytest.raises(DecryptError):
        read_text(sealed, key_source("demo:wrong horse"))
    with pytest.raises(KeySourceError, match="unknown key source 'nope'"):
        key_source("nope:x")
