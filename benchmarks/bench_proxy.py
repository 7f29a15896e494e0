"""Chaos proxy overhead on loopback: latency added and throughput, versus going straight to
the same upstream, at concurrency 1 and 64; then a leak check over many requests.

The upstream is a minimal aiohttp server answering an OpenAI chat completion (its own
process); `llmobs proxy` runs as it would in staging (its own process, no fault firing);
the load comes from an aiohttp client in this process. Request counts are bounded.

Besides latency, each row says how much CPU the proxy spent per request (from /proc, all
its processes): on a box where the load generator, the upstream and the proxy share few
cores, the added latency at high concurrency is mostly that CPU time queueing (Little's
law: latency = concurrency / throughput), so it is the figure to compare between versions.

Run: .venv/bin/python benchmarks/bench_proxy.py [--requests 2000] [--leak-requests 10000]
     [--scenario FILE] [--workers N] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

UPSTREAM = r"""
import json, sys
from aiohttp import web

BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "benchmark answer"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}).encode()


async def chat(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "benchmark the proxy"}]}
# A rule that matches no request: the proxy still reads every request to decide.
IDLE_SCENARIO = """\
rules:
  - fault: rate_limit
    times: null
    match: {model: no-such-model}
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.post(url + "/v1/chat/completions", json=REQUEST) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def load(url: str, total: int, concurrency: int) -> dict[str, float]:
    """`total` requests from `concurrency` workers over one pooled session."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url + "/v1/chat/completions", json=REQUEST) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        # warm the pool
        await asyncio.gather(*(worker_once(session, url) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / elapsed,
    }


async def worker_once(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url + "/v1/chat/completions", json=REQUEST) as response:
        await response.read()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (the proxy's workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


def process_stats(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of a process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def start_proxy(
    upstream: str, scenario: str | None, workers: int = 1
) -> tuple[subprocess.Popen[str], str]:
    args = [
        sys.executable,
        "-m",
        "pytest_llmobs.cli",
        "proxy",
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "1",
    ]
    if scenario:
        args += ["--scenario", scenario]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.split()[4]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    upstream_proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])
    upstream = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        scenario = args.scenario
        if scenario is None:
            scenario = str(Path(tmp) / "idle.yaml")
            Path(scenario).write_text(IDLE_SCENARIO)
        proxies = {
            "proxy": start_proxy(upstream, None),
            "proxy+rules": start_proxy(upstream, scenario),
        }
        if args.workers > 1:
            proxies[f"proxy x{args.workers}"] = start_proxy(upstream, None, args.workers)
        try:
            await wait_up(upstream)
            for concurrency in (1, 64):
                row: dict[str, Any] = {}
                before = cpu_seconds(upstream_proc.pid)
                row["direct"] = await load(upstream, args.requests, concurrency)
                row["direct"]["upstream_cpu_us"] = (
                    1e6 * (cpu_seconds(upstream_proc.pid) - before) / args.requests
                )
                for name, (process, url) in proxies.items():
                    before = cpu_seconds(process.pid)
                    row[name] = await load(url, args.requests, concurrency)
                    spent = cpu_seconds(process.pid) - before
                    row[name]["proxy_cpu_us"] = 1e6 * spent / args.requests
                    row[name]["added_p50_ms"] = row[name]["p50_ms"] - row["direct"]["p50_ms"]
                    row[name]["added_p99_ms"] = row[name]["p99_ms"] - row["direct"]["p99_ms"]
                results[f"concurrency_{concurrency}"] = row
            process, url = proxies["proxy+rules"]
            await load(url, 1000, 64)  # warm up before the baseline
            await asyncio.sleep(1.0)  # let the proxy see the client's connections close
            before = process_stats(process.pid)
            await load(url, args.leak_requests, 64)
            await asyncio.sleep(1.0)
            after = process_stats(process.pid)
            results["leak"] = {
                "requests": args.leak_requests,
                "rss_kib_before": before[0],
                "rss_kib_after": after[0],
                "fds_before": before[1],
                "fds_after": after[1],
            }
        finally:
            for process, _ in proxies.values():
                process.terminate()
                process.wait(timeout=30)
            upstream_proc.terminate()
            upstream_proc.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    parser.add_argument("--leak-requests", type=int, default=10000)
    parser.add_argument("--scenario", help="scenario for the 'proxy+rules' run (default: idle)")
    parser.add_argument(
        "--workers", type=int, default=1, help="also measure `llmobs proxy --workers N`"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    for concurrency in (1, 64):
        row = results[f"concurrency_{concurrency}"]
        print(f"concurrency {concurrency} ({args.requests} requests each):")
        for name, figures in row.items():
            added = ""
            if "added_p50_ms" in figures:
                added = (
                    f"  added p50 {figures['added_p50_ms']:+.3f} ms"
                    f"  p99 {figures['added_p99_ms']:+.3f} ms"
                    f"  proxy CPU {figures['proxy_cpu_us']:.0f} us/req"
                )
            else:
                added = f"  upstream CPU {figures['upstream_cpu_us']:.0f} us/req"
            print(
                f"  {name:<12} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
                f"{figures['rps']:.0f} req/s{added}"
            )
    leak = results["leak"]
    print(
        f"leak check over {leak['requests']} requests: RSS {leak['rss_kib_before']} → "
        f"{leak['rss_kib_after']} KiB, fds {leak['fds_before']} → {leak['fds_after']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
