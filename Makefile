# Two commands for a fresh machine: `make run` serves the demo, `make test` runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck format serve init clean catalogs compile-catalogs

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

# Compiled catalogs (.mo) are build output, not committed: every run and test compiles them.
compile-catalogs: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d app/translations -D messages

# After changing strings: extract them and add the new ones to the Spanish and French .po files.
catalogs: $(VENV)/.installed
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ --no-location --sort-output --width 100 --project=diplomat -o app/translations/messages.pot .
	$(BIN)/pybabel -q update -i app/translations/messages.pot -d app/translations -D messages --no-fuzzy-matching --ignore-obsolete --width 100

init: compile-catalogs
	$(BIN)/diplomat init
	$(BIN)/diplomat demo season

run: init
	$(BIN)/diplomat serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy app

# Two workers: the machines this runs on have two cores.
test: lint typecheck compile-catalogs
	$(BIN)/pytest -n 2

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
