"""Regenerate docs/report.png, the README's picture of report.html.

Replays some example suites from their committed cassettes (a demo-like run: passing tests,
chaos faults, budget failures), then photographs the report with Debian's headless
Chromium, the same binary and flags the browser tests use:

    python example_suites/report_screenshot.py [OUT.png]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = ("quickstart", "chatbot", "resilience", "failing")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
)
SIZE = (1280, 1500)
SCALE = "0.75"  # a 960 px wide PNG: readable, and small enough to commit


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "docs" / "report.png"
    chromium = shutil.which("chromium")
    if chromium is None:
        print("report_screenshot: install Debian's chromium (apt-get install chromium)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "artifacts"
        subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
                "--llm-record-mode=none",
                f"--llm-artifacts={artifacts}",
                *SUITES,
            ],
            cwd=HERE,
            check=False,  # the failing suite fails on purpose
        )
        report = artifacts / "report.html"
        if not report.exists():
            print(f"report_screenshot: no {report}")
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={SIZE[0]},{SIZE[1]}",
                f"--force-device-scale-factor={SCALE}",
                f"--screenshot={out}",
                report.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"report_screenshot: {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
