# Two commands for a fresh machine: `make run` serves the demo, `make test` runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck format serve init clean catalogs compile-catalogs outdated lock

# Dependencies come from the locks, every file checked against its hash: requirements.lock
# (what production runs, also the image's) and requirements-dev.lock (that plus the tools).
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
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

# What has newer releases than the locks hold (run it monthly; then `make lock` and test).
outdated: $(VENV)/.installed-dev
	$(BIN)/python -m pip list --outdated

# Recompute both locks from pyproject.toml within constraints.txt (needs pip-tools).
lock:
	$(PYTHON) -m piptools compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links -c constraints.txt -o requirements.lock pyproject.toml
	$(PYTHON) -m piptools compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --extra dev -c constraints.txt -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) build *.egg-info
