# Transformers for Vision. A fresh machine needs two commands: `make book` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: install vendor book locales test lint unit nbval html browser student slides exercises bench bench-grade checkpoints gpu-check clean

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
# `npm ci` runs only when node_modules is missing or older than package.json/package-lock.json;
# scripts/vendor.py then copies what the book loads (trimmed MathJax 3, require.js, widget manager) to _vendor/.
NODE_STAMP := node_modules/.package-lock.json
VENDOR_STAMP := _vendor/.stamp

$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(VENDOR_STAMP): $(NODE_STAMP) scripts/vendor.py scripts/widgets-compat.js
	python3 scripts/vendor.py
	touch $@

vendor: $(VENDOR_STAMP)

# ---- the book --------------------------------------------------------------------------------
# Notebooks are not executed (execute_notebooks: off in _config.yml): their stored outputs are shown.
# --all rebuilds every page, so a warning in an unchanged page still fails the build; removing
# _build/html first drops pages of files that no longer exist.
# The Chinese edition follows into _build/html/zh_CN, same sources and settings plus language=zh_CN, its
# prose from locales/zh_CN/LC_MESSAGES/*.po (scripts/i18n_book.py; warnings are errors there too).
book: install vendor
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --all
	$(PY) scripts/i18n_book.py build

# [i18n owner] after the English text changed: re-extract its messages and update the catalogs.
# New messages come out empty, changed ones fuzzy; translate them, drop the fuzzy flag, run tests/test_i18n.py.
locales: install
	$(PY) scripts/i18n_book.py locales

# ---- checks ----------------------------------------------------------------------------------
test: lint unit nbval html browser student
	@echo "make test: all checks passed"

lint: install
	$(VENV)/bin/ruff check course_lib tests $(wildcard bench scripts)

# msgfmt (Debian's gettext) checks the Chinese catalogs in tests/test_i18n.py.
unit: install vendor
	command -v msgfmt >/dev/null || (apt-get update && apt-get install -y gettext)
	$(PY) -m pytest -q -n 2 tests --ignore=tests/browser

# [book owner] strict nbval over book/, solutions/ and exercises/
# The kernel gets matplotlib's inline backend (not the Agg exported above, which would drop every stored
# figure) and the CPU, like the stored outputs; scripts/run_notebooks.py executes notebooks the same way.
NOTEBOOKS = $(wildcard book/*.ipynb solutions/*.ipynb exercises/*.ipynb)
nbval: install
	$(if $(NOTEBOOKS),,$(error no notebooks found in book/, solutions/ or exercises/))
	MPLBACKEND=module://matplotlib_inline.backend_inline COURSE_DEVICE=cpu \
	  $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

# [book owner] the HTML build with warnings as errors
html: book

# [book owner] headless Chromium over the built book and decks
# Depends on `book`, which make runs once per invocation: `make test` builds the book a single time (html).
# CI runs as root on Debian with the apt registry reachable; playwright never downloads a browser here.
browser: install book
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	# CJK glyphs for the Chinese edition's pages and screenshots (boxes without them)
	fc-list :lang=zh | grep -q . || (apt-get update && apt-get install -y fonts-noto-cjk)
	$(PY) -m pytest -q -p no:cacheprovider tests/browser

# [colab owner] every chapter and exercise notebook run the way a student opens it: a fresh venv in
# _build/student-env (kept while pyproject.toml and the constraints do not change), course-lib installed
# from a copy, not editable, with exactly what the notebooks' first cell installs on Colab, and the
# notebooks executed from a copy outside the repository. Chapters must run without an error, exercises may
# raise only their stubs' NotImplementedError. Torch and torchvision are there before the first cell, as on
# Colab: hard links to .venv's (`install`), so a second 5 GB CUDA build of torch is never written to disk.
student: install
	python3 scripts/student_env.py

# ---- instructors -----------------------------------------------------------------------------
# [slides owner] one offline reveal.js deck per chapter notebook + PDFs + index under _build/slides/
# (reveal.js and MathJax copied from node_modules/ into _build/slides/vendor/). One chapter: `course-lib slides 1`.
slides: install vendor
	$(VENV)/bin/course-lib slides --pdf

# [grader owner] regenerate exercises/ from solutions/ (then exercises/zh_CN/ from locales/: course_lib/i18n.py)
exercises: install
	$(VENV)/bin/course-lib release

# ---- benchmarks (not tests) ------------------------------------------------------------------
bench: install
	$(PY) bench/bench_models.py

bench-grade: install
	$(PY) bench/bench_grade.py

# ---- trained models ---------------------------------------------------------------------------
# [training owner] train the models the chapters load (course_lib/trained/*.pt + manifest.json); resumable:
# trained ones are skipped (re-train one with `$(PY) -m course_lib.checkpoints NAME --force`).
# Chapter 7's grid, also resumable: `$(PY) -m course_lib.data_hunger` -> course_lib/trained/data_hunger_digits.json.
checkpoints: install
	$(PY) -m course_lib.checkpoints

# [training owner] every chapter, the bench, check() and the checkpoint training on a CUDA GPU, with times
gpu-check: install
	$(PY) scripts/gpu_check.py

clean:
	rm -rf _build
