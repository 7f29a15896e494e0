# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit bench clean phoenix

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Arize Phoenix, the real backend the live-export test sends spans to (tests/test_export.py):
# its own venv, so its ~850 MB of dependencies stay out of ours. Re-made when the pin changes.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV ?= .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)

# An install that fails (no package index) leaves no venv: the Phoenix test then skips and
# says so, instead of the whole suite not running.
$(PHOENIX_STAMP):
	( $(PYTHON) -m venv $(PHOENIX_VENV) \
	  && $(PHOENIX_VENV)/bin/python -m pip install --quiet --upgrade pip \
	  && $(PHOENIX_VENV)/bin/python -m pip install --quiet 'arize-phoenix==$(PHOENIX_VERSION)' \
	  && touch $@ ) \
	|| { rm -rf $(PHOENIX_VENV); echo "make phoenix: Arize Phoenix could not be installed; its test will skip"; }

phoenix: $(PHOENIX_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check pytest_llmobs tests benchmarks example_suites
	$(BIN)/ruff format --check pytest_llmobs tests benchmarks example_suites

typecheck: $(STAMP)
	$(BIN)/mypy --strict pytest_llmobs

unit: $(STAMP) phoenix
	$(BIN)/python -m pytest -q tests

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/python example_suites/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) llmobs-artifacts .pytest_cache .mypy_cache .ruff_cache
