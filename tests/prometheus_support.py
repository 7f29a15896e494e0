"""Real receivers for the alert sinks: a webhook receiver (http.server on 127.0.0.1) and
Debian's prometheus-pushgateway, started per test and read back."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_pushgateway = pytest.mark.skipif(
    not Path(PUSHGATEWAY).exists(), reason="install Debian's prometheus-pushgateway"
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="install Debian's prometheus (promtool)"
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookReceiver:
    """Records every POST; answers with `status`."""

    url: str
    status: int = 200
    received: list[Received] = field(default_factory=list)


@contextlib.contextmanager
def running_webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.received.append(Received(self.path, headers, json.loads(raw)))
            body = b"ok" if receiver.status < 400 else b"invalid_token"
            self.send_response(receiver.status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Pushgateway:
    url: str

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Sample name → [(labels, value)] of what the gateway serves on /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out


@contextlib.contextmanager
def running_pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    """Debian's prometheus-pushgateway on a free loopback port, persisting into tmp_path."""
    if not Path(PUSHGATEWAY).exists():
        pytest.skip("install Debian's prometheus-pushgateway")
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    process = subprocess.Popen(
        [
            PUSHGATEWAY,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "prometheus-pushgateway did not start: "
                    + (tmp_path / "pushgateway.log").read_text()
                )
            time.sleep(0.05)
        yield Pushgateway(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
