# Two commands, each setting itself up on a fresh machine (Python 3.11, pip, make):
#   make demo   - the main job: every example model on every backend, checked and timed
#   make test   - lint (ruff, mypy) and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint pytest bench cutest cutest-quick setup clean docs

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[all,dev,docs]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/diffops demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint pytest

# Side-by-side benchmarks (benchmarks/README.md); results go to bench-results/ unless
# e.g. BENCH_ARGS="--threads 1 --out benchmarks/results".
# The documentation site (mkdocs.yml) into build/docs; --strict fails on a broken
# link or reference.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m benchmarks.diffops_bench $(BENCH_ARGS)

# The CUTEst harness (benchmarks/cutest/README.md): every sif2jax problem with
# n <= 5000, sparse Jacobians and Hessians against dense ones, timed. Hours; runs in
# the background (`nohup make cutest &`): it prints where its log is
# (bench-results/cutest/results.log) and its progress goes to stderr. Options in
# CUTEST_ARGS, e.g. CUTEST_ARGS="--timeout 120 --asdex bench-results/cutest/asdex.csv".
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

cutest: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.cutest $(CUTEST_ARGS)

cutest-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.cutest --quick $(CUTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build/docs
