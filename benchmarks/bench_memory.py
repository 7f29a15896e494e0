"""Memory over a long session: 10,000 LLM calls (100 tests x 100 calls, one in five
streamed) made live against a minimal OpenAI-style server (its own process: aiohttp), with
pytest-llmobs on (every artifact written) and with `-p no:llmobs`, alternately.

After each test the process collects garbage and samples its resident memory; the figure
is the growth from the 2,000th to the last call, per 1,000 calls. Answers are 8 KB, so a
plugin that kept bodies or spans would grow by more than 8 MiB per 1,000 calls; what
pytest-llmobs keeps per call is its figures (about 2 KiB: what summary.json and the JUnit
file are written from at the end).

Run: .venv/bin/python benchmarks/bench_memory.py [--tests 100] [--calls 100] [--rounds 1]
     [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _env

# 8 KB answers, as a whole body or as a stream of 8 content events + usage + [DONE]
UPSTREAM = r"""
import json, sys
from aiohttp import web

ANSWER = "the refund policy allows returns within thirty days " * 160
USAGE = {"prompt_tokens": 12, "completion_tokens": 1600, "total_tokens": 1612}
BODY = json.dumps({
    "id": "chatcmpl-memory", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": ANSWER}}],
    "usage": USAGE,
}).encode()
PIECE = len(ANSWER) // 8
EVENTS = [{"id": "chatcmpl-memory", "object": "chat.completion.chunk", "created": 1,
           "model": "gpt-4o-mini",
           "choices": [{"index": 0, "delta": {"content": ANSWER[i:i + PIECE]}}]}
          for i in range(0, len(ANSWER), PIECE)]
EVENTS.append({"id": "chatcmpl-memory", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE})
STREAM = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in EVENTS)
STREAM += b"data: [DONE]\n\n"


async def chat(request):
    body = await request.json()
    if body.get("stream"):
        return web.Response(body=STREAM, content_type="text/event-stream")
    return web.Response(body=BODY, content_type="application/json")


app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

SUITE = """
import os

import httpx2
import pytest

URL = os.environ["LLM_URL"] + "/v1/chat/completions"
CALLS = int(os.environ["BENCH_CALLS"])
client = httpx2.Client()


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_calls(n):
    for i in range(CALLS):
        body = {"model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"test {n} call {i}: summarize"}]}
        if i % 5 == 4:
            body["stream"] = True
            with client.stream("POST", URL, json=body) as response:
                assert b"[DONE]" in response.read()
        else:
            assert client.post(URL, json=body).json()["choices"]
"""

CONFTEST = """
import gc
import json
import os

SAMPLES = []


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        gc.collect()
        SAMPLES.append(rss_bytes())


def pytest_unconfigure(config):
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(SAMPLES, f)
"""


def run_once(workdir: Path, plugin: bool, url: str, args: argparse.Namespace) -> list[int]:
    out = workdir / "samples.json"
    env = {**os.environ, "LLM_URL": url, "BENCH_OUT": str(out)}
    env.update(BENCH_TESTS=str(args.tests), BENCH_CALLS=str(args.calls))
    env["LLMOBS_RECORD_MODE"] = "off"  # live calls: no cassettes, everything else on
    cmd = [*_env.pytest_command(), "-p", "no:xdist"]
    if plugin:
        cmd.append(f"--llm-artifacts={workdir / 'artifacts'}")
    else:
        cmd += ["-p", "no:llmobs"]
    cmd.append(str(workdir / "test_memory.py"))
    run = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    samples: list[int] = json.loads(out.read_text())
    return samples


def growth_per_1000(samples: list[int], calls_per_test: int) -> tuple[float, float]:
    """(MiB per 1,000 calls after the first fifth of the run, RSS at the end in MiB)."""
    start = len(samples) // 5
    calls = (len(samples) - 1 - start) * calls_per_test
    grown = samples[-1] - samples[start]
    return grown / 2**20 / calls * 1000, samples[-1] / 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float]]] = {"llmobs": [], "off": []}
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            (workdir / "test_memory.py").write_text(SUITE)
            (workdir / "conftest.py").write_text(CONFTEST)
            for n in range(args.rounds):
                for name in ("off", "llmobs") if n % 2 else ("llmobs", "off"):
                    samples = run_once(workdir, name == "llmobs", url, args)
                    runs[name].append(growth_per_1000(samples, args.calls))
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    return {
        "calls": args.tests * args.calls,
        "rounds": args.rounds,
        "answer_bytes": 8320,
        **{
            name: {
                "growth_mb_per_1000_calls": statistics.median(g for g, _ in rs),
                "final_rss_mb": statistics.median(r for _, r in rs),
            }
            for name, rs in runs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--calls", type=int, default=100, help="calls per test")
    parser.add_argument("--rounds", type=int, default=1, help="memory is not timing: one each")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _env.prepare()
    figures = measure(args)
    print(f"memory over {figures['calls']} calls, median of {args.rounds}")
    for name in ("llmobs", "off"):
        f = figures[name]
        label = "pytest-llmobs" if name == "llmobs" else "-p no:llmobs"
        print(
            f"{label:<16} growth {f['growth_mb_per_1000_calls']:6.3f} MiB / 1,000 calls, "
            f"RSS at the end {f['final_rss_mb']:.1f} MiB"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
