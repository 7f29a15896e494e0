# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check pytest_llmobs tests benchmarks example_suites
	$(BIN)/ruff format --check pytest_llmobs tests benchmarks example_suites

typecheck: $(STAMP)
	$(BIN)/mypy --strict pytest_llmobs

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/python example_suites/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_capture.py
	$(BIN)/python benchmarks/bench_proxy.py

clean:
	rm -rf $(VENV) llmobs-artifacts .pytest_cache .mypy_cache .ruff_cache
