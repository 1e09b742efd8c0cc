# The two commands of the README:
#   make run    install xvbd into .venv and run it on the embedded default (SQLite)
#   make test   install xvbd with its test tools into .venv and run lint, types and tests
PYTHON ?= python3
VENV   ?= .venv
CONFIG ?= etc/xvb.conf
PIP    := $(VENV)/bin/pip --disable-pip-version-check

.PHONY: run test install install-test lint check clean lock audit

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Installing is done again only when the package's files changed since the last time (a
# stamp in the venv), so `make run` starts at once when nothing changed.
SOURCES := pyproject.toml setup.py requirements.lock \
	$(shell find xvbd twisted -type f -not -path '*/__pycache__/*' 2>/dev/null)

$(VENV)/.installed: $(VENV)/bin/python $(SOURCES)
	$(PIP) install --quiet -c requirements.lock .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python $(SOURCES)
	$(PIP) install --quiet -c requirements.lock '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# requirements.lock anew: what `pip install .` resolves to today, in a venv of its own.
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip --disable-pip-version-check install --quiet .
	{ sed -n '/^#/p' requirements.lock; build/lock/bin/pip freeze --exclude xvbd \
	    | grep -v -E '^(pip|setuptools|wheel)=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf build/lock

# The locked versions against the Python Packaging Advisory Database, through PyPI
# (pip-audit; known and accepted advisories in .ci/audit-ignore, one id and why per line).
audit: install-test
	$(VENV)/bin/pip-audit --strict --progress-spinner off --vulnerability-service pypi --no-deps \
	    --disable-pip -r requirements.lock \
	    $$(sed -e 's/#.*//' .ci/audit-ignore | xargs -r -n1 printf -- '--ignore-vuln %s ')

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
