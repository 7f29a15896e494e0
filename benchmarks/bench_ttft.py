"""Time to first chunk while recording: a 600 ms stream (first chunk after 100 ms, then one
every 50 ms) read with the openai SDK, live without any plugin, while pytest-llmobs records
it (`--llm-record-mode=rewrite`), and while pytest-recording records it
(`--record-mode=rewrite`), alternately. TTFT is measured in the test: from the call to
the first content chunk the app receives.

Run: .venv/bin/python benchmarks/bench_ttft.py [--streams 3] [--rounds 3] [--peers-dir DIR]
     [--json FILE]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _env
import _peers

from pytest_llmobs.testing import ProviderServer

SUITE = """
import json, os, time

import openai
import pytest

URL = os.environ["LLM_URL"]
HEADERS = {"x-fake-ttft-ms": "100", "x-fake-chunk-delay-ms": "50"}
client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-bench", max_retries=0)
TIMES = []


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_STREAMS"])))
def test_stream(n):
    messages = [{"role": "user", "content": f"stream {n}"}]
    t0 = time.perf_counter()
    first = None
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, extra_headers=HEADERS
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
    TIMES.append((first, time.perf_counter() - t0))


"""

CONFTEST = """
import json, os, sys

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.vcr)  # pytest-recording acts on marked tests only


def pytest_unconfigure(config):
    times = getattr(sys.modules.get("test_ttft"), "TIMES", [])
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(times, f)
"""
TOOLS = ("live", "llmobs", "recording")


def run_once(
    tool: str, workdir: Path, url: str, streams: int, peers: _peers.Peers
) -> list[tuple[float, float]]:
    out = workdir / "times.json"
    base = {k: v for k, v in os.environ.items() if k not in ("LLMOBS_RECORD_MODE", "PYTHONPATH")}
    env = peers.env(base) if tool == "recording" else base
    env.update(LLM_URL=url, BENCH_OUT=str(out), BENCH_STREAMS=str(streams))
    cmd = [*_env.pytest_command(), "-p", "no:xdist"]
    cmd += {
        "live": ["-p", "no:llmobs"],
        "llmobs": ["--llm-record-mode=rewrite", f"--llm-artifacts={workdir / 'artifacts'}"],
        "recording": ["-p", "no:llmobs", "-p", "no:llm_vcr", "--record-mode=rewrite"],
    }[tool]
    cmd.append(str(workdir / "test_ttft.py"))
    run = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{tool} run failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    times: list[tuple[float, float]] = [tuple(t) for t in json.loads(out.read_text())]  # type: ignore[misc]
    return times


def measure(args: argparse.Namespace, peers: _peers.Peers) -> dict[str, Any]:
    tools = [t for t in TOOLS if t != "recording" or peers.available("pytest-recording")]
    runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
    with ProviderServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.configure(reply="one two three four five six seven eight nine ten")
        workdir = Path(tmp)
        (workdir / "test_ttft.py").write_text(SUITE)
        (workdir / "conftest.py").write_text(CONFTEST)
        for n in range(args.rounds):
            for tool in tools[n % len(tools) :] + tools[: n % len(tools)]:
                runs[tool] += run_once(tool, workdir, server.url, args.streams, peers)
    figures: dict[str, Any] = {"streams": args.streams, "rounds": args.rounds}
    for tool, times in runs.items():
        figures[tool] = {
            "ttft_ms": statistics.median(t for t, _ in times) * 1e3,
            "duration_ms": statistics.median(d for _, d in times) * 1e3,
        }
    figures["llmobs_added_ms"] = figures["llmobs"]["ttft_ms"] - figures["live"]["ttft_ms"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=3, help="streams per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers-dir", type=Path, default=_peers.DEFAULT_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _env.prepare()
    figures = measure(args, _peers.ensure(args.peers_dir))
    print(f"time to first chunk while recording, median of {args.rounds * args.streams} streams")
    labels = {"live": "live, no plugin", "llmobs": "pytest-llmobs", "recording": "pytest-recording"}
    for tool, label in labels.items():
        if tool in figures:
            f = figures[tool]
            print(f"{label:<20} TTFT {f['ttft_ms']:8.1f} ms   stream {f['duration_ms']:8.1f} ms")
    print(f"pytest-llmobs adds {figures['llmobs_added_ms']:+.2f} ms to the TTFT")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
