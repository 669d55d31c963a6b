# The two commands: `make dev` (install + run AIQT against the local RabbitMQ) and `make test`.
VENV ?= .venv
PYTHON ?= python3

.PHONY: install dev test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/aiqt dev

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(VENV)/bin/python -m bench.run
