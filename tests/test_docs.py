"""The documentation is executed, so it cannot rot: README.md and every page of the site.

Every fenced block is run or checked, page by page (one pytester directory per page, the
blocks in order, against the local provider server; the SDKs find it through
OPENAI_BASE_URL / ANTHROPIC_BASE_URL, as a user's would find the real API):

- ```python: a test file (`# name.py` on its first line names it) runs in an inner pytest
  session and must pass (`<!-- expect: failed=1 passed=2 -->` above it says otherwise;
  `<!-- args: … -->` adds arguments). A block without tests must be named: it is a support
  file (a conftest.py, an app module) for the blocks after it.
- ```text: output of the previous python block's run; each line must appear, in order
  (`…` matches anything, runs of spaces are equal).
- ```console: `$ ` commands are run (`pytest` in-process, `llmobs` as a subprocess) in the
  page's directory, without LLMOBS_RECORD_MODE, as on a user's machine, and a `pytest`
  that replays (record mode none) without OPENAI_API_KEY / ANTHROPIC_API_KEY, as in CI; the
  lines after a command must appear in its output.
- ```sh / ```bash: commands are checked, not run: `--llm-*` flags exist and take valid
  values, `llmobs` lines parse with the real parser, `make` targets and `pip` extras exist.
- ```yaml: a chaos scenario (loaded with the scenario loader), a GitHub workflow (structure
  and run commands) or a Prometheus config (its rule files ship with the package);
  ```ini / ```toml: pytest ini keys exist (and an inner run accepts them), price and alert
  rule files load; ```json: a cassette replays, a baseline file or an alert payload loads.
  `promtool` lines run when Debian's promtool is installed.
- `<!-- not-run: reason -->` above a block skips it; there may be only a few.

The reference page is generated from the code when the site is built (docs_hooks/); here
its sources are compared with what pytest and the CLI report, and `mkdocs build --strict`
is shown to fail on a broken link and on an option no page explains.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
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
    DOCS,
    README,
    ROOT,
    Block,
    check_command,
    check_workflow,
    doc_files,
    doc_name,
    file_blocks,
    markdown_blocks,
    missing_output,
    shell_commands,
)
from inner import INNER_ARGS

from pytest_llmobs import settings
from pytest_llmobs.alerts import load_rules_file as load_alert_rules
from pytest_llmobs.baseline import Baseline
from pytest_llmobs.chaos.scenario import parse_scenario
from pytest_llmobs.pricing import load_rules
from pytest_llmobs.testing import ProviderServer

sys.path.insert(0, str(ROOT / "docs_hooks"))
import reference  # the site's generator, beside mkdocs.yml

MAX_NOT_RUN = 4
README_MAX_LINES = 200
FIRST_EXAMPLE_MAX_LINES = 15
# pytest's own ini keys and those of plugins the docs may show next to ours.
OTHER_INI_KEYS = {"addopts", "markers", "testpaths", "asyncio_mode", "xfail_strict"}

BLOCKS = {doc_name(path): file_blocks(path) for path in doc_files()}
PAGES = [
    name for name, blocks in BLOCKS.items() if any("not-run" not in b.directives for b in blocks)
]
ALL_BLOCKS = [block for blocks in BLOCKS.values() for block in blocks]


class PageRun:
    """Runs one page's blocks in order, in one pytester directory."""

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
        name = name or f"test_docs_{block.line}.py"
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
        elif "blocks" in data:  # an alert webhook's payload (Slack's incoming-webhook shape)
            if not isinstance(data.get("text"), str) or not all(
                isinstance(b, dict) and "type" in b for b in data["blocks"]
            ):
                self.problems.append(f"{block.where}: not a Slack payload (text, typed blocks)")
        else:
            self.problems.append(
                f"{block.where}: neither a cassette, a baseline file nor a webhook payload"
            )

    def _replay_cassette(self, block: Block) -> None:
        """The cassette replays: each recorded request, sent again, gets its answer."""
        folder = self.pytester.path / "cassettes" / "test_docs_cassette"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "docs.yaml").write_text(block.text, encoding="utf-8")
        self.pytester.makepyfile(test_docs_cassette=_REPLAY_TEST)
        result = self.pytester.runpytest(
            *INNER_ARGS, "--llm-record-mode=none", "test_docs_cassette.py"
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

@pytest.mark.llm_cassette("docs")
def test_cassette_replays():
    path = pathlib.Path(__file__).parent / "cassettes/test_docs_cassette/docs.yaml"
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
def docs_env(provider: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> ProviderServer:
    """The SDKs' own environment variables point at the local provider server."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"{provider.url}/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", provider.url)
    return provider


@pytest.mark.parametrize("page", PAGES)
def test_page_blocks_run(
    page: str,
    pytester: pytest.Pytester,
    docs_env: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = PageRun(pytester, monkeypatch)
    for block in BLOCKS[page]:
        if "not-run" not in block.directives:
            run.run(block)
    assert not run.problems, "\n\n".join(run.problems)


def test_blocks_not_run_are_few_and_say_why() -> None:
    skipped = [b for b in ALL_BLOCKS if "not-run" in b.directives]
    assert all(b.directives["not-run"] for b in skipped), [b.where for b in skipped]
    assert len(skipped) <= MAX_NOT_RUN, (
        f"{len(skipped)} blocks are marked not-run (at most {MAX_NOT_RUN}): "
        + ", ".join(b.where for b in skipped)
    )
    assert len(ALL_BLOCKS) - len(skipped) >= 40  # the parser still finds the blocks
    assert any(b.file != "README.md" for b in ALL_BLOCKS)  # and the site's pages


# -- README: one screen, an example, links into the docs -------------------------------------
def test_readme_is_one_screen_with_a_short_first_example() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first = next(b for b in BLOCKS["README.md"] if b.lang == "python")
    assert len(first.text.splitlines()) <= FIRST_EXAMPLE_MAX_LINES, first.where
    assert "llm_budget" in first.text  # a budgeted test, from the README alone


_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_links_exist() -> None:
    """README.md's relative links (into docs/ and the tree) point at files that exist; the
    site's own links are checked by `mkdocs build --strict`."""
    links = _LINK.findall(README.read_text(encoding="utf-8"))
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_named_example_suites_exist() -> None:
    """Paths the docs name under example_suites/ exist."""
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for name in set(re.findall(r"example_suites/[\w./-]*\w", text)):
            assert (ROOT / name).exists(), f"{doc_name(path)} names {name}, which does not exist"


# -- the generated reference ------------------------------------------------------------------
def test_pages_leave_nothing_undocumented() -> None:
    """What the site build warns about (and --strict fails on): every option, marker,
    fixture and `llmobs` command explained on a task page, every LLMCall field described,
    every missed performance goal explained, no unknown generated part."""
    assert reference.problems(reference.read_pages()) == []


def test_an_option_no_page_explains_is_a_problem() -> None:
    pages = reference.read_pages()
    option = settings.OPTIONS[-1]
    gone = {
        path: re.sub(rf"{re.escape(option.flag)}|{re.escape(option.name)}", "(removed)", text)
        for path, text in pages.items()
    }
    found = reference.problems(gone)
    assert any(p.startswith(f"{option.name} is documented on no page") for p in found), found


def test_reference_lists_what_pytest_and_the_cli_report(pytester: pytest.Pytester) -> None:
    """The reference's sources agree with an inner run's `--markers` and `--fixtures` (our
    plugin's entries), and every one of them has a description."""
    result = pytester.runpytest(*INNER_ARGS, "--markers")
    registered = {
        line.split("@pytest.mark.")[1].split("(")[0].split(":")[0]
        for line in result.outlines
        if line.startswith("@pytest.mark.llm")
    }
    documented = {reference.marker_name(sig) for sig in reference.markers()}
    assert {"llm_budget", "llm_chaos", "llm_cassette"} <= registered <= documented
    assert all(reference.markers().values())
    result = pytester.runpytest(*INNER_ARGS, "--fixtures")
    ours = set()
    for line in result.outlines:
        name, sep, origin = line.partition(" -- ")
        if sep and "pytest_llmobs" in origin and not name.startswith("_"):
            ours.add(name.split()[0])
    assert {"llmobs", "llm_cassette"} <= ours == set(reference.fixtures())
    missing = [name for name, doc in reference.fixtures().items() if not doc]
    assert not missing, f"fixtures without a docstring: {missing}"
    text, unknown = reference.expand("<!-- generated: cli -->\n<!-- generated: options -->")
    assert not unknown
    for name in reference.subcommands():
        assert f"### `llmobs {name}`" in text
    for option in settings.OPTIONS:
        assert f"ini `{option.name}`" in text and option.flag in text


def test_cli_help_is_complete() -> None:
    """Every subcommand has a description, every argument a help text."""
    for name, parser in reference.subcommands().items():
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
    for name in reference.subcommands():
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


# -- the site build ------------------------------------------------------------------------------
def _site_project(tmp_path: Path) -> Path:
    """A copy of the docs with this repository's mkdocs.yml and hooks (paths made absolute)."""
    shutil.copytree(DOCS, tmp_path / "docs")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["docs_dir"] = str(tmp_path / "docs")
    config["site_dir"] = str(tmp_path / "site")
    config["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _build(config: Path) -> subprocess.CompletedProcess[str]:
    # Not -q: it drops the warnings that --strict counts.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_site_builds_strict_and_a_broken_link_fails_it(tmp_path: Path) -> None:
    config = _site_project(tmp_path)
    done = _build(config)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    for option in settings.OPTIONS:
        assert option.flag in page, f"{option.flag} is not on the built reference page"
    page_md = tmp_path / "docs" / "budgets.md"
    page_md.write_text(
        page_md.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n",
        encoding="utf-8",
    )
    done = _build(config)
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr, done.stderr[-3000:]


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

- in a list:

  ```sh
  pytest --llm-budget-mode=sometimes
  ```
"""


def test_broken_blocks_are_reported(
    pytester: pytest.Pytester, docs_env: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = markdown_blocks(BROKEN, "broken.md")
    assert [b.lang for b in blocks] == ["sh", "python", "text", "", "sh"]
    assert blocks[1].directives == {"expect": "passed=1"}
    assert blocks[4].text == "pytest --llm-budget-mode=sometimes\n"  # dedented
    run = PageRun(pytester, monkeypatch)
    for block in blocks:
        run.run(block)
    text = "\n".join(run.problems)
    assert "--llm-record-mode='sometimes': not one of none, once" in text
    assert "unknown option --llm-nope" in text
    assert "unrecognized arguments: --no-such-flag" in text
    assert "No rule to make target 'no-such-target'" in text
    assert "a line the run never printed" in text
    assert "no check for this kind of block" in text
    assert "broken.md:" in text
    assert "--llm-budget-mode='sometimes'" in text
    assert "expected" not in text.split("text):")[0]  # the python block itself passed
