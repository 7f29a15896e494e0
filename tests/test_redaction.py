"""Redaction rules: secrets both directions, opt-in PII masking, raw-body handling."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from inner import INNER_ARGS

from pytest_llmobs.redaction import (
    PLACEHOLDER_RE,
    REDACTED,
    Redactor,
    find_secrets,
    is_redacted,
)
from pytest_llmobs.testing import ProviderServer

# Format-valid, obviously fake credentials.
OPENAI = "sk-proj-Ab3dEf7hIj1kLm9nOp2qRs5tUv8wXy0z"
OPENAI_LEGACY = "sk-T3stKey0000aaaaBBBBccccDDDDeeeeFFFFgggg1234"
ANTHROPIC = "sk-ant-api03-Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_STS_ID = "ASIAY34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GOOGLE = "AIzaSyD3mo0KeyAbCdEfGhIjKlMnOpQrStUvWx1"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"
SLACK = "xoxb-123456789012-abcdefABCDEF"
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7c2Jx\nq1w2e3r4t5y6\n"
    "-----END RSA PRIVATE KEY-----"
)

VENDOR = [
    ("openai_key", OPENAI),
    ("openai_key", OPENAI_LEGACY),
    ("anthropic_key", ANTHROPIC),
    ("aws_access_key_id", AWS_ID),
    ("aws_access_key_id", AWS_STS_ID),
    ("google_api_key", GOOGLE),
    ("github_token", GITHUB),
    ("github_token", GITHUB_PAT),
    ("slack_token", SLACK),
    ("huggingface_token", HF),
    ("stripe_key", STRIPE),
    ("jwt", JWT),
    ("private_key", PEM),
]


@pytest.fixture
def r() -> Redactor:
    return Redactor()


@pytest.fixture
def pii() -> Redactor:
    return Redactor(mask_pii=True)


# -- headers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "api-key",
        "X-Api-Key",
        "x-goog-api-key",
        "OpenAI-Organization",
        "openai-project",
        "Cookie",
        "Set-Cookie",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
        "x-my-access-token",  # by suffix
        "X-Client-Secret",
    ],
)
def test_secret_headers_are_redacted_case_insensitively(r: Redactor, name: str) -> None:
    out = r.headers([(name, "some-opaque-value-123")])
    assert out[0][0] == name
    assert out[0][1] in (REDACTED, f"some-opaque-value-123 {REDACTED}") or out[0][1].endswith(
        REDACTED
    )
    assert "opaque" not in out[0][1]


def test_authorization_keeps_its_scheme(r: Redactor) -> None:
    assert r.header_value("Authorization", f"Bearer {OPENAI}") == f"Bearer {REDACTED}"
    assert r.header_value("authorization", "Basic dXNlcjpwYXNz") == f"Basic {REDACTED}"
    assert r.header_value("x-api-key", ANTHROPIC) == REDACTED


def test_sigv4_authorization_and_session_token(r: Redactor) -> None:
    sigv4 = (
        f"AWS4-HMAC-SHA256 Credential={AWS_ID}/20240101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=" + "ab12" * 16
    )
    headers = [
        ("Authorization", sigv4),
        ("X-Amz-Security-Token", "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="),
        ("X-Amz-Date", "20240101T000000Z"),
        (
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        ("Content-Type", "application/json"),
    ]
    out = r.headers(headers)
    assert out[0] == ("Authorization", f"AWS4-HMAC-SHA256 {REDACTED}")
    assert out[1] == ("X-Amz-Security-Token", REDACTED)
    assert out[2:] == headers[2:]  # not secrets: kept for debugging and signing checks


def test_headers_unchanged_returns_same_list_and_is_idempotent(r: Redactor) -> None:
    plain = [("content-type", "application/json"), ("x-request-id", "req_123abc")]
    assert r.headers(plain) is plain
    secret = [("authorization", f"Bearer {OPENAI}"), ("cookie", "a=b")]
    once = r.headers(secret)
    assert once is not secret and secret[0][1].endswith(OPENAI)  # input untouched
    assert r.headers(once) is once


def test_secret_values_in_ordinary_headers_and_extra_names(r: Redactor) -> None:
    assert r.header_value("x-debug", f"key={OPENAI}") == f"key={REDACTED}"
    assert r.header_value("location", f"https://h/p?key={GOOGLE}&a=1") == (
        f"https://h/p?key={REDACTED}&a=1"
    )
    custom = Redactor(extra_headers=["X-Tenant-Secret-Id"])
    assert custom.header_value("x-tenant-secret-id", "t-1") == REDACTED
    assert r.header_value("x-tenant-secret-id", "t-1") == "t-1"


# -- URLs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "key",
        "api_key",
        "apikey",
        "access_token",
        "token",
        "sig",
        "signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "client_secret",
    ],
)
def test_secret_query_keys(r: Redactor, key: str) -> None:
    url = f"https://api.example.com/v1/x?alt=sse&{key}=v4lue%2Fwith%2Bstuff&api-version=2024-10-21"
    assert (
        r.url(url)
        == f"https://api.example.com/v1/x?alt=sse&{key}={REDACTED}&api-version=2024-10-21"
    )


def test_url_userinfo_fragment_and_noop(r: Redactor) -> None:
    assert r.url("https://bob:hunter2@h.example/x") == f"https://bob:{REDACTED}@h.example/x"
    assert (
        r.url("https://h/cb#access_token=abc123&state=x")
        == f"https://h/cb#access_token={REDACTED}&state=x"
    )
    plain = "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?alt=sse"
    assert r.url(plain) is plain
    once = r.url(f"https://h/?key={GOOGLE}&q=1")
    assert r.url(once) is once
    assert r.url("https://h/?key=%3Credacted%3E") == "https://h/?key=%3Credacted%3E"
    assert Redactor(extra_query_keys=["tenant"]).url("https://h/?tenant=t1") == (
        f"https://h/?tenant={REDACTED}"
    )
    assert r.url(f"https://h/v1/{OPENAI}/x") == f"https://h/v1/{REDACTED}/x"


# -- JSON values ---------------------------------------------------------------------------
def test_json_nested_secret_keys(r: Redactor) -> None:
    value: dict[str, Any] = {
        "model": "gpt-4o",
        "api_key": "hunter2",
        "config": {
            "apiKey": "x",
            "Password": 123456,
            "client_secret": "s",
            "private_key": "k",
            "aws_secret_access_key": AWS_SECRET,
            "AccessToken": "t",
            "ok": True,
            "nothing": None,
            "empty": "",
        },
        "headers": {"Authorization": "Bearer abc"},
        "credentials": {"user": "bob", "password": "pw"},
        "items": [{"x-api-key": "k"}, ("tuple", {"secret": "s"})],
        "usage": {"prompt_tokens": 1234567890, "max_tokens": 10},
    }
    out = r.json(value)
    assert out["api_key"] == REDACTED
    cfg = out["config"]
    for k in ("apiKey", "Password", "client_secret", "private_key", "aws_secret_access_key"):
        assert cfg[k] == REDACTED, k
    assert cfg["AccessToken"] == REDACTED
    assert (cfg["ok"], cfg["nothing"], cfg["empty"]) == (True, None, "")
    assert out["headers"] == {"Authorization": f"Bearer {REDACTED}"}
    assert out["credentials"] == {"user": "bob", "password": REDACTED}  # shape kept
    assert out["items"] == [{"x-api-key": REDACTED}, ("tuple", {"secret": REDACTED})]
    assert out["usage"] is value["usage"]  # untouched branches are shared, not copied
    assert value["api_key"] == "hunter2"  # input not mutated


def test_json_secret_looking_values_anywhere(r: Redactor) -> None:
    value = {"messages": [{"role": "user", "content": f"use {OPENAI} and {AWS_ID} {AWS_SECRET}"}]}
    assert r.json(value)["messages"][0]["content"] == f"use {REDACTED} and {REDACTED} {REDACTED}"


def test_json_noop_returns_same_object_and_is_idempotent(r: Redactor) -> None:
    value = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": [1, 2.5]}
    assert r.json(value) is value
    once = r.json({"token": "Zx81Yw72Xv63Wu54", "k": {"password": "p"}})
    assert r.json(once) is once


def test_bare_token_key_only_when_it_looks_generated(r: Redactor) -> None:
    logprobs = {
        "token": " Hello",
        "logprob": -0.01,
        "top_logprobs": [{"token": "Hi", "logprob": -4}],
    }
    assert r.json(logprobs) is logprobs
    assert r.json({"token": "a1B2c3D4e5F6g7H8"}) == {"token": REDACTED}
    raw = json.dumps(logprobs).encode()
    assert r.body(raw, "application/json") is raw


def test_extra_body_keys(r: Redactor) -> None:
    custom = Redactor(extra_body_keys=["tenant_ref"])
    assert custom.json({"tenantRef": "abc", "other": "x"}) == {"tenantRef": REDACTED, "other": "x"}
    raw = b'{"TENANT-REF": "abc", "other": "x"}'
    assert custom.body(raw, "application/json") == b'{"TENANT-REF": "<redacted>", "other": "x"}'
    assert r.body(raw, "application/json") is raw


def test_a_bare_stem_key_is_secret_only_when_named_so(r: Redactor) -> None:
    """`"key":` (every OTLP attribute) is skipped by the field regex itself, unless the
    user names `key` a secret; then it is redacted plain and inside a JSON string."""
    otlp = b'{"key":"session_token_value_123","value":{"stringValue":"abcdefgh12345678"}}'
    assert r.body(otlp, "application/json") is otlp
    keyed = Redactor(extra_body_keys=["key"])
    assert keyed.body(b'{"key": "abcdefgh12345678"}', "application/json") == (
        b'{"key": "<redacted>"}'
    )
    nested = json.dumps({"log": json.dumps({"key": "abcdefgh12345678"})})
    assert "abcdefgh12345678" in r.text(nested)
    assert "abcdefgh12345678" not in keyed.text(nested)


# -- free text -----------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "secret"), VENDOR)
def test_vendor_formats_in_text(r: Redactor, kind: str, secret: str) -> None:
    text = f"prefix {secret} suffix"
    assert r.text(text) == f"prefix {REDACTED} suffix"
    [finding] = find_secrets(text, pii=False)
    assert finding.kind == kind
    assert (finding.start, finding.end) == (7, 7 + len(secret))


def test_aws_secret_key_next_to_its_id(r: Redactor) -> None:
    text = f"aws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    assert r.text(text) == f"aws_access_key_id = {REDACTED}\naws_secret_access_key = {REDACTED}\n"
    assert r.text(f"{AWS_ID} {AWS_SECRET}") == f"{REDACTED} {REDACTED}"
    sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"  # 40 chars, but no key id near
    assert r.text(f"commit {sha1}") == f"commit {sha1}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcDEF123456789xyz", f"Authorization: Bearer {REDACTED}"),
        ("password: hunter2abc", f"password: {REDACTED}"),
        ('api_key = "abc123def456ghi"', f'api_key = "{REDACTED}"'),
        ("OPENAI_API_KEY=abc123def456ghi", f"OPENAI_API_KEY={REDACTED}"),
        ("x-api-key:\n  - 0123456789abcdef0123", f"x-api-key:\n  - {REDACTED}"),
        ("GET /v1?alt=sse&key=Zz9Yy8Xx7", f"GET /v1?alt=sse&key={REDACTED}"),
        ("Signature=ab12cd34ef56ab12cd34", f"Signature={REDACTED}"),
        ("cookie: session=a1b2c3d4e5f6", f"cookie: {REDACTED}"),
    ],
)
def test_secret_fields_in_text(r: Redactor, text: str, expected: str) -> None:
    assert r.text(text) == expected
    assert r.text(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the Bearer token is sent with Basic authentication",
        "api_key: YOUR_API_KEY_HERE",
        "password: <redacted>",
        "api_key = os.environ['OPENAI_API_KEY']",
        "credential = DefaultAzureCredential()",
        "use sk-learn-style-feature-engineering-pipelines",
        "max_tokens: 1024, prompt_tokens: 1234567890",
        '{"signature": "EqQBCkYIARAC"}',  # Anthropic thinking signatures are no credential
        "task-1234567890abcdefghijk",
        "ask-AbCdEf1234567890abcdefGHIJ",  # sk- inside a word
    ],
)
def test_text_false_positives(r: Redactor, text: str) -> None:
    assert r.text(text) is text
    assert find_secrets(text, pii=True) == []


def test_escaped_newline_is_a_token_boundary(r: Redactor) -> None:
    raw = json.dumps({"content": f"line one\n{OPENAI}\nemail\nbob@example.com"})
    out = r.text(raw)
    assert json.loads(out)["content"] == f"line one\n{REDACTED}\nemail\nbob@example.com"
    env = json.dumps({"content": "config:\npassword: hunter2abc\ncookie: sid=a1b2c3d4e5"})
    assert json.loads(r.text(env))["content"] == (
        f"config:\npassword: {REDACTED}\ncookie: {REDACTED}"
    )
    masked = Redactor(mask_pii=True).text(raw)
    content = json.loads(masked)["content"]
    assert content.startswith(f"line one\n{REDACTED}\nemail\n<EMAIL_")


# -- bodies --------------------------------------------------------------------------------
def test_json_body_redacted_in_place(r: Redactor) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f"key {ANTHROPIC} please"}],
        "metadata": {"api_key": "plain", "password": 1234, "note": "ok"},
        "usage": {"prompt_tokens": 1234567890},
    }
    raw = json.dumps(body, indent=2).encode()
    out = r.body(raw, "application/json; charset=utf-8")
    assert json.loads(out) == r.json(body)
    # Everything but the values is byte-exact: same layout, same key order.
    expected = (
        raw.decode()
        .replace(ANTHROPIC, REDACTED)
        .replace('"plain"', f'"{REDACTED}"')
        .replace("1234,", f'"{REDACTED}",')
    )
    assert out.decode() == expected


def test_sse_body_keeps_framing_byte_exact(r: Redactor) -> None:
    events = [
        b"event: message_start\r\n",
        b'data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":12}}}\r\n',
        b"\r\n",
        b": ping\n\n",
        b"event: content_block_delta\n",
        b'data: {"type":"content_block_delta","delta":{"text":"key: '
        + OPENAI.encode()
        + b'"}}\n\n',
        b'data:{"delta":{"text":"x","api_key":"leak"}}\n\n',
        b"data: [DONE]\n\n",
    ]
    raw = b"".join(events)
    out = r.body(raw, "text/event-stream")
    expected = raw.replace(OPENAI.encode(), REDACTED.encode()).replace(b'"leak"', b'"<redacted>"')
    assert out == expected
    assert r.body(out, "text/event-stream") is out


def test_ndjson_and_sniffed_bodies(pii: Redactor) -> None:
    raw = (
        b'{"model":"llama3","message":{"role":"assistant","content":"mail bob@corp.io"},'
        b'"done":false}\n{"done":true,"prompt_eval_count":26,"eval_count":290}\n'
    )
    out = pii.body(raw, "application/x-ndjson")
    first, second, _ = out.split(b"\n")
    assert re.fullmatch(rb'.*"content":"mail <EMAIL_[0-9a-f]{8}>".*', first)
    assert second == b'{"done":true,"prompt_eval_count":26,"eval_count":290}'
    sse = b'data: {"k":"' + OPENAI.encode() + b'"}\n\n'
    assert pii.body(sse, None) == b'data: {"k":"<redacted>"}\n\n'
    assert pii.body(b"plain " + GOOGLE.encode(), "text/plain") == b"plain <redacted>"


def test_non_utf8_and_binary_bodies_untouched(r: Redactor) -> None:
    raw = b"\xff\xfe\x00" + OPENAI.encode()
    assert r.body(raw, "application/json") is raw
    assert r.body(raw, None) is raw
    png = b"\x89PNG " + OPENAI.encode()
    assert r.body(png, "image/png") is png
    frames = b"\x00\x00\x00\x2a" + OPENAI.encode()
    assert r.body(frames, "application/vnd.amazon.eventstream") is frames


def test_noop_body_is_the_same_object(pii: Redactor) -> None:
    raw = json.dumps(
        {"usage": {"prompt_tokens": 1234567890}, "created": 1714567890123, "id": "chatcmpl-1"}
    ).encode()
    assert pii.body(raw, "application/json") is raw
    assert pii.body(b"", "application/json") == b""


def test_form_body(r: Redactor) -> None:
    raw = b"grant_type=client_credentials&client_id=app&client_secret=s3cr3t"
    out = r.body(raw, "application/x-www-form-urlencoded")
    assert out == b"grant_type=client_credentials&client_id=app&client_secret=<redacted>"


def test_body_never_raises() -> None:
    def boom(s: str) -> str:
        raise RuntimeError("user callable failed")

    raw = b'{"a": 1}'
    assert Redactor(pii_functions=[boom]).body(raw, "application/json") is raw


def test_json_bare_number_card_stays_a_number(pii: Redactor) -> None:
    raw = b'{"id": 4111111111111111, "text": "card 4111111111111111"}'
    out = pii.body(raw, "application/json")
    doc = json.loads(out)
    assert doc["id"] == 4111111111111111
    assert PLACEHOLDER_RE.fullmatch(doc["text"].split()[1])


# -- PII -----------------------------------------------------------------------------------
def test_pii_off_by_default(r: Redactor) -> None:
    text = "mail bob@example.com or call +1 415 555 2671"
    assert r.text(text) is text


@pytest.mark.parametrize(
    "email", ["bob@example.com", "John.Doe+tag@mail.Example.co.uk", "a_b-c%d@sub-1.example.io"]
)
def test_emails(pii: Redactor, email: str) -> None:
    out = pii.text(f"write to {email}.")
    assert re.fullmatch(r"write to <EMAIL_[0-9a-f]{8}>\.", out), out


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+33 6 12 34 56 78",
        "+49 30 12345678",
        "+91 98765 43210",
        "+81 3-1234-5678",
        "0044 20 7946 0958",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "020 7946 0958",
        "06 12 34 56 78",
    ],
)
def test_phones(pii: Redactor, phone: str) -> None:
    out = pii.text(f"call {phone} now")
    assert re.fullmatch(r"call <PHONE_[0-9a-f]{8}> now", out), out


@pytest.mark.parametrize(
    "text",
    [
        "prompt_tokens 1234567890 completion_tokens 42",
        "created 1714567890 at 1714567890123 ns 1714567890123456789",
        "2024-05-01T12:34:56+01:00 and 2024-05-01 12:34:56.789Z",
        "on 01.02.2024 12:30, or 05/01/2024",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "version 1.2.3 and 10.0.0.1 and 192.168.001.100",
        "scores 0.0123456789012345, -0.4111111111111111",
        "area 100 200 3000 and 555-012-3456",
        "tel:+0 12",
        "math 2+3 = 5 and 1e+10",
        "order 4111111111111112 (bad checksum), 1234 5678 9012 3456",
        "IBAN-like DE89370400440532013001 (bad checksum)",
    ],
)
def test_pii_false_positives(pii: Redactor, text: str) -> None:
    assert pii.text(text) is text
    assert find_secrets(text, pii=True) == []


def test_token_counts_in_json_body_untouched(pii: Redactor) -> None:
    raw = b'{"usage": {"prompt_tokens": 1234567890, "completion_tokens": 12}}'
    assert pii.body(raw, "application/json") is raw
    assert pii.json(json.loads(raw)) == json.loads(raw)


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4242-4242-4242-4242", "5555555555554444", "3782 822463 10005"],
)
def test_cards_luhn_valid_masked(pii: Redactor, card: str) -> None:
    assert re.fullmatch(r"pay <CARD_[0-9a-f]{8}> ok", pii.text(f"pay {card} ok"))


@pytest.mark.parametrize(
    "iban",
    ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR14 2004 1010 0505 0001 3M02 606"],
)
def test_ibans_mod97_valid_masked(pii: Redactor, iban: str) -> None:
    assert re.fullmatch(r"to <IBAN_[0-9a-f]{8}> ok", pii.text(f"to {iban} ok"))


def test_placeholders_are_stable_normalised_and_salted() -> None:
    a, b = Redactor(mask_pii=True), Redactor(mask_pii=True)
    text = "bob@example.com +1 415 555 2671 4111 1111 1111 1111"
    assert a.text(text) == b.text(text)
    assert a.text("BOB@Example.com") == a.text("bob@example.com")
    assert a.text("+1 (415) 555-2671") == a.text("+14155552671")
    assert a.placeholder("email", "bob@example.com") == a.text("bob@example.com")
    salted = Redactor(mask_pii=True, salt="project-secret")
    assert salted.text(text) != a.text(text)
    assert PLACEHOLDER_RE.fullmatch(a.placeholder("email", "x@y.io"))


def test_record_and_replay_bodies_compare_equal() -> None:
    request = json.dumps(
        {"messages": [{"role": "user", "content": "I am bob@example.com, card 4242424242424242"}]}
    ).encode()
    at_record = Redactor(mask_pii=True).body(request, "application/json")
    at_replay = Redactor(mask_pii=True).body(request, "application/json")
    assert at_record == at_replay and at_record != request
    assert Redactor(mask_pii=True).body(at_record, "application/json") is at_record


def test_masking_is_idempotent(pii: Redactor) -> None:
    text = f"bob@example.com, +44 20 7946 0958, GB82 WEST 1234 5698 7654 32, {OPENAI}"
    once = pii.text(text)
    assert pii.text(once) is once
    assert (
        is_redacted(REDACTED) and is_redacted("%3Credacted%3E") and is_redacted("<EMAIL_0a1b2c3d>")
    )


def test_user_patterns_and_callables() -> None:
    red = Redactor(
        pii_patterns={"employee": r"EMP-\d{6}", "ticket": re.compile(r"ticket #(\d+)")},
        pii_functions=[lambda s: s.replace("Project Falcon", "Project <CODENAME>")],
    )
    out = red.text("EMP-123456 filed ticket #981 about Project Falcon")
    assert re.fullmatch(
        r"<EMPLOYEE_[0-9a-f]{8}> filed ticket #<TICKET_[0-9a-f]{8}> about Project <CODENAME>", out
    ), out
    assert red.text(out) == out
    # Explicit patterns run even without mask_pii, and never touch placeholders/markers.
    greedy = Redactor(pii_patterns={"word": r"[A-Za-z_]+"})
    masked = greedy.text("hello <redacted>")
    assert masked.endswith(" <redacted>") and masked.startswith("<WORD_")
    assert greedy.text(masked) == masked
    assert (
        Redactor(pii_patterns={"employee": r"EMP-\d{6}"}).find("id EMP-123456", pii=True)[0].kind
        == "EMPLOYEE"
    )


def test_bad_user_patterns_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        Redactor(pii_patterns={"bad name": "x"})
    with pytest.raises(ValueError, match="not a valid regex"):
        Redactor(pii_patterns={"broken": "(unclosed"})


# -- findings ------------------------------------------------------------------------------
def test_find_secrets_stars_the_middle() -> None:
    text = f"k={OPENAI} mail bob@example.com"
    findings = find_secrets(text, pii=True)
    assert [f.kind for f in findings] == ["openai_key", "email"]
    key = findings[0]
    assert text[key.start : key.end] == OPENAI
    assert key.excerpt.startswith("sk-p") and "*" in key.excerpt and OPENAI not in key.excerpt
    assert [f.kind for f in find_secrets(text, pii=False)] == ["openai_key"]
    assert find_secrets(f"Authorization: Bearer {OPENAI}", pii=False)[0].kind == "openai_key"
    assert find_secrets(PEM, pii=False)[0].excerpt == "-----BEGIN RSA PRIVATE KEY-----…"


# -- large bodies ----------------------------------------------------------------------------
def test_one_megabyte_of_clean_json_is_returned_as_is() -> None:
    # its speed is a benchmark's business (benchmarks/), not a test's
    words = ["hello", "world", "token", "42", "assistant", "2024", "Bearer", "key", "Secret"]
    messages = [
        {"role": "user", "content": " ".join(words[(i * 7 + j) % len(words)] for j in range(24))}
        for i in range(6500)
    ]
    raw = json.dumps({"model": "gpt-4o", "messages": messages, "usage": {"prompt_tokens": 9}})
    data = raw.encode()
    assert 0.9e6 < len(data) < 1.3e6
    for red in (Redactor(), Redactor(mask_pii=True)):
        assert red.body(data, "application/json") is data


# -- properties ----------------------------------------------------------------------------
def test_replacements_never_break_json_escapes(pii: Redactor) -> None:
    raw = json.dumps({"a": f"api_key=\u00e9{AWS_SECRET}bob@example.com", "b": "\u00e9bob@x.io"})
    out = pii.body(raw.encode(), "application/json")
    doc = json.loads(out)
    assert doc["a"].startswith("api_key=\u00e9") and AWS_SECRET not in doc["a"]
    assert re.fullmatch(r"\u00e9<EMAIL_[0-9a-f]{8}>", doc["b"])


def test_boundaries_created_by_a_replacement_are_followed(pii: Redactor) -> None:
    text = f"+44 20 7946 0958{ANTHROPIC} {PEM}{OPENAI_LEGACY}"
    once = pii.text(text)
    assert pii.text(once) is once
    assert ANTHROPIC not in once and OPENAI_LEGACY not in once


def test_random_mixes_stay_valid_idempotent_and_scan_clean() -> None:
    pieces = [v for _, v in VENDOR] + [
        AWS_SECRET, "bob@example.com", "+44 20 7946 0958", "4242424242424242", "0",
        "GB82 WEST 1234 5698 7654 32", "password: hunter2abc", "api_key=", '"api_key": "x"',
        "Bearer ", "\\n", "\\u00e9", "\\", "\n", " ", "-", ":", "=", '"', "<", ">", "123",
        "+", "(", "?", "&", "é", "<redacted>", "<EMAIL_0123abcd>", "sk-", "@", ".", "key",
    ]  # fmt: skip
    rng = random.Random(1234)
    red = Redactor(mask_pii=True)
    for _ in range(1500):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        once = red.text(s)
        assert red.text(once) == once, s
        assert find_secrets(once, pii=True) == [], s
        raw = json.dumps({"a": s, "secret": s}).encode()
        out = red.body(raw, "text/event-stream")
        json.loads(out)
        assert red.body(out, "text/event-stream") is out


def test_short_texts_are_cached_but_a_users_function_runs_every_time() -> None:
    # Span attributes and call records repeat the same short values; their redaction is
    # remembered. A user's function may count or log, so with one nothing is cached.
    redactor = Redactor()
    secret = "key: sk-proj-" + "Ab1" * 10
    first = redactor.text(secret)
    assert first == redactor.text(secret) == "key: <redacted>"
    assert redactor.text("gpt-4o-mini") == "gpt-4o-mini"
    many = [f"id-{i}" for i in range(20_000)]  # more than the cache holds: it starts over
    assert [redactor.text(s) for s in many] == many
    assert redactor.text(secret) == first
    seen: list[str] = []

    def note(s: str) -> str:
        seen.append(s)
        return s.replace("Falcon", "<CODENAME>")

    user = Redactor(pii_functions=[note])
    assert [user.text("Project Falcon") for _ in range(3)] == ["Project <CODENAME>"] * 3
    assert seen.count("Project Falcon") == 3


@pytest.mark.parametrize("body_keys", [(), ("my_tokens",)])
def test_token_counts_are_no_secret_unless_named_so(body_keys: tuple[str, ...]) -> None:
    # `"input_tokens": 7` fills every LLM body: the field regex leaves such keys out, so
    # they must still be redacted when the user names one a secret.
    redactor = Redactor(extra_body_keys=body_keys)
    body = {
        "usage": {"input_tokens": 7, "max_tokens": 5},
        "my_tokens": "v4lu3v4lu3v4lu3v4lu3",
        "access_token": "abcdefgh12345678abcd",
    }
    out = json.loads(redactor.body(json.dumps(body).encode(), "application/json"))
    assert out["usage"] == {"input_tokens": 7, "max_tokens": 5}
    assert out["access_token"] == REDACTED
    assert (out["my_tokens"] == REDACTED) is bool(body_keys)


def test_gitlab_and_azure_functions_headers_are_redacted_by_default() -> None:
    headers = [("PRIVATE-TOKEN", "glpat-AbCdEf0123456789"), ("x-functions-key", "k3y")]
    assert Redactor().headers(headers) == [
        ("PRIVATE-TOKEN", REDACTED),
        ("x-functions-key", REDACTED),
    ]
    # extensible: the plugin passes llm_redact_keys as extra_headers
    assert Redactor(extra_headers=["x-tenant"]).header_value("X-Tenant", "t-1") == REDACTED
    assert Redactor().header_value("X-Tenant", "t-1") == "t-1"


TERMINAL_SUITE = """
import os, openai, pytest

URL = os.environ["LLM_URL"]
MODEL = "ft:gpt-4o:acme:" + os.environ["SECRET_IN_MODEL"]


@pytest.mark.llm_budget(max_calls=0)
def test_leaky():
    client = openai.OpenAI(
        base_url=URL + "/v1", api_key="sk-test-0000", max_retries=0,
        default_query={"mytoken": os.environ["SECRET_IN_QUERY"]},
    )
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
"""


def test_terminal_summary_and_failure_messages_are_redacted(
    pytester: pytest.Pytester, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in a model name or in a request's query (a key named by llm_redact_keys)
    never reaches the terminal: budget failure text, truncation detail, summary table,
    slowest calls, cost line."""
    query_secret = "Zq8rT2vK9mN4bX7cW1pL"
    monkeypatch.setenv("SECRET_IN_MODEL", OPENAI)
    monkeypatch.setenv("SECRET_IN_QUERY", query_secret)
    pytester.makepyfile(test_inner=TERMINAL_SUITE)
    result = pytester.runpytest(
        *INNER_ARGS, "-o", "llm_redact_keys=mytoken", "--llm-artifacts=out", "-v"
    )
    result.assert_outcomes(failed=1)
    printed = result.stdout.str() + result.stderr.str()
    assert OPENAI not in printed and query_secret not in printed
    result.stdout.fnmatch_lines(
        [
            "LLM checks failed for test_inner.py::test_leaky: 2 violations",
            "*max_calls*",
            "*#1  chat ft:gpt-4o:acme:<redacted>  model ft:gpt-4o:acme:<redacted>*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["  truncation of #1: the answer was cut at max_tokens*", "*?mytoken=<redacted>*"]
    )
    result.stdout.fnmatch_lines(["*llmobs summary*", "slowest calls:", "*acme:<redacted>*"])
    summary = (pytester.path / "out" / "summary.json").read_text()
    assert OPENAI not in summary and query_secret not in summary
