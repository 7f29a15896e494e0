"""`make demo`: replay the example suites from their committed cassettes with the plugin,
print the summary, and say where the artifacts went.

The cassettes were recorded against the local provider server
(pytest_llmobs.testing.provider_server) standing in for the real APIs:
`python example_suites/demo.py --record` records them again.
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
    record = "--record" in sys.argv[1:]
    mode = "rewrite" if record else "none"
    artifacts = HERE.parent / "llmobs-artifacts"
    failures = 0
    with ProviderServer() as server:
        server.configure(reply="pytest-llmobs records, replays and checks LLM calls", ttft_s=0.05)
        env = {**os.environ, "LLM_URL": server.url}
        for suite in SUITES:
            print(f"\n=== example suite: {suite} ===", flush=True)
            result = subprocess.run(
                [
                    *(sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"),
                    f"--llm-record-mode={mode}",
                    f"--llm-artifacts={artifacts / suite}",
                    str(HERE / suite),
                ],
                env=env,
                cwd=HERE / suite,
            )
            failures += result.returncode != 0
    print(f"\nArtifacts (JUnit, traces, prompt log, summary): {artifacts}/<suite>/")
    print("Demo done." if not failures else f"Demo: {failures} suite(s) failed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
