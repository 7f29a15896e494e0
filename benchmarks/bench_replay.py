"""Replay speed: pytest-llmobs cassettes vs pytest-recording (vcrpy) and pytest-llm-vcr on
the same traffic, and one large cassette's load time vs vcrpy's YAML.

1. Suites of `--tests` tests x `--calls` chat completions (every 5th and 4th call of 5
   streamed), recorded once by each tool against the local provider server; the server is
   then stopped and each tool replays offline, alternately, `--rounds` times:
   - `sdk`: the official openai SDK; pytest-llmobs (every check and artifact on: budgets
     on every test, a session budget, truncation, JUnit/traces/prompt log/summary) vs
     pytest-recording; serial and under `-n 2`;
   - `httpx`: the same requests sent with an httpx client, the only client pytest-llm-vcr
     serves (it hands the test an `httpx.Client` of its own; the openai SDK sends through
     httpx2); all three tools.
   Figures: wall time of the pytest run, peak memory of the pytest process (serial runs),
   and the seconds spent inside the calls (the replay work itself, measured in the test).
2. Load (`--load N`): one cassette of N interactions (default 10,000) in each format; time
   to open it in a fresh process and the memory that took.

Peers are installed by `_peers.py` into their own directory (not the venv).
Run: .venv/bin/python benchmarks/bench_replay.py [--tests 200] [--calls 5] [--rounds 3]
     [--load 10000] [--load-rounds 2] [--skip-suite] [--peers-dir DIR] [--json FILE]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _env
import _peers

from pytest_llmobs.testing import ProviderServer

SDK_SUITE = """
import os
import time

import openai
import pytest

URL = os.environ["LLM_URL"]
CALLS = int(os.environ["BENCH_CALLS"])

# One client for the module: building one loads the CA bundle (~40 ms), which would
# dominate every tool's figures alike.
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

HTTPX_SUITE = """
import json
import os
import time

import pytest

URL = os.environ["LLM_URL"] + "/v1/chat/completions"
CALLS = int(os.environ["BENCH_CALLS"])
HEADERS = {"authorization": "Bearer sk-bench"}
SPENT = []


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_replay(n, client):
    for i in range(CALLS):
        t0 = time.perf_counter()
        body = {"model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"test {n} call {i}: summarize"}]}
        if i % 5 in (3, 4):
            body.update(stream=True, stream_options={"include_usage": True})
            text = ""
            with client.stream("POST", URL, json=body, headers=HEADERS) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        for choice in json.loads(line[6:])["choices"]:
                            text += choice["delta"].get("content") or ""
        else:
            response = client.post(URL, json=body, headers=HEADERS)
            text = response.json()["choices"][0]["message"]["content"]
        SPENT.append(time.perf_counter() - t0)
        assert text
"""

# Peak memory of the pytest process itself. Linux's VmHWM belongs to the address space, so
# unlike ru_maxrss it does not inherit the parent's peak across fork + exec.
PEAK = """
import os
import sys

import pytest


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
    if hasattr(config, "workerinput"):
        return
    spent = getattr(sys.modules.get("test_bench"), "SPENT", [])
    with open(os.environ["BENCH_PEAK"], "w") as f:
        f.write(f"{peak_bytes()} {sum(spent)} {len(spent)}")
"""

# What each tool's run adds to the suite (the test file is the same for all).
CONFTEST = {
    # every check on: a budget on every test (calls, tokens, cost, latency), a session
    # budget; truncation is checked by default and artifacts are written by default
    "llmobs": """

def pytest_collection_modifyitems(items):
    budget = pytest.mark.llm_budget(
        max_calls=10, max_total_tokens=100000, max_cost_usd=1.0, max_p95_latency_s=30.0
    )
    for item in items:
        item.add_marker(budget)


@pytest.fixture
def client():
    import httpx
    return CLIENT.setdefault("client", httpx.Client())


CLIENT = {}
""",
    # pytest-recording only acts on tests marked vcr
    "recording": """

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.vcr)


@pytest.fixture
def client():
    import httpx
    return CLIENT.setdefault("client", httpx.Client())


CLIENT = {}
""",
    # pytest-llm-vcr serves only the httpx client it creates for each test
    "llm_vcr": """

@pytest.fixture
def client(llm_vcr_client):
    return llm_vcr_client
""",
}
LABELS = {"llmobs": "pytest-llmobs", "recording": "pytest-recording", "llm_vcr": "pytest-llm-vcr"}
PEER_DIST = {"recording": "pytest-recording", "llm_vcr": "pytest-llm-vcr"}
OTHERS = ("llmobs", "recording", "llm_vcr")


@dataclass
class Run:
    wall_s: float
    peak_bytes: int | None
    per_call_s: float | None


def _command(tool: str, mode: str, workdir: Path, xdist: bool) -> list[str]:
    args = _env.pytest_command()
    args += ["-n", "2"] if xdist else ["-p", "no:xdist"]
    for other in OTHERS:
        if other != tool:
            args += ["-p", f"no:{other}"]
    if tool == "llmobs":
        args += [
            f"--llm-record-mode={mode}",
            f"--llm-artifacts={workdir / 'llmobs-artifacts'}",
            "--llm-session-budget=max_cost_usd=100 max_total_tokens=10000000",
        ]
    elif tool == "recording":
        args.append(f"--record-mode={mode}")
    elif mode != "none":
        args.append("--llm-vcr-record")
    args.append(str(workdir / "test_bench.py"))
    return args


def _run(tool: str, mode: str, workdir: Path, env: dict[str, str], xdist: bool = False) -> Run:
    env = {**env, "BENCH_PEAK": str(workdir / "peak.txt")}
    (workdir / "peak.txt").unlink(missing_ok=True)
    t0 = time.perf_counter()
    run = subprocess.run(
        _command(tool, mode, workdir, xdist), env=env, cwd=workdir, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if os.environ.get("BENCH_VERBOSE"):
        print(f"  {tool} {mode}{' -n 2' if xdist else ''}: {seconds:.2f} s", file=sys.stderr)
    if run.returncode != 0:
        raise RuntimeError(f"{tool} {mode} failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    if xdist:
        return Run(seconds, None, None)
    peak, spent, calls = (workdir / "peak.txt").read_text().split()
    return Run(seconds, int(peak), float(spent) / max(int(calls), 1))


def _tool_env(tool: str, url: str, workdir: Path, args: argparse.Namespace, peers: _peers.Peers):
    base = dict(os.environ)
    for name in ("LLMOBS_RECORD_MODE", "LLM_VCR_RECORD", "PYTHONPATH"):
        base.pop(name, None)
    env = base if tool == "llmobs" else peers.env(base)  # peers only where used
    env.update(
        LLM_URL=url,
        BENCH_TESTS=str(args.tests),
        BENCH_CALLS=str(args.calls),
        LLM_VCR_CASSETTE_DIR=str(workdir / "cassettes"),
    )
    return env


def suite(
    name: str,
    source: str,
    tools: list[str],
    replayers: list[str],
    args: argparse.Namespace,
    peers: _peers.Peers,
) -> dict[str, Any]:
    """Record once with each tool, then replay alternately with `replayers`; serial (and
    `-n 2` for sdk). Rounds beyond the first suite's are capped at 2 to fit the time."""
    rounds = args.rounds if name == "sdk" else min(args.rounds, 2)
    figures: dict[str, Any] = {"tests": args.tests, "calls": args.calls, "rounds": rounds}
    tools = [t for t in tools if t == "llmobs" or peers.available(PEER_DIST[t])]
    replayers = [t for t in replayers if t in tools]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {tool: Path(tmp) / tool for tool in tools}
        for tool, d in dirs.items():
            d.mkdir()
            (d / "test_bench.py").write_text(source)
            (d / "conftest.py").write_text(PEAK + CONFTEST[tool])
        server = ProviderServer().start()
        server.configure(reply="the refund policy allows returns within thirty days")
        url = server.url
        envs = {tool: _tool_env(tool, url, d, args, peers) for tool, d in dirs.items()}
        try:
            for tool, d in dirs.items():
                if tool == "llm_vcr" and "recording" in dirs:
                    _convert_for_llm_vcr(dirs["recording"], d, envs[tool])
                else:
                    _run(tool, "once", d, envs[tool])
        finally:
            server.stop()  # replay runs are offline: nothing listens on that port any more
        figures["cassette_bytes"] = {
            tool: sum(p.stat().st_size for p in d.rglob("*.yaml")) for tool, d in dirs.items()
        }
        if name == "sdk" and "recording" in dirs:
            figures["cassette_work"] = cassette_work(dirs, args.rounds, envs["recording"])
        variants = [False, True] if name == "sdk" and args.xdist else [False]
        for xdist in variants:
            runs: dict[str, list[Run]] = {tool: [] for tool in replayers}
            for n in range(min(rounds, 4) if xdist else rounds):  # rotate who goes first
                order = replayers[n % len(replayers) :] + replayers[: n % len(replayers)]
                for tool in order:
                    runs[tool].append(_run(tool, "none", dirs[tool], envs[tool], xdist))
            figures["xdist" if xdist else "serial"] = _summarise(runs)
            figures["xdist_rounds" if xdist else "serial_rounds"] = len(runs["llmobs"])
    return figures


# pytest-llm-vcr 0.6.0 records a non-streamed body as `{}` when its transport wraps a real
# one (it calls `response.json()` before the body was read), so its cassettes are written
# from pytest-recording's recording of the same traffic, with its own Cassette class.
TO_LLM_VCR = """
import json, sys
from pathlib import Path
import yaml
from llm_vcr.cassette import Cassette, Interaction
from llm_vcr.streaming import parse_sse

source, target = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(source.rglob("*.yaml")):
    data = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    cassette = Cassette(name=path.stem)
    for entry in data["interactions"]:
        request, response = entry["request"], entry["response"]
        body = json.loads(request["body"])
        raw = response["body"]["string"]
        raw = raw.decode() if isinstance(raw, bytes) else raw
        streaming = body.get("stream") is True
        cassette.interactions.append(Interaction(
            method=request["method"], url=request["uri"],
            request_headers={k: v[0] for k, v in request["headers"].items()},
            request_body=body, status_code=response["status"]["code"],
            response_headers={k: v[0] for k, v in response["headers"].items()},
            response_body=None if streaming else json.loads(raw),
            streaming=streaming, chunks=parse_sse(raw) if streaming else [],
        ))
    cassette.save(target / (path.stem + ".yaml"))
"""


def _convert_for_llm_vcr(recording: Path, workdir: Path, env: dict[str, str]) -> None:
    target = Path(env["LLM_VCR_CASSETTE_DIR"])
    target.mkdir(parents=True, exist_ok=True)
    source = recording / "cassettes"
    subprocess.run(
        [sys.executable, "-c", TO_LLM_VCR, str(source), str(target)], env=env, check=True
    )


# The cassette work alone, in-process: for each test's cassette, open it and answer its
# requests the way each tool does inside the transport, down to the bytes the client gets.
# The requests are the ones pytest-recording recorded (raw bodies), as httpx2 requests.
# pytest-llmobs: its cassette responder (allow-list check, redaction of the request,
# LLM-aware match, canned response) over a fresh Exchange; pytest-recording: vcrpy's httpx
# stub (VCR request, its default matchers, httpx2 response over the recorded body).
CASSETTE_WORK = """
import json, sys, time
from pathlib import Path
import httpx2, yaml

tool, recorded, ours = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
files = sorted(recorded.rglob("*.yaml"))
requests = []
for path in files:
    data = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    requests.append([
        httpx2.Request(i["request"]["method"], i["request"]["uri"],
                       content=i["request"]["body"].encode(),
                       headers={k: v[0] for k, v in i["request"]["headers"].items()})
        for i in data["interactions"]
    ])

if tool == "recording":
    from vcr.cassette import Cassette
    from vcr.request import Request
    from vcr.stubs.httpx_stubs import _deserialize_response

    def replay(path, reqs):
        cassette = Cassette.load(path=str(path), record_mode="none")
        for real in reqs:
            body = b"".join(real.stream)
            request = Request(real.method, str(real.url), body, real.headers)
            assert cassette.can_play_response_for(request)
            response = _deserialize_response(cassette.play_response(request), httpx2)
            assert b"".join(response.stream)
    paths = files
else:
    from pytest_llmobs.cassettes.matching import MatchRules
    from pytest_llmobs.cassettes.session import CassetteSession, Context
    from pytest_llmobs.intercept.interceptor import Interceptor
    from pytest_llmobs.providers import ProviderRegistry
    from pytest_llmobs.redaction import Redactor

    session = CassetteSession(ProviderRegistry(), Redactor())
    interceptor = Interceptor()
    rules = MatchRules()
    allow = ("localhost", "127.0.0.1", "::1")

    def replay(path, reqs):
        context = Context("bench", path, "none", 0.0, rules, allow_hosts=allow)
        session.push(context)
        for real in reqs:
            headers = [(k.lower().decode(), v.decode()) for k, v in real.headers.raw]
            exchange = interceptor.begin("httpx2", real.method, str(real.url), headers, real.read())
            canned = session(exchange)
            assert canned is not None and canned.status == 200, path
            assert b"".join(chunk for _, chunk in canned.chunks)
            interceptor.finish(exchange, complete=True)
        session.close(context, "passed")
    paths = [ours / p.relative_to(recorded) for p in files]

replay(paths[0], requests[0])  # imports and first-use caches, for both alike
t0 = time.perf_counter()
for path, reqs in zip(paths, requests):
    replay(path, reqs)
print(time.perf_counter() - t0, sum(len(r) for r in requests))
"""


def cassette_work(dirs: dict[str, Path], rounds: int, env: dict[str, str]) -> dict[str, Any]:
    recorded, ours = dirs["recording"] / "cassettes", dirs["llmobs"] / "cassettes"
    runs: dict[str, list[float]] = {"llmobs": [], "recording": []}
    calls = 0
    for n in range(rounds):
        for tool in ("llmobs", "recording") if n % 2 == 0 else ("recording", "llmobs"):
            cmd = [sys.executable, "-c", CASSETTE_WORK, tool, str(recorded), str(ours)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"cassette work ({tool}) failed:\n{out.stderr[-2000:]}")
            seconds, count = out.stdout.split()
            runs[tool].append(float(seconds))
            calls = int(count)
    return {
        "calls": calls,
        **{tool: {"per_call_ms": statistics.median(r) / calls * 1e3} for tool, r in runs.items()},
        "ratio": statistics.median(
            a / b for a, b in zip(runs["llmobs"], runs["recording"], strict=True)
        ),
    }


def _summarise(runs: dict[str, list[Run]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool, rs in runs.items():
        out[tool] = {"wall_s": statistics.median(r.wall_s for r in rs)}
        if rs[0].peak_bytes is not None:
            out[tool]["peak_mb"] = max(r.peak_bytes or 0 for r in rs) / 2**20
            out[tool]["per_call_ms"] = statistics.median(r.per_call_s or 0 for r in rs) * 1e3
    ours = runs["llmobs"]
    for tool, rs in runs.items():
        if tool == "llmobs":
            continue
        # ratio of each round's pair, then the median: drift between rounds cancels out
        out[tool]["ratio"] = statistics.median(
            a.wall_s / b.wall_s for a, b in zip(ours, rs, strict=True)
        )
        if rs[0].per_call_s is not None:
            out[tool]["per_call_ratio"] = statistics.median(
                (a.per_call_s or 0) / (b.per_call_s or 1) for a, b in zip(ours, rs, strict=True)
            )
    return out


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


def load(args: argparse.Namespace) -> dict[str, Any]:
    """Open one N-interaction cassette in each format, alternately, in fresh processes."""
    from pytest_llmobs.cassettes import synthetic

    figures: dict[str, Any] = {"interactions": args.load, "rounds": args.load_rounds}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"llmobs": Path(tmp) / "llmobs.yaml", "vcrpy": Path(tmp) / "vcrpy.yaml"}
        synthetic.write_llmobs(paths["llmobs"], args.load)
        synthetic.write_vcrpy(paths["vcrpy"], args.load)
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in paths}
        for _ in range(args.load_rounds):
            for name, path in paths.items():
                out = subprocess.run(
                    [sys.executable, "-c", LOAD, name, str(path)],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                assert int(out[0]) == args.load, out
                runs[name].append((float(out[1]), int(out[2])))
        for name, path in paths.items():
            size = path.stat().st_size
            memory = statistics.median(m for _, m in runs[name])
            figures[name] = {
                "load_s": statistics.median(s for s, _ in runs[name]),
                "memory_mb": memory / 2**20,
                "file_mb": size / 2**20,
                "memory_x_file": memory / size,
            }
    figures["speedup"] = statistics.median(
        v[0] / o[0] for v, o in zip(runs["vcrpy"], runs["llmobs"], strict=True)
    )
    return figures


def print_suite(name: str, figures: dict[str, Any]) -> None:
    work = figures.get("cassette_work")
    if work:
        print(
            f"\ncassette work in-process, {work['calls']} calls: pytest-llmobs "
            f"{work['llmobs']['per_call_ms']:.3f} ms/call, pytest-recording "
            f"{work['recording']['per_call_ms']:.3f} ms/call, ratio {work['ratio']:.2f}"
        )
    for variant in ("serial", "xdist"):
        if variant not in figures:
            continue
        rows = figures[variant]
        print(
            f"\n{name} suite, {figures['tests']} tests x {figures['calls']} calls"
            f"{' under -n 2' if variant == 'xdist' else ''}, "
            f"median of {figures[variant + '_rounds']}"
        )
        print(f"{'tool':<20}{'wall s':>9}{'ms/call':>9}{'peak MiB':>10}{'ratio':>8}")
        for tool, f in rows.items():
            per_call = f"{f['per_call_ms']:>9.2f}" if "per_call_ms" in f else f"{'':>9}"
            peak = f"{f['peak_mb']:>10.1f}" if "peak_mb" in f else f"{'':>10}"
            ratio = f"{f['ratio']:>8.2f}" if "ratio" in f else f"{'':>8}"
            print(f"{LABELS[tool]:<20}{f['wall_s']:>9.2f}{per_call}{peak}{ratio}")
        print("(ratio: pytest-llmobs wall time / the tool's; median of the per-round ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-xdist", dest="xdist", action="store_false")
    parser.add_argument("--suites", default="sdk,httpx", help="comma-separated: sdk, httpx")
    parser.add_argument("--load", type=int, default=10_000, help="0 skips the load benchmark")
    parser.add_argument("--load-rounds", type=int, default=2)
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--peers-dir", type=Path, default=_peers.DEFAULT_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _env.prepare()
    result: dict[str, Any] = {}
    if not args.skip_suite:
        peers = _peers.ensure(args.peers_dir)
        result["missing_peers"] = peers.missing
        # the httpx suite exists for pytest-llm-vcr: pytest-recording records it (its
        # recording is converted for pytest-llm-vcr) but replays only in the sdk suite
        suites = {
            "sdk": (SDK_SUITE, ["llmobs", "recording"], ["llmobs", "recording"]),
            "httpx": (HTTPX_SUITE, list(OTHERS), ["llmobs", "llm_vcr"]),
        }
        for name in args.suites.split(","):
            source, tools, replayers = suites[name]
            result[name] = suite(name, source, tools, replayers, args, peers)
            print_suite(name, result[name])
    if args.load:
        result["load"] = figures = load(args)
        print(f"\ncassette load: {args.load} interactions, fresh process each")
        print(f"{'format':<20}{'load s':>10}{'memory MiB':>12}{'file MiB':>10}{'mem/file':>10}")
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
