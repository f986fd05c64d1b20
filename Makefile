# The two set-up commands. Each creates the virtual environment it needs (.venv) first.
#   make demo   start the streaming node on the bundled demo and print the masks arriving
#   make test   run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" rtseg launch launch/demo.toml

# Two pytest-xdist workers, torch on one thread in each (tests/conftest.py): 1.8x faster
# on 2 cores than one process whose torch takes both.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2

lint: $(VENV)/.installed
	$(BIN)/ruff check rtseg tests

clean:
	rm -rf $(VENV) .pytest_cache
