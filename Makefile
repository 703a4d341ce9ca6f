# poe2openai: `make run` serves, `make test` checks everything, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run demo test lint typecheck unit bench bench-litellm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

run: install
	$(BIN)/python -m poe2openai

demo: install
	$(BIN)/python -m poe2openai --demo

LINT_PATHS := $(wildcard poe2openai tests bench)

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: install
	$(BIN)/python -m bench

# optional: LiteLLM's proxy in its own venv, so `make bench` can compare against it
bench-litellm:
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install --quiet 'litellm[proxy]'

clean:
	rm -rf $(VENV) .venv-litellm build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
