"""Every option declared once; resolved CLI > ini > environment > default.

Each `Option` becomes a `--llm-*` flag and its ini twin, so the two can never drift
apart. `Settings` is the frozen result the rest of the plugin reads; nothing else
calls `config.getoption`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pytest


@dataclass(frozen=True)
class Option:
    name: str  # ini key and Settings attribute; the flag is --name with _ → -
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    kind: str = "string"  # string | bool | linelist | float | int
    env: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "llm_hosts",
        "extra LLM endpoints as HOST[/PATH_PREFIX]=PROVIDER (repeatable), e.g. "
        "llm.corp/v2=openai; providers: openai, azure.ai.openai, anthropic",
        default=(),
        kind="linelist",
    ),
    Option(
        "llm_capture_content",
        "put prompts and completions on spans (gen_ai.input.messages / "
        "gen_ai.output.messages); off by default",
        default=False,
        kind="bool",
        env="LLMOBS_CAPTURE_CONTENT",
    ),
)


@dataclass(frozen=True)
class Settings:
    llm_hosts: tuple[str, ...] = ()
    llm_capture_content: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            value, source = _resolve(config, option)
            values[option.name] = _convert(option, value, source)
            sources[option.name] = source
        return cls(**values, sources=sources)

    def header_items(self) -> list[str]:
        """`name=value` for the report header, non-defaults marked with where they came from."""
        items = []
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
            source = self.sources.get(f.name, "default")
            items.append(
                f"{f.name}={shown or '-'}" + ("" if source == "default" else f" ({source})")
            )
        return items


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmobs", "LLM observability (pytest-llmobs)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.name, "default": None, "help": option.help}
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", **kwargs)
        elif option.kind == "linelist":
            group.addoption(option.flag, action="append", metavar="VALUE", **kwargs)
        else:
            if option.choices:
                kwargs["help"] += f" ({'|'.join(option.choices)})"
            group.addoption(option.flag, metavar=option.name.upper(), **kwargs)
        ini_type = {"bool": "bool", "linelist": "linelist"}.get(option.kind, "string")
        parser.addini(option.name, option.help, type=ini_type, default=None)  # type: ignore[arg-type]


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str]:
    cli = config.getoption(option.name, default=None)
    if cli is not None and cli is not False:
        return cli, "cli"
    ini = config.getini(option.name)
    if ini not in (None, [], ""):
        return ini, "ini"
    if option.env and os.environ.get(option.env):
        return os.environ[option.env], "env"
    return option.default, "default"


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": lambda v: (
        v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")
    ),
    "linelist": lambda v: tuple(
        str(x).strip() for x in ([v] if isinstance(v, str) else v) if str(x).strip()
    ),
    "float": float,
    "int": int,
    "string": str,
}


def _convert(option: Option, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        converted = _CONVERTERS[option.kind](value)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"{option.flag} / ini {option.name} ({source}): {value!r} is not a valid {option.kind}"
        ) from None
    if option.choices and converted not in option.choices:
        raise pytest.UsageError(
            f"{option.flag} / ini {option.name} ({source}): {value!r} is not one of "
            f"{', '.join(option.choices)}"
        )
    return converted


def validated(values: Sequence[str], parse: Callable[[str], Any], where: str) -> list[Any]:
    """Parse each value, turning a ValueError into a UsageError that says where it came from."""
    out = []
    for value in values:
        try:
            out.append(parse(value))
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    return out
