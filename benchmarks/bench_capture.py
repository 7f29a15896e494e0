"""Capture overhead per LLM call: the same openai calls with the plugin on and with
`-p no:llmobs`, non-streaming and streaming, against the local provider server.

Run: .venv/bin/python benchmarks/bench_capture.py [--calls 400] [--rounds 5]
Prints per-call medians, the overhead and the ratio; `--json FILE` writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_llmobs.testing import ProviderServer

INNER = """
import json, os, time
import openai

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "benchmark the capture overhead"}]


def test_calls():
    client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-bench", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # warm the pool
    n = int(os.environ["BENCH_CALLS"])
    t0 = time.perf_counter()
    for _ in range(n):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    plain = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n // 10):
        for _ in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-fake-ttft-ms": "20", "x-fake-chunk-delay-ms": "5"},
        ):
            pass
    streamed = (time.perf_counter() - t0) / (n // 10)
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"plain": plain, "stream": streamed}, f)
"""


def run_once(workdir: Path, plugin: bool, calls: int, url: str) -> dict[str, float]:
    out = workdir / "out.json"
    env = {**os.environ, "LLM_URL": url, "BENCH_CALLS": str(calls), "BENCH_OUT": str(out)}
    env["LLMOBS_RECORD_MODE"] = "off"  # live calls: capture overhead, not replay
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(workdir)]
    if not plugin:
        args[3:3] = ["-p", "no:llmobs"]
    subprocess.run(args, env=env, check=True, capture_output=True, cwd=workdir)
    result: dict[str, float] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with ProviderServer() as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "test_bench.py").write_text(INNER)
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(args.rounds):  # alternate so drift hits both sides alike
            for plugin in (False, True):
                runs[plugin].append(run_once(workdir, plugin, args.calls, server.url))
    figures = {}
    print(f"{'workload':<14}{'plugin off':>14}{'plugin on':>14}{'overhead':>14}{'ratio':>8}")
    for kind in ("plain", "stream"):
        off = statistics.median(r[kind] for r in runs[False])
        on = statistics.median(r[kind] for r in runs[True])
        figures[kind] = {"off_s": off, "on_s": on, "overhead_s": on - off, "ratio": on / off}
        print(
            f"{kind:<14}{off * 1e3:>11.3f} ms{on * 1e3:>11.3f} ms"
            f"{(on - off) * 1e6:>11.1f} µs{on / off:>8.3f}"
        )
    stream = figures["stream"]
    print(
        f"stream overhead as share of stream duration: {stream['overhead_s'] / stream['off_s']:.2%}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
