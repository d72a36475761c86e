# onedesk-azuread: `make test` and `make demo` work on a fresh machine (as root:
# they install the system packages they need, and a venv under .venv/).

# Debian's /usr/bin/python3 is the one that can import dnf (../shared/FACTS.md).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all deps system-deps venv lint test demo bench clean

all: test

system-deps:
	sh tools/system-deps.sh

$(BIN)/.installed: setup.py
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

deps: system-deps venv

lint: venv
	$(BIN)/ruff check onedesk_azuread $(wildcard dnf-plugin) tests tools
	$(BIN)/vermin --target=3.9- --no-tips --violations --eval-annotations onedesk_azuread $(wildcard dnf-plugin)

test: deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: deps
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

bench: deps
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .hypothesis .ruff_cache
