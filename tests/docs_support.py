"""Checking documentation against the code: the code blocks of README.md and the docs/
pages, shell commands and GitHub workflows. Used by tests/test_docs.py and
tests/test_workflows.py."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import textwrap
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pytest_llmobs import cli, settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# A fence may be indented (a block inside a list item): its body is dedented by as much.
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(?P<key>[\w-]+)\s*:\s*(?P<value>.*?)\s*-->$")
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# `<!-- generated: NAME -->` lines are filled in by the site build, not directives for a block.
_NOT_DIRECTIVES = frozenset({"generated"})


@dataclass
class Block:
    lang: str
    text: str
    line: int  # of the opening fence, 1-based
    section: str  # the `## ` heading it is under
    directives: dict[str, str] = field(default_factory=dict)
    file: str = "README.md"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} ({self.section}, ```{self.lang or '(no language)'})"


def doc_files() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def doc_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def markdown_blocks(text: str, file: str = "README.md") -> list[Block]:
    """Every fenced code block, with the `<!-- key: value -->` directives right above it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = "(top)"
    pending: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        directive = _DIRECTIVE.match(line.strip())
        if directive and directive["key"] not in _NOT_DIRECTIVES:
            pending[directive["key"]] = directive["value"]
        opening = _FENCE.match(line)
        if opening:
            start = index
            body = []
            index += 1
            closing = opening["indent"] + opening["fence"]
            while index < len(lines) and lines[index].rstrip() != closing:
                body.append(lines[index])
                index += 1
            text_ = textwrap.dedent("\n".join(body)) + "\n"
            blocks.append(Block(opening["lang"], text_, start + 1, section, pending, file))
            pending = {}
        elif line.strip() and not directive:
            pending = {}
        index += 1
    return blocks


def file_blocks(path: Path) -> list[Block]:
    return markdown_blocks(path.read_text(encoding="utf-8"), doc_name(path))


# -- output matching ------------------------------------------------------------------------
def _normal(line: str) -> str:
    return " ".join(line.split())


def missing_output(expected: str, output: str) -> list[str]:
    """Expected lines (`…` = anything, whitespace runs equal) not found in `output`, in order."""
    actual = [_normal(line) for line in output.splitlines()]
    position = 0
    missing = []
    for line in expected.splitlines():
        pattern = _normal(line).replace("…", "*").replace("[", "[[]")
        if not pattern:
            continue
        for offset, candidate in enumerate(actual[position:]):
            if fnmatchcase(candidate, pattern):
                position += offset + 1
                break
        else:
            missing.append(line)
    return missing


# -- shell commands -------------------------------------------------------------------------
def shell_commands(script: str) -> list[list[str]]:
    """The commands of a shell snippet: comments dropped, `\\` continuations joined, `$ `
    prompts removed, `${{ … }}` expressions replaced by a placeholder word."""
    commands = []
    joined = re.sub(r"\\\n\s*", " ", script)
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        line = _EXPRESSION.sub("1", line)
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s*(?:&&|\|\||;|\||&$|&\s)\s*", line):
            words = _without_redirections(shlex.split(part, comments=True))
            while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                words = words[1:]  # VAR=value before the command
            if words:
                commands.append(words)
    return commands


def _without_redirections(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in (">", ">>", "<", "2>", "2>>"):
            skip = True
        elif not re.fullmatch(r"\d?>>?&?\d*|&", word):
            kept.append(word)
    return kept


def option_flags() -> dict[str, settings.Option]:
    return {option.flag: option for option in settings.OPTIONS}


def check_pytest_args(args: list[str]) -> list[str]:
    """Problems with the `--llm-*` options of a pytest command line (others are pytest's or
    another plugin's business)."""
    flags = option_flags()
    problems = []
    for index, arg in enumerate(args):
        if not arg.startswith("--llm-"):
            continue
        name, has_value, value = arg.partition("=")
        option = flags.get(name)
        if option is None:
            problems.append(f"unknown option {name} (not in settings.OPTIONS)")
            continue
        if option.kind == "bool":
            if has_value:
                problems.append(f"{name} is a switch and takes no value")
            continue
        if not has_value:
            value = args[index + 1] if index + 1 < len(args) else ""
        if option.choices and value not in option.choices:
            problems.append(f"{name}={value!r}: not one of {', '.join(option.choices)}")
    return problems


def check_llmobs_args(args: list[str]) -> list[str]:
    """Parse an `llmobs …` command line with the real parser (nothing is run)."""
    parser = cli.build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = parser.parse_args(args)
    except SystemExit:
        return [f"llmobs {' '.join(args)}: {stderr.getvalue().strip().splitlines()[-1]}"]
    if not getattr(parsed, "func", None):
        return [f"llmobs {' '.join(args)}: no subcommand"]
    return []


def extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"].get("optional-dependencies", {}))


def check_command(words: list[str]) -> list[str]:
    """Problems with one command of a documentation snippet or a workflow step."""
    program, args = words[0], words[1:]
    if program in ("python", "python3") and args[:2] == ["-m", "pytest"]:
        program, args = "pytest", args[2:]
    if program == "pytest":
        return check_pytest_args(args)
    if program == "llmobs":
        return check_llmobs_args(args)
    if program == "make":
        targets = [t for t in args if not t.startswith("-")]
        done = subprocess.run(
            ["make", "-n", "-C", str(ROOT), *targets], capture_output=True, text=True, check=False
        )
        return [] if done.returncode == 0 else [f"make {' '.join(targets)}: {done.stderr.strip()}"]
    if program == "pip" and args[:1] == ["install"]:
        problems = []
        for arg in args[1:]:
            found = re.fullmatch(r"['\"]?(?:pytest-llmobs|\.|-e \.)\[([\w,-]+)\]['\"]?", arg)
            for extra in found[1].split(",") if found else ():
                if extra not in extras():
                    problems.append(f"pip: pyproject.toml has no extra {extra!r}")
        return problems
    return []


# -- GitHub workflows -----------------------------------------------------------------------
def workflow_triggers(data: dict[Any, Any]) -> Any:
    # YAML 1.1 reads the key `on` as True.
    return data.get("on", data.get(True))


def check_workflow(data: Any, where: str) -> list[str]:
    """Structure of a GitHub Actions workflow, and the commands of its `run` steps."""
    if not isinstance(data, dict):
        return [f"{where}: a workflow is a mapping"]
    problems = []
    if workflow_triggers(data) is None:
        problems.append(f"{where}: no `on:` triggers")
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return [*problems, f"{where}: no jobs"]
    for name, job in jobs.items():
        here = f"{where}: job {name}"
        if not isinstance(job, dict) or "runs-on" not in job:
            problems.append(f"{here}: no runs-on")
            continue
        for need in _as_list(job.get("needs")):
            if need not in jobs:
                problems.append(f"{here}: needs unknown job {need!r}")
        steps = job.get("steps")
        if not isinstance(steps, list) or not steps:
            problems.append(f"{here}: no steps")
            continue
        for number, step in enumerate(steps, 1):
            at = f"{here} step {number}"
            if not isinstance(step, dict) or ("uses" in step) == ("run" in step):
                problems.append(f"{at}: a step has exactly one of uses / run")
                continue
            if "uses" in step and not re.fullmatch(r"[\w.-]+/[\w./-]+@[\w./-]+", step["uses"]):
                problems.append(f"{at}: uses {step['uses']!r} is not owner/repo@ref")
            if "run" in step:
                for words in shell_commands(str(step["run"])):
                    problems += [f"{at}: {p}" for p in check_command(words)]
    return problems


def workflow_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def workflow_commands(data: dict[str, Any]) -> list[list[str]]:
    return [
        words for step in workflow_steps(data) for words in shell_commands(str(step.get("run", "")))
    ]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
