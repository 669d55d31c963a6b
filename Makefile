# The two commands: `make dev` (install + run AIQT against RabbitMQ) and `make test`.
# Both first make sure a broker can be had (aiqt/ensure_broker.py, standard library only, so it runs
# before the install): a machine without one learns the install command at once, not after it.
VENV ?= .venv
PYTHON ?= python3
ENSURE_BROKER = $(PYTHON) aiqt/ensure_broker.py

.PHONY: install dev test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# `aiqt dev` itself starts the broker if need be (and stops it on exit); here only the check.
dev:
	@$(ENSURE_BROKER) --check --who "make dev"
	@$(MAKE) --no-print-directory install
	$(VENV)/bin/aiqt dev

# The tests' broker (AIQT_TEST_AMQP_URL) is started if need be and left running.
test:
	@$(ENSURE_BROKER) --tests --who "make test"
	@$(MAKE) --no-print-directory install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(VENV)/bin/python -m bench.run
