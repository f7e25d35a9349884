# Trace Quest — the lab's commands. Everything installs into .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup up down status lab check test backends bench clean

## setup: create .venv and install the lab (run by every other target)
setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Trace Quest needs Python 3.10 or newer; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## up: start the trace backend and the four demo services in the background
up: setup
	@$(BIN)/tracequest up

## down: stop everything `make up` started
down:
	@if [ -x $(BIN)/tracequest ]; then $(BIN)/tracequest down; else echo "Nothing to stop (no .venv yet)."; fi

## status: show what is running
status: setup
	@$(BIN)/tracequest status

## lab: JupyterLab on notebooks/ (installs JupyterLab the first time)
lab: setup
	@$(BIN)/python -c 'import jupyterlab' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[test,lab]'
	$(BIN)/jupyter lab --ip 127.0.0.1 notebooks/

## check: run the quest checks on your code in labs/ and show the quest board
check: setup
	@$(BIN)/tracequest check

## test: the project's own test suite (what CI runs), ending with its 15 slowest steps
test: setup
	$(BIN)/python -m pytest --durations=15

## backends: build the real Jaeger and the lab's Collector, fetch the Zipkin server jar; cached outside the repo
backends: setup
	@$(BIN)/tracequest backends build

## bench: the benchmark scripts, which print numbers (all of them run; those that failed are named at the end)
bench: setup
	@failed=""; for script in benchmarks/*.py; do echo "== $$script"; \
	  $(BIN)/python $$script || failed="$$failed $$script"; done; \
	if [ -n "$$failed" ]; then echo "failed or over budget:$$failed"; exit 1; fi

clean: down
	rm -rf $(VENV) .tracequest
