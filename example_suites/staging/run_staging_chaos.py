"""Put `llmobs proxy` in front of an upstream and send a few requests through it.

The upstream here is the local provider server `pytest_llmobs.testing.ProviderServer`
(standing in for https://api.openai.com), so this runs offline; in staging you would start
the same command with `--upstream https://api.openai.com` next to your app and point the
app's OPENAI_BASE_URL at it. Run: python example_suites/staging/run_staging_chaos.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from pytest_llmobs.testing import ProviderServer

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "chaos-scenario.yaml"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def main() -> int:
    with ProviderServer() as upstream:
        upstream.configure(reply="Your order shipped yesterday and arrives on Friday.")
        command = [
            *("llmobs", "proxy", "--upstream", upstream.url, "--listen", "127.0.0.1:0"),
            *("--scenario", str(SCENARIO), "--seed", "7"),
        ]
        print("$ " + " ".join([*command[:3], "<local upstream>", *command[4:]]), flush=True)
        proxy = subprocess.Popen(
            [sys.executable, "-m", "pytest_llmobs.cli", *command[1:]],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proxy.stdout is not None
            banner = proxy.stdout.readline().strip()
            print(banner, flush=True)
            found = re.search(r"listening on (http://\S+)", banner)
            if not found:
                print("the proxy did not start", file=sys.stderr)
                return 1
            outcomes = exercise(found.group(1), upstream)
        finally:
            proxy.terminate()  # SIGTERM: drain requests in flight, flush, exit 0
            rest, _ = proxy.communicate(timeout=15)
        print(rest.strip().splitlines()[-1] if rest.strip() else "", flush=True)
    faults = sum(1 for o in outcomes if o != "ok")
    print(f"{faults} of {len(outcomes)} requests met a fault; the proxy exited {proxy.returncode}")
    return 0 if proxy.returncode == 0 and 0 < faults < len(outcomes) else 1


def exercise(proxy_url: str, upstream: ProviderServer) -> list[str]:
    outcomes = []
    print("\nraw requests (no retries), what the app would see:", flush=True)
    with httpx.Client(base_url=proxy_url, timeout=10) as http:
        for n in range(8):
            stream = n % 2 == 1
            outcome = raw_request(http, stream)
            outcomes.append(outcome)
            print(f"  #{n} {'stream' if stream else 'json  '}  {outcome}", flush=True)
        print("\na targeted fault (x-llmobs-fault header) and the openai SDK's retry:")
        client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="sk-staging", max_retries=2)
        before = len(upstream.requests)
        reply = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-llmobs-fault": "overloaded; retry_after=0.1"},
        )
        reached = len(upstream.requests) - before
        retries = reply.retries_taken
        print(f"  overloaded → the SDK retried {retries}x → {reply.http_response.status_code};")
        print(f"  the upstream saw {reached} request (the 503 never left the proxy)")
        metrics = http.get("/metrics").text
    print("\n/metrics (faults injected):")
    for line in metrics.splitlines():
        if line.startswith("llmobs_proxy_faults_injected_total{"):
            print("  " + line)
    return outcomes


def raw_request(http: httpx.Client, stream: bool) -> str:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}
    try:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            data = response.read().decode()
    except httpx.TransportError as exc:
        return f"connection dropped mid-answer ({type(exc).__name__})"
    if response.status_code >= 400:
        error = json.loads(data).get("error", {})
        return f"{response.status_code} {error.get('code') or error.get('type')}"
    if stream and "data: [DONE]" not in data:
        return "200, but the stream ended without [DONE] (a silent partial answer)"
    return "ok"


if __name__ == "__main__":
    sys.exit(main())
