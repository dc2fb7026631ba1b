# Chalkweb: `make run` sets up and starts the platform on the embedded default;
# `make test` runs every test.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: install run test lint bench lock release

install: $(VENV)/.installed

# Re-installs only when the pins change, so a second `make install` is instant.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

run: install
	PORT=$(PORT) $(BIN)/python manage.py run_platform

# Tests keep their embedded-default state (keys, broker folders) apart from `make run`'s.
test: install
	CHALK_DATA_DIR=$(CURDIR)/test-output/data $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/schedule_engine.py

# Refreshes requirements.lock from the current environment after a pin changes.
lock:
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check > requirements.lock

# A release (README, "Releases"): sets the version, dates the CHANGELOG's section, commits and
# tags vX.Y.Z; refuses a tree with changes and a version that is not newer.
release: install
	$(BIN)/python release.py $(VERSION)
