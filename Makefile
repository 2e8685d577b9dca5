# Zoom session logs service. `make run` serves, `make test` tests; both set themselves up.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_DURATION ?= 10
BENCH_ROUNDS ?= 3
BENCH_CONNECTIONS ?= 64
BENCH_PREFILL ?= 3000000
BENCH_ARGS ?=
DEMO_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run demo migrate test lint fmt bench docker clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## /  make \1\t/'

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED) ## create ./.venv with the service (editable) and its dev tools

run: $(INSTALLED) ## serve on 127.0.0.1:8080 (embedded PostgreSQL under ./var when DATABASE_URL is unset)
	$(PY) -m devtools.devdb run

demo: $(INSTALLED) ## with make run serving: request, accept, a session with lost deliveries, reconcile, the picture
	$(PY) -m devtools.demo $(DEMO_ARGS)

migrate: $(INSTALLED) ## apply pending migrations to DATABASE_URL
	$(PY) -m service migrate

test: $(INSTALLED) ## the whole suite on a real PostgreSQL (started here when DATABASE_URL is unset)
	$(PY) -m devtools.devdb test -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff check, format check, and mypy --strict over service/
	$(VENV)/bin/ruff check service devtools tests bench
	$(VENV)/bin/ruff format --check service devtools tests bench
	$(VENV)/bin/mypy

fmt: $(INSTALLED) ## reformat and fix imports
	$(VENV)/bin/ruff check --fix service devtools tests bench
	$(VENV)/bin/ruff format service devtools tests bench

bench: $(INSTALLED) ## ingest benchmark with its baselines (BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_PREFILL)
	$(PY) bench/run.py --duration $(BENCH_DURATION) --rounds $(BENCH_ROUNDS) --connections $(BENCH_CONNECTIONS) \
		--prefill $(BENCH_PREFILL) $(BENCH_ARGS)

docker: ## build the container image (needs a Docker engine)
	docker build -t zoom-session-logs .

clean: ## remove the venv, caches and local data (./var)
	rm -rf $(VENV) var build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
