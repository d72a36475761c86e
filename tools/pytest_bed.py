"""pytest plugin for `make test`: split the suite by the rpm test bed, allow no skip, and
name the versions under test in the header.

`--bed=only` keeps the tests that use the `bed` fixture (tests/conftest.py: real rpmbuild,
createrepo_c, dnf and rpm), directly or through another fixture; `--bed=without` keeps the
others (unit, CLI, online). The split follows the fixture, not file or test names, so tests
added later land on the right side by themselves; `--deselect-fixture=NAME` drops the tests
that use another fixture. Dropped tests are deselected, not skipped.

`--no-skip` turns every skip into a failure: a test that cannot run where `make test` runs
(a missing tool, not root) must say so loudly instead of passing by silence.
"""

from __future__ import annotations

import pytest

# What the header names, so every run's log says which stack it tested.
STACK = ("click", "configobj", "msal", "requests", "urllib3", "dnf", "rpm")


def pytest_report_header(config):
    import importlib
    import sys
    from importlib import metadata

    found = []
    for name in STACK:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:  # dnf and rpm come from the system, bare
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            version = getattr(module, "VERSION", None) or getattr(module, "__version__", "?")
        found.append(f"{name} {version}")
    return f"stack: Python {sys.version.split()[0]}, " + ", ".join(found)


def pytest_addoption(parser):
    group = parser.getgroup("onedesk")
    group.addoption("--bed", choices=("only", "without"), default=None,
                    help="keep only the tests that use the rpm test bed, or only the others")
    group.addoption("--deselect-fixture", action="append", default=[], metavar="NAME",
                    help="deselect every test that uses the fixture NAME (repeatable)")
    group.addoption("--no-skip", action="store_true", default=False,
                    help="report a skipped test as a failure")


def pytest_collection_modifyitems(config, items):
    which = config.getoption("bed")
    unwanted = set(config.getoption("deselect_fixture"))
    if which is None and not unwanted:
        return
    keep, drop = [], []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        wanted = which is None or ("bed" in fixtures) == (which == "only")
        (keep if wanted and not fixtures & unwanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and item.config.getoption("no_skip")
            and not hasattr(report, "wasxfail")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and `make test` allows no skip: {reason}"
