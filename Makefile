# rgflow: one command sets up and regenerates everything; another runs the tests.
#   make all    venv + packages, a short MSDS1 training run, every figure notebook
#   make test   the test suite (unit tests, notebooks under nbval, the browser test)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= msds1
PRESET ?= small
MINUTES ?= 4
RUN    ?= runs/$(DATA)-$(PRESET)

.PHONY: all setup system-deps train figures test test-fast lint clean

all: setup train figures

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --user --name python3 >/dev/null
	touch $@

setup: system-deps $(VENV)/.installed

# Debian packages: Fashion-MNIST's files and the browser for the JupyterLab test.
# Installed when this runs as root with apt-get; otherwise it says what is missing.
system-deps:
	@sh .ci/system-deps.sh

train: setup
	$(PY) -m rgflow train --preset $(PRESET) --data $(DATA) --max-minutes $(MINUTES) \
	  --test-size 2000 --out $(RUN)

figures: setup
	$(PY) -m rgflow figures

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check rgflow tests benchmarks notebooks
	$(VENV)/bin/ruff format --check rgflow tests benchmarks

clean:
	rm -rf runs build .pytest_cache
