"""The tools a user would otherwise pick, installed for the benchmarks only.

They go into their own target directory (`pip install --target`), never into the project's
venv: there they would register as pytest plugins in every run. A benchmark run puts the
directory on PYTHONPATH only for the runs that use a peer. Only what the venv lacks is
installed there (pip resolves against the venv, then the missing pieces go to the target
with `--no-deps`), so a peer run imports the venv's own pytest, vcrpy and OpenTelemetry.

Run: .venv/bin/python benchmarks/_peers.py [--dir DIR]   (prints the versions found)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".venv" / "bench-peers"

# distribution name → the module a run imports to use it
PEERS = {
    "pytest-recording": "pytest_recording",
    "pytest-llm-vcr": "llm_vcr",
    "opentelemetry-instrumentation-openai": "opentelemetry.instrumentation.openai",
}
# what the machine line reports (from the venv, or the peers directory)
REPORTED = ("pytest-llmobs", "vcrpy", *PEERS, "openai", "pytest", "opentelemetry-sdk")


@dataclass
class Peers:
    """Where the peers live and which of them could not be installed (name → why)."""

    path: Path
    missing: dict[str, str] = field(default_factory=dict)

    def available(self, name: str) -> bool:
        return name not in self.missing

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose Python sees the peers (first on the path)."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.path), env.get("PYTHONPATH", "")) if p
        )
        return env

    def versions(self) -> dict[str, str | None]:
        """Installed versions of REPORTED, asked of a Python that sees the peers."""
        code = (
            "import json, sys\nfrom importlib import metadata\nout = {}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        out[name] = metadata.version(name)\n"
            "    except metadata.PackageNotFoundError:\n        out[name] = None\n"
            "print(json.dumps(out))"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, *REPORTED],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        found: dict[str, str | None] = json.loads(run.stdout)
        return found


def ensure(path: Path = DEFAULT_DIR, *, quiet: bool = True) -> Peers:
    """Install whichever peers are not in `path` yet; a peer that fails is reported, not fatal."""
    peers = Peers(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, module in PEERS.items():
        if _importable(peers, module):
            continue
        problem = _install(path, name, quiet)
        if problem is None and not _importable(peers, module):
            problem = f"installed into {path} but `import {module}` fails"
        if problem is not None:
            peers.missing[name] = problem
    return peers


def _importable(peers: Peers, module: str) -> bool:
    run = subprocess.run(
        [sys.executable, "-c", f"import {module}"], env=peers.env(), capture_output=True
    )
    return run.returncode == 0


def _install(path: Path, name: str, quiet: bool) -> str | None:
    """Install `name` and what the venv lacks of its dependencies into `path`; None on success."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        plan = subprocess.run(
            [*pip, "install", "--dry-run", "--quiet", "--report", str(report), name],
            capture_output=True,
            text=True,
        )
        if plan.returncode != 0 or not report.exists():
            return f"pip could not resolve it: {_last_line(plan.stderr)}"
        wanted = [
            f"{item['metadata']['name']}=={item['metadata']['version']}"
            for item in json.loads(report.read_text())["install"]
        ]
    if not quiet:
        print(f"installing into {path}: {' '.join(wanted)}", file=sys.stderr)
    run = subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--target", str(path), *wanted],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return f"pip install failed: {_last_line(run.stderr)}"
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if "is ignored" not in line]
    return lines[-1] if lines else "(no output)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    peers = ensure(args.dir, quiet=False)
    for name, version in peers.versions().items():
        print(f"{name:<40}{version or 'not installed'}")
    for name, why in peers.missing.items():
        print(f"{name}: {why}")


if __name__ == "__main__":
    main()
