# acmelite developer tasks. `make demo` and `make test` are the two commands: they install what
# is missing first (a virtualenv, the Python packages, Pebble, BIND) and are quick when done.
#   make install   .venv (unless already in a virtualenv), pip install -e '.[test,dev]', Pebble
#   make test      unit + integration tests (pytest options live in pyproject.toml); installs
#                  BIND, PowerDNS, Knot DNS, Caddy and kubectl too
#                  (scripts/install-system-packages: apt-get as root)
#   make lint      ruff check, ruff format --check, mypy --strict
#   make demo      issue a certificate from a throwaway local Pebble with the acmelite CLI
#   make reliability  fault, crash, hostile-input, secrets and threat-model suites; regenerate
#                  docs/reliability.md
# PYTHON=python3.12 make test   picks the interpreter; PYTEST_ARGS='-k nonce -x' narrows tests.
#
# Inside a virtualenv or conda environment PYTHON is used as it is. Otherwise the targets make
# $(VENV) from PYTHON and use that, so an "externally managed" interpreter (PEP 668: Debian's
# /usr/bin/python3), pyenv's or a system one alike, is never pip-installed into.

PYTHON ?= python3
VENV ?= .venv
PEBBLE_DIR ?= .cache/pebble
PYTEST_ARGS ?=
PIP_STAMP := .cache/pip-install.stamp
PEBBLE_BIN := $(abspath $(PEBBLE_DIR))/usr/bin/pebble

IN_ENV := $(shell $(PYTHON) -c 'import os, sys; c = os.environ.get("CONDA_PREFIX", ""); \
  conda = bool(c) and os.path.realpath(c) == os.path.realpath(sys.prefix); \
  print("yes" if sys.prefix != sys.base_prefix or conda else "no")' 2>/dev/null)
ifeq ($(IN_ENV),yes)
PY := $(PYTHON)
ENSURE_VENV := true
else
PY := $(VENV)/bin/python
ENSURE_VENV := scripts/ensure-venv $(PYTHON) $(VENV)
endif

# The suite and the demo use the Pebble installed here, unless told otherwise.
export ACMELITE_PEBBLE_BIN ?= $(PEBBLE_BIN)

.PHONY: venv install python-packages pebble servers test lint format demo reliability \
	clean distclean

venv:
	@$(ENSURE_VENV)

install: python-packages pebble

python-packages: venv
	@prefix=$$($(PY) -c 'import sys; print(sys.prefix)'); \
	key="$$prefix $$(tail -n 1 "$$prefix/.acmelite-venv" 2>/dev/null)"; \
	if [ -f $(PIP_STAMP) ] && [ $(PIP_STAMP) -nt pyproject.toml ] \
	   && [ "$$(cat $(PIP_STAMP))" = "$$key" ]; then \
	  echo "python packages: up to date in $$prefix"; \
	else \
	  echo "python packages: pip install -e '.[test,dev]' into $$prefix"; \
	  $(PY) -m pip install --disable-pip-version-check -q -e '.[test,dev]' \
	    && mkdir -p .cache && echo "$$key" > $(PIP_STAMP); \
	fi

# The installer is standard library only: it runs before the packages are installed.
pebble: venv
	@if [ -n "$$ACMELITE_TEST_PEBBLE_URL" ]; then \
	  echo "pebble: external, $$ACMELITE_TEST_PEBBLE_URL"; \
	elif [ "$$ACMELITE_PEBBLE_BIN" != "$(PEBBLE_BIN)" ]; then \
	  echo "pebble: $$ACMELITE_PEBBLE_BIN (ACMELITE_PEBBLE_BIN)"; \
	else \
	  $(PY) -m acmelite.testing install-pebble --dir $(PEBBLE_DIR); \
	fi

servers:
	@scripts/install-system-packages bind powerdns knot caddy kubectl || \
	  echo "(continuing: the tests that need them skip, or fail under CI=true)"

test: install servers
	$(PY) -m pytest $(PYTEST_ARGS)

# All three checks run even when one fails, so one CI run shows every problem.
lint: python-packages
	@status=0; \
	echo "$(PY) -m ruff check ."; $(PY) -m ruff check . || status=1; \
	echo "$(PY) -m ruff format --check ."; $(PY) -m ruff format --check . || status=1; \
	echo "$(PY) -m mypy --strict acmelite"; $(PY) -m mypy --strict acmelite || status=1; \
	exit $$status

format: python-packages
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

RELIABILITY_TESTS := tests/integration/test_faults.py tests/integration/test_crash.py \
	tests/integration/test_http01_server.py tests/integration/test_secrets.py \
	tests/unit/test_parsing_properties.py tests/integration/test_hostile_ca.py \
	tests/integration/test_probed_host.py tests/integration/test_local_user.py \
	tests/integration/test_signals.py

reliability: install servers
	$(PY) -m pytest $(RELIABILITY_TESTS) $(PYTEST_ARGS)
	$(PY) scripts/reliability_table.py

demo: install
	$(PY) scripts/demo.py

clean:
	rm -rf demo-output .pytest_cache .mypy_cache .ruff_cache $(PIP_STAMP)
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean
	rm -rf .cache $(VENV)
