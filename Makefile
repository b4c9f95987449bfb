# depth_lightning: the two set-up commands are `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test test-fast docs lint format train bench mutation sweep-demo clean

install:  ## create .venv and install the package with its test, export and demo extras
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,export,demo]'

# pytest-xdist: one worker per core, a test module's tests on one worker (its module fixtures made once)
XDIST := -n auto --dist loadscope

test:  ## the whole test suite (slow tests included), on every core; the 15 slowest tests listed at the end
	$(PY) -m pytest -q $(XDIST) --durations=15

test-fast:  ## skip the tests marked slow
	$(PY) -m pytest -q $(XDIST) -m "not slow"

docs:  ## the reference pages (docs/) as a site in site/
	$(PY) -m mkdocs build --strict

lint:
	$(VENV)/bin/ruff check depth_lightning experiments benchmarks tests
	$(VENV)/bin/ruff format --check depth_lightning experiments benchmarks tests

format:
	$(VENV)/bin/ruff format depth_lightning experiments benchmarks tests
	$(VENV)/bin/ruff check --fix depth_lightning experiments benchmarks tests

train:  ## the default main job (CPU, synthetic scenes, ~8 minutes on 2 cores)
	$(PY) -m depth_lightning.train

clean:
	rm -rf logs outputs multirun .pytest_cache site

sweep-demo:  ## the whole ablation study on synthetic scenes (20 runs, CPU), then its report
	$(PY) -m depth_lightning.train +experiment=synthetic_ablation hydra.sweep.dir=logs/synthetic_ablation/demo --multirun
	$(PY) -m experiments.report logs/synthetic_ablation/demo

bench:  ## every performance number, written to benchmarks/results/<machine>-<date>.json and .md
	$(PY) -m benchmarks

mutation:  ## mutation testing of every module that computes a number (mutmut): benchmarks/results/mutation-<date>.md
	$(PY) -m benchmarks.mutation
