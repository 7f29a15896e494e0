# Two commands do all the set-up: `make demo` and `make test` (lint, types, the docs site, tests).
#
# Environments, each its own venv, all built by uv (installed by pip into .venv-uv):
#   .venv         the locked set (uv.lock): make test, make demo, make bench
#   .venv-floor   the lowest release of every direct dependency pyproject.toml allows
#   .venv-latest  the newest releases of today
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

.PHONY: test demo lint typecheck unit docs docs-serve bench clean phoenix lock test-floor test-latest

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

# --locked: a uv.lock that no longer matches pyproject.toml is an error, never re-resolved.
$(STAMP): pyproject.toml uv.lock | $(UV)
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
PYTEST_ARGS := -q -rs tests

unit: $(STAMP) phoenix
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or anchor and on
# anything the hooks in docs_hooks/ find undocumented (an option no page explains …).
# NO_MKDOCS_2_WARNING: Material's banner about its own future, not about these docs.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

test: lint typecheck docs unit

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
	rm -rf $(VENV) $(PHOENIX_VENV) $(UV_VENV) .venv-floor .venv-latest llmobs-artifacts site \
	  .pytest_cache .mypy_cache .ruff_cache
