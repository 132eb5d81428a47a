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

# Two workers (pytest-xdist), each test file in one worker: the suite spends much of its time
# waiting on subprocesses (renders, ffmpeg, Prefect servers); 17.7 min instead of ~25 on 2 cores.
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

bench-smoke: setup
	$(PY) bench/bench_generate.py --smoke
