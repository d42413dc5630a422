# One command to set up and run the daemon (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

# TORCH_INDEX: a package index with CPU-only PyTorch wheels (used by `make install-ml`).
TORCH_INDEX ?=

.PHONY: run test test-fast explore install install-dev install-ml lint bench clean service-unit

run: $(VENV)/.installed
	$(BIN)/quantum-trader run

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2

# The suite without the end-to-end runs marked slow (daemons, campaigns, training): for
# iterating. `make test` (and CI) runs everything.
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -m "not slow"

# The property tests with new random examples (the suite draws the same ones every run):
# a failure prints the example to pin with @example beside its test. ROUNDS runs of each.
ROUNDS ?= 3
explore: $(VENV)/.installed-dev
	for round in $$(seq $(ROUNDS)); do \
	  HYPOTHESIS_PROFILE=explore $(BIN)/pytest -n 2 -q -p no:cacheprovider \
	    $$(grep -rl --include='test_*.py' '@given' tests) || exit 1; \
	done

# The systemd unit for this checkout and user, on stdout (deploy/systemd; README "Running it as
# a service"). It runs `.venv/bin/quantum-trader`, so run `make install` first.
service-unit:
	@sed -e 's|@ROOT@|$(CURDIR)|g' -e "s|@USER@|$$(id -un)|g" deploy/systemd/quantum-trader.service.in

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# PyTorch for the N-HiTS and PatchTST forecasters (optional: without it they abstain).
install-ml: $(VENV)/.installed
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[ml]'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests also cover the PyTorch forecasters, so they install the `ml` extra (CPU build),
# and drive Debian's chromium headless for the pages (scripts/install-chromium.sh).
$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(BIN)/pip install --quiet -e '.[ml,dev]'
	scripts/install-chromium.sh
	touch $(VENV)/.installed $@

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
