# onedesk-azuread: `make test` and `make demo` work on a fresh machine (as root:
# they install the system packages they need, and a venv under .venv/).

# Debian's /usr/bin/python3 is the one that can import dnf (../shared/FACTS.md).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all deps system-deps venv floor lint test test-floor debian11 test-py39 test-debian11 \
	sid test-py314 test-debian12 test-debian13 demo bench clean tarball version srpm rpm rpmlint packit docs

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

# tools/pytest_bed.py: --no-skip fails a skipped test; --bed=only|without splits the suite
# by the `bed` fixture (real rpmbuild/dnf/rpm) without naming any test.
PYTEST := -m pytest -p tools.pytest_bed --no-skip
# The Ansible example's tests (the `ansible` fixture) need ansible-core, whose controller
# needs Python 3.10+: the host venv has it (setup.py's test extra), the other stages do not.
HOST_ONLY := --deselect-fixture=ansible
# The daily check's units and metrics are checked with the host's systemd-analyze and
# promtool (fixtures of tests/test_watch.py and tests/test_metrics.py): Debian 11's root has
# no promtool, and its systemd (247) is older than EL 9's (252, as Debian 12's).
HOST_TOOLS := --deselect-fixture=promtool --deselect-fixture=systemd_analyze

test: deps lint rpmlint packit
	$(BIN)/python $(PYTEST) $(PYTEST_ARGS)
	$(MAKE) test-floor test-py39 test-debian11 test-py314

test-floor: floor
	PYTHONPATH=$(CURDIR) $(FLOOR_VENV)/bin/python $(PYTEST) -q -p no:cacheprovider $(HOST_ONLY) \
		$(PYTEST_ARGS)

# --- EL 9's Python and rpm, for real: a Debian 11 root (../shared/FACTS.md) ----------------
# Python 3.9.2, rpm 4.16.1, dnf 4.5.2, createrepo_c 0.17; made with debootstrap once
# (about 2 minutes) and cached in build/debian11. Being its own Python 3.9, it needs no
# pyenv. The floors and the test tools go into its system Python, so the tests and the
# root's dnf (the plugin) both run on them. No rpmlint there: rpmlint runs on the host.
DEBIAN11 := build/debian11
DEBIAN11_PACKAGES := python3,python3-pip,python3-setuptools,python3-dnf,dnf,rpm,rpm2cpio,cpio,createrepo-c,busybox-static,make,ca-certificates
# tests/test_docs.py lints the man page with groff and mandoc.
DEBIAN11_PACKAGES := $(DEBIAN11_PACKAGES),groff-base,mandoc
# tests/test_cli.py makes a legacy locale (en_US.ISO-8859-1) from glibc's sources.
DEBIAN11_PACKAGES := $(DEBIAN11_PACKAGES),locales
TEST_TOOLS := pytest hypothesis trustme
DEBIAN_ROOT := bash tools/debian-root.sh

debian11: system-deps
	$(DEBIAN_ROOT) build $(DEBIAN11) bullseye $(DEBIAN11_PACKAGES) "$(FLOOR) $(TEST_TOOLS)"

# The unit, CLI and online suites on CPython 3.9 with EL 9's floors.
test-py39: debian11
	$(DEBIAN_ROOT) run $(DEBIAN11) python3 $(PYTEST) -p no:cacheprovider --bed=without \
		$(HOST_ONLY) $(HOST_TOOLS) $(PYTEST_ARGS)

# The packaging scenarios (every test with the rpm bed) on Python 3.9, rpm 4.16 and dnf 4.5;
# the bed builds the RPMs there with `make rpm` (Debian 11's rpmbuild). Not dnf 5's (the
# tests with the `dnf5bed` fixture): they run dnf5 in a Debian sid root of their own, which
# Debian 11's keyring cannot make and whose Python 3.13 cannot use RPMs built for 3.9.
DEBIAN11_NOT := --deselect-fixture=dnf5bed $(HOST_ONLY) $(HOST_TOOLS)
test-debian11: debian11
	$(DEBIAN_ROOT) run $(DEBIAN11) python3 $(PYTEST) -p no:cacheprovider --bed=only \
		$(DEBIAN11_NOT) $(PYTEST_ARGS)

# --- Where Fedora is going: Python 3.14, rpm 6.1 and dnf 4.24, in Debian sid ------------------
# The sid root the dnf 5 bed makes (tests/dnf5bed.py: one root, made once, cached in
# build/dnf5-sid), whose package list has Debian's own click, configobj, msal and test tools,
# python3-dnf and rpmbuild. The suite runs there on sid's system Python: the unit, CLI and
# online suites and the dnf 4 bed (`make rpm` with rpm 6.1's rpmbuild, the plugin in dnf
# 4.24), not dnf 5's bed, which is this very root seen from outside.
SID := build/dnf5-sid
sid: system-deps
	$(PYTHON) -m tests.dnf5bed

test-py314: sid
	$(DEBIAN_ROOT) run $(SID) python3 $(PYTEST) -p no:cacheprovider --deselect-fixture=dnf5bed \
		$(HOST_ONLY) $(HOST_TOOLS) $(PYTEST_ARGS)

# --- Fresh machines, for real (developer checks, not part of `make test`) -----------------
# A debootstrap'd Debian 13 (or 12) root, this machine's CA certificates and pip settings,
# a clone of the committed HEAD, and `CI=true bash .ci/run` in it with chroot, as CI runs
# it; the Debian 11 root nests inside. The base system is cached in build/debianNN.base.
test-debian13: system-deps
	mkdir -p build; { $(DEBIAN_ROOT) machine build/debian13 trixie 2>&1; echo $$? > build/debian13.rc; } \
		| tee build/debian13.log; exit $$(cat build/debian13.rc)

test-debian12: system-deps
	mkdir -p build; { $(DEBIAN_ROOT) machine build/debian12 bookworm 2>&1; echo $$? > build/debian12.rc; } \
		| tee build/debian12.log; exit $$(cat build/debian12.rc)

# --- RPMs ----------------------------------------------------------------------------------
NAME := onedesk-azuread
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' onedesk_azuread/__init__.py)
TARBALL := dist/$(NAME)-$(VERSION).tar.gz
SOURCES := setup.py pyproject.toml README.md LICENSE Makefile $(wildcard onedesk_azuread/*.py) \
	dnf-plugin/onedesk_azuread.py dnf-plugin/onedesk_azuread.conf specs/onedesk-azuread.spec
# dnf 5 (Fedora 41+, EL 11+): the actions file the spec installs there.
SOURCES += dnf-plugin/onedesk_azuread.actions
# The man page and the bash completion, generated by `make docs` and committed.
SOURCES += docs/onedesk-azuread.1 completion/onedesk-azuread.bash
# The daily check (onedesk-azuread check --scheduled): systemd units, preset, check.conf.
SOURCES += systemd/onedesk-azuread-check.service systemd/onedesk-azuread-check.timer \
	systemd/80-onedesk-azuread.preset etc/check.conf
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

# The version the RPMs carry (.packit.yaml's get-current-version reads it here).
version:
	@echo $(VERSION)

# Old RPMs go first: rpmlint and the test bed take every RPM of this version in dist/,
# and one left by an earlier build (another release, another spec) would be checked too.
srpm: $(TARBALL)
	rm -f dist/*.rpm
	$(RPMBUILD) $(RPMBUILD_DEPS) -bs specs/onedesk-azuread.spec

rpm: $(TARBALL)
	rm -f dist/*.rpm
	$(RPMBUILD) $(RPMBUILD_DEPS) -ba specs/onedesk-azuread.spec

# rpmlint opens an rpm database under $$HOME: give it a private one. Filters every rpmlint
# needs are in the rpmlintrc (checked for use); those only some versions need, in the TOML.
RPMLINT_ARGS := -c specs/onedesk-azuread.rpmlint.toml -r specs/onedesk-azuread.rpmlintrc \
	specs/onedesk-azuread.spec dist/$(NAME)-$(VERSION)-*.rpm \
	dist/python3-dnf-plugin-$(NAME)-$(VERSION)-*.rpm
# Beside the machine's Debian rpmlint (2.4 or 2.7), the current one from PyPI, pinned: what
# Fedora's reviewers run. Its venv sees the system Python's rpm bindings, which it needs.
RPMLINT_PYPI := rpmlint==2.10.0
RPMLINT_VENV := build/rpmlint-venv
$(RPMLINT_VENV)/.installed: Makefile
	$(PYTHON) -m venv --system-site-packages $(RPMLINT_VENV)
	$(RPMLINT_VENV)/bin/python -m pip install -q $(RPMLINT_PYPI)
	touch $@

rpmlint: rpm $(RPMLINT_VENV)/.installed
	mkdir -p build/rpmlint-home
	HOME=$(CURDIR)/build/rpmlint-home rpmlint $(RPMLINT_ARGS)
	HOME=$(CURDIR)/build/rpmlint-home $(RPMLINT_VENV)/bin/rpmlint $(RPMLINT_ARGS)

# packit (packitos, pinned) checks .packit.yaml offline and builds the SRPM the way it says
# (tools/packit-check.sh). Its venv sees the system's rpm bindings and the Kerberos modules
# tools/system-deps.sh installs (gssapi, cccolutils, requests-kerberos): from PyPI they
# would be C sources to build against the Kerberos headers.
# requests-kerberos 0.12 (Debian 12's) uses pykerberos, which Debian packages (python3-kerberos);
# 0.13 and later need pyspnego[kerberos], whose krb5 PyPI has only as C sources (a compiler,
# libkrb5-dev and 2 minutes): pinned, Debian 13's 0.14 is shadowed in the venv.
PACKIT_PYPI := packitos==1.17.0 requests-kerberos==0.12.0
PACKIT_VENV := build/packit-venv
$(PACKIT_VENV)/.installed: Makefile
	$(PYTHON) -m venv --system-site-packages $(PACKIT_VENV)
	$(PACKIT_VENV)/bin/python -m pip install -q $(PACKIT_PYPI)
	touch $@

packit: system-deps $(PACKIT_VENV)/.installed
	bash tools/packit-check.sh $(PACKIT_VENV)/bin/packit

demo: deps
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh
	$(BIN)/python tools/demo_packages.py

# Every figure in one run, then a table; exits 1 when a goal fails. Needs root (the rpm
# bed, the sid root). Makes build/bench-venv (PyPI's newest click and configobj) once.
# BENCH_GROUPS="dnf4 dnf5" measures only those groups (tools/bench.py's GROUPS).
bench: deps
	$(BIN)/python tools/bench.py $(BENCH_GROUPS)

# The man page and the bash completion from the click commands (tools/gen_docs.py); commit
# what it writes: tests/test_docs.py fails while the committed copies are stale.
docs: venv
	PYTHONPATH=$(CURDIR) $(BIN)/python -m tools.gen_docs

# A root left mounted by a killed run has the host's /dev inside: unmount before rm.
clean:
	$(DEBIAN_ROOT) remove build
	rm -rf $(VENV) $(FLOOR_VENV) dist build *.egg-info .pytest_cache .hypothesis .ruff_cache
