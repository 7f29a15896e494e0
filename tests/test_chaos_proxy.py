"""`llmobs proxy` end to end: a subprocess in front of the local provider server, real SDKs
through it, faults from headers and scenarios, streams passed through on time, Prometheus
metrics, OTLP spans to a receiver started here, and a graceful SIGTERM."""

from __future__ import annotations

import http.client
import itertools
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx2
import openai
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sdk_errors import PROTOCOL_ERROR, transport_error

from pytest_llmobs.testing import ProviderServer, Reply

M = [{"role": "user", "content": "say hello to the test"}]


class Proxy:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.signaled = False

    def terminate(self) -> None:
        self.signaled = True
        self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20) -> tuple[int, str, str]:
        if self.process.poll() is None and not self.signaled:
            self.terminate()
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err


def start_proxy(upstream: str, *args: str) -> Proxy:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_llmobs.cli",
            "proxy",
            "--upstream",
            upstream,
            "--listen",
            "127.0.0.1:0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"proxy did not start: {process.communicate()[1]}")
    assert line.startswith("llmobs proxy listening on http://127.0.0.1:"), line
    return Proxy(process, line.split()[4])


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.posts.append((self.path, self.headers["content-type"], body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp() -> Iterator[ThreadingHTTPServer]:
    """A minimal OTLP/HTTP receiver: records every POST."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _spans(receiver: ThreadingHTTPServer) -> list[Any]:
    spans = []
    for path, content_type, body in receiver.posts:  # type: ignore[attr-defined]
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    return spans


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_proxy_end_to_end(
    provider: ProviderServer, otlp: ThreadingHTTPServer, tmp_path: Path
) -> None:
    provider.configure(reply="alpha beta gamma delta epsilon")
    proxy = start_proxy(
        provider.url, "--seed", "5", "--otlp-endpoint", f"http://127.0.0.1:{otlp.server_port}"
    )
    try:
        oai = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0)
        ant = anthropic.Anthropic(base_url=proxy.url, api_key="sk-x", max_retries=0)
        # plain traffic passes through
        out = oai.chat.completions.create(model="gpt-4o", messages=M)
        assert out.choices[0].message.content == "alpha beta gamma delta epsilon"

        # a header fault: answered by the proxy, retried by the SDK, header never forwarded
        before = len(provider.requests)
        raw = oai.with_options(max_retries=2).chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=M,
            extra_headers={"x-llmobs-fault": "rate_limit; retry_after=0.1"},
        )
        assert raw.retries_taken == 1 and raw.parse().choices[0].message.content
        forwarded = provider.requests[before:]
        assert len(forwarded) == 1 and "x-llmobs-fault" not in forwarded[0].headers
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            ant.messages.create(
                model="claude-test",
                max_tokens=32,
                messages=M,
                extra_headers={"x-llmobs-fault": "overloaded"},
            )
        assert overloaded.value.status_code == 529  # anthropic.OverloadedError from 0.47 on

        # stream faults damage the real upstream answer on its way through; openai 3.x wraps
        # the transport's error (httpx2's) in APIConnectionError, openai 2.x raises httpx's
        got = []
        with pytest.raises((openai.APIConnectionError, *PROTOCOL_ERROR)) as info:
            for chunk in oai.chat.completions.create(
                model="gpt-4o",
                messages=M,
                stream=True,
                extra_headers={"x-llmobs-fault": "stream_cut; after=2"},
            ):
                got.append(chunk.choices[0].delta.content or "")
        transport_error(info.value, PROTOCOL_ERROR)
        assert "".join(got) == "alpha beta"
        chunks = list(
            oai.chat.completions.create(
                model="gpt-4o",
                messages=M,
                stream=True,
                extra_headers={"x-llmobs-fault": "stream_truncated; after=3"},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "alpha beta gamma"
        assert all(c.choices[0].finish_reason is None for c in chunks)
        with ant.messages.stream(
            model="claude-test",
            max_tokens=32,
            messages=M,
            extra_headers={"x-llmobs-fault": "truncate_length"},
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "max_tokens"
        assert final.content[0].text == "alpha beta gamma delta epsilon"

        # transport faults
        with pytest.raises(openai.APITimeoutError):
            oai.with_options(timeout=0.3).chat.completions.create(
                model="gpt-4o", messages=M, extra_headers={"x-llmobs-fault": "timeout"}
            )
        with pytest.raises(openai.APIConnectionError) as reset:
            oai.chat.completions.create(
                model="gpt-4o", messages=M, extra_headers={"x-llmobs-fault": "connection_reset"}
            )
        assert "Server disconnected" in str(reset.value.__cause__)

        # a bad header is the caller's mistake, said in the provider's error shape
        bad = requests.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": M},
            headers={"x-llmobs-fault": "rate_limt"},
            timeout=5,
        )
        assert bad.status_code == 400
        assert "unknown fault 'rate_limt'" in bad.json()["error"]["message"]

        health = requests.get(proxy.url + "/healthz", timeout=5).json()
        assert health == {"status": "ok", "upstream": provider.url, "rules": 0, "seed": 5}
        metrics = requests.get(proxy.url + "/metrics", timeout=5).text
        faults = "llmobs_proxy_faults_injected_total"
        total = "llmobs_proxy_requests_total"
        for line in (
            f'{faults}{{fault="rate_limit",provider="openai",source="header"}} 1.0',
            f'{faults}{{fault="overloaded",provider="anthropic",source="header"}} 1.0',
            f'{total}{{fault="stream_cut",method="POST",provider="openai",status="200"}} 1.0',
            f'{total}{{fault="none",method="POST",provider="openai",status="200"}} 2.0',
            "llmobs_proxy_in_flight_requests 0.0",
        ):
            assert line in metrics, line
        assert "llmobs_proxy_request_duration_seconds_bucket" in metrics
    finally:
        code, out, err = proxy.stop()
    assert code == 0, err
    assert '"stopped": true' in out and "Traceback" not in err

    spans = _spans(otlp)
    by_fault = {_attrs(s).get("llmobs.chaos.fault"): s for s in spans}
    limited = by_fault["rate_limit"]
    attrs = _attrs(limited)
    assert limited.name == "chat gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai" and attrs["http.response.status_code"] == 429
    assert attrs["error.type"] == "rate_limit_exceeded"
    assert [e.name for e in limited.events] == ["llmobs.chaos.injected"]
    cut = _attrs(by_fault["stream_cut"])
    assert cut["llmobs.truncated"] is True and cut["gen_ai.request.stream"] is True
    plain = [s for s in spans if "llmobs.chaos.fault" not in _attrs(s)]
    assert any(_attrs(s).get("gen_ai.usage.output_tokens") == 5 for s in plain)
    assert len(spans) >= 9


def test_proxy_preserves_stream_timing(provider: ProviderServer) -> None:
    provider.configure(reply="one two three four five six", chunk_delay_s=0.08)
    proxy = start_proxy(provider.url, "--seed", "1")

    def arrivals(base: str) -> list[float]:
        client = httpx2.Client(timeout=10)
        body = {"model": "gpt-4o", "messages": M, "stream": True}
        started = time.perf_counter()
        offsets = []
        with client.stream("POST", base + "/v1/chat/completions", json=body) as response:
            for _ in response.iter_raw():
                offsets.append(time.perf_counter() - started)
        client.close()
        return offsets

    try:
        direct = arrivals(provider.url)
        proxied = arrivals(proxy.url)
    finally:
        assert proxy.stop()[0] == 0
    assert len(proxied) >= 6
    # chunks arrive as the upstream sends them: spread over the whole answer, not at the end
    assert proxied[0] < proxied[-1] - 0.3
    gaps = [b - a for a, b in itertools.pairwise(proxied) if b - a > 0.04]
    assert len(gaps) >= 5 and all(gap < 0.3 for gap in gaps)
    assert abs(proxied[-1] - direct[-1]) < 0.1


SCENARIO = """\
name: half-mini
seed: 42
rules:
  - fault: rate_limit
    probability: 0.5
    match: {model: "gpt-4o-mini"}
    params: {retry_after: 0}
"""


def test_proxy_scenario_by_probability_and_match(provider: ProviderServer, tmp_path: Path) -> None:
    scenario = tmp_path / "chaos.yaml"
    scenario.write_text(SCENARIO)

    def statuses() -> list[tuple[str, int]]:
        proxy = start_proxy(provider.url, "--scenario", str(scenario))
        try:
            out = []
            for i in range(16):
                model = "gpt-4o-mini" if i % 2 else "gpt-4o"
                response = requests.post(
                    proxy.url + "/v1/chat/completions",
                    json={"model": model, "messages": M},
                    timeout=5,
                )
                out.append((model, response.status_code))
            return out
        finally:
            assert proxy.stop()[0] == 0

    first, second = statuses(), statuses()
    assert first == second  # the scenario's seed: same faults, same requests
    assert {status for model, status in first if model == "gpt-4o"} == {200}
    mini = [status for model, status in first if model == "gpt-4o-mini"]
    assert 429 in mini and 200 in mini


def test_proxy_stops_gracefully_on_sigterm(provider: ProviderServer) -> None:
    provider.configure(reply="a b c d e f g h", chunk_delay_s=0.1)
    proxy = start_proxy(provider.url, "--seed", "1", "--shutdown-timeout", "5")
    received: list[bytes] = []
    first = threading.Event()

    def slow_stream() -> None:
        body = {"model": "gpt-4o", "messages": M, "stream": True}
        with requests.post(
            proxy.url + "/v1/chat/completions", json=body, stream=True, timeout=10
        ) as response:
            for line in response.iter_lines():
                received.append(line)
                first.set()

    thread = threading.Thread(target=slow_stream)
    thread.start()
    assert first.wait(5)
    proxy.terminate()
    thread.join(10)
    code, out, err = proxy.stop()
    assert code == 0, err
    assert b"data: [DONE]" in received  # the request in flight finished
    assert "stopping" in out
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/healthz", timeout=2)


def test_proxy_reports_a_dead_upstream_and_bad_arguments(tmp_path: Path) -> None:
    proxy = start_proxy("http://127.0.0.1:9", "--seed", "1")
    try:
        response = requests.post(
            proxy.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": M}, timeout=10
        )
        assert response.status_code == 502
        assert response.json()["error"]["type"] == "llmobs_proxy_error"
    finally:
        assert proxy.stop()[0] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - fault: stream_cutt\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_llmobs.cli",
            "proxy",
            "--upstream",
            "http://x",
            "--scenario",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{bad}:2: unknown fault 'stream_cutt'; valid faults: rate_limit" in result.stderr


def test_proxy_bedrock_and_gemini(provider: ProviderServer) -> None:
    """The same faults in Bedrock's and Gemini's wire formats, damaging real upstream event
    streams (binary AWS frames, SSE) on their way through the proxy."""
    import boto3
    import botocore.exceptions
    import urllib3
    from botocore.config import Config
    from botocore.eventstream import EventStreamError
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types as genai_types

    provider.configure(reply="alpha beta gamma delta epsilon")
    proxy = start_proxy(provider.url, "--seed", "3")
    fault: dict[str, str] = {}

    def bedrock(attempts: int = 1) -> Any:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=proxy.url,
            region_name="us-east-1",
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
        )

        def add_fault(request: Any, **_: Any) -> None:
            if "value" in fault:  # after signing: the proxy drops it, the signature holds
                request.headers["x-llmobs-fault"] = fault["value"]

        client.meta.events.register("before-send.bedrock-runtime.*", add_fault)
        return client

    def gemini(header: str) -> genai.Client:
        options = genai_types.HttpOptions(base_url=proxy.url, headers={"x-llmobs-fault": header})
        return genai.Client(api_key="AIza-not-a-real-key", http_options=options)

    model, messages = "anthropic.claude-test-v1:0", [{"role": "user", "content": [{"text": "hi"}]}]
    try:
        fault["value"] = "rate_limit"
        before = len(provider.requests)
        out = bedrock(attempts=2).converse(modelId=model, messages=messages)
        # times=1 counts botocore's attempts (amz-sdk-request): the retry went through
        assert out["ResponseMetadata"]["RetryAttempts"] == 1
        assert out["output"]["message"]["content"][0]["text"] == "alpha beta gamma delta epsilon"
        forwarded = provider.requests[before:]
        assert len(forwarded) == 1 and "x-llmobs-fault" not in forwarded[0].headers

        fault["value"] = "stream_cut; after=2"
        texts = []
        with pytest.raises(urllib3.exceptions.ProtocolError):  # as in the test process
            for event in bedrock().converse_stream(modelId=model, messages=messages)["stream"]:
                if "contentBlockDelta" in event:
                    texts.append(event["contentBlockDelta"]["delta"]["text"])
        assert "".join(texts) == "alpha beta"

        fault["value"] = "stream_error_event; error=rate_limit; after=1"
        with pytest.raises(EventStreamError) as info:
            list(bedrock().converse_stream(modelId=model, messages=messages)["stream"])
        assert info.value.response["Error"]["Code"] == "throttlingException"

        fault["value"] = "truncate_length"
        events = list(bedrock().converse_stream(modelId=model, messages=messages)["stream"])
        stop = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
        assert stop == ["max_tokens"] and events[-1]["metadata"]["usage"]["outputTokens"] == 5

        fault["value"] = "token_spike; factor=2"
        body = json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": "hi"}],
            }
        )
        response = bedrock().invoke_model(modelId=model, body=body)
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert headers["x-amzn-bedrock-output-token-count"] == "10"
        assert json.loads(response["body"].read())["usage"]["output_tokens"] == 10

        fault["value"] = "quota_exhausted"
        with pytest.raises(botocore.exceptions.ClientError) as quota:
            bedrock(attempts=3).converse(modelId=model, messages=messages)
        assert quota.value.response["Error"]["Code"] == "ServiceQuotaExceededException"

        client = gemini("rate_limit; retry_after=0.1")
        with pytest.raises(genai_errors.ClientError) as limited:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
        client = gemini("stream_truncated; after=2")
        chunks = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
        )
        assert "".join(c.text or "" for c in chunks) == "alpha beta"
        assert all(c.candidates[0].finish_reason is None for c in chunks)
        client = gemini("content_filter; category=hate")
        blocked = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert blocked.prompt_feedback.block_reason == "SAFETY" and not blocked.candidates

        metrics = requests.get(proxy.url + "/metrics", timeout=5).text
        faults = "llmobs_proxy_faults_injected_total"
        for line in (
            f'{faults}{{fault="rate_limit",provider="aws.bedrock",source="header"}} 1.0',
            f'{faults}{{fault="stream_cut",provider="aws.bedrock",source="header"}} 1.0',
            f'{faults}{{fault="rate_limit",provider="gcp.gemini",source="header"}} 1.0',
            f'{faults}{{fault="content_filter",provider="gcp.gemini",source="header"}} 1.0',
        ):
            assert line in metrics, line
    finally:
        code, _, err = proxy.stop()
    assert code == 0, err


def test_proxy_workers_share_the_port(provider: ProviderServer, tmp_path: Path) -> None:
    scenario = tmp_path / "chaos.yaml"
    scenario.write_text("rules:\n  - fault: server_error\n    match: {model: gpt-4o-mini}\n")
    proxy = start_proxy(provider.url, "--seed", "9", "--workers", "2", "--scenario", str(scenario))
    try:
        assert proxy.url.split(":")[-1] != "0"
        workers = set()
        for _ in range(40):  # a new connection each time: the kernel picks a worker
            workers.add(requests.get(proxy.url + "/healthz", timeout=5).json()["worker"])
            if workers == {0, 1}:
                break
        assert workers == {0, 1}
        for _ in range(10):
            ok = requests.post(
                proxy.url + "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": M},
                timeout=5,
            )
            assert ok.status_code == 200
        faulted = requests.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": M},
            headers={"x-llmobs-fault": "overloaded"},
            timeout=5,
        )
        assert faulted.status_code == 503
        # any worker's /metrics counts every worker's requests
        total = "llmobs_proxy_requests_total"
        for _ in range(4):
            metrics = requests.get(proxy.url + "/metrics", timeout=5).text
            assert f'{total}{{fault="none",method="POST",provider="openai",status="200"}} 10.0' in (
                metrics
            )
            assert "llmobs_proxy_in_flight_requests 0.0" in metrics
    finally:
        code, out, err = proxy.stop()
    assert code == 0, err
    assert '"workers": 2' in out and '"faults_injected": 1' in out


def _event(n: int) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": f"w{n} "}}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _read_until(response: Any, marker: bytes) -> None:
    while marker not in (line := response.readline()):
        assert line, "the stream ended early"


def _stream_and_hang_up(url: str, until: bytes) -> None:
    """A caller that reads a stream until `until` and then closes its connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    body = json.dumps({"model": "gpt-4o", "messages": M, "stream": True})
    connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    _read_until(response, until)
    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def test_disconnects_are_one_line_and_a_metric_never_a_traceback(
    provider: ProviderServer,
) -> None:
    proxy = start_proxy(provider.url)
    try:
        # 1. the caller hangs up mid-stream
        events = [(0.0, _event(1))] + [(0.2, _event(n)) for n in range(2, 6)]
        provider.enqueue(Reply(events=[*events, (0.0, b"data: [DONE]\n\n")]))
        _stream_and_hang_up(proxy.url, b"w1")
        # 2. the caller stops after [DONE], as the SDKs do, before the stream's last chunk
        provider.enqueue(Reply(events=[(0.0, _event(1)), (0.0, b"data: [DONE]\n\n"), (0.5, b"")]))
        _stream_and_hang_up(proxy.url, b"[DONE]")
        # 3. the upstream resets mid-stream: the caller's stream breaks, as it would direct
        provider.enqueue(Reply(events=[(0.0, _event(1)), (0.05, _event(2))], cut=True))
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0)
        with pytest.raises((openai.APIConnectionError, *PROTOCOL_ERROR)) as broken:
            for _ in client.chat.completions.create(model="gpt-4o", messages=M, stream=True):
                pass
        transport_error(broken.value, PROTOCOL_ERROR)
        # ordinary traffic still flows on the same proxy
        out = client.chat.completions.create(model="gpt-4o", messages=M)
        assert out.choices[0].message.content

        deadline = time.monotonic() + 5
        metric = "llmobs_proxy_disconnects_total"
        while True:  # the hang-ups are noticed on the proxy's next write
            metrics = requests.get(proxy.url + "/metrics", timeout=5).text
            lines = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith(metric)
            }
            client_side = lines.get(f'{metric}{{provider="-",side="client"}}', 0.0)
            if client_side >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert client_side == 2.0, metrics
        assert lines[f'{metric}{{provider="-",side="upstream"}}'] == 1.0, metrics
    finally:
        code, _, err = proxy.stop()
    assert code == 0, err
    assert "Traceback" not in err and "Error handling request" not in err, err
    said = [line for line in err.splitlines() if "closed the connection mid-answer" in line]
    assert len(said) == 3, err
    assert sum("llmobs proxy: client 127.0.0.1" in line for line in said) == 2, said
    assert any(
        line.startswith(f"llmobs proxy: upstream {provider.url} closed the connection")
        and "POST /v1/chat/completions" in line
        for line in said
    ), said


@pytest.mark.parametrize("service", ["staging-proxy", None])
def test_proxy_resource_from_the_environment(
    provider: ProviderServer,
    otlp: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    service: str | None,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    if service is not None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    proxy = start_proxy(provider.url, "--otlp-endpoint", f"http://127.0.0.1:{otlp.server_port}")
    try:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=M)
    finally:
        code, _, err = proxy.stop()
    assert code == 0, err
    resources = []
    for _, _, body in otlp.posts:  # type: ignore[attr-defined]
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        resources += [_attrs(rs.resource) for rs in request.resource_spans]
    assert resources
    for resource in resources:
        assert resource["service.name"] == (service or "llmobs-proxy")
        assert resource["deployment.environment.name"] == "staging"
