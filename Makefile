# Two commands on a fresh machine with Python 3.11+, git and make:
#   make demo   set up .venv and start the exporter against its built-in UniPost simulator
#   make test   set up .venv and run lint, types and the whole test suite
# and, with a real key:
#   make run    start the exporter on CONFIG (default config.yaml)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.yaml
ARGS ?=

.PHONY: demo run simulate accounts test lint format dashboards prometheusrule bench bench-load clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "unipost-exporter demo: open http://localhost:9863/ (metrics: http://localhost:9863/metrics). Ctrl-C stops it."
	$(BIN)/unipost-exporter --demo $(ARGS)

simulate: $(STAMP)
	@echo "UniPost simulator: http://localhost:8080/v1/accounts (key: up_test_simulator). Ctrl-C stops it."
	$(BIN)/unipost-exporter simulate --web.listen-address :8080 $(ARGS)

run: $(STAMP)
	@test -f $(CONFIG) || { echo "no $(CONFIG): cp config.example.yaml $(CONFIG), edit it, and export UNIPOST_API_KEY"; exit 1; }
	@# Check first: the address is printed (from ARGS) only once the config is valid.
	@$(BIN)/unipost-exporter --config.file $(CONFIG) --config.check $(ARGS)
	$(BIN)/unipost-exporter --config.file $(CONFIG) $(ARGS)

accounts: $(STAMP)
	@test -f $(CONFIG) || { echo "no $(CONFIG): cp config.example.yaml $(CONFIG) and export UNIPOST_API_KEY"; exit 1; }
	$(BIN)/unipost-exporter accounts --config.file $(CONFIG) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy exporter

test: lint
	$(BIN)/pytest -n 4

bench: $(STAMP)
	$(BIN)/python -m bench.run --accounts 1000,10000,100000 $(ARGS)

bench-load: $(STAMP)
	$(BIN)/python -m bench.load $(ARGS)

dashboards: $(STAMP)
	$(BIN)/python grafana/generate.py

prometheusrule: $(STAMP)
	$(BIN)/python deploy/kubernetes/prometheusrule.py

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
