# Transformers for Vision: the two commands a fresh machine needs are `make book` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: install book test lint unit nbval bench clean

# Creates .venv if missing and installs course_lib with the dev extras, pinned by
# requirements/constraints.txt (torch 2.14.1 / torchvision 0.29.1 are on this machine's disk).
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c requirements/constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

book: install
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

lint: install
	$(VENV)/bin/ruff check course_lib tests bench

unit: install
	$(PY) -m pytest -q -n 2 tests

test: lint unit
	@echo "make test: all checks passed"

bench: install
	$(PY) bench/bench_models.py

clean:
	rm -rf _build
