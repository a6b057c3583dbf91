# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   set up, then run broker + simulator + the whole stack on loopback
#   make test   set up, then run the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test lint bench reliability clean

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

clean:
	rm -rf $(VENV) run build *.egg-info
