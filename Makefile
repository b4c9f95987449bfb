# depth_lightning: the two set-up commands are `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test test-fast lint format train bench sweep-demo clean

install:  ## create .venv and install the package with its test and export extras
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,export]'

test:  ## the whole test suite (slow tests included)
	$(PY) -m pytest -q

test-fast:  ## skip the tests marked slow
	$(PY) -m pytest -q -m "not slow"

lint:
	$(VENV)/bin/ruff check depth_lightning experiments benchmarks tests
	$(VENV)/bin/ruff format --check depth_lightning experiments benchmarks tests

format:
	$(VENV)/bin/ruff format depth_lightning experiments benchmarks tests
	$(VENV)/bin/ruff check --fix depth_lightning experiments benchmarks tests

train:  ## the default main job (CPU, synthetic scenes, ~8 minutes on 2 cores)
	$(PY) -m depth_lightning.train

clean:
	rm -rf logs outputs multirun .pytest_cache

sweep-demo:  ## the whole ablation study on synthetic scenes (20 runs, CPU), then its report
	$(PY) -m depth_lightning.train +experiment=synthetic_ablation hydra.sweep.dir=logs/synthetic_ablation/demo --multirun
	$(PY) -m experiments.report logs/synthetic_ablation/demo

bench:  ## every performance number, written to benchmarks/results/<machine>-<date>.json and .md
	$(PY) -m benchmarks
