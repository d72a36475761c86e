# onedesk-azuread: `make test` and `make demo` work on a fresh machine (as root:
# they install the system packages they need, and a venv under .venv/).

# Debian's /usr/bin/python3 is the one that can import dnf (../shared/FACTS.md).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all deps system-deps venv floor lint test test-floor demo bench clean tarball srpm rpm rpmlint

all: test

system-deps:
	sh tools/system-deps.sh

$(BIN)/.installed: setup.py
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# The oldest versions EL 9 ships (../shared/FACTS.md): the suite runs against them too.
FLOOR := click==8.0.3 configobj==5.0.6 msal==1.32.3 requests==2.25.1 urllib3==1.26.5
FLOOR_VENV := .venv-floor
$(FLOOR_VENV)/.installed: Makefile setup.py
	$(PYTHON) -m venv --system-site-packages $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install -q $(FLOOR) pytest hypothesis trustme
	touch $@

floor: $(FLOOR_VENV)/.installed

deps: system-deps venv

# vermin checks the Python 3.9 floor. Annotations need no --eval-annotations: every
# module has `from __future__ import annotations`, so they are never evaluated.
lint: venv
	$(BIN)/ruff check onedesk_azuread $(wildcard dnf-plugin) tests tools
	$(BIN)/vermin --target=3.9- --no-tips --violations onedesk_azuread $(wildcard dnf-plugin)

test: deps lint rpmlint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-floor

test-floor: floor
	PYTHONPATH=$(CURDIR) $(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# --- RPMs ----------------------------------------------------------------------------------
NAME := onedesk-azuread
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' onedesk_azuread/__init__.py)
TARBALL := dist/$(NAME)-$(VERSION).tar.gz
SOURCES := setup.py pyproject.toml README.md LICENSE Makefile $(wildcard onedesk_azuread/*.py) \
	dnf-plugin/onedesk_azuread.py dnf-plugin/onedesk_azuread.conf specs/onedesk-azuread.spec
# dnf 5 (Fedora 41+, EL 11+): the actions file the spec installs there.
SOURCES += dnf-plugin/onedesk_azuread.actions
# A private rpm database and build tree: never the host's (../shared/FACTS.md).
RPMBUILD := rpmbuild --define "_topdir $(CURDIR)/build/rpm" --define "_dbpath $(CURDIR)/build/rpmdb" \
	--define "_sourcedir $(CURDIR)/dist" --define "_srcrpmdir $(CURDIR)/dist" \
	--define "_rpmdir $(CURDIR)/dist" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm"
# Debian's rpm database knows none of the BuildRequires; EL hosts check them.
RPMBUILD_DEPS := $(shell test -e /etc/debian_version && echo --nodeps)

$(TARBALL): $(SOURCES)
	mkdir -p dist
	tar -czf $@ --transform 's,^,$(NAME)-$(VERSION)/,' --owner=0 --group=0 --mtime=@0 \
		--sort=name $(SOURCES)

tarball: $(TARBALL)

srpm: $(TARBALL)
	$(RPMBUILD) $(RPMBUILD_DEPS) -bs specs/onedesk-azuread.spec

rpm: $(TARBALL)
	$(RPMBUILD) $(RPMBUILD_DEPS) -ba specs/onedesk-azuread.spec

# rpmlint opens an rpm database under $$HOME: give it a private one.
rpmlint: rpm
	mkdir -p build/rpmlint-home
	HOME=$(CURDIR)/build/rpmlint-home rpmlint -r specs/onedesk-azuread.rpmlintrc \
		specs/onedesk-azuread.spec dist/$(NAME)-$(VERSION)-*.rpm \
		dist/python3-dnf-plugin-$(NAME)-$(VERSION)-*.rpm

demo: deps
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh
	$(BIN)/python tools/demo_packages.py

bench: deps
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) dist build *.egg-info .pytest_cache .hypothesis .ruff_cache
