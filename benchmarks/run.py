"""`make bench`: every benchmark in this directory, one table, `benchmarks/results.json`.

Each row is a workload with pytest-llmobs's figure, the figure of the tool a user would
otherwise pick on the same work in the same run, their ratio, the goal and whether it was
met. Each benchmark runs its pairs alternately several times and reports medians (see the
scripts' docstrings); this runner only installs the peers (into `.venv/bench-peers`, never
the venv itself), runs the scripts with sizes that fit ten minutes on two cores, and
tabulates their JSON.

Run: .venv/bin/python benchmarks/run.py [--quick] [--only capture,replay,...] [--out FILE]
     .venv/bin/python benchmarks/run.py --markdown   (the last results as a Markdown table)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _env
import _peers

HERE = Path(__file__).resolve().parent

# script → (arguments, arguments with --quick); sizes chosen to fit 10 minutes on 2 cores
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "replay": (
        ["--tests", "200", "--calls", "5", "--rounds", "7", "--load", "10000"],
        ["--tests", "40", "--calls", "5", "--rounds", "1", "--load", "2000", "--load-rounds", "1"],
    ),
    "capture": (["--calls", "100", "--streams", "10", "--rounds", "7"], ["--rounds", "2"]),
    "memory": (["--tests", "100", "--calls", "100"], ["--tests", "30"]),
    "ttft": (["--streams", "3", "--rounds", "3"], ["--rounds", "1"]),
    "proxy": (
        ["--requests", "2000", "--leak-requests", "4000"],
        ["--requests", "300", "--leak-requests", "1000"],
    ),
    "cassette": (["--mb", "200"], ["--mb", "20"]),
}


@dataclass
class Row:
    workload: str
    ours: str
    peer: str
    theirs: str
    ratio: str
    goal: str
    result: str  # "met", "missed", "—" (no goal), or why there is no figure
    note: str = ""


def run_bench(name: str, quick: bool, peers_dir: Path, tmp: Path) -> dict[str, Any] | str:
    """The script's JSON, or the reason it has none (last lines of its error output)."""
    out = tmp / f"{name}.json"
    args = list(BENCHES[name][1 if quick else 0])
    if name in ("replay", "capture", "ttft"):
        args += ["--peers-dir", str(peers_dir)]
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *args, "--json", str(out)]
    print(f"· {name}: {' '.join(cmd[2:-2])}", flush=True)
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    if run.returncode != 0 or not out.exists():
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        return "failed: " + " | ".join(tail)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _x(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}x"


def _status(ok: bool) -> str:
    return "met" if ok else "missed"


# -- one function per benchmark: its JSON → rows --------------------------------------------
def replay_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    missing = data.get("missing_peers") or {}
    sdk = data.get("sdk")
    if sdk:
        size = f"{sdk['tests']} tests x {sdk['calls']} calls"
        serial, ours = sdk["serial"], sdk["serial"]["llmobs"]
        rec = serial.get("recording")
        if not rec:
            why = missing.get("pytest-recording", "not run")
            rows.append(
                Row(f"replay suite, openai SDK ({size})", "", "pytest-recording", "", "", "", why)
            )
        if rec:
            rows.append(
                Row(
                    f"replay suite, openai SDK ({size}), all checks + artifacts on",
                    f"{ours['wall_s']:.2f} s",
                    "pytest-recording",
                    f"{rec['wall_s']:.2f} s",
                    _x(rec["ratio"]),
                    "≤ 1.00x",
                    _status(rec["ratio"] <= 1.0),
                )
            )
            work = sdk.get("cassette_work")
            if work:
                rows.append(
                    Row(
                        "  cassette work alone (open, match, serve), in-process",
                        f"{work['llmobs']['per_call_ms']:.3f} ms/call",
                        "pytest-recording",
                        f"{work['recording']['per_call_ms']:.3f} ms/call",
                        _x(work["ratio"]),
                        "≤ 0.80x",
                        _status(work["ratio"] <= 0.8),
                        "each tool's own replay path over its recording of the same "
                        f"{work['calls']} calls, in one process, without the SDK or pytest",
                    )
                )
            rows.append(
                Row(
                    "  time inside each call in the test (SDK + tool)",
                    f"{ours['per_call_ms']:.2f} ms",
                    "pytest-recording",
                    f"{rec['per_call_ms']:.2f} ms",
                    _x(rec["per_call_ratio"]),
                    "—",
                    "—",
                    "pytest-llmobs timestamps each call here; it parses the calls and builds "
                    "their spans when the test's report is made",
                )
            )
            rows.append(
                Row(
                    "  peak memory of the pytest process",
                    f"{ours['peak_mb']:.0f} MiB",
                    "pytest-recording",
                    f"{rec['peak_mb']:.0f} MiB",
                    _x(ours["peak_mb"] / rec["peak_mb"]),
                    "—",
                    "—",
                )
            )
        xdist = sdk.get("xdist")
        if xdist and "recording" in xdist:
            rec = xdist["recording"]
            rows.append(
                Row(
                    "  the same suite under -n 2",
                    f"{xdist['llmobs']['wall_s']:.2f} s",
                    "pytest-recording",
                    f"{rec['wall_s']:.2f} s",
                    _x(rec["ratio"]),
                    "≤ 1.00x",
                    _status(rec["ratio"] <= 1.0),
                )
            )
    httpx = data.get("httpx")
    if httpx:
        size = f"{httpx['tests']} tests x {httpx['calls']} calls"
        serial, ours = httpx["serial"], httpx["serial"]["llmobs"]
        for tool, label in (("llm_vcr", "pytest-llm-vcr"),):
            if tool not in serial:
                why = missing.get(label, "not run")
                rows.append(Row(f"replay suite, httpx client ({size})", "", label, "", "", "", why))
                continue
            peer = serial[tool]
            rows.append(
                Row(
                    f"replay suite, httpx client ({size})",
                    f"{ours['wall_s']:.2f} s",
                    label,
                    f"{peer['wall_s']:.2f} s",
                    _x(peer["ratio"]),
                    "≤ 1.00x",
                    _status(peer["ratio"] <= 1.0),
                    "pytest-llm-vcr only serves an httpx client of its own, so this suite "
                    "sends the same requests with httpx; its cassettes are written from "
                    "pytest-recording's recording (pytest-llm-vcr 0.6.0 records non-streamed "
                    "bodies as {} from a real transport)"
                    if tool == "llm_vcr"
                    else "",
                )
            )
    load = data.get("load")
    if load:
        ours, vcr = load["llmobs"], load["vcrpy"]
        n = f"{load['interactions']:,}"
        rows.append(
            Row(
                f"cassette load, {n} interactions",
                f"{ours['load_s']:.2f} s",
                "vcrpy YAML (default serializer)",
                f"{vcr['load_s']:.2f} s",
                _x(ours["load_s"] / vcr["load_s"], 3),
                "≤ 0.10x (10x faster)",
                _status(load["speedup"] >= 10),
                f"files: {ours['file_mb']:.0f} MiB readable JSON-in-YAML vs "
                f"{vcr['file_mb']:.0f} MiB YAML",
            )
        )
        rows.append(
            Row(
                "  memory to load it, x the file size",
                _x(ours["memory_x_file"], 1),
                "vcrpy YAML (default serializer)",
                _x(vcr["memory_x_file"], 1),
                _x(ours["memory_x_file"] / vcr["memory_x_file"]),
                "< 3x the file",
                _status(ours["memory_x_file"] < 3),
            )
        )
    return rows


def capture_rows(data: dict[str, Any]) -> list[Row]:
    ours = data["llmobs"]
    otel = data.get("otel")
    peer = "opentelemetry-instrumentation-openai"
    plain, stream = ours["plain"], ours["stream"]
    rows = [
        Row(
            "capture overhead per non-streaming openai call: latency added (wall)",
            f"{plain['overhead_s'] * 1e6:.0f} µs",
            peer if otel else f"{peer}: {data.get('otel_missing', 'not installed')}",
            f"{otel['plain']['overhead_s'] * 1e6:.0f} µs" if otel else "",
            _x(plain["overhead_s"] / otel["plain"]["overhead_s"]) if otel else "",
            "< 100 µs",
            _status(plain["overhead_s"] < 100e-6),
            f"vs the plugin disabled, in alternating blocks in one process; "
            f"CPU time added: {plain['overhead_cpu_s'] * 1e6:.0f} µs"
            + (
                f" (instrumentation: {otel['plain']['overhead_cpu_s'] * 1e6:.0f} µs)"
                if otel
                else ""
            ),
        ),
        Row(
            "  the same with the analysis done when the calls are read (parse, span)",
            f"{plain['total_s'] * 1e6:.0f} µs",
            peer if otel else "",
            f"{otel['plain']['overhead_s'] * 1e6:.0f} µs" if otel else "",
            _x(plain["total_s"] / otel["plain"]["overhead_s"]) if otel else "",
            "—",
            "—",
            f"{plain['overhead_s'] * 1e6:.0f} µs in the call + {plain['deferred_s'] * 1e6:.0f} µs "
            "when the test's calls are first read (at the latest at its report); the "
            "instrumentation does all of its work inside the call",
        )
        if "total_s" in plain
        else None,
        Row(
            "capture overhead per stream, share of its duration",
            f"{stream['share_of_duration'] * 100:.2f} %",
            peer if otel else "",
            f"{otel['stream']['share_of_duration'] * 100:.2f} %" if otel else "",
            "",
            "< 5 %",
            _status(stream["share_of_duration"] < 0.05),
            f"a {stream['off_s'] * 1e3:.0f} ms stream; {stream['overhead_s'] * 1e6:.0f} µs added",
        ),
    ]
    return [row for row in rows if row is not None]


def memory_rows(data: dict[str, Any]) -> list[Row]:
    ours, off = data["llmobs"], data["off"]
    growth = ours["growth_mb_per_1000_calls"]
    answer_kib = data.get("answer_bytes", 8320) / 1024
    return [
        Row(
            f"memory growth over a {data['calls']:,}-call session",
            f"{growth:.2f} MiB / 1,000 calls",
            "-p no:llmobs",
            f"{off['growth_mb_per_1000_calls']:.2f} MiB / 1,000 calls",
            "",
            "flat: no spans or bodies kept (< 3 MiB / 1,000 calls)",
            _status(growth < 3.0),
            f"{answer_kib:.0f} KiB answers, so a kept body alone would add "
            f"{answer_kib:.0f} MiB / 1,000 calls; RSS at the end {ours['final_rss_mb']:.0f} vs "
            f"{off['final_rss_mb']:.0f} MiB. What grows is each call's figures (~2 KiB) "
            "that summary.json and the JUnit file are written from at the end",
        )
    ]


def ttft_rows(data: dict[str, Any]) -> list[Row]:
    ours, live = data["llmobs"], data["live"]
    rows = [
        Row(
            "time to first chunk while recording (600 ms stream)",
            f"{ours['ttft_ms']:.1f} ms",
            "live, no plugin",
            f"{live['ttft_ms']:.1f} ms",
            f"{data['llmobs_added_ms']:+.1f} ms",
            "within 2 ms of live",
            _status(data["llmobs_added_ms"] <= 2.0),
        )
    ]
    rec = data.get("recording")
    if rec:
        rows.append(
            Row(
                "  the same while pytest-recording records",
                f"{ours['ttft_ms']:.1f} ms",
                "pytest-recording",
                f"{rec['ttft_ms']:.1f} ms",
                _x(ours["ttft_ms"] / rec["ttft_ms"]),
                "—",
                "—",
            )
        )
    return rows


def cassette_rows(data: dict[str, Any]) -> list[Row]:
    valid, cut = data["valid"], data["truncated"]
    rss = valid["rss_growth_per_file_byte"]
    return [
        Row(
            f"{valid['file_mb']:.0f} MB cassette load: time and memory ÷ file size",
            f"{valid['seconds']:.1f} s, {rss:.2f}x",
            "",
            "",
            "",
            "memory <= 2.5x the file",
            _status(rss <= 2.5),
            f"RSS growth of opening it and indexing its {valid['interactions']:,} requests; "
            f"tracemalloc peak {valid['peak_per_file_byte']:.2f}x",
        ),
        Row(
            f"  truncated {cut['file_mb']:.0f} MB cassette: time to its error, memory",
            f"{cut['seconds']:.2f} s, {cut['rss_growth_per_file_byte']:.2f}x",
            "",
            "",
            "",
            "error within a few seconds (< 5 s)",
            _status(cut["seconds"] < 5.0 and bool(cut["error"])),
        ),
    ]


def proxy_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for concurrency in (1, 64):
        row = data.get(f"concurrency_{concurrency}")
        if not row:
            continue
        name = "proxy+rules" if "proxy+rules" in row else "proxy"
        proxy, direct = row[name], row["direct"]
        goal = "< 1 ms" if concurrency == 64 else "—"
        rows.append(
            Row(
                f"chaos proxy added latency p50 / p99, concurrency {concurrency}",
                f"+{proxy['added_p50_ms']:.2f} / +{proxy['added_p99_ms']:.2f} ms",
                "direct to the upstream",
                f"{direct['p50_ms']:.2f} / {direct['p99_ms']:.2f} ms",
                _x(proxy["p50_ms"] / direct["p50_ms"]),
                f"p50 added {goal}" if concurrency == 64 else "—",
                _status(proxy["added_p50_ms"] < 1.0) if concurrency == 64 else "—",
            )
        )
        rows.append(
            Row(
                f"  throughput, concurrency {concurrency}",
                f"{proxy['rps']:.0f} req/s",
                "direct to the upstream",
                f"{direct['rps']:.0f} req/s",
                _x(proxy["rps"] / direct["rps"]),
                "—",
                "—",
            )
        )
    return rows


TABULATE: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "replay": replay_rows,
    "capture": capture_rows,
    "memory": memory_rows,
    "ttft": ttft_rows,
    "proxy": proxy_rows,
    "cassette": cassette_rows,
}


def machine(peers: _peers.Peers) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "versions": peers.versions(),
    }


def render(rows: list[Row], info: dict[str, Any]) -> str:
    head = Row("workload", "pytest-llmobs", "peer", "peer's figure", "ratio", "goal", "result")
    table = [head, *rows]
    fields = list(asdict(head))[:-1]  # not the note
    widths = {f: max(len(getattr(r, f)) for r in table) for f in fields}
    lines = []
    for i, r in enumerate(table):
        lines.append("  ".join(getattr(r, f).ljust(widths[f]) for f in fields).rstrip())
        if i == 0:
            lines.append("  ".join("-" * widths[f] for f in fields))
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in info["versions"].items())
    lines.append("")
    lines.append(f"machine: {info['cpus']} CPUs, Python {info['python']}, {info['platform']}")
    lines.append(f"versions: {versions}")
    notes = [f"- {r.workload.strip()}: {r.note}" for r in rows if r.note]
    if notes:
        lines.append("notes:")
        lines += notes
    return "\n".join(lines)


def markdown(path: Path) -> str:
    """The table of a results file as Markdown (the documentation site's Performance page)."""
    data = json.loads(path.read_text())
    head = ["workload", "pytest-llmobs", "peer", "peer's figure", "ratio", "goal", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in data["rows"]:
        cells = [row[k] for k in ("workload", "ours", "peer", "theirs", "ratio", "goal", "result")]
        cells[0] = cells[0].strip() if not cells[0].startswith("  ") else "↳ " + cells[0].strip()
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--peers-dir", type=Path, default=_peers.DEFAULT_DIR)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--markdown", action="store_true", help="print the table of --out as Markdown, run nothing"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(args.out))
        return
    _env.prepare()
    started = time.perf_counter()
    peers = _peers.ensure(args.peers_dir, quiet=False)
    for name, why in peers.missing.items():
        print(f"· {name} could not be installed: {why}")
    raw: dict[str, Any] = {}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            result = run_bench(name, args.quick, args.peers_dir, Path(tmp))
            raw[name] = result
            if isinstance(result, str):
                rows.append(Row(name, "", "", "", "", "", result))
                continue
            try:
                rows += TABULATE[name](result)
            except (KeyError, TypeError, ZeroDivisionError) as exc:
                rows.append(Row(name, "", "", "", "", "", f"unexpected output: {exc!r}"))
    info = machine(peers)
    elapsed = time.perf_counter() - started
    text = render(rows, info)
    print()
    print(text)
    print(f"\n{elapsed / 60:.1f} min; figures in {args.out}")
    args.out.write_text(
        json.dumps(
            {
                "machine": info,
                "quick": args.quick,
                "elapsed_s": round(elapsed, 1),
                "rows": [asdict(r) for r in rows],
                "raw": raw,
                "table": text,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
