"""`llmobs proxy --workers N`: N proxy processes on one port, for hosts with N cores.

One event loop relays a few thousand requests a second on one core; past that, requests
queue in it. The workers each run the whole proxy (its own loop, upstream pool, injector)
and bind the same address with SO_REUSEPORT, so the Linux kernel spreads new connections
over them. This process only starts them, reports once they all listen, forwards SIGTERM /
SIGINT (each worker drains its requests in flight) and waits.

Metrics add up across workers: prometheus_client's multiprocess mode, with the files in a
temporary directory named in `PROMETHEUS_MULTIPROC_DIR` before the workers start. Workers
are spawned (a fresh interpreter each), so nothing of this process's state leaks in.
Each worker draws its chaos decisions from its own generators (the seed and its index).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.process import BaseProcess

    from .proxy import ProxyOptions

_START_TIMEOUT_S = 60.0


def serve_workers(options: ProxyOptions, workers: int) -> int:
    import multiprocessing

    from .proxy import listening_line

    if not hasattr(socket, "SO_REUSEPORT"):
        print("llmobs proxy: --workers needs SO_REUSEPORT (Linux)", file=sys.stderr)
        return 2
    try:
        reserved = _reserve(options.host, options.port)
    except OSError as exc:
        print(
            f"llmobs proxy: cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr
        )
        return 2
    options = replace(options, port=int(reserved.getsockname()[1]))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="llmobs-proxy-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the spawned
        context = multiprocessing.get_context("spawn")
        events: Any = context.Queue()
        processes = [
            context.Process(
                target=_worker,
                args=(options, index, metrics_dir, events),
                name=f"llmobs-proxy-{index}",
            )
            for index in range(workers)
        ]
        for process in processes:
            process.start()
        try:
            failure = _wait_ready(events, processes, stop)
        finally:
            reserved.close()  # the workers hold the port now (or gave up)
        if failure is not None:
            _stop(processes, options.shutdown_timeout)
            print(f"llmobs proxy: {failure}", file=sys.stderr)
            return 2
        # The same rules in every worker: read them once more for the banner only.
        rules = options.build_rules()
        address = (options.host, options.port)
        print(listening_line(address, options.upstream, options.seed, rules, workers), flush=True)
        while not stop.wait(0.2):
            if any(process.exitcode is not None for process in processes):
                break  # a worker died: take the others down rather than serve short-handed
        print("llmobs proxy: stopping (letting requests in flight finish)", flush=True)
        _stop(processes, options.shutdown_timeout)
        injected = sum(value for kind, _, value in _drain(events) if kind == "stopped")
    codes = [process.exitcode for process in processes]
    print(
        json.dumps({"stopped": True, "faults_injected": injected, "workers": workers}),
        flush=True,
    )
    return 0 if stop.is_set() and all(code == 0 for code in codes) else 1


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen) the address with SO_REUSEPORT: port 0 becomes one port every
    worker can bind too, and nothing else takes it meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _wait_ready(events: Any, processes: Sequence[BaseProcess], stop: threading.Event) -> str | None:
    """None once every worker listens, else what went wrong."""
    ready: set[int] = set()
    waited = 0.0
    while len(ready) < len(processes):
        if stop.is_set():
            return "stopped before every worker was listening"
        try:
            kind, index, value = events.get(timeout=0.2)
        except queue.Empty:
            waited += 0.2
            dead = [p.name for p in processes if p.exitcode is not None]
            if dead:
                return f"worker {dead[0]} exited while starting"
            if waited > _START_TIMEOUT_S:
                return f"workers not listening after {_START_TIMEOUT_S:g} s"
            continue
        if kind == "error":
            return f"worker {index}: {value}"
        if kind == "ready":
            ready.add(index)
    return None


def _stop(processes: Sequence[BaseProcess], shutdown_timeout: float) -> None:
    for process in processes:
        if process.exitcode is None:
            process.terminate()  # SIGTERM: the worker drains like a single proxy does
    for process in processes:
        process.join(shutdown_timeout + 5)
        if process.exitcode is None:
            process.kill()
            process.join()


def _drain(events: Any) -> list[tuple[str, int, Any]]:
    out = []
    while True:
        try:
            out.append(events.get(timeout=0.1))
        except queue.Empty:
            return out


def _worker(options: ProxyOptions, index: int, metrics_dir: str, events: Any) -> None:
    """One worker process: the proxy on the shared port, reporting to the parent."""
    from .catalog import ChaosConfigError
    from .proxy import _run, _serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop takes SIGINT over
    try:
        proxy = options.build(worker=index, metrics_dir=metrics_dir)
    except (ChaosConfigError, ValueError) as exc:
        events.put(("error", index, str(exc)))
        return

    def report(kind: str, value: Any) -> None:
        events.put((kind, index, value))

    try:
        _run(_serve(proxy, options.host, options.port, report))
    except OSError as exc:
        events.put(("error", index, f"cannot listen on {options.host}:{options.port}: {exc}"))
        raise SystemExit(2) from None
