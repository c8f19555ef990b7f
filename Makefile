# Two commands, each setting itself up on a fresh machine (Python 3.11, pip, make):
#   make demo   - the main job: every example model on every backend, checked and timed
#   make test   - lint (ruff, mypy) and the whole test suite
#   make fuzz   - a long differential fuzz campaign (tests/fuzz); DIFFOPS_FUZZ_EXAMPLES
#                 functions in all (default 2000, hours), repros in fuzz-results/
PYTHON ?= python3
# Recipes run in bash with pipefail: pip's output is filtered, its failure is not.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
# Mermaid for the docs' diagrams (see the docs target); major version 11 is the one
# mkdocs-material's diagram support is written for.
MERMAID_VERSION := 11.17.2
MERMAID_DIR := $(VENV)/share/mermaid
MERMAID_STAMP := $(MERMAID_DIR)/.version-$(MERMAID_VERSION)

.PHONY: demo test lint pytest bench cutest cutest-quick setup clean docs docs-browser fuzz

# The first run installs everything (about 1.5 min with a warm pip cache, more without):
# say what, and show each package as pip collects it.
$(STAMP): pyproject.toml Makefile
	@echo "Setting up $(VENV), first run only: pip installs diffops with every backend" \
	  "and the test and docs tools (a few minutes: 1.5 with a warm pip cache on a" \
	  "quiet machine); each package is listed as pip collects it."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "pip install $(TORCH_PIN) -e .[all,dev,docs]:"
	@$(BIN)/python -m pip install --progress-bar off "$(TORCH_PIN)" -e ".[all,dev,docs]" \
	  | sed -un -e 's/^Collecting \([^ ;<>=!~[]*\).*/  collecting \1/p' \
	    -e 's/^Installing collected packages.*/  installing them (the longest step).../p' \
	    -e 's/^Successfully installed .*/  done./p'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/diffops demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# Test files are shared between TEST_WORKERS processes (pytest-xdist; work
# stealing evens out the slow files); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

test: lint pytest

DIFFOPS_FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m fuzz --examples $(DIFFOPS_FUZZ_EXAMPLES) $(FUZZ_ARGS)

# Side-by-side benchmarks (benchmarks/README.md); results go to bench-results/ unless
# e.g. BENCH_ARGS="--threads 1 --out benchmarks/results".
# The documentation site (mkdocs.yml) into build/docs; --strict fails on a broken
# link or reference. Then every page is opened in headless Chromium (Debian package
# chromium): no console errors, no sideways scrolling at 1280 px, formulas typeset,
# diagrams drawn.
# Without Chromium that check is skipped, except with CI set. Screenshots, if wanted:
# make docs-browser SHOTS=/tmp/docs-shots (outside the repository).
docs: $(STAMP) $(MERMAID_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	$(BIN)/python docs/_checks/browser.py build/docs

# Mermaid (the diagrams of docs/design.md) is published with the site, so diagrams
# render offline (docs/_hooks/mermaid.py): its standalone bundle, from the npm
# registry's mermaid package (npm pack: the one tarball, none of its dependencies),
# kept in the environment beside the Python packages ($(MERMAID_DIR)/mermaid.min.js;
# fetched again when MERMAID_VERSION, at the top, changes).
$(MERMAID_STAMP): | $(STAMP)
	@command -v npm >/dev/null || { echo "make docs needs npm (Node.js) for Mermaid"; exit 1; }
	rm -rf $(MERMAID_DIR) && mkdir -p $(MERMAID_DIR)/tmp
	cd $(MERMAID_DIR)/tmp && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null
	tar -xzf $(MERMAID_DIR)/tmp/mermaid-$(MERMAID_VERSION).tgz -C $(MERMAID_DIR)/tmp \
	  package/dist/mermaid.min.js
	mv $(MERMAID_DIR)/tmp/package/dist/mermaid.min.js $(MERMAID_DIR)/mermaid.min.js
	rm -rf $(MERMAID_DIR)/tmp
	touch $@

docs-browser: $(STAMP) $(MERMAID_STAMP)
	$(BIN)/python docs/_checks/browser.py build/docs $(if $(SHOTS),--screenshots $(SHOTS))

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build/docs fuzz-results
