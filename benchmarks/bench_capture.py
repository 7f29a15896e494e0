"""Capture overhead per LLM call: what pytest-llmobs adds to an openai call, and what the
OpenTelemetry OpenAI instrumentation (`opentelemetry-instrumentation-openai`) adds to the
same calls, against the local provider server.

Noise of a few hundred µs per call between processes would drown a 100 µs cost, so
pytest-llmobs is switched on and off inside one pytest process, every 5 calls (every
stream), the order alternating, one test per round. pytest-llmobs only queues a finished
call on the call path and analyses it (parses both bodies, builds the GenAI span) when the
test's calls are read; that deferred work is timed too, right after each "on" block.
Off means its interceptor is suspended: the patched transports pass straight through
after one attribute check, which is what `-p no:llmobs` leaves too. Its overhead is the
median over rounds of (on - off) per call, in wall and CPU time.

The instrumentation cannot be switched off again (`uninstrument()` leaves its wrappers in
place, and instrumenting again nests them), so it is measured between processes: one
instrumented for the whole run (spans into an in-memory exporter), one with nothing,
alternately, `--process-rounds` times; its overhead is the median over those pairs of
(instrumented - plain). The plain processes also give pytest-llmobs's overhead measured
that way, as a cross-check. Streams (20 ms to the first chunk, 5 ms between chunks) give
the overhead as a share of the stream's duration.

Run: .venv/bin/python benchmarks/bench_capture.py [--calls 100] [--streams 10] [--rounds 7]
     [--process-rounds 3] [--peers-dir DIR] [--json FILE]
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

INNER = """
import json, os, time
import openai
import pytest

URL = os.environ["LLM_URL"]
MESSAGES = [{"role": "user", "content": "benchmark the capture overhead"}]
TOOL = os.environ["BENCH_TOOL"]
STREAM_HEADERS = {"x-fake-ttft-ms": "20", "x-fake-chunk-delay-ms": "5"}
CALLS, STREAMS = int(os.environ["BENCH_CALLS"]), int(os.environ["BENCH_STREAMS"])
ROUNDS = int(os.environ["BENCH_ROUNDS"])
client = openai.OpenAI(base_url=URL + "/v1", api_key="sk-bench", max_retries=0)
SWITCH = {}
RESULTS = []
MADE = [0]  # calls made in this process (spans per call, for the instrumentation)


@pytest.fixture
def switch(request):
    # (turn on, turn off) for the tool under test, made once; "off" has nothing to switch
    if not SWITCH:
        if TOOL == "llmobs":
            from pytest_llmobs.plugin import CAPTURE
            capture = request.config.stash[CAPTURE]
            interceptor = capture.interceptor

            def on():
                interceptor.suspended = 0

            def off():
                interceptor.suspended = 1

            def settle():
                # the analysis deferred off the call path (parsing, the span), done now
                capture.active.settle()
            SWITCH.update(on=on, off=off, settle=settle)
        elif TOOL == "otel":
            from opentelemetry import trace
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            provider = TracerProvider()
            SWITCH["spans"] = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(SWITCH["spans"]))
            trace.set_tracer_provider(provider)
            OpenAIInstrumentor().instrument()  # for the whole process: see the docstring
            SWITCH.update(on=lambda: None, off=lambda: None)
        else:
            SWITCH.update(on=lambda: None, off=lambda: None)
    return SWITCH


def block(calls, stream):
    MADE[0] += calls
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        if stream:
            for _ in client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True}, extra_headers=STREAM_HEADERS,
            ):
                pass
        else:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def interleaved(switch, calls, stream, step):
    # `calls` calls with the tool on and as many off, alternating every `step` calls (the
    # order flipping each time), so slow drifts of the machine cancel out
    spent = {"on": [0.0, 0.0], "off": [0.0, 0.0], "settle": [0.0, 0.0]}
    for i in range(calls // step):
        for state in ("on", "off") if i % 2 else ("off", "on"):
            switch[state]()
            wall, cpu = block(step, stream)
            spent[state][0] += wall * step
            spent[state][1] += cpu * step
            if state == "on" and "settle" in switch:
                wall, cpu = time.perf_counter(), time.process_time()
                switch["settle"]()
                spent["settle"][0] += time.perf_counter() - wall
                spent["settle"][1] += time.process_time() - cpu
    switch["off"]()
    done = calls // step * step
    return {state: (w / done, c / done) for state, (w, c) in spent.items()}


# One test per round, as a suite spreads its calls over tests (each test's calls and spans
# are released after it).
@pytest.mark.parametrize("round_", ["warm", *range(ROUNDS)])
def test_round(switch, round_):
    warm = round_ == "warm"
    plain = interleaved(switch, 10 if warm else CALLS, False, 5)
    streamed = interleaved(switch, 2 if warm else STREAMS, True, 1)
    if not warm:
        RESULTS.append(
            {
                state: {"plain": plain[state], "stream": streamed[state]}
                for state in ("on", "off", "settle")
            }
        )


def test_write():
    spans = len(SWITCH["spans"].get_finished_spans()) if "spans" in SWITCH else None
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"rounds": RESULTS, "spans": spans, "made": MADE[0]}, f)
"""


def run_tool(
    workdir: Path,
    tool: str,
    url: str,
    args: argparse.Namespace,
    peers: _peers.Peers | None,
    rounds: int,
) -> dict[str, Any]:
    out = workdir / f"{tool}.json"
    env = peers.env() if tool == "otel" and peers else dict(os.environ)
    env.update(
        LLM_URL=url,
        BENCH_TOOL=tool,
        BENCH_OUT=str(out),
        BENCH_CALLS=str(args.calls),
        BENCH_STREAMS=str(args.streams),
        BENCH_ROUNDS=str(rounds),
        LLMOBS_RECORD_MODE="off",  # live calls: capture overhead, not replay
        TRACELOOP_TELEMETRY="false",
    )
    cmd = [*_env.pytest_command(), "-p", "no:xdist"]
    if tool != "llmobs":
        cmd += ["-p", "no:llmobs", "-p", "no:recording", "-p", "no:llm_vcr"]
    cmd.append(str(workdir / "test_capture_bench.py"))
    run = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{tool} run failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def overhead(rounds: list[dict[str, Any]], kind: str, clock: int) -> float:
    """Median over rounds of (on - off), seconds per call."""
    return statistics.median(r["on"][kind][clock] - r["off"][kind][clock] for r in rounds)


def level(rounds: list[dict[str, Any]], kind: str, clock: int, state: str | None = None) -> float:
    """Median seconds per call over a process's blocks (of one state, or all)."""
    states = (state,) if state else ("on", "off")
    return statistics.median(r[s][kind][clock] for r in rounds for s in states)


def measure(args: argparse.Namespace, peers: _peers.Peers | None) -> dict[str, Any]:
    otel = peers is not None and peers.available("opentelemetry-instrumentation-openai")
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (otel or None, plain)
    with ProviderServer() as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "test_capture_bench.py").write_text(INNER)
        ours = run_tool(workdir, "llmobs", server.url, args, peers, args.rounds)
        for n in range(args.process_rounds):
            order = ["otel", "off"] if otel else ["off"]
            got = {
                t: run_tool(workdir, t, server.url, args, peers, 1)
                for t in order[:: 1 - 2 * (n % 2)]
            }
            pairs.append((got.get("otel", {}), got["off"]))
    figures: dict[str, Any] = {"calls_per_block": args.calls, "rounds": args.rounds}
    rounds = ours["rounds"]
    figures["llmobs"] = {
        kind: {
            "off_s": level(rounds, kind, 0, "off"),
            "on_s": level(rounds, kind, 0, "on"),
            "overhead_s": overhead(rounds, kind, 0),
            "overhead_cpu_s": overhead(rounds, kind, 1),
            # the parsing and span building done off the call path, when the calls are read
            "deferred_s": statistics.median(r["settle"][kind][0] for r in rounds),
            "deferred_cpu_s": statistics.median(r["settle"][kind][1] for r in rounds),
            # the same calls against separate plain processes (noisier, a cross-check)
            "across_processes_s": level(rounds, kind, 0, "on")
            - statistics.median(level(plain["rounds"], kind, 0) for _, plain in pairs),
        }
        for kind in ("plain", "stream")
    }
    if otel:
        figures["otel"] = {
            kind: {
                "off_s": statistics.median(level(p["rounds"], kind, 0) for _, p in pairs),
                "on_s": statistics.median(level(o["rounds"], kind, 0) for o, _ in pairs),
                "overhead_s": statistics.median(
                    level(o["rounds"], kind, clock=0) - level(p["rounds"], kind, clock=0)
                    for o, p in pairs
                ),
                "overhead_cpu_s": statistics.median(
                    level(o["rounds"], kind, clock=1) - level(p["rounds"], kind, clock=1)
                    for o, p in pairs
                ),
            }
            for kind in ("plain", "stream")
        }
        # the instrumentation really traced what it was given: spans per call made
        made = sum(o["made"] for o, _ in pairs)
        figures["otel"]["spans"] = sum(o["spans"] for o, _ in pairs)
        figures["otel"]["spans_per_call"] = figures["otel"]["spans"] / max(made, 1)
    elif peers is not None:
        figures["otel_missing"] = peers.missing.get(
            "opentelemetry-instrumentation-openai", "not installed"
        )
    for kind in ("plain", "stream"):
        ours = figures["llmobs"][kind]
        ours["total_s"] = ours["overhead_s"] + ours["deferred_s"]
    for tool in ("llmobs", "otel"):
        if tool in figures:
            stream = figures[tool]["stream"]
            stream["share_of_duration"] = stream["overhead_s"] / stream["off_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100, help="plain calls per block")
    parser.add_argument("--streams", type=int, default=10, help="streamed calls per block")
    parser.add_argument("--rounds", type=int, default=7, help="on/off rounds, in-process")
    parser.add_argument("--process-rounds", type=int, default=3, help="otel/plain pairs")
    parser.add_argument("--peers-dir", type=Path, default=_peers.DEFAULT_DIR)
    parser.add_argument("--no-peers", action="store_true", help="llmobs only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _env.prepare()
    peers = None if args.no_peers else _peers.ensure(args.peers_dir)
    figures = measure(args, peers)
    print(
        f"capture overhead per call: llmobs median of {args.rounds} in-process rounds, "
        f"the instrumentation of {args.process_rounds} process pairs"
    )
    print(
        f"{'tool':<10}{'kind':<8}{'off':>11}{'on':>11}{'added':>12}{'added CPU':>12}"
        f"{'deferred':>12}"
    )
    for tool in ("llmobs", "otel"):
        for kind in ("plain", "stream"):
            if tool not in figures:
                continue
            f = figures[tool][kind]
            deferred = f"{f['deferred_s'] * 1e6:>9.1f} µs" if "deferred_s" in f else ""
            print(
                f"{tool:<10}{kind:<8}{f['off_s'] * 1e3:>8.3f} ms{f['on_s'] * 1e3:>8.3f} ms"
                f"{f['overhead_s'] * 1e6:>9.1f} µs{f['overhead_cpu_s'] * 1e6:>9.1f} µs{deferred}"
            )
    print(
        "added: to each call's latency; deferred: per call, the parsing and span building "
        "pytest-llmobs does when the calls are read (at the latest at the test's report)"
    )
    across = figures["llmobs"]["plain"]["across_processes_s"]
    print(f"llmobs per plain call against the plain processes instead: {across * 1e6:+.1f} µs")
    if "otel" in figures:
        print(f"instrumentation spans per call: {figures['otel']['spans_per_call']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
