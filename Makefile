# The two commands: `make demo` and `make test`. Both set up whatever is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MAILROOM := $(BIN)/mailroom

.PHONY: setup system-packages stack topics migrate demo test lint unit integration clean

# Debian packages the local stack runs (PostgreSQL, Dovecot; Java 17 and Maven come with the
# machine). Installed only when missing, so a warm run costs nothing.
system-packages:
	@bash deploy/install-system-packages.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: system-packages $(VENV)/.installed

stack: setup
	$(MAILROOM) stack up

topics: stack
	$(MAILROOM) topics create

migrate: stack
	$(MAILROOM) db migrate

# Resets the demo's own data (public schema, mailroom.* topics and groups, demo mail users),
# seeds Acme, runs every stage as its own process, summarises, then follows new mail (Ctrl-C).
demo: topics migrate
	$(MAILROOM) doctor
	$(MAILROOM) demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: lint topics migrate
	$(BIN)/pytest -q

clean:
	-$(MAILROOM) stack down
