"""pytest-recording's `vcr_config` and `vcr` marker arguments, read into typed values.

Every key vcrpy's `use_cassette` takes is either honoured (with its vcrpy / pytest-recording
meaning) or rejected with a message naming what to use instead; an unknown key is an error
too. Nothing is silently ignored. Pure functions: vcr_compat.py calls them per test.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .matching import VCRPY_MATCHERS, Replacement, RequestFilters

# pytest-recording's record modes (rewrite is its own) and pytest-llmobs's `off`
RECORD_MODES = ("once", "new_episodes", "none", "all", "rewrite", "off")
RECORDING = frozenset({"once", "new_episodes", "all", "rewrite"})
# vcrpy's ignore_localhost
LOCALHOST = frozenset({"localhost", "0.0.0.0", "127.0.0.1"})

_HOOKS = (
    "pytest-llmobs runs no request/response hooks; filter_headers, filter_query_parameters "
    "and filter_post_data_parameters are honoured, secrets are always redacted (more names: "
    "ini llm_redact_keys, llm_pii_patterns), and volatile body fields are left out of "
    "matching with ini llm_match_ignore"
)
UNSUPPORTED: dict[str, str] = {
    "before_record_request": _HOOKS,
    "before_record": _HOOKS,
    "before_record_response": _HOOKS,
    "before_save_interaction": _HOOKS,
    "after_load_interaction": _HOOKS,
    "filter_sensitive_data": "secrets are always redacted by pytest-llmobs; name more with ini "
    "llm_redact_keys, mask PII with --llm-mask-pii / ini llm_pii_patterns",
    "filter_nested_post_data_parameters": "use filter_post_data_parameters (top-level keys), "
    "or ini llm_redact_keys for secret keys at any depth",
    "custom_patches": "pytest-llmobs intercepts the HTTP clients itself (httpx, requests/urllib3, "
    "aiohttp, botocore): remove it",
    "skip_patchers": "pytest-llmobs patches no client through vcrpy: remove it",
    "persister": "pytest-llmobs reads and writes the cassette files itself: remove it",
    "path": "name the cassette with @pytest.mark.default_cassette(NAME) or the "
    "default_cassette_name fixture",
    "path_transformer": "override the vcr_cassette_dir or default_cassette_name fixture",
    "func_path_generator": "override the vcr_cassette_dir or default_cassette_name fixture",
    "cassette_library_dir": "override the vcr_cassette_dir fixture",
    "inject_cassette": "request the vcr fixture, which is the test's cassette",
    "drop_unused_requests": "record the cassette anew with --record-mode=rewrite",
}


@dataclass(frozen=True)
class VcrConfig:
    """What one test's merged `vcr_config` + `vcr` markers ask for."""

    record_mode: str | None = None
    match_on: tuple[Any, ...] | None = None
    filters: RequestFilters | None = None
    allow_playback_repeats: bool = False
    bypass_hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, merged: Mapping[str, Any]) -> VcrConfig:
        """ValueError naming the key (and what to use instead) for anything not honoured."""
        for key in merged:
            if key in UNSUPPORTED:
                raise ValueError(f"{key} is not supported: {UNSUPPORTED[key]}")
            if key not in _KNOWN:
                raise ValueError(
                    f"{key!r} is not a vcrpy / pytest-recording setting; known: "
                    + ", ".join(sorted(_KNOWN | set(UNSUPPORTED)))
                )
        serializer = merged.get("serializer", "yaml")
        if serializer != "yaml":
            raise ValueError(
                f"serializer={serializer!r} is not supported: pytest-llmobs reads vcrpy's "
                "YAML cassettes and writes its own format in .yaml files; remove serializer"
            )
        if merged.get("record_on_exception", True) is not True:
            raise ValueError(
                "record_on_exception=False is not supported: pytest-llmobs keeps what "
                "once/new_episodes recorded when a test fails and saves all/rewrite "
                "recordings only after a pass; remove it"
            )
        mode = merged.get("record_mode")
        if mode is not None:
            mode = str(getattr(mode, "value", mode))  # vcrpy's RecordMode enum, or a string
            if mode not in RECORD_MODES:
                raise ValueError(
                    f"record_mode={mode!r} is not one of {', '.join(RECORD_MODES[:-1])}"
                )
        for key in ("decode_compressed_response", "allow_playback_repeats", "ignore_localhost"):
            if not isinstance(merged.get(key, False), bool):
                raise ValueError(f"{key} must be True or False, got {merged[key]!r}")
        hosts = _names(merged.get("ignore_hosts", ()), "ignore_hosts")
        if merged.get("ignore_localhost"):
            hosts = (*hosts, *LOCALHOST)
        filters = RequestFilters(
            headers=_replacements(merged.get("filter_headers", ()), "filter_headers"),
            query=_replacements(
                merged.get("filter_query_parameters", ()), "filter_query_parameters"
            ),
            post_data=_replacements(
                merged.get("filter_post_data_parameters", ()), "filter_post_data_parameters"
            ),
        )
        return cls(
            record_mode=mode,
            match_on=_match_on(merged["match_on"]) if "match_on" in merged else None,
            filters=filters if filters != RequestFilters() else None,
            allow_playback_repeats=bool(merged.get("allow_playback_repeats", False)),
            bypass_hosts=frozenset(h.lower() for h in hosts),
        )


# honoured keys (decode_compressed_response: replay always serves decompressed bodies, which
# is what clients see either way; allowed_hosts / allow_private_ips: pytest-recording's
# block_network reads them from vcr_config)
_KNOWN = frozenset(
    {
        "record_mode",
        "match_on",
        "filter_headers",
        "filter_query_parameters",
        "filter_post_data_parameters",
        "decode_compressed_response",
        "allow_playback_repeats",
        "ignore_localhost",
        "ignore_hosts",
        "serializer",
        "record_on_exception",
        "allowed_hosts",
        "allow_private_ips",
    }
)


def merge(config: Mapping[str, Any], markers: Sequence[Any]) -> dict[str, Any]:
    """pytest-recording's merge: `vcr_config`, then each `vcr` marker's kwargs, the
    closest marker last (markers come closest first)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"the vcr_config fixture must return a dict, got {type(config).__name__}")
    merged = dict(config)
    for marker in reversed(markers):
        merged.update(marker.kwargs)
    return merged


def _match_on(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"match_on must be a list of vcrpy matcher names, got {value!r}")
    for item in value:
        if not callable(item) and item not in VCRPY_MATCHERS:
            raise ValueError(
                f"match_on: {item!r} is not one of vcrpy's matchers ({', '.join(VCRPY_MATCHERS)}); "
                "a matcher registered through pytest_recording_configure can be given as the "
                "function itself"
            )
    return tuple(value)


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"{key} must be a list of host names, got {value!r}")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of host names, got {value!r}")
    return tuple(value)


def _replacements(value: Any, key: str) -> tuple[Replacement, ...]:
    """vcrpy's forms: names (dropped) or (name, replacement) pairs; a replacement is a
    string, None (dropped) or vcrpy's callable(key, value, request)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{key} must be a list of names or (name, replacement) pairs")
    out: list[Replacement] = []
    for item in value:
        if isinstance(item, str):
            out.append((item, None))
        elif (
            isinstance(item, Sequence)
            and len(item) == 2
            and isinstance(item[0], str)
            and (item[1] is None or isinstance(item[1], str) or callable(item[1]))
        ):
            out.append((item[0], item[1]))
        else:
            raise ValueError(f"{key}: {item!r} is neither a name nor a (name, replacement) pair")
    return tuple(out)


# -- cassette names, as pytest-recording makes them ------------------------------------------
def default_cassette_name(test_class: Any, test_name: str) -> str:
    """`Class.test_name` (the innermost class), characters file systems forbid made `-`."""
    name = f"{test_class.__name__}.{test_name}" if test_class else test_name
    for ch in "<>?%*:|\"'/\\":
        name = name.replace(ch, "-")
    return name


def max_filename_length(directory: str) -> int:
    try:
        return int(os.pathconf(directory if os.path.isdir(directory) else ".", "PC_NAME_MAX"))
    except (AttributeError, ValueError, OSError):
        return 255


def cassette_path(directory: str, name: str, suffix: str = ".yaml") -> str:
    """pytest-recording's path: a name too long for the file system is cut and given an md5
    of the whole; `.yaml` is added unless the name ends with it."""
    limit = max_filename_length(directory)
    if len(name) + len(suffix) > limit:
        digest = hashlib.md5(name.encode()).hexdigest()  # pytest-recording's, same names
        name = f"{name[: limit - len(suffix) - len(digest) - 3]}...{digest}"
    path = os.path.join(directory, name)
    return path if path.endswith(suffix) else path + suffix


def extra_paths(directory: str, markers: Sequence[Any], main: str) -> tuple[str, ...]:
    """The `vcr` markers' positional names: read-only cassettes, relative to the cassette
    directory, used as given (pytest-recording adds no suffix to them)."""
    out: list[str] = []
    for marker in markers:
        for name in marker.args:
            if not isinstance(name, str | os.PathLike) or not str(name).strip():
                raise ValueError(f"extra cassette names must be non-empty strings, got {name!r}")
            path = os.fspath(name)
            path = path if os.path.isabs(path) else os.path.join(directory, path)
            if path != main and path not in out:
                out.append(path)
    return tuple(out)
