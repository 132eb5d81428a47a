# The two commands of the README: `make demo` (set up, render the examples with the draft engine
# into out/) and `make test` (set up, run the test suite). Both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11

.PHONY: setup demo test bench-smoke

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/dia-studio catalog projects --draft --out out

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

bench-smoke: setup
	$(PY) bench/bench_generate.py --smoke
