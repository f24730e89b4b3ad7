# Two commands on a fresh machine: `make demo` runs the product, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install

.PHONY: demo test test-fast test-service test-infra test-deploy lint bench install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/replenish demo

# Every test: the architecture's arrows, then all four layers (tests/core, service, infra, deploy).
test: lint
	$(PY) -m pytest -q

# The pure core alone, in well under a minute: the loop to run while working.
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/core

test-service: $(STAMP)
	$(PY) -m pytest -q tests/service

test-infra: $(STAMP)
	$(PY) -m pytest -q tests/infra

test-deploy: $(STAMP)
	$(PY) -m pytest -q tests/deploy

lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) bench/forecast_speed.py
	$(PY) bench/forecast_quality.py
	$(PY) bench/ingest.py
	$(PY) bench/hostile.py

clean:
	rm -rf $(VENV) .pytest_cache replenish.db*
