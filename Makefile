# poe2openai: `make run` serves, `make test` checks everything, `make bench` measures,
# `make soak` runs an adversarial load against the gateway (not part of `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev run demo test lint typecheck unit agents test-agents bench bench-litellm soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the gateway alone
install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# the gateway and what its tests, linters and benchmark use
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

run: install
	$(BIN)/python -m poe2openai

demo: install
	$(BIN)/python -m poe2openai --demo

LINT_PATHS := $(wildcard poe2openai tests bench)

lint: install-dev
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev
	$(BIN)/python -m pytest -q -rs

# the coding-agent CLIs tests/test_agents.py drives (pinned in .ci/agents/package.json, installed
# there once); needs npm. If the install fails, make goes on and those tests skip, saying why.
agents:
	-$(PYTHON) tests/agent_cli.py install

test-agents: install-dev agents
	$(BIN)/python -m pytest -q -rs -m agents

test: lint typecheck agents unit

bench: install-dev
	$(BIN)/python -m bench

# 20,000 mixed and hostile requests; leaks, hangs, malformed answers or logged errors fail it.
# Options through SOAK_ARGS, e.g. `make soak SOAK_ARGS=--quick`.
SOAK_ARGS ?=
soak: install-dev
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# optional: LiteLLM's proxy in its own venv, so `make bench` can compare against it
bench-litellm:
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install --quiet 'litellm[proxy]'

clean:
	rm -rf $(VENV) .venv-litellm build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis .ci/agents/node_modules
