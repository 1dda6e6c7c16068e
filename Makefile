# Transformers for Vision. A fresh machine needs two commands: `make book` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: install vendor book test lint unit nbval html browser slides exercises bench bench-grade clean

# ---- set-up ----------------------------------------------------------------------------------
# Creates .venv if missing and installs course_lib with its dev extras, pinned by
# requirements/constraints.txt (torch 2.14.1 / torchvision 0.29.1 lie on this machine's disk).
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c requirements/constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# Offline web assets (MathJax, widget manager, reveal.js) from the npm registry. [book/slides owner]
vendor:
	@true

# ---- the book --------------------------------------------------------------------------------
book: install vendor
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# ---- checks ----------------------------------------------------------------------------------
test: lint unit nbval html browser
	@echo "make test: all checks passed"

lint: install
	$(VENV)/bin/ruff check course_lib tests bench

unit: install
	$(PY) -m pytest -q -n 2 tests --ignore=tests/browser

# [book owner] strict nbval over book/, solutions/ and exercises/
nbval: install
	@true

# [book owner] the HTML build with warnings as errors
html: book

# [book owner] headless Chromium over the built book and decks
browser: install
	@true

# ---- instructors -----------------------------------------------------------------------------
# [slides owner]
slides: install vendor
	@true

# [grader owner] regenerate exercises/ from solutions/
exercises: install
	$(VENV)/bin/course-lib release

# ---- benchmarks (not tests) ------------------------------------------------------------------
bench: install
	$(PY) bench/bench_models.py

bench-grade: install
	$(PY) bench/bench_grade.py

clean:
	rm -rf _build
