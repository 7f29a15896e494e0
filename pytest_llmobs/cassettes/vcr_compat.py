"""pytest-recording's surface, served by pytest-llmobs when pytest-recording is not loaded.

A suite written for pytest-recording runs unchanged: the `vcr`, `default_cassette` and
`block_network` markers, `--record-mode` (an alias of `--llm-record-mode`),
`--block-network`, `--allowed-hosts`, `--allow-private-ips`, `--disable-recording`, and the
fixtures `vcr_config`, `vcr_cassette_dir`, `default_cassette_name`, `record_mode`,
`disable_recording`, `vcr_markers`, `allowed_hosts`, `allow_private_ips`, `block_network`
and `vcr`, each with pytest-recording's meaning. A `vcr` test's cassette is the file
pytest-recording would use; its `vcr_config` is read by vcr_config.py and becomes the
test's cassette context (path, mode, read-only extra cassettes, vcrpy filters and matching).

When pytest-recording is loaded, none of this is registered (no clashing option, no double
fixture) and a test marked `vcr` is pytest-recording's: its pytest-llmobs cassette is off.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pytest

from . import vcr_config

if TYPE_CHECKING:
    from ..settings import Settings
    from .hooks import CassetteHooks

ENTRY_POINT = "recording"  # pytest-recording's pytest11 entry point
MODULE = "pytest_recording.plugin"
MARKERS = (
    "vcr(*extra_cassettes, **vcr_config): the test uses a cassette (pytest-recording's "
    "marker, served by pytest-llmobs)",
    "default_cassette(name): this test's cassette name (pytest-recording's marker)",
    "block_network(allowed_hosts=None, allow_private_ips=False): no network access except "
    "for recording (pytest-recording's marker)",
    "allowed_hosts: regexes of hosts connections may go to while the network is blocked "
    "(pytest-recording)",
)


# -- is pytest-recording going to be loaded? ---------------------------------------------------
def recording_will_load(
    plugin_args: Sequence[str],
    *,
    registered: bool,
    autoload: bool,
    installed: bool,
    env_plugins: str = "",
) -> bool:
    """Whether pytest-recording will be active in this pytest process, decided while
    pytest-llmobs registers its options (pytest-recording may not be loaded yet).

    `plugin_args`: the `-p` values in command-line order (addopts included); `registered`:
    it is already loaded, under its entry point name or its module name; `autoload`: pytest
    loads installed plugins (no PYTEST_DISABLE_PLUGIN_AUTOLOAD / --disable-plugin-autoload);
    `installed`: its `recording` entry point is installed; `env_plugins`: PYTEST_PLUGINS.

    `-p no:recording` blocks the entry point (and unloads it when it came earlier);
    `-p recording` loads it even without autoload; `-p pytest_recording.plugin` loads the
    module under its own name, which `no:recording` does not block. A conftest's
    `pytest_plugins = "pytest_recording.plugin"` is read after options are registered and
    cannot be foreseen: load pytest-recording with `-p` instead.
    """
    if registered:
        return True
    entry_blocked = entry_requested = module_requested = module_blocked = False
    for arg in (a.strip() for a in plugin_args):
        if arg in ("no:recording", "no:pytest_recording"):
            entry_blocked, entry_requested = True, False
        elif arg == "recording":
            entry_blocked, entry_requested = False, True
        elif arg == f"no:{MODULE}":
            module_blocked, module_requested = True, False
        elif arg == MODULE:
            module_requested = not module_blocked
    env = [p.strip() for p in env_plugins.split(",") if p.strip()]
    if MODULE in env and not module_blocked:
        module_requested = True
    if ENTRY_POINT in env and not entry_blocked:
        entry_requested = True
    return module_requested or entry_requested or (autoload and installed and not entry_blocked)


def pytest_recording_will_load(pluginmanager: pytest.PytestPluginManager) -> bool:
    """`recording_will_load` for this pytest process."""
    config = pluginmanager.get_plugin("pytestconfig")
    namespace = getattr(config, "known_args_namespace", None)
    autoload = not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") and not getattr(
        namespace, "disable_plugin_autoload", False
    )
    return recording_will_load(
        list(getattr(namespace, "plugins", None) or ()),
        registered=pytest_recording_loaded(pluginmanager),
        autoload=autoload,
        installed=_installed(),
        env_plugins=os.environ.get("PYTEST_PLUGINS", ""),
    )


def pytest_recording_loaded(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-recording is loaded now (under either name)."""
    if pluginmanager.has_plugin(ENTRY_POINT) or pluginmanager.has_plugin(MODULE):
        return True
    return any(getattr(p, "__name__", None) == MODULE for p in pluginmanager.get_plugins())


def _installed() -> bool:
    return any(ep.name == ENTRY_POINT for ep in metadata.entry_points(group="pytest11"))


# -- registration (plugin.py) ----------------------------------------------------------------
class RecordingHookspecs:
    """pytest-recording's hook, declared so a conftest implementing it is not a plugin
    error; pytest-llmobs has no vcrpy `VCR` to hand it, so a `vcr` test then fails with
    what to do instead."""

    @pytest.hookspec
    def pytest_recording_configure(self, config: pytest.Config, vcr: Any) -> None:
        """pytest-recording's: configure its `VCR` object (not called by pytest-llmobs)."""


def addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    if not pytest_recording_will_load(pluginmanager):
        pluginmanager.add_hookspecs(RecordingHookspecs)


def addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """pytest-recording's flags, with its dests (`config.getoption("--block-network")`
    keeps working), unless pytest-recording registers them itself."""
    if pytest_recording_will_load(pluginmanager):
        return
    group = parser.getgroup(
        "llmobs-recording", "pytest-recording's options (served by pytest-llmobs)"
    )
    group.addoption(
        "--record-mode",
        dest="llm_record_mode",
        default=None,
        choices=vcr_config.RECORD_MODES,
        help="alias of --llm-record-mode (pytest-recording's flag)",
    )
    group.addoption(
        "--block-network",
        action="store_true",
        dest="block_network",
        default=False,
        help="block socket connections except to --allowed-hosts, unless the test records",
    )
    group.addoption(
        "--allowed-hosts",
        dest="allowed_hosts",
        default=None,
        help="comma-separated regexes of hosts allowed while the network is blocked",
    )
    group.addoption(
        "--allow-private-ips",
        action="store_true",
        dest="allow_private_ips",
        default=False,
        help="allow private IP addresses while the network is blocked",
    )
    group.addoption(
        "--disable-recording",
        action="store_true",
        dest="disable_recording",
        default=False,
        help="no cassettes: every request goes to the network (= --llm-record-mode=off)",
    )


def with_disable_recording(config: pytest.Config, settings: Settings) -> Settings:
    """`--disable-recording` (ours, not pytest-recording's) turns cassettes off, whatever
    the record mode says."""
    if pytest_recording_loaded(config.pluginmanager) or not config.getoption(
        "disable_recording", False
    ):
        return settings
    sources = {**settings.sources, "llm_record_mode": "cli"}
    return replace(settings, llm_record_mode="off", sources=sources)


def install(config: pytest.Config, hooks: CassetteHooks) -> None:
    """Serve pytest-recording's markers and fixtures, or leave `vcr` tests to it."""
    if pytest_recording_loaded(config.pluginmanager):
        hooks.vcr_marker_owner = "pytest-recording"
        return
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    from . import vcr_fixtures

    config.pluginmanager.register(vcr_fixtures, "llmobs-vcr")
