"""`make demo`: run the example suites with the plugin and say where the output went.

A local provider server (pytest_llmobs.testing.provider_server) stands in for the real
APIs, so the demo runs offline on any machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytest_llmobs.testing import ProviderServer

HERE = Path(__file__).parent
SUITES = ["quickstart"]


def main() -> int:
    failures = 0
    with ProviderServer() as server:
        server.configure(reply="pytest-llmobs records, replays and checks LLM calls", ttft_s=0.05)
        env = {**os.environ, "LLM_URL": server.url}
        for suite in SUITES:
            print(f"\n=== example suite: {suite} ===", flush=True)
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(HERE / suite)],
                env=env,
                cwd=HERE / suite,
            )
            failures += result.returncode != 0
    print("\nDemo done." if not failures else f"\nDemo: {failures} suite(s) failed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
