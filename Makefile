# Two commands do all the set-up: `make demo` and `make test` (lint, types, the docs site, tests,
# and the tests again against the built wheel).
#
# Environments, each its own venv, all built by uv (installed by pip into .venv-uv):
#   .venv         the locked set (uv.lock): make test, make demo, make bench
#   .venv-floor   the lowest release of every direct dependency pyproject.toml allows
#   .venv-latest  the newest releases of today
#   .venv-wheel   the built wheel and the locked test set, nothing from the checkout (make wheel)
# `make lock` re-resolves uv.lock (and Phoenix's lock) against today's releases.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

UV_VERSION := 0.13.10
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
# Only the interpreter on the machine: CI reaches package registries, not Python downloads.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Every extra, so the floor and latest sets test each optional part too.
EXTRAS := bedrock,encrypt,kms,otlp,alerts,proxy
# Real suites pin vcrpy 8 (pytest-recording's users): the floor run checks it as well.
VCRPY_PINNED := vcrpy>=8,<9
CASSETTE_TESTS := tests/test_vcrpy_versions.py tests/test_cassettes.py tests/test_cassettes_format.py \
	tests/test_foreign_cassettes.py tests/test_cassettes_vcrpy_export.py tests/test_coexist.py \
	tests/test_vcr_switch.py

.PHONY: test demo lint typecheck unit docs docs-serve wheel bench clean phoenix lock test-floor \
	test-latest

# Each install says what it is about to do (the first one takes a minute or two), then shows
# pip's and uv's own progress.
$(UV):
	@echo "make: installing uv $(UV_VERSION) into $(UV_VENV) (it installs everything else)"
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --progress-bar on 'uv==$(UV_VERSION)'

# --locked: a uv.lock that no longer matches pyproject.toml is an error, never re-resolved.
$(STAMP): pyproject.toml uv.lock | $(UV)
	@echo "make: installing the locked set (uv.lock) into $(VENV): about 150 packages, 400 MB" \
	  "the first time"
	$(UV) sync --locked --all-extras --python $(PYTHON)
	touch $(STAMP)

lock: | $(UV)
	$(UV) lock --upgrade
	$(UV) pip compile --universal --generate-hashes --upgrade --quiet \
	  --python-version 3.11 -o tests/phoenix.lock tests/phoenix.in

# Arize Phoenix, the real backend the live-export test sends spans to (tests/test_export.py):
# its own venv, so its ~850 MB of dependencies stay out of ours; installed from its own lock.
PHOENIX_VENV ?= .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed

# An install that fails (no package index) leaves no venv: the Phoenix test then skips and
# says so (-rs), instead of the whole suite not running.
$(PHOENIX_STAMP): tests/phoenix.lock | $(UV)
	rm -rf $(PHOENIX_VENV)
	( $(UV) venv --quiet --python $(PYTHON) $(PHOENIX_VENV) \
	  && $(UV) pip sync --quiet --python $(PHOENIX_VENV)/bin/python tests/phoenix.lock \
	  && touch $@ ) \
	|| { rm -rf $(PHOENIX_VENV); echo "make phoenix: Arize Phoenix could not be installed; its test will skip"; }

phoenix: $(PHOENIX_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check pytest_llmobs tests benchmarks example_suites docs_hooks
	$(BIN)/ruff format --check pytest_llmobs tests benchmarks example_suites docs_hooks

typecheck: $(STAMP)
	$(BIN)/mypy --strict pytest_llmobs

# -rs: a test that skips says why (no chromium, no promtool, no Phoenix).
PYTEST_ARGS := -q -rs -n 2 tests

unit: $(STAMP) phoenix
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or anchor and on
# anything the hooks in docs_hooks/ find undocumented (an option no page explains …).
# NO_MKDOCS_2_WARNING: Material's banner about its own future, not about these docs.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The package as users get it: `python -m build` makes the sdist and the wheel, `twine check`
# reads their metadata as PyPI will; then a fresh venv gets the wheel (--no-deps) beside its
# dependencies and the test group pinned by uv.lock (hashes checked; registries only), and
# `uv pip check` says the wheel's own requirements are met. The tests that run there are the
# docs' examples, the package checks (which assert the plugin pytest loaded is the venv's copy)
# and the quick-start suite; `python -P` keeps the checkout off sys.path.
WHEEL_VENV := .venv-wheel
WHEEL_TESTS := tests/test_package.py tests/test_docs.py::test_page_blocks_run

wheel: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(UV) venv --python $(PYTHON) $(WHEEL_VENV)
	$(UV) export --locked --quiet --no-emit-project --no-default-groups --group test \
	  -o $(WHEEL_VENV)/requirements.txt
	$(UV) pip install --python $(WHEEL_VENV)/bin/python -r $(WHEEL_VENV)/requirements.txt
	$(UV) pip install --python $(WHEEL_VENV)/bin/python --no-deps dist/*.whl
	$(UV) pip check --python $(WHEEL_VENV)/bin/python
	$(WHEEL_VENV)/bin/llmobs --version
	LLMOBS_TEST_WHEEL=$(WHEEL_VENV) $(WHEEL_VENV)/bin/python -P -m pytest -q -rs $(WHEEL_TESTS)
	cd example_suites && ../$(WHEEL_VENV)/bin/python -P -m pytest -q -p no:cacheprovider \
	  --llm-artifacts=../$(WHEEL_VENV)/artifacts quickstart

test: lint typecheck docs unit wheel

# The floor set: every direct dependency at the lowest release pyproject.toml allows (their
# own dependencies at the newest that fit; check_floors fails if the resolver lifted one). Then
# the cassette tests again with the vcrpy real suites pin.
test-floor: phoenix | $(UV)
	rm -rf .venv-floor
	$(UV) venv --quiet --python $(PYTHON) .venv-floor
	$(UV) pip install --quiet --python .venv-floor/bin/python --resolution lowest-direct \
	  -e '.[$(EXTRAS)]' --group test --group docs
	.venv-floor/bin/python tests/check_floors.py test
	.venv-floor/bin/python -m pytest $(PYTEST_ARGS)
	$(UV) pip install --quiet --python .venv-floor/bin/python '$(VCRPY_PINNED)'
	.venv-floor/bin/python -m pytest -q -rs $(CASSETTE_TESTS)

# The latest set: today's newest releases, whatever the lock says.
test-latest: phoenix | $(UV)
	rm -rf .venv-latest
	$(UV) venv --quiet --python $(PYTHON) .venv-latest
	$(UV) pip install --quiet --python .venv-latest/bin/python --refresh \
	  -e '.[$(EXTRAS)]' --group test --group docs
	.venv-latest/bin/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python example_suites/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) $(UV_VENV) .venv-floor .venv-latest $(WHEEL_VENV) dist build \
	  llmobs-artifacts site \
	  .pytest_cache .mypy_cache .ruff_cache
