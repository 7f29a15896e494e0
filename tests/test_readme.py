"""The README is executed, so it cannot rot.

Every fenced block is run or checked, section by section (one pytester directory per `##`
section, against the local provider server; the SDKs find it through OPENAI_BASE_URL /
ANTHROPIC_BASE_URL, as a user's would find the real API):

- ```python: a test file (`# name.py` on its first line names it) runs in an inner pytest
  session and must pass (`<!-- expect: failed=1 passed=2 -->` above it says otherwise;
  `<!-- args: … -->` adds arguments). A block without tests must be named: it is a support
  file (a conftest.py, an app module) for the blocks after it.
- ```text: output of the previous python block's run; each line must appear, in order
  (`…` matches anything, runs of spaces are equal).
- ```console: `$ ` commands are run (`pytest` in-process, `llmobs` as a subprocess) in the
  section's directory, without LLMOBS_RECORD_MODE, as on a user's machine, and a `pytest`
  that replays (record mode none) without OPENAI_API_KEY / ANTHROPIC_API_KEY, as in CI; the
  lines after a command must appear in its output.
- ```sh / ```bash: commands are checked, not run: `--llm-*` flags exist and take valid
  values, `llmobs` lines parse with the real parser, `make` targets and `pip` extras exist.
- ```yaml: a chaos scenario (loaded with the scenario loader), a GitHub workflow (structure
  and run commands) or a Prometheus config (its rule files ship with the package);
  ```ini / ```toml: pytest ini keys exist (and an inner run accepts them), price and alert
  rule files load; ```json: a cassette replays, a baseline file loads. `promtool` lines run
  when Debian's promtool is installed.
- `<!-- not-run: reason -->` above a block skips it; there may be only a few.

The reference tables are compared with the code: options with settings.OPTIONS, markers
with the registered ones, fixtures with the plugin's, the `llmobs` subcommands with the CLI.
"""

from __future__ import annotations

import argparse
import configparser
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from docs_support import (
    ROOT,
    Block,
    check_command,
    check_workflow,
    code_spans,
    missing_output,
    option_flags,
    readme_blocks,
    sections,
    shell_commands,
    subcommands,
    table_rows,
)
from inner import INNER_ARGS

from pytest_llmobs import settings
from pytest_llmobs.alerts import load_rules_file as load_alert_rules
from pytest_llmobs.baseline import Baseline
from pytest_llmobs.chaos.catalog import fault_table
from pytest_llmobs.chaos.scenario import parse_scenario
from pytest_llmobs.pricing import load_rules
from pytest_llmobs.testing import ProviderServer

MAX_NOT_RUN = 4
# pytest's own ini keys and those of plugins the README may show next to ours.
OTHER_INI_KEYS = {"addopts", "markers", "testpaths", "asyncio_mode", "xfail_strict"}

BLOCKS = readme_blocks()
SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS if "not-run" not in b.directives))


class SectionRun:
    """Runs one README section's blocks in order, in one pytester directory."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.last_output: str | None = None
        self.problems: list[str] = []

    def run(self, block: Block) -> None:
        handler = getattr(self, f"do_{block.lang or 'none'}", None)
        if handler is None:
            self.problems.append(
                f"{block.where}: no check for this kind of block; give it a language this test "
                "knows (python, text, console, sh, bash, yaml, ini, toml, json) or mark it "
                "<!-- not-run: reason -->"
            )
            return
        handler(block)

    # -- python and its output --------------------------------------------------------------
    def do_python(self, block: Block) -> None:
        first = block.text.splitlines()[0] if block.text.strip() else ""
        name = first[2:].strip() if first.startswith("# ") and first.endswith(".py") else None
        is_test = "def test_" in block.text
        if name is None and not is_test:
            self.problems.append(
                f"{block.where}: a python block without tests must be a named support file "
                "(first line `# name.py`)"
            )
            return
        name = name or f"test_readme_{block.line}.py"
        (self.pytester.path / name).write_text(block.text, encoding="utf-8")
        if not is_test:
            return
        args = block.directives.get("args", "").split()
        result = self.pytester.runpytest(*INNER_ARGS, *args, name)
        self.last_output = "\n".join(result.outlines + result.errlines)
        expected = _outcomes(block.directives.get("expect", ""))
        outcomes = {k: v for k, v in result.parseoutcomes().items() if k in _OUTCOME_KEYS}
        if expected:
            if {k: outcomes.get(k, 0) for k in expected} != expected:
                self.problems.append(
                    f"{block.where}: expected {expected}, got {outcomes}\n{self.last_output}"
                )
        elif result.ret != 0 or not outcomes.get("passed"):
            self.problems.append(
                f"{block.where}: the example does not pass ({outcomes})\n{self.last_output}"
            )

    def do_text(self, block: Block) -> None:
        if self.last_output is None:
            self.problems.append(f"{block.where}: output block with no run before it")
            return
        missing = missing_output(block.text, self.last_output)
        if missing:
            self.problems.append(
                f"{block.where}: these lines are not in the output of the run above:\n  "
                + "\n  ".join(missing)
                + f"\n--- output ---\n{self.last_output}"
            )

    # -- shell --------------------------------------------------------------------------------
    def do_console(self, block: Block) -> None:
        for command, expected in _console_steps(block.text):
            [words] = shell_commands(command)
            if words[0] == "pytest":
                output, ok = self._pytest(words[1:], block)
            elif words[0] == "llmobs":
                output, ok = self._llmobs(words[1:])
            else:
                self.problems.append(f"{block.where}: console blocks run pytest and llmobs only")
                continue
            self.last_output = output
            if not ok:
                self.problems.append(f"{block.where}: `{command}` failed:\n{output}")
            missing = missing_output(expected, output)
            if missing:
                self.problems.append(
                    f"{block.where}: `{command}` did not print:\n  "
                    + "\n  ".join(missing)
                    + f"\n--- output ---\n{output}"
                )

    def _pytest(self, args: list[str], block: Block) -> tuple[str, bool]:
        with self.monkeypatch.context() as patch:
            patch.delenv("LLMOBS_RECORD_MODE", raising=False)  # the user's defaults
            if _record_mode(args) == "none":  # a replay, as in CI: no API key at all
                for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
                    patch.delenv(name, raising=False)
            result = self.pytester.runpytest(*INNER_ARGS, *args)
        output = "\n".join(result.outlines + result.errlines)
        expected = _outcomes(block.directives.get("expect", ""))
        if expected:
            outcomes = result.parseoutcomes()
            return output, {k: outcomes.get(k, 0) for k in expected} == expected
        return output, result.ret == 0

    def _llmobs(self, args: list[str]) -> tuple[str, bool]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_llmobs.cli", *args],
            cwd=self.pytester.path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.stdout + done.stderr, done.returncode == 0

    def do_sh(self, block: Block) -> None:
        folder = ROOT
        checked = 0
        for words in shell_commands(block.text):
            if words[0] == "cd" and len(words) == 2:
                folder = folder / words[1]
            elif words[0] == "promtool":
                self._promtool(words, folder, block)
                checked += 1
            elif words[0] in ("make", "pip", "pytest", "llmobs", "python"):
                self.problems += [f"{block.where}: {p}" for p in check_command(words)]
                checked += 1
        if not checked:
            self.problems.append(f"{block.where}: no pytest / llmobs / make / pip command in it")

    do_bash = do_sh

    # -- configuration --------------------------------------------------------------------
    def do_yaml(self, block: Block) -> None:
        data = yaml.safe_load(block.text)
        if isinstance(data, dict) and "jobs" in data:
            self.problems += check_workflow(data, block.where)
        elif isinstance(data, dict) and "scrape_configs" in data:
            self._prometheus_config(data, block)
        elif isinstance(data, dict | list) and (isinstance(data, list) or "rules" in data):
            parse_scenario(block.text, block.where)  # raises ChaosConfigError, with the line
        else:
            self.problems.append(f"{block.where}: neither a chaos scenario nor a workflow")

    def do_ini(self, block: Block) -> None:
        parser = configparser.ConfigParser()
        parser.read_string(block.text)
        if not parser.has_section("pytest"):
            self.problems.append(f"{block.where}: an ini block is a [pytest] section")
            return
        self._ini_keys(list(parser["pytest"]), block)
        self.pytester.makeini(block.text)
        result = self.pytester.runpytest(*INNER_ARGS, "--collect-only", "-q")
        if result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            output = "\n".join(result.outlines + result.errlines)
            self.problems.append(f"{block.where}: pytest rejects this ini:\n{output}")

    def _ini_keys(self, keys: list[str], block: Block) -> None:
        known = {option.name for option in settings.OPTIONS} | OTHER_INI_KEYS
        self.problems += [f"{block.where}: unknown ini key {k!r}" for k in keys if k not in known]

    def do_toml(self, block: Block) -> None:
        data = tomllib.loads(block.text)
        if "models" in data:
            path = self.pytester.path / "prices.toml"
            path.write_text(block.text, encoding="utf-8")
            assert load_rules(path), block.where
        elif "tool" in data:
            self._ini_keys(list(data["tool"]["pytest"]["ini_options"]), block)
        elif "alert" in data:
            path = self.pytester.path / "alerts.toml"
            path.write_text(block.text, encoding="utf-8")
            assert len(load_alert_rules(path)) == len(data["alert"]), block.where
        else:
            self.problems.append(f"{block.where}: neither prices, alert rules nor pyproject")

    def do_json(self, block: Block) -> None:
        data = json.loads(block.text)
        if "llmobs_cassette" in data:
            self._replay_cassette(block)
        elif data.get("format") == "pytest-llmobs-baseline":
            path = self.pytester.path / "baseline.json"
            path.write_text(block.text, encoding="utf-8")
            assert Baseline.load(path).tests, block.where
        else:
            self.problems.append(f"{block.where}: neither a cassette nor a baseline file")

    def _replay_cassette(self, block: Block) -> None:
        """The cassette replays: each recorded request, sent again, gets its answer."""
        folder = self.pytester.path / "cassettes" / "test_readme_cassette"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "readme.yaml").write_text(block.text, encoding="utf-8")
        self.pytester.makepyfile(test_readme_cassette=_REPLAY_TEST)
        result = self.pytester.runpytest(
            *INNER_ARGS, "--llm-record-mode=none", "test_readme_cassette.py"
        )
        if result.ret != 0:
            output = "\n".join(result.outlines)
            self.problems.append(f"{block.where}: the cassette does not replay:\n{output}")

    # -- Prometheus ------------------------------------------------------------------------
    def _prometheus_config(self, data: dict[str, Any], block: Block) -> None:
        shipped = {p.name for p in (ROOT / "pytest_llmobs" / "prometheus").glob("*.yml")}
        for rule_file in data.get("rule_files", []):
            if Path(rule_file).name not in shipped:
                self.problems.append(f"{block.where}: no rule file {Path(rule_file).name}")
        for job in data["scrape_configs"]:
            if not job.get("job_name") or not job.get("static_configs"):
                self.problems.append(f"{block.where}: scrape config without job or targets")

    def _promtool(self, words: list[str], folder: Path, block: Block) -> None:
        files = [w for w in words[3:] if not w.startswith("-")]
        missing = [f for f in files if not (folder / f).exists()]
        if missing:
            self.problems.append(f"{block.where}: promtool: no file {missing}")
        elif shutil.which("promtool"):  # Debian's prometheus package
            done = subprocess.run(words, cwd=folder, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self.problems.append(f"{block.where}: {' '.join(words)}:\n{done.stdout}")


_REPLAY_TEST = """
import json, pathlib, httpx, pytest

@pytest.mark.llm_cassette("readme")
def test_cassette_replays():
    path = pathlib.Path(__file__).parent / "cassettes/test_readme_cassette/readme.yaml"
    for item in json.loads(path.read_text())["interactions"]:
        request, response = item["request"], item["response"]
        answer = httpx.request(request["method"], request["uri"], json=request["body"]["json"])
        assert answer.status_code == response["status"]
"""
_OUTCOME_KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")


def _outcomes(text: str) -> dict[str, int]:
    pairs = (item.split("=") for item in text.split())
    return {key: int(value) for key, value in pairs}


def _console_steps(text: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], ""))
        elif steps and steps[-1][0].endswith("\\"):
            steps[-1] = (steps[-1][0] + "\n" + line, "")
        elif steps:
            steps[-1] = (steps[-1][0], steps[-1][1] + line + "\n")
    return steps


def _record_mode(args: list[str]) -> str:
    """The record mode a console `pytest` command runs in (none unless it says otherwise)."""
    for i, arg in enumerate(args):
        if arg.startswith("--llm-record-mode="):
            return arg.split("=", 1)[1]
        if arg == "--llm-record-mode" and i + 1 < len(args):
            return args[i + 1]
    return "none"


@pytest.fixture
def readme_env(provider: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> ProviderServer:
    """The SDKs' own environment variables point at the local provider server."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"{provider.url}/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", provider.url)
    return provider


@pytest.mark.parametrize("section", SECTIONS)
def test_readme_section_runs(
    section: str,
    pytester: pytest.Pytester,
    readme_env: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = SectionRun(pytester, monkeypatch)
    for block in BLOCKS:
        if block.section == section and "not-run" not in block.directives:
            run.run(block)
    assert not run.problems, "\n\n".join(run.problems)


def test_blocks_not_run_are_few_and_say_why() -> None:
    skipped = [b for b in BLOCKS if "not-run" in b.directives]
    assert all(b.directives["not-run"] for b in skipped), [b.where for b in skipped]
    assert len(skipped) <= MAX_NOT_RUN, (
        f"{len(skipped)} README blocks are marked not-run (at most {MAX_NOT_RUN}): "
        + ", ".join(b.where for b in skipped)
    )
    assert len(BLOCKS) - len(skipped) >= 15  # the parser still finds the blocks


# -- reference tables ----------------------------------------------------------------------
def _reference() -> str:
    return sections().get("Reference", "")


def test_option_table_matches_settings() -> None:
    rows = table_rows(_reference(), "flag")
    documented = {code_spans(row[0])[0].split()[0]: row for row in rows if code_spans(row[0])}
    flags = option_flags()
    missing = [option for flag, option in flags.items() if flag not in documented]
    suggestions = [
        f"| `{o.flag}{'' if o.kind == 'bool' else ' ' + o.name.upper()}` | `{o.name}` | "
        f"{o.default!r} | {o.help} |"
        for o in missing
    ]
    assert not missing, (
        "README Reference → Options: these options have no row; add (and edit) these rows:\n"
        + "\n".join(suggestions)
    )
    stale = sorted(set(documented) - set(flags))
    assert not stale, f"README Options rows for options that do not exist: {stale}"
    wrong_ini = [
        flag
        for flag, row in documented.items()
        if flags[flag].name not in code_spans(row[1] if len(row) > 1 else "")
    ]
    assert not wrong_ini, f"README Options rows whose ini column is not the option's: {wrong_ini}"


def test_marker_table_matches_registered_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*INNER_ARGS, "--markers")
    registered = {
        line.split("@pytest.mark.")[1].split("(")[0].split(":")[0]
        for line in result.outlines
        if line.startswith("@pytest.mark.llm")
    }
    assert {"llm_budget", "llm_chaos", "llm_cassette"} <= registered
    rows = table_rows(_reference(), "marker")
    documented = {code_spans(row[0])[0].split("(")[0] for row in rows if code_spans(row[0])}
    assert not registered - documented, (
        f"README Reference → Markers: add rows for {sorted(registered - documented)}"
    )
    assert not documented - registered, (
        f"README Markers rows for markers that are not registered: "
        f"{sorted(documented - registered)}"
    )


def test_fixture_table_matches_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*INNER_ARGS, "--fixtures")
    ours = set()
    for line in result.outlines:
        name, sep, origin = line.partition(" -- ")
        if sep and "pytest_llmobs" in origin and not name.startswith("_"):
            ours.add(name.split()[0])
    assert {"llmobs", "llm_cassette"} <= ours
    rows = table_rows(_reference(), "fixture")
    documented = {code_spans(row[0])[0] for row in rows if code_spans(row[0])}
    assert not ours - documented, (
        f"README Reference → Fixtures: add rows for {sorted(ours - documented)}"
    )
    assert not documented - ours, (
        f"README Fixtures rows for no fixture: {sorted(documented - ours)}"
    )


def test_cli_table_matches_the_subcommands() -> None:
    commands = subcommands()
    rows = table_rows(_reference(), "command")
    documented = {}
    for row in rows:
        spans = code_spans(row[0])
        if spans and spans[0].startswith("llmobs "):
            words = spans[0].split()[1:]
            name = words[: next((i for i, w in enumerate(words) if not w.isalpha()), len(words))]
            documented[" ".join(w for w in name if w.islower())] = row
    top_level = {name for name in commands if " " not in name}
    missing = sorted(n for n in commands if n not in documented and n not in top_level)
    missing += sorted(n for n in top_level if not any(d.split()[0] == n for d in documented))
    assert not missing, f"README Reference → The llmobs command: add rows for {missing}"
    stale = sorted(d for d in documented if d not in commands)
    assert not stale, f"README llmobs rows for subcommands that do not exist: {stale}"
    for name, row in documented.items():
        text = " ".join(row)
        flags = [
            opt
            for action in commands[name]._actions
            for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"
        ]
        undocumented = [flag for flag in flags if flag not in text]
        assert not undocumented, f"README row for `llmobs {name}` does not mention {undocumented}"


def test_cli_help_is_complete() -> None:
    """Every subcommand has a description, every argument a help text."""
    for name, parser in subcommands().items():
        assert parser.description, f"llmobs {name}: no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # its choices are subcommands, checked themselves
            if action.help is None:
                label = "/".join(action.option_strings) or action.dest
                raise AssertionError(f"llmobs {name}: {label} has no help text")
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest_llmobs.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    for name in subcommands():
        if " " not in name:
            assert name in help_text, f"`llmobs --help` does not list {name}"


def test_pytest_help_shows_every_flag_and_ini_key(tmp_path: Path) -> None:
    """`pytest --help` runs (argparse %-formats help texts: a bare "%" broke it) and shows
    each flag with its help and each ini twin."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", *INNER_ARGS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = " ".join(result.stdout.split())
    for option in settings.OPTIONS:
        assert option.flag in result.stdout, f"{option.flag} missing from pytest --help"
        assert f"{option.name} (" in result.stdout, f"ini {option.name} missing"
        assert " ".join(option.help.split())[:40] in text, f"{option.flag}: help text missing"


def test_readme_example_suites_exist() -> None:
    """Paths the README names under example_suites/ exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in set(re.findall(r"example_suites/[\w./-]*\w", text)):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_a_first_example_of_at_most_30_lines() -> None:
    first = next(b for b in BLOCKS if b.lang == "python")
    assert first.section.startswith("Your first test"), first.where
    assert len(first.text.splitlines()) <= 30, first.where
    assert "llm_budget" in first.text  # a budgeted test, from the README alone


def test_fault_table_is_the_catalog() -> None:
    """The README's fault table is what `llmobs proxy --list-faults` prints."""
    documented = table_rows(sections()["Chaos"], "fault")
    catalog = table_rows(fault_table(), "fault")
    assert documented == catalog, (
        "README Chaos: the fault table differs from the catalog; paste the output of "
        "`llmobs proxy --list-faults`:\n" + fault_table()
    )


# -- the checks themselves catch what they are for --------------------------------------------
BROKEN = """
## Broken

```sh
pytest --llm-record-mode=sometimes --llm-nope
llmobs proxy --no-such-flag
make no-such-target
```

<!-- expect: passed=1 -->
```python
def test_passes(llmobs):
    assert True
```

```text
a line the run never printed
```

```
no language
```
"""


def test_broken_blocks_are_reported(
    pytester: pytest.Pytester, readme_env: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = readme_blocks(BROKEN)
    assert [b.lang for b in blocks] == ["sh", "python", "text", ""]
    assert blocks[1].directives == {"expect": "passed=1"}
    run = SectionRun(pytester, monkeypatch)
    for block in blocks:
        run.run(block)
    text = "\n".join(run.problems)
    assert "--llm-record-mode='sometimes': not one of none, once" in text
    assert "unknown option --llm-nope" in text
    assert "unrecognized arguments: --no-such-flag" in text
    assert "No rule to make target 'no-such-target'" in text
    assert "a line the run never printed" in text
    assert "no check for this kind of block" in text
    assert "expected" not in text.split("text):")[0]  # the python block itself passed
