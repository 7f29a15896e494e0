"""Replay speed: pytest-llmobs cassettes vs pytest-recording (vcrpy) on the same traffic.

1. Suite: 200 tests x 5 openai calls (3 plain, 2 streamed) are recorded once by each
   plugin against the local provider server, the server is stopped, and the suite is
   replayed offline with each plugin (`-p no:recording` / `-p no:llmobs`). Prints the wall
   time of each replay run (median of --rounds), the ratio and the peak memory (maxrss).
2. Load (`--load N`): one cassette of N interactions (default 10,000) written by both
   formats; time to open it in a fresh process and the memory that took.

pytest-recording is not a dependency: install it somewhere and point at it, e.g.
    pip install --target /tmp/pyrec --no-deps pytest-recording
    .venv/bin/python benchmarks/bench_replay.py --recording-path /tmp/pyrec
Options: --tests 200 --calls 5 --rounds 3 --load 10000 --json FILE
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_llmobs.testing import ProviderServer

SUITE = """
import os
import time

import openai
import pytest

pytestmark = pytest.mark.vcr  # pytest-recording only acts on marked tests

URL = os.environ["LLM_URL"]
CALLS = int(os.environ["BENCH_CALLS"])


# One client for the module: building one loads the CA bundle (~40 ms), which would
# dominate both plugins' figures alike.
client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-bench", max_retries=0)


SPENT = []  # seconds inside each call (read by the conftest at exit)


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_replay(n):
    for i in range(CALLS):
        t0 = time.perf_counter()
        messages = [{"role": "user", "content": f"test {n} call {i}: summarize the policy"}]
        if i % 5 in (3, 4):
            text = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True,
                    stream_options={"include_usage": True})
                if c.choices
            )
        else:
            text = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages).choices[0].message.content
        SPENT.append(time.perf_counter() - t0)
        assert text
"""

# Peak memory of the pytest process itself. Linux's VmHWM belongs to the address space, so
# unlike ru_maxrss it does not inherit the parent's peak across fork + exec.
PEAK = """
import os


def peak_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pytest_unconfigure(config):
    import sys
    spent = getattr(sys.modules.get("test_bench"), "SPENT", [])
    with open(os.environ["BENCH_PEAK"], "w") as f:
        f.write(f"{peak_bytes()} {sum(spent)} {len(spent)}")
"""

LOAD = (
    PEAK
    + """
import sys, time
from pathlib import Path
which, path = sys.argv[1], Path(sys.argv[2])
import vcr.cassette
from pytest_llmobs.cassettes.cassette import LLMCassette
from pytest_llmobs.cassettes.matching import MatchRules
from pytest_llmobs.redaction import Redactor
before = peak_bytes()
t0 = time.perf_counter()
if which == "vcrpy":
    cassette = vcr.cassette.Cassette.load(path=str(path), record_mode="none")
else:
    cassette = LLMCassette.open(path, "none", MatchRules(), Redactor())
seconds = time.perf_counter() - t0
print(len(cassette), seconds, peak_bytes() - before)
"""
)


def _env(url: str, tests: int, calls: int, extra_path: str | None) -> dict[str, str]:
    env = {**os.environ, "LLM_URL": url, "BENCH_TESTS": str(tests), "BENCH_CALLS": str(calls)}
    env.pop("LLMOBS_RECORD_MODE", None)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return env


def _pytest(workdir: Path, plugin: str, mode: str, env: dict[str, str]) -> tuple[float, int, float]:
    """(wall seconds, peak bytes, mean seconds per call inside the test)."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    if plugin == "llmobs":
        args += ["-p", "no:recording", f"--llm-record-mode={mode}"]
    else:
        args += ["-p", "no:llmobs", f"--record-mode={mode}"]
    args.append(str(workdir / "test_bench.py"))
    env = {**env, "BENCH_PEAK": str(workdir / "peak.txt")}
    t0 = time.perf_counter()
    run = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{plugin} {mode} run failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    peak, spent, calls = (workdir / "peak.txt").read_text().split()
    return seconds, int(peak), float(spent) / max(int(calls), 1)


def suite(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dirs = {name: base / name for name in ("llmobs", "recording")}
        for d in dirs.values():
            d.mkdir()
            (d / "test_bench.py").write_text(SUITE)
            (d / "conftest.py").write_text(PEAK)
        server = ProviderServer().start()
        server.configure(reply="the refund policy allows returns within thirty days")
        url = server.url
        try:
            for name, d in dirs.items():
                _pytest(d, name, "once", _env(url, args.tests, args.calls, args.recording_path))
        finally:
            server.stop()  # replay runs are offline: nothing listens on that port any more
        sizes = {name: sum(p.stat().st_size for p in d.rglob("*.yaml")) for name, d in dirs.items()}
        runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in dirs}
        for _ in range(args.rounds):  # alternate so machine drift hits both alike
            for name, d in dirs.items():
                runs[name].append(
                    _pytest(d, name, "none", _env(url, args.tests, args.calls, args.recording_path))
                )
        for name in dirs:
            figures[name] = {
                "replay_s": statistics.median(r[0] for r in runs[name]),
                "maxrss_mb": max(r[1] for r in runs[name]) / 1e6,
                "per_call_ms": statistics.median(r[2] for r in runs[name]) * 1e3,
                "cassette_mb": sizes[name] / 1e6,
            }
    figures["ratio"] = figures["llmobs"]["replay_s"] / figures["recording"]["replay_s"]
    figures["per_call_ratio"] = (
        figures["llmobs"]["per_call_ms"] / figures["recording"]["per_call_ms"]
    )
    return figures


def load(args: argparse.Namespace) -> dict[str, Any]:
    from pytest_llmobs.cassettes import synthetic

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"llmobs": Path(tmp) / "llmobs.yaml", "vcrpy": Path(tmp) / "vcrpy.yaml"}
        synthetic.write_llmobs(paths["llmobs"], args.load)
        synthetic.write_vcrpy(paths["vcrpy"], args.load)
        for name, path in paths.items():
            out = subprocess.run(
                [sys.executable, "-c", LOAD, name, str(path)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            size = path.stat().st_size
            figures[name] = {
                "interactions": int(out[0]),
                "load_s": float(out[1]),
                "memory_mb": int(out[2]) / 1e6,
                "file_mb": size / 1e6,
                "memory_x_file": int(out[2]) / size,
            }
    figures["speedup"] = figures["vcrpy"]["load_s"] / figures["llmobs"]["load_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=10_000, help="0 skips the load benchmark")
    parser.add_argument("--recording-path", help="a directory holding pytest_recording")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if not args.skip_suite:
        result["suite"] = figures = suite(args)
        print(f"replay suite: {args.tests} tests x {args.calls} calls, median of {args.rounds}")
        print(f"{'plugin':<20}{'wall s':>9}{'ms/call':>9}{'peak MB':>9}{'cassettes MB':>14}")
        for name in ("llmobs", "recording"):
            f = figures[name]
            label = "pytest-llmobs" if name == "llmobs" else "pytest-recording"
            print(
                f"{label:<20}{f['replay_s']:>9.2f}{f['per_call_ms']:>9.2f}"
                f"{f['maxrss_mb']:>9.1f}{f['cassette_mb']:>14.2f}"
            )
        print(
            f"ratio (llmobs / recording): wall {figures['ratio']:.2f}, "
            f"per call {figures['per_call_ratio']:.2f}"
        )
    if args.load:
        result["load"] = figures = load(args)
        print(f"\ncassette load: {args.load} interactions, fresh process each")
        print(f"{'format':<20}{'load s':>10}{'memory MB':>12}{'file MB':>10}{'mem/file':>10}")
        for name in ("llmobs", "vcrpy"):
            f = figures[name]
            print(
                f"{name:<20}{f['load_s']:>10.2f}{f['memory_mb']:>12.1f}{f['file_mb']:>10.1f}"
                f"{f['memory_x_file']:>10.2f}"
            )
        print(f"speed-up: {figures['speedup']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
