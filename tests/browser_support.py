"""A real headless Chromium driven over the DevTools protocol (aiohttp's websocket client):
load a page, collect console messages, exceptions, log entries and network requests,
evaluate DOM facts, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SKIP_REASON = "install Debian's chromium (apt-get install chromium)"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=SKIP_REASON)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


@dataclass
class Page:
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""

    def errors(self) -> list[str]:
        """Everything a developer console would show in red."""
        out = [f"console.{c['type']}: {_args(c)}" for c in self.console if c["type"] in _BAD]
        out += [f"exception: {e['exceptionDetails']}" for e in self.exceptions]
        out += [
            f"log {e['entry']['source']} {e['entry']['level']}: {e['entry']['text']}"
            for e in self.log
            if e["entry"]["level"] in ("error", "warning")
        ]
        return out


_BAD = {"error", "assert", "warning"}


def _args(call: dict[str, Any]) -> str:
    return " ".join(str(a.get("value", a.get("description", ""))) for a in call.get("args", []))


class _Cdp:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                await self.events.put(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def load(
    url: str,
    profile: Path,
    *,
    actions: tuple[str, ...] = (),
    facts: dict[str, str] | None = None,
    size: tuple[int, int] = (1280, 2000),
) -> Page:
    """Open `url` in a fresh headless Chromium (profile dir `profile`), wait for
    `document.body.dataset.ready`, run `actions`, evaluate `facts`, take a screenshot."""
    profile.mkdir(parents=True, exist_ok=True)
    with (profile / "chromium.log").open("wb") as log:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"],
            stdout=log,
            stderr=log,
        )
        try:
            return await _drive(proc, url, profile, actions, facts or {}, size)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _drive(
    proc: subprocess.Popen[bytes],
    url: str,
    profile: Path,
    actions: tuple[str, ...],
    facts: dict[str, str],
    size: tuple[int, int],
) -> Page:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chromium did not start: {(profile / 'chromium.log').read_text()}")
        await asyncio.sleep(0.05)
    port, path = port_file.read_text().splitlines()[:2]
    page = Page()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as ws,
    ):
        cdp = _Cdp(ws)
        target = (await cdp.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await cdp.send("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            await cdp.send(f"{domain}.enable", session)
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        await cdp.send("Page.navigate", session, url=url)
        await _until_ready(cdp, session)
        for action in actions:
            await _evaluate(cdp, session, action)
        await asyncio.sleep(0.2)  # let layout settle and late console messages arrive
        for name, expression in facts.items():
            page.facts[name] = await _evaluate(cdp, session, expression)
        shot = await cdp.send("Page.captureScreenshot", session, format="png")
        page.screenshot = base64.b64decode(shot["data"])
        _drain(cdp, page)
        with contextlib.suppress(Exception):
            await cdp.send("Browser.close")
        cdp.reader.cancel()
    return page


async def _until_ready(cdp: _Cdp, session: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await _evaluate(cdp, session, "document.body && document.body.dataset.ready === '1'"):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the page never set document.body.dataset.ready")


async def _evaluate(cdp: _Cdp, session: str, expression: str) -> Any:
    result = await cdp.send(
        "Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True
    )
    if "exceptionDetails" in result:
        raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def _drain(cdp: _Cdp, page: Page) -> None:
    while not cdp.events.empty():
        event = cdp.events.get_nowait()
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            page.console.append(params)
        elif method == "Runtime.exceptionThrown":
            page.exceptions.append(params)
        elif method == "Log.entryAdded":
            page.log.append(params)
        elif method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (asserting the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
