"""pytest-recording's fixtures (same names, scopes and meaning), registered by
vcr_compat.install only when pytest-recording is not loaded. Fixtures only: this module is
a pytest plugin, so every name in it that pytest would read is one of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import vcr_config as rules
from .hooks import HOOKS
from .matching import VCRPY_DEFAULT_MATCH_ON
from .vcr_network import blocked

if TYPE_CHECKING:
    from .cassette import LLMCassette
    from .session import Context

_BLOCK_ARGS = frozenset({"allowed_hosts", "allow_private_ips"})


@dataclass
class VcrTest:
    """A `vcr` test's cassette, as its markers and `vcr_config` chose it."""

    context: Context
    config: rules.VcrConfig


@pytest.fixture(scope="session")
def record_mode(pytestconfig: pytest.Config) -> str:
    """The run's record mode (--record-mode / --llm-record-mode, ini llm_record_mode;
    default none); a `vcr` marker or `vcr_config` record_mode applies per test."""
    return pytestconfig.stash[HOOKS].mode


@pytest.fixture(scope="session")
def disable_recording(pytestconfig: pytest.Config) -> bool:
    """--disable-recording: no cassettes, every request goes to the network."""
    return bool(pytestconfig.getoption("disable_recording", False))


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """vcrpy settings for every `vcr` test (override it); marker kwargs go over it."""
    return {}


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Where a module's `vcr` cassettes live: <test dir>/cassettes/<module name>."""
    module = Path(str(request.path))
    return os.path.join(str(module.parent), "cassettes", module.stem)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """The test's cassette name: `default_cassette(name)`, else `Class.test_name`."""
    marker = request.node.get_closest_marker("default_cassette")
    if marker is not None:
        if not marker.args or not isinstance(marker.args[0], str):
            pytest.fail(
                f"usage error: {request.node.nodeid}: give the cassette name to "
                "@pytest.mark.default_cassette(NAME)",
                pytrace=False,
            )
        name: str = marker.args[0]
        return name
    return rules.default_cassette_name(request.cls, request.node.name)


@pytest.fixture
def vcr_markers(request: pytest.FixtureRequest) -> list[pytest.Mark]:
    """The test's `vcr` markers, closest first."""
    return list(request.node.iter_markers(name="vcr"))


@pytest.fixture
def allowed_hosts(request: pytest.FixtureRequest) -> list[str] | None:
    """Host regexes allowed while the network is blocked: the `block_network` marker's,
    else --allowed-hosts, else `vcr_config`'s allowed_hosts."""
    marker = request.node.get_closest_marker("block_network")
    config = request.getfixturevalue("vcr_config")
    hosts: list[str] | str | None = (
        (marker.kwargs.get("allowed_hosts") if marker is not None else None)
        or request.config.getoption("allowed_hosts", None)
        or config.get("allowed_hosts")
    )
    return hosts.split(",") if isinstance(hosts, str) else hosts


@pytest.fixture
def allow_private_ips(request: pytest.FixtureRequest) -> bool:
    """Whether private IP addresses are allowed while the network is blocked."""
    marker = request.node.get_closest_marker("block_network")
    config = request.getfixturevalue("vcr_config")
    return bool(
        (marker.kwargs.get("allow_private_ips") if marker is not None else None)
        or request.config.getoption("allow_private_ips", False)
        or config.get("allow_private_ips")
    )


@pytest.fixture(autouse=True)
def block_network(request: pytest.FixtureRequest, _llmobs_vcr: VcrTest | None) -> Iterator[None]:
    """--block-network / `block_network`: socket connections fail during the test except
    to the allowed hosts, unless it is a `vcr` test whose cassette is recording."""
    marker = request.node.get_closest_marker("block_network")
    if marker is not None and (marker.args or not set(marker.kwargs) <= _BLOCK_ARGS):
        pytest.fail(
            f"usage error: {request.node.nodeid}: block_network takes only the keyword "
            f"arguments allowed_hosts and allow_private_ips; got args {marker.args!r}, "
            f"kwargs {marker.kwargs!r}",
            pytrace=False,
        )
    if marker is None and not request.config.getoption("block_network", False):
        yield
        return
    if _llmobs_vcr is not None and _llmobs_vcr.context.mode in rules.RECORDING:
        yield  # pytest-recording's rule: only a `vcr` test that records reaches the network
        return
    hosts = request.getfixturevalue("allowed_hosts")
    private = request.getfixturevalue("allow_private_ips")
    with blocked(hosts, private):
        yield


@pytest.fixture(autouse=True)
def vcr(request: pytest.FixtureRequest, _llmobs_vcr: VcrTest | None) -> LLMCassette | None:
    """A `vcr` test's cassette, open (vcrpy's Cassette: `play_count`, `all_played`,
    `requests`, `responses`, `data`); None for other tests and with recording off."""
    if _llmobs_vcr is None or _llmobs_vcr.context.mode == "off":
        return None
    context = _llmobs_vcr.context
    cassette = request.config.stash[HOOKS].session.open(context)
    if cassette is None:
        pytest.fail(f"{context.error}", pytrace=False)
    if _llmobs_vcr.config.allow_playback_repeats:
        for each in (cassette, *context.extras):
            each.allow_playback_repeats = True
    return cassette


@pytest.fixture
def _llmobs_vcr(
    request: pytest.FixtureRequest,
    vcr_markers: list[pytest.Mark],
    record_mode: str,
    disable_recording: bool,
    _llmobs_cassette: None,
) -> VcrTest | None:
    """Points a `vcr` test's cassette context where pytest-recording would have."""
    if not vcr_markers:
        return None
    try:
        return _configure(request, vcr_markers, record_mode, disable_recording)
    except ValueError as exc:
        pytest.fail(
            f"usage error: {request.node.nodeid}: @pytest.mark.vcr / vcr_config: {exc}",
            pytrace=False,
        )


def _configure(
    request: pytest.FixtureRequest,
    markers: list[pytest.Mark],
    record_mode: str,
    disable_recording: bool,
) -> VcrTest | None:
    item, config = request.node, request.config
    hooks = config.stash[HOOKS]
    if item.get_closest_marker("llm_cassette") is not None:
        raise ValueError("a test takes one cassette marker: vcr or llm_cassette, not both")
    if config.pluginmanager.hook.pytest_recording_configure.get_hookimpls():
        raise ValueError(
            "pytest_recording_configure is implemented (it configures pytest-recording's "
            "VCR object, which pytest-llmobs does not have): give custom matchers as "
            "functions in match_on, drop persisters and patches (README: Coming from "
            "pytest-recording)"
        )
    parsed = rules.VcrConfig.parse(rules.merge(request.getfixturevalue("vcr_config"), markers))
    mode = hooks.mode if hooks.cli_mode else (parsed.record_mode or record_mode)
    if mode not in rules.RECORD_MODES:
        raise ValueError(f"record mode {mode!r} is not one of {', '.join(rules.RECORD_MODES)}")
    if disable_recording:
        mode = "off"
    directory = str(request.getfixturevalue("vcr_cassette_dir"))
    path = rules.cassette_path(directory, str(request.getfixturevalue("default_cassette_name")))
    extras = rules.extra_paths(directory, markers, path)
    match_on = None
    if hooks.match_vcrpy_cassettes != "llm":
        match_on = parsed.match_on or VCRPY_DEFAULT_MATCH_ON
    context = hooks.configure(
        item,
        "pytest-recording's vcr marker",
        path=Path(path),
        mode=mode,
        extra_paths=tuple(Path(p) for p in extras),
        rules=hooks.rules.with_vcrpy(match_on, parsed.filters),
        # vcrpy records every host, loopback too, but ignore_hosts / ignore_localhost
        allow_hosts=(),
        bypass_hosts=parsed.bypass_hosts,
    )
    return None if context is None else VcrTest(context, parsed)
