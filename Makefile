# The two commands of the README:
#   make run    install xvbd into .venv and run it on the embedded default (SQLite)
#   make test   install xvbd with its test tools into .venv and run lint, types and tests
PYTHON ?= python3
VENV   ?= .venv
CONFIG ?= etc/xvb.conf
PIP    := $(VENV)/bin/pip --disable-pip-version-check

.PHONY: run test install install-test lint check clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/python
	$(PIP) install --quiet .

install-test: $(VENV)/bin/python
	$(PIP) install --quiet '.[test]'

# Stopping the server (SIGTERM, or SIGINT to it) drains the calls and exits 0, so make says 0.
# A Ctrl-C typed here also reaches make itself, and GNU make then ends with that signal
# (status 130, "Interrupt") whatever the recipe returned.
run: install
	$(VENV)/bin/xvbd-admin db upgrade -c $(CONFIG)
	$(VENV)/bin/twistd -n --pidfile= xvbd -c $(CONFIG)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info var _trial_temp
