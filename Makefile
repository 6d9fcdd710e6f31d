# acmelite developer tasks. `make test` is the one command: it installs what is missing first.
#   make install   pip install -e '.[test,dev]', Pebble into .cache/ and (as root) Caddy
#                  (quick when done)
#   make test      unit + integration tests (pytest options live in pyproject.toml)
#   make lint      ruff check, ruff format --check, mypy --strict
#   make demo      issue a certificate from a throwaway local Pebble with the acmelite CLI
#   make reliability  fault, crash, hostile-input, secrets and threat-model suites; regenerate
#                  docs/reliability.md
# PYTHON=python3.12 make test   picks the interpreter; PYTEST_ARGS='-k nonce -x' narrows tests.

PYTHON ?= python3
PYTEST_ARGS ?=
PIP_STAMP := .cache/pip-install.stamp

.PHONY: install pebble caddy test lint format demo reliability clean distclean

install: pebble caddy
	@prefix=$$($(PYTHON) -c 'import sys; print(sys.prefix)'); \
	if [ -f $(PIP_STAMP) ] && [ $(PIP_STAMP) -nt pyproject.toml ] \
	   && [ "$$(cat $(PIP_STAMP))" = "$$prefix" ]; then \
	  echo "python packages: up to date in $$prefix"; \
	else \
	  $(PYTHON) -m pip install --disable-pip-version-check -q -e '.[test,dev]' \
	    && mkdir -p .cache && echo "$$prefix" > $(PIP_STAMP); \
	fi

pebble:
	@scripts/install-pebble

# Caddy's ACME server (step-ca) is the suite's second ACME implementation.
caddy:
	@scripts/install-caddy || echo "caddy: not installed; the Caddy tests skip (fail under CI=true)"

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# All three checks run even when one fails, so one CI run shows every problem.
lint:
	@status=0; \
	echo "$(PYTHON) -m ruff check ."; $(PYTHON) -m ruff check . || status=1; \
	echo "$(PYTHON) -m ruff format --check ."; $(PYTHON) -m ruff format --check . || status=1; \
	echo "$(PYTHON) -m mypy --strict acmelite"; $(PYTHON) -m mypy --strict acmelite || status=1; \
	exit $$status

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

RELIABILITY_TESTS := tests/integration/test_faults.py tests/integration/test_crash.py \
	tests/integration/test_http01_server.py tests/integration/test_secrets.py \
	tests/unit/test_parsing_properties.py tests/integration/test_hostile_ca.py \
	tests/integration/test_probed_host.py tests/integration/test_local_user.py \
	tests/integration/test_signals.py

reliability: install
	$(PYTHON) -m pytest $(RELIABILITY_TESTS) $(PYTEST_ARGS)
	$(PYTHON) scripts/reliability_table.py

demo: install
	$(PYTHON) scripts/demo.py

clean:
	rm -rf demo-output .pytest_cache .mypy_cache .ruff_cache $(PIP_STAMP)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .cache
