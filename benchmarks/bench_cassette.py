"""Big cassettes: load time and memory of a valid cassette, and how fast a truncated one
reports its error, each as a figure ÷ the file size.

A cassette of about `--mb` MB is generated with the project's own writer
(`pytest_llmobs.cassettes.synthetic`: half chat completions, half SSE streams). Each
measurement runs in a fresh process so `ru_maxrss` is that load's own: the valid file is
opened as a replay does (`LLMCassette.open` plus the request index the first match
builds); the truncated copy (the last third cut off) must raise `CassetteError`.
tracemalloc's peak is the Python allocations of the load; ru_maxrss - the RSS before the
load is what the process really grew by.

Run: .venv/bin/python benchmarks/bench_cassette.py [--mb 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _env

BYTES_PER_INTERACTION = 5270  # what synthetic.write_llmobs writes per call, near enough


def _status_kib(field: str) -> int:
    """A /proc/self/status figure in bytes. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over exec, so a child would inherit the generating parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_one(path: Path, expect_error: bool, trace: bool) -> dict[str, Any]:
    """In this (fresh) process: open the cassette at `path` as a replay does. With `trace`,
    tracemalloc's peak; without, the RSS growth (tracemalloc's own bookkeeping would add)."""
    from pytest_llmobs.cassettes.cassette import LLMCassette
    from pytest_llmobs.cassettes.format import CassetteError
    from pytest_llmobs.cassettes.matching import MatchRules
    from pytest_llmobs.redaction import Redactor

    rules, redactor = MatchRules(), Redactor()
    size = path.stat().st_size
    rss_before = _status_kib("VmRSS")
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    error = ""
    try:
        cassette = LLMCassette.open(path, "none", rules, redactor)
        cassette._ensure_index()  # what the first replayed request does
        interactions = len(cassette.data)
    except CassetteError as exc:
        error, interactions = str(exc), 0
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    hwm = _status_kib("VmHWM")
    if expect_error != bool(error):
        raise SystemExit(f"{path}: expected {'an error' if expect_error else 'a load'}: {error}")
    if trace:
        return {"peak_mb": round(peak / 1e6, 1), "peak_per_file_byte": round(peak / size, 3)}
    return {
        "file_mb": round(size / 1e6, 1),
        "interactions": interactions,
        "seconds": round(elapsed, 3),
        "rss_growth_mb": round((hwm - rss_before) / 1e6, 1),
        "rss_growth_per_file_byte": round((hwm - rss_before) / size, 3),
        "error": error[:300],
    }


def run_child(path: Path, expect_error: bool) -> dict[str, Any]:
    """Two fresh processes: one for time and RSS, one for tracemalloc's peak."""
    result: dict[str, Any] = {}
    for trace in (False, True):
        cmd = [sys.executable, __file__, "--child", str(path)]
        cmd += ["--expect-error"] if expect_error else []
        cmd += ["--trace"] if trace else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"measuring {path} failed:\n{out.stderr}")
        result.update(json.loads(out.stdout))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=200.0, help="size of the cassette, MB")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect-error", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.child, args.expect_error, args.trace)))
        return
    _env.prepare()
    from pytest_llmobs.cassettes.synthetic import write_llmobs

    with tempfile.TemporaryDirectory() as tmp:
        valid = Path(tmp) / "big.yaml"
        started = time.perf_counter()
        write_llmobs(valid, int(args.mb * 1e6 / BYTES_PER_INTERACTION))
        print(f"wrote {valid.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
        truncated = Path(tmp) / "truncated.yaml"
        with valid.open("rb") as src, truncated.open("wb") as dst:
            dst.write(src.read(valid.stat().st_size * 2 // 3))
        result = {"valid": run_child(valid, False), "truncated": run_child(truncated, True)}
    for name, figures in result.items():
        print(
            f"{name:>9}: {figures['file_mb']:.0f} MB in {figures['seconds']:.2f} s, "
            f"peak {figures['peak_mb']:.0f} MB ({figures['peak_per_file_byte']:.2f}x the file), "
            f"RSS +{figures['rss_growth_mb']:.0f} MB "
            f"({figures['rss_growth_per_file_byte']:.2f}x)"
            + (f"\n           {figures['error'][:160]}" if figures["error"] else "")
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
