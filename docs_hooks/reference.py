"""The generated parts of the documentation site, and the checks that keep the pages honest.

Everything here is read from the code at build time, from the same sources `pytest --help`
and `llmobs --help` use: the options table (`pytest_llmobs.settings.OPTIONS`), the markers
and fixtures the plugin registers (asked of pytest itself), `LLMCall` and `Usage` (their
attribute docstrings), the `llmobs` fixture's members, the `llmobs` command's parser, the
fault catalog and the last benchmark results. A page asks for a part with a line
`<!-- generated: NAME -->` (see PARTS). `problems()` lists what the pages fail to mention.

Used by docs_hooks/hooks.py (MkDocs) and tests/test_docs.py.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib.util
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE_PAGE = "reference.md"
PERFORMANCE_PAGE = "performance.md"
RESULTS = ROOT / "benchmarks" / "results.json"
PLACEHOLDER = re.compile(r"^<!--\s*generated:\s*([\w-]+)\s*-->[ \t]*$", re.MULTILINE)

# pytest plugins the reference runs leave out: installed for this repository's own tests.
_NOT_OURS = ("-p", "no:recording", "-p", "no:respx", "-p", "no:langsmith_plugin")


# -- small helpers ---------------------------------------------------------------------------
def cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def plain(text: str) -> str:
    """Help text as Markdown: its `code spans` kept, elsewhere `*`, `<` and `>` shown as is."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("*", "\\*").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts)


def code(text: str) -> str:
    return f"`{text}`"


def table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def docstring(obj: Any) -> str:
    return plain(" ".join((inspect.getdoc(obj) or "").split()))


# -- options -----------------------------------------------------------------------------------
def _options() -> tuple[Any, ...]:
    from pytest_llmobs import settings

    return settings.OPTIONS


def flag_usage(option: Any) -> str:
    """The flag as `pytest --help` shows it: with its metavar, none for a switch."""
    if option.kind == "bool":
        return str(option.flag)
    if option.kind == "linelist":
        return f"{option.flag} VALUE"
    return f"{option.flag} {option.name.upper()}"


def default_text(option: Any) -> str:
    value = option.default
    if value is None or value == "" or value == ():
        return "—"
    if value is False:
        return "off"
    if isinstance(value, tuple):
        return ", ".join(code(v) for v in value)
    return code(str(value))


def _see(links: list[tuple[str, str]]) -> str:
    return (
        (" See " + ", ".join(f"[{title}]({page})" for title, page in links) + ".") if links else ""
    )


def options_table(see: Mapping[str, list[tuple[str, str]]] | None = None) -> str:
    """One entry per option: a heading (anchor: the ini key), where to set it, what it does.
    Headings, not a table: the flags and help texts are too long for table cells."""
    see = see or {}
    parts = []
    for option in _options():
        what = plain(option.help.rstrip(".")) + "."
        if option.choices:
            what += " One of " + ", ".join(code(c) for c in option.choices) + "."
        if option.kind == "linelist":
            what += " Repeatable; one value per line in the ini file."
        where = [f"ini {code(option.name)}"]
        if option.env:
            where.append(f"env {code(option.env)}")
        where.append(f"default {default_text(option)}")
        parts.append(
            f"#### {code(flag_usage(option))} {{ #{option.name} }}\n\n"
            + " · ".join(where)
            + "\n\n"
            + what
            + _see(see.get(option.name, []))
            + "\n"
        )
    return "\n".join(parts)


def env_table() -> str:
    rows = [(code(o.env), code(o.flag), plain(o.help)) for o in _options() if o.env]
    return table(("variable", "same as", "what"), rows)


# -- markers and fixtures, as pytest itself lists them -----------------------------------------
_LISTINGS = {
    "markers": ("--markers",),
    "markers-without-us": ("--markers", "-p", "no:llmobs"),
    "fixtures": ("--fixtures",),
}


@functools.cache
def _listings() -> dict[str, str]:
    """What pytest prints for each of _LISTINGS, in an empty directory (run side by side)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONWARNINGS"] = "ignore"
    with tempfile.TemporaryDirectory() as folder:
        running = {
            name: subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *_NOT_OURS, *args],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name, args in _LISTINGS.items()
        }
        outputs = {name: process.communicate(timeout=300) for name, process in running.items()}
    for name, process in running.items():
        if process.returncode != 0:
            out, err = outputs[name]
            raise RuntimeError(f"pytest {' '.join(_LISTINGS[name])} failed:\n{out}\n{err}")
    return {name: out for name, (out, _) in outputs.items()}


def _marker_lines(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if line.startswith("@pytest.mark."):
            signature, _, what = line[len("@pytest.mark.") :].partition(": ")
            found[signature] = what
    return found


@functools.cache
def markers() -> dict[str, str]:
    """`name(args)` → description, for each marker the plugin registers."""
    ours = _marker_lines(_listings()["markers"])
    others = _marker_lines(_listings()["markers-without-us"])
    return {
        sig: what.removesuffix(" (pytest-llmobs)")
        for sig, what in ours.items()
        if sig not in others
    }


def marker_name(signature: str) -> str:
    return signature.split("(")[0]


@functools.cache
def fixtures() -> dict[str, str]:
    """name → docstring, for each public fixture the plugin defines."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in _listings()["fixtures"].splitlines():
        name, sep, origin = line.partition(" -- ")
        if sep and not line.startswith(" "):
            current = name.split()[0] if "pytest_llmobs" in origin else None
            if current and not current.startswith("_"):
                found[current] = ""
            else:
                current = None
        elif current and line.startswith("    "):
            found[current] = (found[current] + " " + line.strip()).strip()
    return found


def markers_table(see: Mapping[str, list[tuple[str, str]]] | None = None) -> str:
    see = see or {}
    rows = []
    for signature, what in markers().items():
        rows.append((code(signature), plain(what) + _see(see.get(marker_name(signature), []))))
    return table(("marker", "what"), rows)


def fixtures_table(see: Mapping[str, list[tuple[str, str]]] | None = None) -> str:
    see = see or {}
    rows = []
    for name, what in fixtures().items():
        rows.append((code(name), plain(what) + _see(see.get(name, []))))
    return table(("fixture", "what"), rows)


# -- the llmobs fixture, LLMCall, Usage -------------------------------------------------------
def members_table() -> str:
    """Public properties and methods of the object the `llmobs` fixture gives."""
    from pytest_llmobs.fixture import LLMObs

    rows = []
    for name, member in vars(LLMObs).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            shown, doc = f"llmobs.{name}", docstring(member.fget)
        elif callable(member):
            shown, doc = f"llmobs.{name}{_bare_signature(member)}", docstring(member)
        else:
            continue
        rows.append((code(shown), doc))
    return table(("member", "what"), rows)


def _bare_signature(function: Any) -> str:
    """`(a, b=1, *, c=())`: the parameters without `self` and without annotations."""
    signature = inspect.signature(function)
    params = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in signature.parameters.values()
        if p.name != "self"
    ]
    return str(signature.replace(parameters=params, return_annotation=inspect.Signature.empty))


def attribute_docs(cls: type) -> dict[str, str]:
    """A dataclass's attribute docstrings (the string right after each field)."""
    source = inspect.getsource(cls)
    tree = ast.parse(inspect.cleandoc("\n" + source) if source.startswith(" ") else source)
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = plain(" ".join(after.value.value.split()))
    return docs


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "")


def fields_table(cls: type, prefix: str) -> str:
    docs = attribute_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        rows.append((code(f"{prefix}.{f.name}"), code(_type_name(f.type)), docs.get(f.name, "")))
    for name, member in vars(cls).items():
        if isinstance(member, property) and not name.startswith("_"):
            rows.append((code(f"{prefix}.{name}"), "property", docstring(member.fget)))
    return table(("field", "type", "what"), rows)


def undocumented_fields(cls: type) -> list[str]:
    docs = attribute_docs(cls)
    return [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]


# -- the llmobs command -------------------------------------------------------------------------
def subcommands() -> dict[str, argparse.ArgumentParser]:
    """`llmobs` subcommand → its parser (nested ones as `cassettes upgrade`)."""
    from pytest_llmobs import cli

    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prefix}{name}".strip()] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(cli.build_parser(), "")
    return found


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        name = action.metavar or action.dest
        return f"{name}…" if action.nargs in ("+", "*") else str(name)
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    return f"{flags} {action.metavar or action.dest.upper()}"


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    """The help text as `--help` prints it (argparse fills in `%(default)s` and the like)."""
    text = action.help or ""
    try:
        return text % {**vars(action), "prog": parser.prog}
    except (KeyError, TypeError, ValueError):
        return text


def cli_reference(see: Mapping[str, list[tuple[str, str]]] | None = None) -> str:
    see = see or {}
    parts = []
    for name, parser in subcommands().items():
        actions = [
            a
            for a in parser._actions
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        ]
        nested = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        parts.append(f"### `llmobs {name}`\n")
        description = plain((parser.description or "").strip())
        parts.append(description + _see(see.get(f"llmobs {name}", [])).rstrip() + "\n")
        if actions:
            rows = []
            for action in actions:
                default = action.default
                switch = action.nargs == 0  # store_true / store_false: no value to default
                shown = (
                    "—"
                    if switch or default in (None, [], "", argparse.SUPPRESS)
                    else code(str(default))
                )
                rows.append((code(_argument(action)), shown, plain(_help(action, parser))))
            parts.append(table(("argument", "default", "what"), rows) + "\n")
        elif nested:
            parts.append("Its commands follow.\n")
    return "\n".join(parts)


# -- chaos faults and performance ---------------------------------------------------------------
def faults_table() -> str:
    from pytest_llmobs.chaos.catalog import fault_table

    return str(fault_table()).strip()


def _bench_runner() -> Any:
    spec = importlib.util.spec_from_file_location("_bench_run", ROOT / "benchmarks" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def performance_table() -> str:
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    machine = data["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return (
        str(_bench_runner().markdown(RESULTS))
        + f"\n\nMeasured on {machine['cpus']} CPUs, Python {machine['python']}; {versions}."
    )


def missed_goals() -> list[str]:
    """The workloads of the last results whose goal was missed."""
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    return [row["workload"].strip() for row in data["rows"] if row.get("result") == "missed"]


# -- the parts a page can ask for ------------------------------------------------------------
Links = Mapping[str, list[tuple[str, str]]]

PARTS: dict[str, Callable[[Links], str]] = {
    "options": options_table,
    "env": lambda see: env_table(),
    "markers": markers_table,
    "fixtures": fixtures_table,
    "llmobs-members": lambda see: members_table(),
    "llmcall": lambda see: _llmcall_table(),
    "usage": lambda see: _usage_table(),
    "cli": cli_reference,
    "faults": lambda see: faults_table(),
    "performance": lambda see: performance_table(),
}


def _llmcall_table() -> str:
    from pytest_llmobs.calls import LLMCall

    return fields_table(LLMCall, "call")


def _usage_table() -> str:
    from pytest_llmobs.calls import Usage

    return fields_table(Usage, "call.usage")


def expand(markdown: str, see: Links | None = None) -> tuple[str, list[str]]:
    """The page with its placeholders filled in, and the names it asked for that do not exist."""
    unknown: list[str] = []

    def fill(match: re.Match[str]) -> str:
        part = PARTS.get(match[1])
        if part is None:
            unknown.append(match[1])
            return match[0]
        return part(see or {})

    return PLACEHOLDER.sub(fill, markdown), unknown


# -- what the task pages must mention ------------------------------------------------------------
def _mentions(text: str, *names: str) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text) for n in names)


def names_to_document() -> dict[str, tuple[str, ...]]:
    """Key (as in the reference) → the spellings that count as a mention on a page."""
    wanted: dict[str, tuple[str, ...]] = {}
    for option in _options():
        wanted[option.name] = (option.flag, option.name)
    for signature in markers():
        wanted[marker_name(signature)] = (marker_name(signature),)
    for name in fixtures():
        wanted[name] = (name,)
    for name in subcommands():
        wanted[f"llmobs {name}"] = (f"llmobs {name}",)
    return wanted


def where_mentioned(
    pages: Mapping[str, str], titles: Mapping[str, str]
) -> dict[str, list[tuple[str, str]]]:
    """Key → [(page title, page path)] of the task pages (not the reference) mentioning it."""
    found: dict[str, list[tuple[str, str]]] = {}
    for key, spellings in names_to_document().items():
        found[key] = [
            (titles.get(path, path), path)
            for path, text in sorted(pages.items())
            if path != REFERENCE_PAGE and _mentions(text, *spellings)
        ]
    return found


def problems(pages: Mapping[str, str]) -> list[str]:
    """What the pages (path → Markdown) leave undocumented or ask for wrongly."""
    found = []
    for key, where in where_mentioned(pages, {}).items():
        if not where:
            found.append(
                f"{key} is documented on no page but the reference: explain it on the page "
                "of its task"
            )
    from pytest_llmobs.calls import LLMCall, Usage

    for cls in (LLMCall, Usage):
        found += [
            f"{cls.__name__}.{name} has no attribute docstring in pytest_llmobs/calls.py"
            for name in undocumented_fields(cls)
        ]
    for path, text in sorted(pages.items()):
        _, unknown = expand_names(text)
        found += [
            f"{path}: unknown generated part {name!r} (known: {', '.join(PARTS)})"
            for name in unknown
        ]
    performance = pages.get(PERFORMANCE_PAGE)
    if performance is not None:
        for workload in missed_goals():
            if workload not in performance:
                found.append(
                    f"{PERFORMANCE_PAGE}: no paragraph on the missed goal of {workload!r} "
                    "(name the workload as the table does)"
                )
    return found


def expand_names(markdown: str) -> tuple[list[str], list[str]]:
    """(known, unknown) part names a page asks for, without generating anything."""
    names = PLACEHOLDER.findall(markdown)
    return [n for n in names if n in PARTS], [n for n in names if n not in PARTS]


def read_pages(folder: Path = DOCS) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*.md"))
    }
