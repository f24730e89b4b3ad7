# Two commands on a fresh machine: `make demo` runs the product, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/replenish demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) bench/forecast_speed.py
	$(PY) bench/forecast_quality.py
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache replenish.db*
