"""Truncated and partial answers fail the test by default: each kind, per provider, through
the real SDKs; and the ways to allow them."""

from __future__ import annotations

import json

import pytest

from pytest_llmobs.budgets import TestChecks, check_test
from pytest_llmobs.calls import LLMCall
from pytest_llmobs.testing import ProviderServer, Reply, error_reply
from pytest_llmobs.truncation import (
    TRUNCATION_REASONS,
    allowed_reason,
    check_truncation,
    classify,
    describe,
)

HEADER = """
import os
import anthropic, openai, pytest

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "say hello to the test"}]
CUT = {"x-fake-stream-truncate-after": "3"}


def oai():
    return openai.OpenAI(base_url=URL + "/v1", max_retries=0)


def ant():
    return anthropic.Anthropic(base_url=URL, max_retries=0)
"""

INNER_ARGS = (
    "-p",
    "no:cacheprovider",
    "-rA",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=HEADER + body)
    return pytester.runpytest(*INNER_ARGS, *args)


def truncated(reason: str, **kw: object) -> LLMCall:
    return LLMCall(
        provider="openai",
        operation="chat",
        url="http://h/v1/chat/completions",
        request_model="gpt-4o",
        truncated=True,
        truncation_reason=reason,
        **kw,  # type: ignore[arg-type]
    )


# -- pure -------------------------------------------------------------------------------------
def test_every_reason_has_a_kind_and_text() -> None:
    for reason, kind in TRUNCATION_REASONS.items():
        assert kind.reason == reason and kind.text and kind.kind
        assert allowed_reason(reason) and allowed_reason(kind.kind)
    assert not allowed_reason("lenght")
    assert classify("stream_error: overloaded_error").kind == "stream"
    assert classify("stream_error: overloaded_error").text.startswith(
        "the stream failed part-way with overloaded_error (an error event after HTTP 200"
    )
    assert classify("SOMETHING_NEW").kind == "other"
    assert classify(None).reason == "unknown"


def test_check_truncation_allow_and_kinds() -> None:
    calls = [
        truncated("length", max_tokens=3),
        truncated("stream_error: overloaded_error"),
        truncated("invalid_json"),
        truncated("stream_closed_by_client"),  # the test's own choice: never a failure
        LLMCall(provider="openai", operation="chat", url="u"),
    ]
    assert [t.kind.reason for t in check_truncation(calls)] == [
        "length",
        "stream_error: overloaded_error",
        "invalid_json",
    ]
    assert check_truncation(calls, allow=True) == []
    assert [t.kind.kind for t in check_truncation(calls, allowed=("limit", "stream"))] == ["json"]
    assert [t.kind.reason for t in check_truncation(calls, allowed=("stream_error",))] == [
        "length",
        "invalid_json",
    ]


def test_describe_names_the_call() -> None:
    text = describe(truncated("length", max_tokens=3, attempt=1))
    assert text.startswith(
        "openai chat gpt-4o attempt 1 (http://h/v1/chat/completions, max_tokens=3): "
        'finish_reason "length"'
    )
    assert describe(truncated("length", max_tokens=3)).startswith(
        "openai chat gpt-4o (http://h/v1/chat/completions, max_tokens=3): "
    )  # the first attempt goes without saying


def test_each_reason_says_what_happened_in_plain_words() -> None:
    """The finding's summary (terminal, JUnit, GitHub, report): what happened, then the
    provider's own word for it; never the 'limit not allowed, actual length' of a budget."""
    assert TRUNCATION_REASONS["length"].plain == (
        "the answer was cut at max_tokens (finish_reason: length)"
    )
    assert TRUNCATION_REASONS["max_tokens"].plain == (
        "the answer was cut at max_tokens (stop_reason: max_tokens)"
    )
    assert classify("stream_error: overloaded_error").plain == (
        "the stream broke off part-way (overloaded_error): the answer is partial"
    )
    for reason, kind in TRUNCATION_REASONS.items():
        assert kind.plain.startswith("the ") and kind.plain != kind.text, reason
    [found] = check_test([truncated("length", max_tokens=3)], TestChecks())
    assert found.summary == "truncation: the answer was cut at max_tokens (finish_reason: length)"


# -- end to end, per provider ------------------------------------------------------------------
def anthropic_error_after_200() -> Reply:
    def event(name: str, data: dict[str, object]) -> tuple[float, bytes]:
        return 0.0, f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    message = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    return Reply(
        headers={"request-id": "req_1"},
        match="/scripted/",
        events=[
            event("message_start", {"type": "message_start", "message": message}),
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hel"},
                },
            ),
            event(
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
        ],
    )


KINDS = """
def test_openai_length():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)

def test_anthropic_max_tokens():
    ant().messages.create(model="claude-test", max_tokens=2, messages=MESSAGES)

def test_responses_incomplete():
    out = oai().responses.create(model="gpt-4.1", input="hi", max_output_tokens=2)
    assert out.status == "incomplete"

def test_openai_stream_without_terminator():
    text = "".join(c.choices[0].delta.content or "" for c in oai().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=CUT) if c.choices)
    assert text  # the SDK handed over a partial answer without complaint

def test_anthropic_stream_without_terminator():
    with ant().messages.stream(model="claude-test", max_tokens=50, messages=MESSAGES,
                               extra_headers=CUT) as stream:
        list(stream.text_stream)

def test_responses_stream_without_terminator():
    list(oai().responses.create(model="gpt-4.1", input="hi", stream=True, extra_headers=CUT))

def test_anthropic_error_event_after_200():
    with pytest.raises(anthropic.APIError):
        client = anthropic.Anthropic(base_url=URL + "/scripted", max_retries=0)
        with client.messages.stream(model="claude-test", max_tokens=50,
                                    messages=MESSAGES) as stream:
            list(stream.text_stream)

def test_openai_invalid_json():
    out = oai().chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                        response_format={"type": "json_object"})
    assert out.choices[0].message.content == "sure, here is {broken"

def test_complete_answers_pass():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    ant().messages.create(model="claude-test", max_tokens=50, messages=MESSAGES)

def test_stream_closed_by_the_test_passes():
    for chunk in oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        break
"""


def test_each_kind_fails_by_default(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="sure, here is {broken")
    provider.enqueue(anthropic_error_after_200())
    result = run(pytester, KINDS)
    result.assert_outcomes(passed=2, failed=8)
    out = result.stdout

    def expect(test: str, reason: str, where: str, text: str) -> None:
        out.fnmatch_lines(
            [
                f"*LLM checks failed for test_inner.py::{test}: 1 violation",
                f"  truncation of #1: {classify(reason).plain}",
                f"    {where} (http://127.0.0.1:*{text}",
                "calls responsible:",
                "  #1  *",
                "If a partial answer is expected: @pytest.mark.llm_allow_truncation*",
            ]
        )
        # a sentence, not a budget row with a limit and a figure
        assert not [line for line in out.lines if "not allowed" in line]

    expect(
        "test_openai_length",
        "length",
        "openai chat gpt-4o",
        '/v1/chat/completions, max_tokens=2): finish_reason "length"*',
    )
    expect(
        "test_anthropic_max_tokens",
        "max_tokens",
        "anthropic chat claude-test",
        '/v1/messages, max_tokens=2): stop_reason "max_tokens"*',
    )
    expect(
        "test_responses_incomplete",
        "max_output_tokens",
        "openai chat gpt-4.1",
        '/v1/responses, max_tokens=2): status "incomplete" (max_output_tokens)*',
    )
    for test, where, path in (
        ("test_openai_stream_without_terminator", "openai chat gpt-4o", "chat/completions"),
        ("test_anthropic_stream_without_terminator", "anthropic chat claude-test", "messages"),
        ("test_responses_stream_without_terminator", "openai chat gpt-4.1", "responses"),
    ):
        expect(
            test,
            "stream_ended_without_terminator",
            where,
            f"/v1/{path}): the stream ended without its terminator*",
        )
    expect(
        "test_anthropic_error_event_after_200",
        "stream_error: overloaded_error",
        "anthropic chat claude-test",
        "/scripted/v1/messages): the stream failed part-way with overloaded_error (an error "
        "event after HTTP 200, or a broken connection): the answer is partial",
    )
    expect(
        "test_openai_invalid_json",
        "invalid_json",
        "openai chat gpt-4o",
        "/v1/chat/completions): JSON output was requested*does not parse as JSON",
    )


ERRORS = """
SCHEMA = {"format": {"type": "json_schema", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}

def ask(url=URL):
    client = anthropic.Anthropic(base_url=url, max_retries=0)
    # extra_body: the same request body from SDK releases before `output_config` existed
    return client.messages.create(model="claude-test", max_tokens=50, messages=MESSAGES,
                                  extra_body={"output_config": SCHEMA})

def test_the_error_the_test_expects(llmobs):
    with pytest.raises(anthropic.BadRequestError):
        ask()
    [call] = llmobs.calls
    assert (call.status_code, call.error_type) == (400, "invalid_request_error")
    assert call.truncated is False

def test_a_200_that_is_not_json_is_still_cut(llmobs):
    ask()

@pytest.mark.llm_cassette(record_mode="none")
def test_cassette_miss(llmobs):
    with pytest.raises(anthropic.NotFoundError):
        ask()
    [call] = llmobs.calls
    assert (call.status_code, call.error_type) == (404, "llmobs_cassette_miss")
    assert call.truncated is False
"""


def test_error_responses_are_errors_not_truncation(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.enqueue(error_reply("anthropic", 400, "output_config.format.schema: invalid"))
    provider.configure(reply="not json")
    result = run(pytester, ERRORS)
    result.assert_outcomes(passed=1, failed=2)
    # the miss fails its test with the cassette's explanation and nothing else
    result.stdout.fnmatch_lines(
        [
            "*_ test_cassette_miss _*",
            "pytest-llmobs: no cassette */test_cassette_miss.yaml to replay from "
            "(record mode 'none')",
        ]
    )
    # one test with a violation in the run: the 200 whose text is not the JSON asked for
    # (pytest repeats the failure message in its short summary when CI is set: count tests)
    result.stdout.fnmatch_lines(["llmobs: 1 violation in 1 test"])
    result.stdout.fnmatch_lines(
        [
            "*test_a_200_that_is_not_json_is_still_cut: 1 violation",
            "  truncation of #1: the answer is not the JSON that was asked for",
        ]
    )


def test_allowing_truncation(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    result = run(
        pytester,
        """
pytestmark = pytest.mark.llm_allow_truncation

def test_module_allows():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)

@pytest.mark.llm_budget(allow_truncation=False)
def test_function_budget_overrides_module_allowance():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)

@pytest.mark.llm_budget(allow_truncation=False)
class TestStrict:
    @pytest.mark.llm_allow_truncation("length", "stream")
    def test_allowed_kinds_only(self):
        oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
        for _ in oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                               extra_headers=CUT):
            pass
        ant().messages.create(model="claude-test", max_tokens=2, messages=MESSAGES)

    @pytest.mark.llm_budget(allow_truncation=True, max_calls=5)
    def test_budget_key_allows(self):
        ant().messages.create(model="claude-test", max_tokens=2, messages=MESSAGES)
""",
    )
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_function_budget_overrides_module_allowance: 1 violation",
            "  truncation of #1: the answer was cut at max_tokens (finish_reason: length)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_allowed_kinds_only: 1 violation",
            # length and stream allowed
            "  truncation of #3: the answer was cut at max_tokens (stop_reason: max_tokens)",
        ]
    )
    result.stdout.fnmatch_lines(["PASSED test_inner.py::test_module_allows"])
    result.stdout.fnmatch_lines(["PASSED test_inner.py::TestStrict::test_budget_key_allows"])


def test_truncation_and_budget_in_one_table(
    pytester: pytest.Pytester, provider: ProviderServer
) -> None:
    provider.configure(reply="one two three four")
    result = run(
        pytester,
        """
@pytest.mark.llm_budget(max_output_tokens=3)
def test_both():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_both: 2 violations",
            "  key                limit  actual  set on  calls responsible",
            "  max_output_tokens  3      6       test    #1 #2",
            "  truncation of #1: the answer was cut at max_tokens (finish_reason: length)",
            "    openai chat gpt-4o (http://127.0.0.1:*/v1/chat/completions, max_tokens=2): *",
        ]
    )


def test_warn_mode_warns_on_truncation(pytester: pytest.Pytester, provider: ProviderServer) -> None:
    provider.configure(reply="one two three four")
    result = run(
        pytester,
        """
def test_cut():
    oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
""",
        "--llm-budget-mode=warn",
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*LLMBudgetWarning: LLM checks failed for *test_cut*"])
