# OpsLedger: `make run` brings everything up and runs the operator; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export OPSLEDGER_CACHE ?= $(HOME)/.cache/opsledger

.PHONY: run test setup venv tools debs dev-up dev-down lint crds unit integration bench clean

run: venv debs             ## everything, then the operator in the foreground
	tools/build.sh $(RUN_TOOLS)
	tools/run-local.sh

# What the local environment runs; Gitea and Flux's kustomize-controller are for the tests only,
# so a cold `make run` does not wait for them.
RUN_TOOLS := kubernetes etcd helm prometheus

test: setup lint           ## the whole suite (unit, integration, e2e) after the quality gates
	$(BIN)/pytest

setup: venv debs tools

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

debs:
	tools/install-debian.sh

tools:                     ## build the pinned Go tools into $(OPSLEDGER_CACHE) (cached)
	tools/build.sh

dev-up: setup
	$(BIN)/opsledger dev up

dev-down:
	$(BIN)/opsledger dev down

lint: venv
	$(BIN)/ruff check operator tests bench plugins
	$(BIN)/ruff format --check operator tests bench plugins
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/opsledger crds --check

crds: venv                 ## regenerate crds/ from the models
	$(BIN)/opsledger crds

unit: venv
	$(BIN)/pytest tests/unit

bench: setup               ## benchmarks: figures and ratios, not pass/fail
	$(BIN)/python bench/health_scale.py
	$(BIN)/python bench/slo_scale.py
	$(BIN)/python bench/cmdb_sync.py
	$(BIN)/python bench/webhook_latency.py
	$(BIN)/python bench/window_decisions.py
	$(BIN)/python bench/desk_pages.py
	$(BIN)/python bench/reaction.py

clean:
	-$(BIN)/opsledger dev down
	rm -rf .dev $(VENV)
