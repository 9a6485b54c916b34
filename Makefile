# The two commands a new user needs: `make demo` (videos) and `make test` (the suite).
# Both install what is missing first (scripts/bootstrap.sh).
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv

.PHONY: demo test lint bench bench-smoke ui bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(UV) run shorts demo

# Tests on three workers for two cores, whole files each: renders are CPU-bound, but the
# slowest tests (dagster dev waiting for sensor and schedule ticks, the browser test, the
# demo) mostly wait: their files go first (collection order, see tests/conftest.py), and the
# third worker keeps both cores busy while one of them waits.
# The benchmark commands run in their smoke mode (tiny inputs, no times asserted) as two of
# those first tests (tests/test_bench_smoke.py), so that they cannot rot: hence the bench
# group (MoviePy) in pytest's environment.
test:
	@scripts/bootstrap.sh test
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run --group bench pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15

lint: bootstrap
	$(UV) run ruff check . && $(UV) run ruff format --check . && $(UV) run mypy

# The one benchmark command: every ratio of issue 8 in one table, and JSON (bench/README.md).
bench: bootstrap
	$(UV) run --group bench python bench/run.py --json bench/results/bench.json

# Tiny inputs, every section once, no times asserted: keeps the benchmark from rotting.
bench-smoke: bootstrap
	$(UV) run --group bench python bench/run.py --smoke

ui: bootstrap
	mkdir -p $${DAGSTER_HOME:-$$PWD/.shorts/dagster}
	DAGSTER_HOME=$${DAGSTER_HOME:-$$PWD/.shorts/dagster} $(UV) run dagster dev -w workspace.yaml

clean:
	rm -rf .shorts
