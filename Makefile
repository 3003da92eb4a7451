# Two commands on a fresh machine with Python 3.11+, git and make:
#   make run    set up .venv and start the exporter (CONFIG=config.yaml)
#   make test   set up .venv and run lint, types and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.yaml
ARGS ?=

.PHONY: run test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@test -f $(CONFIG) || { echo "no $(CONFIG): cp config.example.yaml $(CONFIG), edit it, and export UNIPOST_API_KEY"; exit 1; }
	@echo "unipost-exporter: http://localhost:9863/ (metrics at /metrics)"
	$(BIN)/unipost-exporter --config.file $(CONFIG) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy exporter

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
