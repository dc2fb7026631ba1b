# Chalkweb: `make run` sets up and starts the platform on the embedded default;
# `make test` runs every test, `make test-fast` all but the slow lane.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: install run test test-fast lint bench lock release

install: $(VENV)/.installed

# Re-installs only when the pins change, so a second `make install` is instant.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

run: install
	PORT=$(PORT) $(BIN)/python manage.py run_platform

# Tests keep their embedded-default state (keys, broker folders, the SQLite test database)
# apart from `make run`'s.
TEST_DATA_DIR ?= $(CURDIR)/test-output/data
test: install
	CHALK_DATA_DIR=$(TEST_DATA_DIR) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: every test but those that start real workers, drive a browser, or wait on
# real processes and clock boundaries (the markers in pyproject.toml).
test-fast: install
	CHALK_DATA_DIR=$(TEST_DATA_DIR) $(BIN)/python -m pytest -m "not (slow or workers or browser)" $(PYTEST_ARGS)

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
