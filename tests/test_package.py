"""The package as users install it: what the wheel holds, one version, and the wheel run.

`make wheel` (part of `make test`) builds the sdist and the wheel with `python -m build`,
checks them with `twine check`, installs the wheel into a fresh venv beside the locked test
set and runs this file and the docs' examples there, with LLMOBS_TEST_WHEEL naming that venv.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sysconfig
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from docs_support import ROOT

import pytest_llmobs

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def _recipe(target: str) -> str:
    """The lines of a Makefile rule, its prerequisites line included."""
    found = re.search(rf"^{re.escape(target)}:.*?(?=\n\n|\Z)", MAKEFILE, re.M | re.S)
    assert found, f"the Makefile has no `{target}` target"
    return found[0]


def test_the_plugin_under_test_is_the_one_installed(request: pytest.FixtureRequest) -> None:
    """Under `make wheel` the package, and the plugin pytest loaded through its entry point,
    come from the wheel installed in the venv's site-packages, not from the checkout; in the
    development venv they are the checkout's."""
    module = Path(pytest_llmobs.__file__).resolve()
    plugin = request.config.pluginmanager.get_plugin("llmobs")  # the pytest11 entry point
    assert plugin is not None, "pytest did not load the llmobs entry point"
    assert Path(plugin.__file__).resolve() == module.parent / "plugin.py"
    venv = os.environ.get("LLMOBS_TEST_WHEEL")
    if not venv:
        assert module.parent == ROOT / "pytest_llmobs"
        return
    site_packages = Path(sysconfig.get_path("purelib")).resolve()
    assert module.is_relative_to(Path(venv).resolve()), f"{module} is not in {venv}"
    assert module.is_relative_to(site_packages), f"{module} is not in {site_packages}"
    dist = importlib.metadata.distribution("pytest-llmobs")
    assert Path(str(dist.locate_file(""))).resolve() == site_packages
    assert dist.version == pytest_llmobs.__version__
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable"), "an editable install"
    assert direct_url.get("url", "").endswith(".whl"), direct_url


def test_every_file_the_package_reads_is_package_data() -> None:
    """Templates, assets, scenarios and py.typed end up in the wheel: each non-Python file
    under pytest_llmobs/ matches a package-data glob."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["pytest_llmobs"]
    package = ROOT / "pytest_llmobs"
    files = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert "py.typed" in files and any(f.startswith("report/assets/") for f in files)
    missing = [f for f in files if not any(fnmatchcase(f, g) for g in globs)]
    assert not missing, f"not in the wheel (add to [tool.setuptools.package-data]): {missing}"


def test_one_version_and_a_license_file() -> None:
    assert PYPROJECT["project"]["version"] == pytest_llmobs.__version__
    assert PYPROJECT["project"]["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    # PEP 639's license expression needs a setuptools that writes it
    [requires] = PYPROJECT["build-system"]["requires"]
    assert requires == "setuptools>=77"


def test_the_release_tools_are_a_locked_default_group() -> None:
    groups = PYPROJECT["dependency-groups"]
    assert {r.split(">")[0] for r in groups["release"]} == {"build", "twine"}
    assert "release" in PYPROJECT["tool"]["uv"]["default-groups"]
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    for name in ("build", "twine"):
        assert f'\nname = "{name}"\n' in lock, f"uv.lock has no {name}: run `uv lock`"


def test_make_test_builds_installs_and_tests_the_wheel() -> None:
    """`make test` runs `make wheel`: build and check both files, a fresh venv with the wheel
    (not the checkout: no -e, --no-deps beside the locked set, `python -P`), its requirements
    met, and the tests that prove which copy ran."""
    assert "wheel" in _recipe("test").splitlines()[0].split(":", 1)[1].split()
    wheel = _recipe("wheel")
    steps = [
        "rm -rf dist $(WHEEL_VENV)",
        "$(BIN)/python -m build --outdir dist .",
        "$(BIN)/twine check --strict dist/*",
        "$(UV) venv",
        "$(UV) export --locked",
        "--no-emit-project --no-default-groups --group test",
        "pip install --python $(WHEEL_VENV)/bin/python -r $(WHEEL_VENV)/requirements.txt",
        "pip install --python $(WHEEL_VENV)/bin/python --no-deps dist/*.whl",
        "$(UV) pip check --python $(WHEEL_VENV)/bin/python",
        "$(WHEEL_VENV)/bin/llmobs --version",
        "LLMOBS_TEST_WHEEL=$(WHEEL_VENV) $(WHEEL_VENV)/bin/python -P -m pytest",
        "../$(WHEEL_VENV)/bin/python -P -m pytest",
    ]
    positions = [wheel.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "the wheel recipe's steps are out of order"
    assert " -e " not in wheel
    tests = re.search(r"^WHEEL_TESTS := (.*)$", MAKEFILE, re.M)
    assert tests and "tests/test_package.py" in tests[1].split()
    assert "tests/test_docs.py::test_page_blocks_run" in tests[1].split()
    assert "$(WHEEL_VENV)" in _recipe("clean")


def test_installs_say_what_they_do_and_show_progress() -> None:
    """`make demo` and `make test` start by installing; neither install is silent."""
    for target in ("$(UV)", "$(STAMP)"):
        recipe = _recipe(target)
        assert "@echo " in recipe, f"{target}: says nothing before it installs"
        assert "--quiet" not in recipe and " -q " not in recipe, recipe
    assert "$(STAMP)" in _recipe("demo").splitlines()[0]
