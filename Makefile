# openDRP: two commands. `make demo` and `make test` each create .venv if missing and install what they need.
SHELL := /bin/bash
VENV := .venv
# Python 3.12: a plain python3.12 that works, else pyenv's 3.12.x.
PYTHON312 := $(shell \
  if python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo python3.12; \
  elif command -v pyenv >/dev/null 2>&1; then \
    v=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$$' | sort -V | tail -1); \
    [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin/python3.12"; \
  fi)
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean venv

$(STAMP): pyproject.toml requirements/constraints.txt
	@if [ -z "$(PYTHON312)" ]; then echo "error: Python 3.12 not found (install python3.12 or pyenv 3.12.x)" >&2; exit 1; fi
	@[ -x $(VENV)/bin/python ] || $(PYTHON312) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/opendrp demo --preset small --out demo_output

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	@bash tests/_setup/ensure_chromium.sh
	$(VENV)/bin/python -m pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output build .pytest_cache .mypy_cache .ruff_cache
