# Two commands: `make run` (console + demo) and `make test` (the whole suite).
# Both create .venv and install what is needed on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Test processes (pytest-xdist): one per core, at most 4 (each has a Redis
# database and a PostgreSQL database of its own). TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= auto

.PHONY: run test install install-test clean

run: $(VENV)/.installed
	$(PY) app.py $(ARGS)

test: $(VENV)/.installed-test
	./scripts/ensure-chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 4 $(ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

clean:
	rm -rf $(VENV)
